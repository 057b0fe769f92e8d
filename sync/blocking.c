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
 * function is gone; one inside leaves when the function returns. It is independent of weft_run (jobs may be submitted from any
 * thread, with or without a runtime) and holds no memory while idle
 * beyond this static state, so nothing leaks at exit.
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

#include <errno.h>
#include <pthread.h>
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
 * job; `running` those of them inside a job's function; `idle` those
 * waiting on `cv` (or woken and not yet running again); `wakes` the signals
 * sent to idle threads and not yet consumed, so that k jobs wake k of them;
 * `queued` the jobs in the list.
 */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* jobs to take; CLOCK_MONOTONIC, set up once */
    pthread_cond_t gone;        /* a thread left (weft_blocking_set_max waits) */
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
    pthread_cond_init(&g_pool.gone, NULL);
}

/* Under mu: wake an idle thread for a queued job unless one is already
 * signalled for each. */
static void wake_for_jobs(void)
{
    if (g_pool.queued > g_pool.wakes && g_pool.idle > g_pool.wakes) {
        g_pool.wakes++;
        pthread_cond_signal(&g_pool.cv);
    }
}

/* Under mu: the calling pool thread leaves the pool. It may have consumed
 * a wake meant for a job: hand that on. */
static void leave_pool(void)
{
    g_pool.threads--;
    wake_for_jobs();
    pthread_cond_broadcast(&g_pool.gone);
}

static void *pool_thread(void *unused);

/* Under mu: start one pool thread; false if pthread_create failed. */
static bool start_thread(void)
{
    pthread_t th;
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    bool ok = pthread_create(&th, &a, pool_thread, NULL) == 0;
    pthread_attr_destroy(&a);
    if (ok)
        g_pool.threads++;
    return ok;
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
            leave_pool();
        tl_completing = !leave;
        pthread_mutex_unlock(&g_pool.mu);
        weft_future_set(j->f, v);      /* wakes the awaiter, if any is left */
        weft_future_release(j->f);
        weft__mem_free(j, sizeof(*j));
        if (leave)
            return NULL;
        pthread_mutex_lock(&g_pool.mu);
        tl_completing = false;         /* above the bound now? the top leaves */
    }
    leave_pool();
    pthread_mutex_unlock(&g_pool.mu);
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
    rc = 0;
    if (g_pool.idle > g_pool.wakes) {
        g_pool.wakes++;
        pthread_cond_signal(&g_pool.cv);
    } else if (g_pool.threads < g_pool.max) {
        if (!start_thread() && g_pool.threads == 0)
            rc = -EAGAIN;              /* nobody would ever run it */
    }
    if (rc) {                          /* take the job back out: it is the tail */
        g_pool.queued--;
        struct job **p = &g_pool.head;
        while (*p != j)
            p = &(*p)->next;
        *p = NULL;
        g_pool.tail = NULL;
        for (struct job *k = g_pool.head; k; k = k->next)
            g_pool.tail = k;
    }
    pthread_mutex_unlock(&g_pool.mu);
    if (rc) {
        weft_future_release(j->f);
        weft_future_release(j->f);
        weft__mem_free(j, sizeof(*j));
        return rc;
    }
    *out = f;
    return 0;
}

int weft_blocking_run(weft_blocking_fn fn, void *arg, void **result, int64_t deadline)
{
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
         * its last future, or just started, after that) and, while the
         * pool is above @max, leaves there. No thread takes a job while it
         * is above @max, so `running` cannot grow meanwhile: this ends once
         * the pool is down to @max or to the threads inside a job, which
         * leave when their function returns (we do not wait for those). */
        pthread_cond_broadcast(&g_pool.cv);
        while (g_pool.threads > max && g_pool.threads > g_pool.running + self)
            pthread_cond_wait(&g_pool.gone, &g_pool.mu);
    }
    /* Raised: give queued jobs the threads they may now have. Idle
     * threads (signalled ones aside) would have taken them already. */
    while (g_pool.queued > g_pool.wakes + g_pool.idle && g_pool.threads < max)
        if (!start_thread())
            break;                     /* the threads there will get to them */
    pthread_mutex_unlock(&g_pool.mu);
    return 0;
}
