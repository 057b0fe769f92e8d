/*
 * blocking.c — the blocking pool (asyncio's run_in_executor, Tokio's
 * spawn_blocking): blocking functions run on plain pthreads, and the task
 * that wants the result awaits a future, so its worker stays free.
 *
 * The pool is per process and lazy: the first job starts a thread; a job
 * that finds no idle thread starts another, up to `max` (then jobs queue);
 * a thread idle for `idle_ns` exits, so an unused pool shrinks to no
 * threads. A thread that finds the pool above `max` (weft_blocking_set_max
 * lowered it) leaves instead of taking a job or waiting for one: set_max
 * wakes the idle ones and waits until every thread not inside a job's
 * function is gone; one inside leaves when the function returns. It is
 * independent of weft_run (jobs may be submitted from any thread, with or
 * without a runtime) and holds no memory while idle beyond this static
 * state, so nothing leaks at exit.
 *
 * Nothing here blocks a worker for long. `mu` is held only for a few
 * list and counter updates, never across pthread_create: a thread is
 * created after its slot was reserved under `mu` (counted in `threads` at
 * once, so the bound stays exact while it starts), and a slot whose thread
 * could not be created is given back. set_max waits for leaving threads on
 * a weft waiter (`gone`), so a task that calls it parks and its worker runs
 * other tasks meanwhile; a foreign thread blocks itself.
 *
 * Lifetime of a job's result: the job holds its own reference to the
 * future it completes, so an awaiter that times out or is cancelled just
 * drops its reference; the job still runs to completion, sets the future
 * (nobody listening) and the last release frees it.
 */
#define _GNU_SOURCE
#include "sync/blocking.h"
#include "weft.h"
#include "alloc/mem.h"
#include "sync/waitq.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define WEFT__BLOCKING_MAX_DEFAULT 64
#define WEFT__BLOCKING_MAX_LIMIT   1024

struct job {
    struct job *next;
    weft_blocking_fn fn;
    void *arg;
    weft_future *f;
};

/*
 * All fields under `mu`. `threads` counts the threads that may still take a
 * job, those being created included; `running` those of them inside a
 * job's function; `idle` those waiting on `cv` (or woken and not yet
 * running again); `wakes` the signals sent to idle threads and not yet
 * consumed, so that k jobs wake k of them; `queued` the jobs in the list.
 * `gone` holds the set_max callers waiting for threads to leave (waitq.h
 * entries; `mu` is their lock: linked, unlinked and claimed under it).
 */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* jobs to take; CLOCK_MONOTONIC, set up once */
    struct weft__waitq gone;    /* woken whenever a thread leaves */
    struct job *head, *tail;
    unsigned threads, running, idle, wakes, max, queued;
    int64_t idle_ns;
} g_pool = { .mu = PTHREAD_MUTEX_INITIALIZER, .max = WEFT__BLOCKING_MAX_DEFAULT,
             .idle_ns = 10LL * 1000000000 };
static pthread_once_t g_pool_once = PTHREAD_ONCE_INIT;

/* Set while this pool thread, still counted, completes its last job's
 * future (done-callbacks may run then, and may call set_max). */
static _Thread_local bool tl_completing;

static void pool_init(void)
{
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&g_pool.cv, &a);
    pthread_condattr_destroy(&a);
}

/* Under mu: wake an idle thread for a queued job unless one is already
 * signalled for each; false if there was none to wake. */
static bool wake_for_jobs(void)
{
    if (g_pool.queued > g_pool.wakes && g_pool.idle > g_pool.wakes) {
        g_pool.wakes++;
        pthread_cond_signal(&g_pool.cv);
        return true;
    }
    return false;
}

/* Under mu: @n thread slots fewer (a thread left, or could not be
 * created). It may have consumed a wake meant for a job: hand that on;
 * and tell set_max's waiters, whom @wake gets signalled after mu. */
static void slots_gone(unsigned n, struct weft__wakelist *wake)
{
    g_pool.threads -= n;
    wake_for_jobs();
    weft__waitq_claim_all(&g_pool.gone, wake);
}

static void *pool_thread(void *unused);

/* Thread starts still to fail (weft__blocking_fail_starts). relaxed: a
 * test's knob, set before the calls it is meant for; it publishes nothing. */
static _Atomic unsigned g_fail_starts;

void weft__blocking_fail_starts(unsigned n)
{
    atomic_store_explicit(&g_fail_starts, n, memory_order_relaxed);
}

/* Whether this start is one to fail (and count it off). */
static bool start_fails(void)
{
    unsigned n = atomic_load_explicit(&g_fail_starts, memory_order_relaxed);
    while (n && !atomic_compare_exchange_weak_explicit(&g_fail_starts, &n, n - 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed))
        ;
    return n != 0;
}

