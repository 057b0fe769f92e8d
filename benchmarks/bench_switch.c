/* switch: two tasks yield to each other on one worker; n = total switches. */
#include "bench.h"

struct pp { uint64_t rounds; uint64_t count; };

static void *yielder(void *arg)
{
    struct pp *p = arg;
    for (uint64_t i = 0; i < p->rounds; i++) {
        weft_yield();
        p->count++;
    }
    return NULL;
}

static int body(const struct bench_opts *o)
{
    struct pp a = { o->n / 2, 0 }, b = { o->n / 2, 0 };
    weft_task ta, tb;
    if (weft_task_spawn(&ta, yielder, &a, NULL) || weft_task_spawn(&tb, yielder, &b, NULL))
        return 1;
    weft_task_join(ta, NULL, WEFT_NEVER);
    weft_task_join(tb, NULL, WEFT_NEVER);
    return a.count + b.count == (o->n / 2) * 2 ? 0 : 1;
}

const struct bench bench_switch = {
    .name = "switch", .default_n = 10000000, .body = body,
    .help = "two tasks yield to each other",
};
