/*
 * test_blocking.c — the blocking pool: results, the worker staying free
 * while a job blocks, growth on demand and the bound, shrinking when idle,
 * an awaiter timing out or being cancelled while its job still runs (its
 * result dropped without a leak: ASan), errors, use without a runtime, and
 * weft_blocking_set_max taking effect at once: idle threads above a lowered
 * bound gone when it returns, busy ones leaving as their job returns (no job
 * starting meanwhile above the bound), a raised bound starting threads for
 * queued jobs, and the call made from a pool job or from a done-callback
 * on a pool thread, or from a task (its worker stays free while it waits);
 * a cancelled task's weft_blocking_run submitting nothing; and thread
 * starts that fail (-EAGAIN, slots given back).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "weft.h"
#include "sync/blocking.h"
#include "tests/helpers.h"

static void run_on(unsigned workers, void *(*fn)(void *), void *arg)
{
    weft_config cfg = { .workers = workers };
    cr_assert_eq(weft_run(&cfg, fn, arg, NULL), 0);
}

/* Wait (bounded, polling a condition — not for ordering) until the pool
 * has no threads left, so every job has finished and freed its record. */
static void drain_pool(void)
{
    weft__blocking_set_idle_ns(5000000);
    int64_t until = weft_now() + 10LL * 1000000000;
    while (weft_blocking_threads() > 0 && weft_now() < until)
        weft_sleep(1000000);
    cr_assert_eq(weft_blocking_threads(), 0);
    weft__blocking_set_idle_ns(10LL * 1000000000);
}

static void *square(void *arg)
{
    intptr_t x = (intptr_t)arg;
    return (void *)(x * x);
}

/* blocks its pool thread (a foreign thread) on an event */
static void *wait_event(void *arg)
{
    cr_assert_eq(weft_event_wait(arg, WEFT_NEVER), 0);
    return (void *)5;
}

static void *setter(void *arg)
{
    weft_yield();
    weft_event_set(arg);
    return NULL;
}

static void *worker_free_main(void *arg)
{
    void *v;
    cr_assert_eq(weft_blocking_run(square, (void *)7, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, 49);
    /* one worker: the job blocks until another task sets the event, which
     * can only happen if the worker is not blocked by the job */
    weft_event *e;
    cr_assert_eq(weft_event_new(&e), 0);
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, setter, e, NULL), 0);
    cr_assert_eq(weft_blocking_run(wait_event, e, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, 5);
    weft_task_join(t, NULL, WEFT_NEVER);
    weft_event_free(e);
    return NULL;
}

Test(blocking, result_and_worker_stays_free, .timeout = 30)
{
    run_on(1, worker_free_main, NULL);
}

static void *grow_main(void *arg)
{
    enum { N = 8 };
    weft_event *e;
    cr_assert_eq(weft_event_new(&e), 0);
    weft_future *f[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_blocking_spawn(&f[i], wait_event, e), 0);
    /* all N block at once, so the pool must have grown to N threads */
    int64_t until = weft_now() + 10LL * 1000000000;
    while (weft_blocking_threads() < N && weft_now() < until)
        weft_yield();
    cr_assert_geq(weft_blocking_threads(), N);
    cr_assert_eq(weft_event_set(e), 0);
    void *vals[N];
    cr_assert_eq(weft_gather(f, N, vals, WEFT_NEVER), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq((intptr_t)vals[i], 5);
        weft_future_release(f[i]);
    }
    drain_pool();                  /* idle threads exit: the pool shrinks */

    /* bounded: 2 threads, 6 jobs queue and still all run */
    cr_assert_eq(weft_blocking_set_max(0), -EINVAL);
    cr_assert_eq(weft_blocking_set_max(2), 0);
    cr_assert_eq(weft_event_clear(e), 0);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(weft_blocking_spawn(&f[i], wait_event, e), 0);
    cr_assert_leq(weft_blocking_threads(), 2);
    cr_assert_eq(weft_event_set(e), 0);
    cr_assert_eq(weft_wait(f, 6, WEFT_WAIT_ALL, WEFT_NEVER), 0);
    for (int i = 0; i < 6; i++)
        weft_future_release(f[i]);
    cr_assert_eq(weft_blocking_set_max(64), 0);
    drain_pool();
    weft_event_free(e);
    return NULL;
}

Test(blocking, grows_bounded_and_shrinks, .timeout = 60)
{
    run_on(2, grow_main, NULL);
}

