/*
 * weft_bench.c — weft-bench: runtime micro-benchmarks.
 *   weft-bench SUB [--workers W] [--n N] [--reps R] [--cutoff C] [--pin]
 * Prints one line per result (see bench.h). Exits 2 on an unknown
 * sub-command, 1 when a workload's own check fails.
 */
#include "bench.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct bench *const benches[] = {
    &bench_switch, &bench_spawn, &bench_skynet, &bench_fib,
    &bench_pingpong, &bench_oneshot, &bench_handoff, &bench_handoff_futex,
    &bench_mpmc,
};
#define NBENCH (sizeof(benches) / sizeof(benches[0]))

struct run_ctx {
    const struct bench *b;
    const struct bench_opts *o;
    double *ms;
    int failed;
    weft_stats stats;       /* at the end of the last repetition */
};

static void *bench_main(void *arg)
{
    struct run_ctx *c = arg;
    for (unsigned r = 0; r < c->o->reps && !c->failed; r++) {
        int64_t t0 = weft_now();
        if (c->b->body(c->o) != 0)
            c->failed = 1;
        c->ms[r] = (double)(weft_now() - t0) / 1e6;
    }
    weft_stats_get(&c->stats);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: weft-bench SUB [--workers W] [--n N] [--reps R] [--cutoff C] [--pin]\n"
               "sub-commands:\n");
    for (size_t i = 0; i < NBENCH; i++)
        fprintf(f, "  %-10s %s (default n=%llu)\n", benches[i]->name, benches[i]->help,
                (unsigned long long)benches[i]->default_n);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const struct bench *b = NULL;
    for (size_t i = 0; i < NBENCH; i++)
        if (!strcmp(argv[1], benches[i]->name))
            b = benches[i];
    if (!b) {
        fprintf(stderr, "weft-bench: unknown benchmark '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    struct bench_opts o = { .workers = 1, .n = b->default_n, .reps = 5, .cutoff = 12 };
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--pin")) {
            o.pin = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "weft-bench: %s needs a value\n", a);
            return 2;
        }
        char *end;
        unsigned long long x = strtoull(v, &end, 10);
        if (*end || !*v) {
            fprintf(stderr, "weft-bench: bad number '%s' for %s\n", v, a);
            return 2;
        }
        if (!strcmp(a, "--workers")) o.workers = (unsigned)x;
        else if (!strcmp(a, "--n")) o.n = x;
        else if (!strcmp(a, "--reps")) o.reps = (unsigned)x;
        else if (!strcmp(a, "--cutoff")) o.cutoff = (unsigned)x;
        else {
            fprintf(stderr, "weft-bench: unknown option %s\n", a);
            return 2;
        }
        i++;
    }
    if (!o.workers || !o.reps || !o.n) {
        fprintf(stderr, "weft-bench: --workers, --n and --reps must be > 0\n");
        return 2;
    }
    double *ms = calloc(o.reps, sizeof(*ms));
    struct run_ctx c = { .b = b, .o = &o, .ms = ms };
    weft_config cfg = { .workers = o.workers, .pin_workers = o.pin };
    int rc = weft_run(&cfg, bench_main, &c, NULL);
    if (rc) {
        fprintf(stderr, "weft-bench: weft_run: %s\n", strerror(-rc));
        return 1;
    }
    if (c.failed) {
        fprintf(stderr, "weft-bench: %s: correctness check FAILED\n", b->name);
        return 1;
    }
    double cold = ms[0];
    uint64_t ops = b->ops ? b->ops(&o) : o.n;
    qsort(ms, o.reps, sizeof(*ms), cmp_double);
    double med = o.reps % 2 ? ms[o.reps / 2] : (ms[o.reps / 2 - 1] + ms[o.reps / 2]) / 2;
    /* Scheduler counters over all repetitions, per repetition. */
    const weft_stats *st = &c.stats;
    printf("bench=%s runtime=weft workers=%u n=%llu ms=%.3f ns_per_op=%.2f cold_ms=%.3f "
           "reps=%u ops=%llu steals=%llu parks=%llu wakeups=%llu\n",
           b->name, o.workers, (unsigned long long)o.n, med, med * 1e6 / (double)ops, cold,
           o.reps, (unsigned long long)ops, (unsigned long long)(st->steals / o.reps),
           (unsigned long long)(st->parks / o.reps), (unsigned long long)(st->wakeups / o.reps));
    free(ms);
    return 0;
}
