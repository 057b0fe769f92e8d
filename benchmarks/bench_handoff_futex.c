/* handoff_futex: the baseline the handoff benchmark is judged against —
 * two plain threads answering each other through futex words, each
 * sleeping in the kernel until the other wakes it (no spinning); n = round
 * trips. The body runs in a task but only starts the two threads and
 * joins them (the worker blocks meanwhile: this is a measurement, not an
 * example). */
#define _GNU_SOURCE
#include "bench.h"

#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

struct fx { _Atomic uint32_t req, rep; uint64_t n; };

static void put(_Atomic uint32_t *word, uint32_t v)
{
    atomic_store_explicit(word, v, memory_order_release);
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void wait_for(_Atomic uint32_t *word, uint32_t v)
{
    uint32_t cur;
    while ((cur = atomic_load_explicit(word, memory_order_acquire)) != v)
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, cur, NULL, NULL, 0);
}

static void *ponger(void *arg)
{
    struct fx *f = arg;
    for (uint32_t i = 1; i <= f->n; i++) {
        wait_for(&f->req, i);
        put(&f->rep, i);
    }
    return NULL;
}

static void *pinger(void *arg)
{
    struct fx *f = arg;
    for (uint32_t i = 1; i <= f->n; i++) {
        put(&f->req, i);
        wait_for(&f->rep, i);
    }
    return NULL;
}

static int body(const struct bench_opts *o)
{
    struct fx f = { 0, 0, o->n };
    if (o->n >= UINT32_MAX)
        return 1;
    pthread_t a, b;
    if (pthread_create(&b, NULL, ponger, &f))
        return 1;
    if (pthread_create(&a, NULL, pinger, &f))
        pinger(&f);                /* no second thread: ping from this one */
    else
        pthread_join(a, NULL);
    pthread_join(b, NULL);
    return atomic_load(&f.rep) != (uint32_t)o->n;
}

const struct bench bench_handoff_futex = {
    .name = "handoff_futex", .default_n = 20000, .body = body,
    .help = "baseline for handoff: two plain threads answering through futexes (n round trips)",
};