static void *run_forever_blocking(void *arg)
{
    return (void *)(intptr_t)weft_blocking_run(wait_event, arg, NULL, WEFT_NEVER);
}

static void *abandon_main(void *arg)
{
    weft_event *e;
    cr_assert_eq(weft_event_new(&e), 0);
    cr_assert_eq(weft_blocking_run(NULL, NULL, NULL, 0), -EINVAL);
    cr_assert_eq(weft_blocking_spawn(NULL, square, NULL), -EINVAL);
    /* the awaiter times out; the job runs on and its result is dropped */
    cr_assert_eq(weft_blocking_run(wait_event, e, NULL, weft_deadline_in(2000000)), -ETIMEDOUT);
    /* the awaiter is cancelled */
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, run_forever_blocking, e, NULL), 0);
    for (int i = 0; i < 20; i++)
        weft_yield();
    cr_assert_eq(weft_task_cancel(t), 0);
    void *r;
    cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, -ECANCELED);
    cr_assert_eq(weft_event_set(e), 0);   /* let both jobs finish */
    drain_pool();                         /* ... and free their records */
    weft_event_free(e);
    return NULL;
}

Test(blocking, abandoned_jobs_finish_without_leak, .timeout = 60)
{
    run_on(2, abandon_main, NULL);
}

