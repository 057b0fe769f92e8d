/*
 * test_blocking.c — the blocking pool: results, the worker staying free
 * while a job blocks, growth on demand and the bound, shrinking when idle,
 * an awaiter timing out or being cancelled while its job still runs (its
 * result dropped without a leak: ASan), errors, and use without a runtime.
 */
#include <criterion/criterion.h>
#include <errno.h>
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
