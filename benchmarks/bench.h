/*
 * bench.h — the shared frame of weft-bench's sub-commands.
 *
 * A sub-command measures one workload: bench_run() calls its body `reps`
 * times inside one weft_run (the first, cold, run included) and prints one
 * line: bench=NAME runtime=weft workers=W n=N ms=T ns_per_op=X cold_ms=C
 * reps=R ops=O steals=S parks=P wakeups=K, where ms and ns_per_op are the
 * medians over the repetitions (cold one included), cold_ms the first, ops
 * what ns_per_op divides by, and the last three the runtime's counters
 * (weft_stats) at the end.
 * A body returns 0, or non-zero when its correctness check failed (then
 * weft-bench exits with status 1 and prints no figure).
 */
#ifndef WEFT_BENCH_H
#define WEFT_BENCH_H

#include <stdint.h>

#include "weft.h"

struct bench_opts {
    unsigned workers;
    uint64_t n;
    unsigned reps;
    unsigned cutoff;       /* fib */
    int pin;
};

struct bench {
    const char *name;
    uint64_t default_n;
    /* Runs inside a task; returns 0 or non-zero on a failed check. */
    int (*body)(const struct bench_opts *o);
    const char *help;
    /* Operations per run when they are not n (ns_per_op = ms / ops). */
    uint64_t (*ops)(const struct bench_opts *o);
};

/* Each bench_*.c defines one of these. */
extern const struct bench bench_switch, bench_spawn, bench_skynet, bench_fib,
    bench_pingpong, bench_oneshot, bench_handoff, bench_handoff_futex, bench_mpmc;

#endif