Test(blocking, usable_without_runtime, .timeout = 30)
{
    void *v;
    cr_assert_eq(weft_blocking_run(square, (void *)9, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, 81);
    drain_pool();
}

/* ---- weft_blocking_set_max takes effect at once ------------------------- */

static _Atomic int g_running, g_peak;

/* counts itself as running while it waits for the event; records the peak */
static void *counted_wait(void *arg)
{
    int now = atomic_fetch_add(&g_running, 1) + 1;
    int peak = atomic_load(&g_peak);
    while (now > peak && !atomic_compare_exchange_weak(&g_peak, &peak, now))
        ;
    int rc = weft_event_wait(arg, weft_deadline_in(20LL * 1000000000));
    atomic_fetch_sub(&g_running, 1);
    return (void *)(intptr_t)rc;
}

/* Start @n jobs that all block on @e at once, and wait until they run. */
static void start_blocked(weft_future **f, int n, weft_event *e)
{
    for (int i = 0; i < n; i++)
        cr_assert_eq(weft_blocking_spawn(&f[i], counted_wait, e), 0);
    int64_t until = weft_now() + 10LL * 1000000000;
    while (atomic_load(&g_running) < n && weft_now() < until)
        weft_yield();
    cr_assert_eq(atomic_load(&g_running), n);
}

/* Collect @n jobs' results, then wait until every pool thread is back in
 * its wait: a thread completes its job's future before it returns there,
 * and a job spawned in between would start a thread of its own. */
static void finish(weft_future **f, int n)
{
    void *vals[16];
    cr_assert_eq(weft_gather(f, (size_t)n, vals, WEFT_NEVER), 0);
    for (int i = 0; i < n; i++) {
        cr_assert_eq((intptr_t)vals[i], 0);
        weft_future_release(f[i]);
    }
    int64_t until = weft_now() + 10LL * 1000000000;
    while (weft__blocking_idle() != weft_blocking_threads() && weft_now() < until)
        weft_yield();
    cr_assert_eq(weft__blocking_idle(), weft_blocking_threads());
}

static void *set_max_main(void *arg)
{
    weft_event *e;
    weft_future *f[8];
    cr_assert_eq(weft_event_new(&e), 0);
    cr_assert_eq(weft_blocking_set_max(1025), -EINVAL);
    cr_assert_eq(weft_blocking_threads(), 0);   /* a fresh process */

    /* four threads, all idle: lowering the bound to 1 leaves exactly 1 */
    start_blocked(f, 4, e);
    cr_assert_eq(weft_blocking_threads(), 4);
    cr_assert_eq(weft_event_set(e), 0);
    finish(f, 4);
    cr_assert_eq(weft_blocking_threads(), 4);   /* idle, not timed out */
    cr_assert_eq(weft_blocking_set_max(1), 0);
    cr_assert_eq(weft_blocking_threads(), 1);
    cr_assert_eq(weft_blocking_set_max(1), 0);  /* nothing to do */
    cr_assert_eq(weft_blocking_threads(), 1);

    /* raising it starts threads for queued jobs at once: four jobs that
     * each need the others running (else they time out) */
    cr_assert_eq(weft_event_clear(e), 0);
    atomic_store(&g_peak, 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_blocking_spawn(&f[i], counted_wait, e), 0);
    cr_assert_leq(weft_blocking_threads(), 1);  /* three queued */
    cr_assert_eq(weft_blocking_set_max(4), 0);
    cr_assert_eq(weft_blocking_threads(), 4);
    int64_t until = weft_now() + 10LL * 1000000000;
    while (atomic_load(&g_running) < 4 && weft_now() < until)
        weft_yield();
    cr_assert_eq(atomic_load(&g_running), 4);
    cr_assert_eq(weft_event_set(e), 0);
    finish(f, 4);

    /* busy threads above a lowered bound: none leaves while its job runs,
     * each leaves when it returns — before its future completes — and no
     * queued job starts while the pool is above the bound */
    cr_assert_eq(weft_event_clear(e), 0);
    cr_assert_eq(weft_blocking_set_max(8), 0);
    start_blocked(f, 4, e);                     /* 4 busy threads */
    cr_assert_eq(weft_blocking_threads(), 4);
    cr_assert_eq(weft_blocking_set_max(2), 0);  /* returns at once */
    cr_assert_eq(weft_blocking_threads(), 4);
    atomic_store(&g_peak, 0);
    weft_event *e2;
    cr_assert_eq(weft_event_new(&e2), 0);
    cr_assert_eq(weft_event_set(e2), 0);        /* these two do not block */
    for (int i = 4; i < 6; i++)
        cr_assert_eq(weft_blocking_spawn(&f[i], counted_wait, e2), 0);
    cr_assert_eq(weft_blocking_threads(), 4);   /* queued: no new thread */
    cr_assert_eq(atomic_load(&g_peak), 0);      /* and not started */
    cr_assert_eq(weft_event_set(e), 0);
    finish(f, 6);
    cr_assert_eq(weft_blocking_threads(), 2);
    /* the two queued jobs ran with at most 2 jobs running in all */
    cr_assert_leq(atomic_load(&g_peak), 2);
    cr_assert_geq(atomic_load(&g_peak), 1);
    weft_event_free(e2);
    weft_event_free(e);
    return NULL;
}

Test(blocking, set_max_takes_effect_at_once, .timeout = 60)
{
    run_on(2, set_max_main, NULL);
}

/* From a pool job: the caller's own (busy) thread is not waited for. */
static void *lower_from_job(void *arg)
{
    cr_assert_eq(weft_blocking_set_max(1), 0);
    return (void *)(uintptr_t)weft_blocking_threads();
}

/* From a done-callback running on the pool thread that completes the
 * future: that thread is not inside a job, but must not wait for itself. */
static _Atomic int g_cb_threads = -1;

static void cb_lower(weft_future *f, void *arg)
{
    cr_assert_eq(weft_blocking_set_max(1), 0);
    atomic_store(&g_cb_threads, (int)weft_blocking_threads());
}

static void *set_max_job_main(void *arg)
{
    weft_event *e;
    weft_future *f[4];
    cr_assert_eq(weft_event_new(&e), 0);
    start_blocked(f, 4, e);
    cr_assert_eq(weft_event_set(e), 0);
    finish(f, 4);
    cr_assert_eq(weft_blocking_threads(), 4);   /* all idle */
    void *v;
    cr_assert_eq(weft_blocking_run(lower_from_job, NULL, &v, WEFT_NEVER), 0);
    cr_assert_eq((uintptr_t)v, 1);              /* only the job's own thread */
    cr_assert_eq(weft_blocking_threads(), 1);
    cr_assert_eq(weft_blocking_run(square, (void *)3, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, 9);               /* and it still serves */

    cr_assert_eq(weft_blocking_set_max(64), 0);
    cr_assert_eq(weft_event_clear(e), 0);
    start_blocked(f, 3, e);
    cr_assert_eq(weft_event_set(e), 0);
    finish(f, 3);                               /* 3 threads, all idle */
    weft_event *e2;
    weft_future *g;
    cr_assert_eq(weft_event_new(&e2), 0);
    cr_assert_eq(weft_blocking_spawn(&g, wait_event, e2), 0);
    cr_assert_eq(weft_future_on_done(g, cb_lower, NULL), 0);
    cr_assert_eq(weft_event_set(e2), 0);
    cr_assert_eq(weft_future_await(g, &v, WEFT_NEVER), 0);
    while (atomic_load(&g_cb_threads) < 0)
        weft_yield();                           /* callbacks run after the wake */
    cr_assert_eq(atomic_load(&g_cb_threads), 1);
    cr_assert_eq(weft_blocking_threads(), 1);
    weft_future_release(g);
    cr_assert_eq(weft_blocking_set_max(64), 0);
    weft_event_free(e2);
    weft_event_free(e);
    return NULL;
}

Test(blocking, set_max_from_a_pool_job_or_callback, .timeout = 60)
{
    run_on(2, set_max_job_main, NULL);
}

/* Lowering and raising the bound while jobs stream in from tasks and a
 * foreign thread: every job runs exactly once, and the pool ends within
 * the bound. */
static _Atomic int g_ran;

static void *count_job(void *arg)
{
    atomic_fetch_add(&g_ran, 1);
    return arg;
}

struct stream { int n, base; };

static void *stream_jobs(void *arg)
{
    struct stream *s = arg;
    for (int i = 0; i < s->n; i++) {
        void *v;
        cr_assert_eq(weft_blocking_run(count_job, (void *)(intptr_t)(s->base + i), &v,
                                       WEFT_NEVER), 0);
        cr_assert_eq((intptr_t)v, s->base + i);
    }
    return NULL;
}

static void *stream_thread(void *arg)
{
    return stream_jobs(arg);
}

static void *set_max_stream_main(void *arg)
{
    int per = (int)test_scale(400);
    struct stream ss[4];
    weft_task t[3];
    pthread_t th;
    for (int k = 0; k < 4; k++)
        ss[k] = (struct stream){ per, k * per };
    for (int k = 0; k < 3; k++)
        cr_assert_eq(weft_task_spawn(&t[k], stream_jobs, &ss[k], NULL), 0);
    cr_assert_eq(pthread_create(&th, NULL, stream_thread, &ss[3]), 0);
    for (int r = 0; r < 50; r++) {
        cr_assert_eq(weft_blocking_set_max(1 + r % 3), 0);
        weft_yield();
        cr_assert_eq(weft_blocking_set_max(8), 0);
        weft_yield();
    }
    cr_assert_eq(weft_blocking_set_max(2), 0);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(weft_task_join(t[k], NULL, WEFT_NEVER), 0);
    pthread_join(th, NULL);                     /* its jobs finish without us */
    cr_assert_eq(atomic_load(&g_ran), 4 * per);
    cr_assert_leq(weft_blocking_threads(), 2);
    return NULL;
}

Test(blocking, set_max_while_jobs_stream, .timeout = 120)
{
    run_on(4, set_max_stream_main, NULL);
}

/* ---- set_max from a task leaves its worker free -------------------------- */

/*
 * One worker. Two pool threads each complete a job's future whose
 * done-callback blocks until an event is set; the task that sets it is
 * spawned just before the main task lowers the bound to 1, which must
 * wait for one of the two threads to leave — so for that task to run on
 * the same, only, worker. A set_max that blocked its worker would wait
 * forever (the test's timeout).
 */
static _Atomic int g_in_cb;

static void cb_block(weft_future *f, void *arg)
{
    (void)f;
    atomic_fetch_add(&g_in_cb, 1);
    cr_assert_eq(weft_event_wait(arg, WEFT_NEVER), 0);   /* a pool thread: blocks */
}

static void *set_event(void *arg)
{
    cr_assert_eq(weft_event_set(arg), 0);
    return NULL;
}

static void *set_max_free_main(void *arg)
{
    (void)arg;
    weft_event *e0, *e;
    weft_future *f[2];
    cr_assert_eq(weft_event_new(&e0), 0);
    cr_assert_eq(weft_event_new(&e), 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(weft_blocking_spawn(&f[i], wait_event, e0), 0);
        cr_assert_eq(weft_future_on_done(f[i], cb_block, e), 0);
    }
    int64_t until = weft_now() + 10LL * 1000000000;
    while (weft_blocking_threads() < 2 && weft_now() < until)
        weft_yield();
    cr_assert_eq(weft_blocking_threads(), 2);
    cr_assert_eq(weft_event_set(e0), 0);
    while (atomic_load(&g_in_cb) < 2 && weft_now() < until)
        weft_yield();                 /* both threads are in their callbacks */
    cr_assert_eq(atomic_load(&g_in_cb), 2);
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, set_event, e, NULL), 0);   /* runs only if we park */
    cr_assert_eq(weft_blocking_set_max(1), 0);
    cr_assert_eq(weft_blocking_threads(), 1);
    cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(weft_future_state_get(f[i]), WEFT_FUTURE_VALUE);
        weft_future_release(f[i]);
    }
    cr_assert_eq(weft_blocking_set_max(64), 0);
    drain_pool();
    weft_event_free(e);
    weft_event_free(e0);
    return NULL;
}