/*
 * Without mu: create the @n pool threads whose slots the caller reserved
 * (counted in `threads` under mu). Slots whose thread could not be created
 * are given back. If that leaves the pool with no thread at all while jobs
 * are queued, nothing would ever run them: they are taken out of the
 * queue, and every one fails with -EAGAIN through its future (its
 * submitter has returned) but the caller's own, the job whose future is
 * @mine (NULL for none): that one is returned, not failed, for the caller
 * to take back. Jobs are told apart by their future, not their record: the
 * caller's reference keeps @mine alive, while the caller's record may have
 * been run, freed and reused for another job meanwhile.
 */
static struct job *start_threads(unsigned n, const weft_future *mine)
{
    unsigned failed = 0;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    for (unsigned i = 0; i < n; i++) {
        pthread_t th;
        failed += start_fails() || pthread_create(&th, &a, pool_thread, NULL) != 0;
    }
    pthread_attr_destroy(&a);
    if (!failed)
        return NULL;
    struct weft__wakelist wake = { 0 };
    struct job *stranded = NULL;
    pthread_mutex_lock(&g_pool.mu);
    slots_gone(failed, &wake);
    if (g_pool.threads == 0) {
        stranded = g_pool.head;
        g_pool.head = g_pool.tail = NULL;
        g_pool.queued = 0;
    }
    pthread_mutex_unlock(&g_pool.mu);
    weft__wakelist_signal(&wake, 0);
    struct job *taken = NULL;
    while (stranded) {
        struct job *j = stranded;
        stranded = j->next;
        if (j->f == mine) {
            taken = j;                 /* the caller's to take back */
            continue;
        }
        weft_future_fail(j->f, -EAGAIN);
        weft_future_release(j->f);     /* the job's reference */
        weft__mem_free(j, sizeof(*j));
    }
    return taken;
}

void weft__blocking_set_idle_ns(int64_t ns)
{
    pthread_once(&g_pool_once, pool_init);
    pthread_mutex_lock(&g_pool.mu);
    g_pool.idle_ns = ns;
    pthread_cond_broadcast(&g_pool.cv);   /* re-arm the idle timeouts */
    pthread_mutex_unlock(&g_pool.mu);
}

static void *pool_thread(void *unused)
{
    (void)unused;
    struct weft__wakelist wake = { 0 };
    pthread_mutex_lock(&g_pool.mu);
    for (;;) {
        if (g_pool.threads > g_pool.max)
            break;                       /* the bound was lowered: leave */
        struct job *j = g_pool.head;
        if (!j) {
            int64_t until = weft_now() + g_pool.idle_ns;
            struct timespec ts = { until / 1000000000, until % 1000000000 };
            g_pool.idle++;
            int rc = pthread_cond_timedwait(&g_pool.cv, &g_pool.mu, &ts);
            g_pool.idle--;
            if (g_pool.wakes)
                g_pool.wakes--;
            if (!g_pool.head && rc == ETIMEDOUT && weft_now() >= until)
                break;                   /* idle too long: leave */
            continue;
        }
        if (!(g_pool.head = j->next))
            g_pool.tail = NULL;
        g_pool.queued--;
        g_pool.running++;
        pthread_mutex_unlock(&g_pool.mu);

        void *v = j->fn(j->arg);

        /* Leave before completing the future, if the pool is above its
         * bound: whoever sees the result sees the pool already smaller. */
        pthread_mutex_lock(&g_pool.mu);
        g_pool.running--;
        bool leave = g_pool.threads > g_pool.max;
        if (leave)
            slots_gone(1, &wake);
        tl_completing = !leave;
        pthread_mutex_unlock(&g_pool.mu);
        weft__wakelist_signal(&wake, 0);
        weft_future_set(j->f, v);      /* wakes the awaiter, if any is left */
        weft_future_release(j->f);
        weft__mem_free(j, sizeof(*j));
        if (leave)
            return NULL;
        pthread_mutex_lock(&g_pool.mu);
        tl_completing = false;         /* above the bound now? the top leaves */
    }
    slots_gone(1, &wake);
    pthread_mutex_unlock(&g_pool.mu);
    weft__wakelist_signal(&wake, 0);
    return NULL;
}

