/* fib: fork-join fib(n) with a task per call above --cutoff (default 12).
 * One op is one fib call: fib(32) makes 7,049,155 calls (bench.h's ops). */
#include "bench.h"

struct fib_arg { unsigned n, cutoff; };

static uint64_t fib_seq(unsigned n)
{
    return n < 2 ? n : fib_seq(n - 1) + fib_seq(n - 2);
}

/* The expected result and the call count, in O(n): checking the answer
 * with fib_seq would add a serial fib(n) to every timed repetition (it
 * once did, and hid most of the two-worker speed-up). */
static uint64_t fib_iter(unsigned n)
{
    uint64_t a = 0, b = 1;
    for (unsigned i = 0; i < n; i++) {
        uint64_t t = a + b;
        a = b;
        b = t;
    }
    return a;
}

static void *fib_task(void *p)
{
    struct fib_arg *a = p;
    if (a->n <= a->cutoff)
        return (void *)(uintptr_t)fib_seq(a->n);
    struct fib_arg l = { a->n - 1, a->cutoff };
    struct fib_arg r = { a->n - 2, a->cutoff };
    weft_task t;
    if (weft_task_spawn(&t, fib_task, &l, NULL))
        return (void *)UINTPTR_MAX;
    uint64_t y = (uint64_t)(uintptr_t)fib_task(&r);
    void *x;
    weft_task_join(t, &x, WEFT_NEVER);
    return (void *)(uintptr_t)((uint64_t)(uintptr_t)x + y);
}

static int body(const struct bench_opts *o)
{
    struct fib_arg a = { (unsigned)o->n, o->cutoff };
    weft_task t;
    void *r;
    if (weft_task_spawn(&t, fib_task, &a, NULL) || weft_task_join(t, &r, WEFT_NEVER))
        return 1;
    return (uint64_t)(uintptr_t)r == fib_iter((unsigned)o->n) ? 0 : 1;
}

/* Calls made by the naive recursion for fib(n): 2*fib(n+1) - 1. */
static uint64_t ops(const struct bench_opts *o)
{
    return 2 * fib_iter((unsigned)o->n + 1) - 1;
}

const struct bench bench_fib = {
    .name = "fib", .default_n = 32, .body = body,
    .help = "fork-join fib(n), --cutoff C", .ops = ops,
};
