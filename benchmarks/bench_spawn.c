/* spawn: spawn n empty tasks, then join every one of them. */
#include "bench.h"

#include <stdlib.h>

static void *empty(void *arg)
{
    return arg;
}

static int body(const struct bench_opts *o)
{
    weft_task *t = malloc(sizeof(*t) * o->n);
    if (!t)
        return 1;
    int bad = 0;
    for (uint64_t i = 0; i < o->n; i++)
        if (weft_task_spawn(&t[i], empty, (void *)(uintptr_t)(i + 1), NULL))
            bad = 1;
    for (uint64_t i = 0; i < o->n && !bad; i++) {
        void *r;
        if (weft_task_join(t[i], &r, WEFT_NEVER) || r != (void *)(uintptr_t)(i + 1))
            bad = 1;
    }
    free(t);
    return bad;
}

const struct bench bench_spawn = {
    .name = "spawn", .default_n = 1000000, .body = body,
    .help = "spawn and join empty tasks",
};