Test(blocking, set_max_from_a_task_leaves_the_worker_free, .timeout = 30)
{
    run_on(1, set_max_free_main, NULL);
}

/* ---- a cancelled task submits nothing ------------------------------------ */

static void *cancelled_run_main(void *arg)
{
    (void)arg;
    atomic_store(&g_ran, 0);
    void *v = NULL;
    cr_assert_eq(weft_task_cancel(weft_task_self()), 0);
    cr_assert_eq(weft_blocking_run(count_job, (void *)1, &v, WEFT_NEVER), -ECANCELED);
    cr_assert_eq(weft_blocking_run(count_job, (void *)1, &v, weft_deadline_in(1000000000)),
                 -ECANCELED);
    cr_assert_eq(weft_blocking_run(NULL, NULL, &v, WEFT_NEVER), -EINVAL);
    cr_assert_null(v);
    cr_assert_eq(weft_blocking_threads(), 0);       /* no job was submitted */
    cr_assert_eq(atomic_load(&g_ran), 0);
    /* spawning never waits: it still works, and so does a poll of the result */
    weft_future *f;
    cr_assert_eq(weft_blocking_spawn(&f, count_job, (void *)2), 0);
    int64_t until = weft_now() + 10LL * 1000000000;
    while (weft_future_await(f, &v, 0) == -ETIMEDOUT && weft_now() < until)
        sched_yield();
    cr_assert_eq(v, (void *)2);
    weft_future_release(f);
    return NULL;
}