int weft_blocking_spawn(weft_future **out, weft_blocking_fn fn, void *arg)
{
    if (!out || !fn)
        return -EINVAL;
    pthread_once(&g_pool_once, pool_init);
    struct job *j = weft__mem_alloc(sizeof(*j));
    if (!j)
        return -ENOMEM;
    int rc = weft_future_new(&j->f);
    if (rc) {
        weft__mem_free(j, sizeof(*j));
        return rc;
    }
    weft_future_retain(j->f);          /* one for the job, one for the caller */
    weft_future *f = j->f;             /* j may be run and freed once queued */
    j->fn = fn;
    j->arg = arg;

    pthread_mutex_lock(&g_pool.mu);
    if (g_pool.tail)
        g_pool.tail->next = j;
    else
        g_pool.head = j;
    g_pool.tail = j;
    g_pool.queued++;
    bool start = false;
    if (g_pool.idle > g_pool.wakes) {
        g_pool.wakes++;
        pthread_cond_signal(&g_pool.cv);
    } else if (g_pool.threads < g_pool.max) {
        g_pool.threads++;              /* reserved; created below, outside mu */
        start = true;
    }
    pthread_mutex_unlock(&g_pool.mu);
    if (start && (j = start_threads(1, f)) != NULL) {
        /* No thread could be started and none is left to run it: taken
         * back out, never run. */
        weft_future_release(f);
        weft_future_release(f);
        weft__mem_free(j, sizeof(*j));
        return -EAGAIN;
    }
    *out = f;
    return 0;
}

int weft_blocking_run(weft_blocking_fn fn, void *arg, void **result, int64_t deadline)
{
    if (!fn)
        return -EINVAL;
    if (weft__cancel_point(deadline))      /* no job submitted (sync/waitq.h) */
        return -ECANCELED;
    weft_future *f;
    int rc = weft_blocking_spawn(&f, fn, arg);
    if (rc)
        return rc;
    rc = weft_future_await(f, result, deadline);
    weft_future_release(f);            /* on a timeout the job keeps its own */
    return rc;
}

unsigned weft__blocking_idle(void)
{
    pthread_mutex_lock(&g_pool.mu);
    unsigned n = g_pool.idle;
    pthread_mutex_unlock(&g_pool.mu);
    return n;
}

unsigned weft_blocking_threads(void)
{
    pthread_mutex_lock(&g_pool.mu);
    unsigned n = g_pool.threads;
    pthread_mutex_unlock(&g_pool.mu);
    return n;
}

int weft_blocking_set_max(unsigned max)
{
    if (max == 0 || max > WEFT__BLOCKING_MAX_LIMIT)
        return -EINVAL;
    pthread_once(&g_pool_once, pool_init);
    /* A pool thread calling from a done-callback of its last job's future
     * is not running a job, but cannot leave while it waits here. */
    unsigned self = tl_completing ? 1 : 0;
    pthread_mutex_lock(&g_pool.mu);
    g_pool.max = max;
    if (g_pool.threads > max) {
        /* Every thread not inside a job's function comes to the top of
         * pool_thread's loop soon (the idle ones wake now; one completing
         * its last future, or just started or being created, after that)
         * and, while the pool is above @max, leaves there. No thread takes
         * a job while it is above @max, so `running` cannot grow
         * meanwhile: this ends once the pool is down to @max or to the
         * threads inside a job, which leave when their function returns
         * (we do not wait for those). Each leaver wakes every waiter here,
         * which looks again. The wait is a weft waiter's, not a condition
         * variable's: a task parks (its worker runs on), a foreign thread
         * blocks; uncancellable and without deadline, so only a leaver
         * ends it (and unlinks the entry when it claims it). */
        pthread_cond_broadcast(&g_pool.cv);
        while (g_pool.threads > max && g_pool.threads > g_pool.running + self) {
            struct weft__waiter w;
            struct weft__wnode n;
            weft__waiter_init(&w);
            weft__wnode_init(&n, &w, NULL, 0, NULL);
            weft__waitq_push(&g_pool.gone, &n);
            pthread_mutex_unlock(&g_pool.mu);
            weft__waiter_wait_flags(&w, WEFT_NEVER, WEFT__WAIT_NOCANCEL);
            pthread_mutex_lock(&g_pool.mu);
        }
    }
    /* Raised: queued jobs first get the idle threads not yet signalled
     * (each signalled one takes a job), then each of the others a thread
     * of its own, up to the new bound (reserved here, created outside
     * mu). `wakes` counts signalled idle threads, so `idle` is not added. */
    while (wake_for_jobs())
        ;
    unsigned start = 0;
    while (g_pool.queued > g_pool.wakes + start && g_pool.threads < max) {
        g_pool.threads++;
        start++;
    }
    pthread_mutex_unlock(&g_pool.mu);
    start_threads(start, NULL);
    return 0;
}
