/*
 * skynet: a task tree, 10 children per task, until n leaves (1M = 6 levels);
 * each leaf returns its number, each parent the sum of its children. The
 * sum must be n(n-1)/2 (499999500000 for n = 1M).
 */
#include "bench.h"

struct node { uint64_t num, size; };

static void *skynet(void *arg)
{
    struct node *nd = arg;
    if (nd->size == 1)
        return (void *)(uintptr_t)nd->num;
    uint64_t sub = nd->size / 10;
    struct node kids[10];
    weft_task t[10];
    for (int i = 0; i < 10; i++) {
        kids[i] = (struct node){ nd->num + (uint64_t)i * sub, sub };
        if (weft_task_spawn(&t[i], skynet, &kids[i], NULL))
            return (void *)UINTPTR_MAX;
    }
    uint64_t sum = 0;
    for (int i = 0; i < 10; i++) {
        void *r;
        weft_task_join(t[i], &r, WEFT_NEVER);
        sum += (uint64_t)(uintptr_t)r;
    }
    return (void *)(uintptr_t)sum;
}

static int body(const struct bench_opts *o)
{
    uint64_t n = 1;
    while (n < o->n)
        n *= 10;
    struct node root = { 0, n };
    weft_task t;
    void *r;
    if (weft_task_spawn(&t, skynet, &root, NULL) || weft_task_join(t, &r, WEFT_NEVER))
        return 1;
    return (uint64_t)(uintptr_t)r == n * (n - 1) / 2 ? 0 : 1;
}

const struct bench bench_skynet = {
    .name = "skynet", .default_n = 1000000, .body = body,
    .help = "task tree of 10-ary fan-out, n leaves",
};