Test(blocking, cancelled_task_submits_nothing, .timeout = 30)
{
    run_on(2, cancelled_run_main, NULL);
}

/* ---- a thread that cannot be started ------------------------------------- */

/* A pool with no thread whose first start fails: the job is taken back
 * (-EAGAIN) and never runs. A pool whose new threads fail to start while
 * one thread is busy: the slots are given back, the bound is unchanged,
 * and the queued jobs still all run on the thread there. */
static void *start_fail_main(void *arg)
{
    (void)arg;
    atomic_store(&g_ran, 0);
    weft_future *f[4];
    cr_assert_eq(weft_blocking_threads(), 0);
    weft__blocking_fail_starts(1);
    cr_assert_eq(weft_blocking_spawn(&f[0], count_job, NULL), -EAGAIN);
    cr_assert_eq(weft_blocking_threads(), 0);
    void *v;
    cr_assert_eq(weft_blocking_run(count_job, (void *)4, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, 4);                 /* the next start works */
    cr_assert_eq(atomic_load(&g_ran), 1);         /* the refused one never ran */
    drain_pool();

    weft_event *e;
    cr_assert_eq(weft_event_new(&e), 0);
    cr_assert_eq(weft_blocking_set_max(1), 0);
    cr_assert_eq(weft_blocking_spawn(&f[0], wait_event, e), 0);   /* busy */
    for (int i = 1; i < 4; i++)
        cr_assert_eq(weft_blocking_spawn(&f[i], count_job, (void *)(intptr_t)i), 0);
    cr_assert_eq(weft_blocking_threads(), 1);     /* three queued */
    weft__blocking_fail_starts(3);
    cr_assert_eq(weft_blocking_set_max(4), 0);    /* all three starts fail */
    cr_assert_eq(weft_blocking_threads(), 1);
    cr_assert_eq(weft_event_set(e), 0);
    void *vals[4];
    cr_assert_eq(weft_gather(f, 4, vals, WEFT_NEVER), 0);
    for (int i = 1; i < 4; i++)
        cr_assert_eq((intptr_t)vals[i], i);
    for (int i = 0; i < 4; i++)
        weft_future_release(f[i]);
    weft__blocking_fail_starts(0);
    cr_assert_eq(weft_blocking_set_max(64), 0);
    drain_pool();
    weft_event_free(e);
    return NULL;
}

Test(blocking, thread_start_failures, .timeout = 30)
{
    run_on(2, start_fail_main, NULL);
}
