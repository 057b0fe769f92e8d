/*
 * test_future.c — futures: every outcome and error, awaiting before and
 * after completion, many awaiters on several workers and on foreign
 * threads, deadlines, cancellation of the awaiter and of the future,
 * done-callbacks, task-backed futures, and a race of completers, cancellers
 * and timing-out awaiters that checks every awaiter returns exactly once
 * with the one outcome.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "weft.h"
#include "tests/helpers.h"

static void run_on(unsigned workers, void *(*fn)(void *), void *arg)
{
    weft_config cfg = { .workers = workers };
    cr_assert_eq(weft_run(&cfg, fn, arg, NULL), 0);
}

/* ---- outcomes and errors ------------------------------------------------ */

static void *outcomes_main(void *arg)
{
    weft_future *f;
    void *v = NULL;
    cr_assert_eq(weft_future_new(NULL), -EINVAL);
    cr_assert_eq(weft_future_new(&f), 0);
    cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_PENDING);
    cr_assert_eq(weft_future_result(f, &v), -EAGAIN);
    cr_assert_eq(weft_future_await(f, &v, 0), -ETIMEDOUT);
    cr_assert_eq(weft_future_await(f, &v, weft_deadline_in(2000000)), -ETIMEDOUT);
    cr_assert_eq(weft_future_set(f, (void *)42), 0);
    cr_assert_eq(weft_future_set(f, (void *)43), -EALREADY);
    cr_assert_eq(weft_future_fail(f, -EIO), -EALREADY);
    cr_assert_eq(weft_future_cancel(f), -EALREADY);
    cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_VALUE);
    cr_assert_eq(weft_future_await(f, &v, 0), 0);   /* done: no wait at all */
    cr_assert_eq(v, (void *)42);
    cr_assert_eq(weft_future_result(f, NULL), 0);
    weft_future_release(f);

    cr_assert_eq(weft_future_new(&f), 0);
    cr_assert_eq(weft_future_fail(f, 5), -EINVAL);
    cr_assert_eq(weft_future_fail(f, 0), -EINVAL);
    cr_assert_eq(weft_future_fail(f, -EIO), 0);
    cr_assert_eq(weft_future_await(f, &v, WEFT_NEVER), -EIO);
    cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_ERROR);
    cr_assert_eq(weft_future_cancel(f), -EALREADY);
    weft_future_release(f);

    cr_assert_eq(weft_future_new(&f), 0);
    cr_assert_eq(weft_future_cancel(f), 0);
    cr_assert_eq(weft_future_await(f, &v, WEFT_NEVER), -ECANCELED);
    cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_CANCELLED);
    cr_assert_eq(weft_future_set(f, NULL), -EALREADY);
    cr_assert_eq(weft_future_result(f, &v), -ECANCELED);
    weft_future_release(NULL);
    weft_future_release(f);
    return NULL;
}

Test(future, outcomes_and_errors, .timeout = 30)
{
    run_on(2, outcomes_main, NULL);
}

/* ---- many awaiters, tasks and foreign threads --------------------------- */

struct many {
    weft_future *f;
    _Atomic int woken, ok;
};

static void *await_task(void *arg)
{
    struct many *m = arg;
    void *v;
    int rc = weft_future_await(m->f, &v, WEFT_NEVER);
    atomic_fetch_add(&m->woken, 1);
    if (rc == 0 && v == (void *)7)
        atomic_fetch_add(&m->ok, 1);
    return NULL;
}

static void *await_thread(void *arg)
{
    return await_task(arg);
}

static void *many_main(void *arg)
{
    struct many *m = arg;
    enum { NT = 200 };
    weft_task t[NT];
    for (int i = 0; i < NT; i++)
        cr_assert_eq(weft_task_spawn(&t[i], await_task, m, NULL), 0);
    for (int i = 0; i < 50; i++)
        weft_yield();
    cr_assert_eq(weft_future_set(m->f, (void *)7), 0);
    for (int i = 0; i < NT; i++)
        cr_assert_eq(weft_task_join(t[i], NULL, WEFT_NEVER), 0);
    return NULL;
}

Test(future, many_awaiters_same_result, .timeout = 60)
{
    struct many m = { 0 };
    cr_assert_eq(weft_future_new(&m.f), 0);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, await_thread, &m), 0);
    run_on(4, many_main, &m);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(atomic_load(&m.woken), 204);
    cr_assert_eq(atomic_load(&m.ok), 204);
    weft_future_release(m.f);
}

/* ---- foreign thread completes, task answers ---------------------------- */

struct handoff { weft_future *req, *rep; int i; };

static void *handoff_thread(void *arg)
{
    struct handoff *a = arg;
    cr_assert_eq(weft_future_set(a->req, (void *)(intptr_t)a->i), 0);
    void *v;
    cr_assert_eq(weft_future_await(a->rep, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, a->i + 1000);
    return NULL;
}

static void *handoff_main(void *arg)
{
    int rounds = (int)test_scale(200);
    for (int i = 0; i < rounds; i++) {
        struct handoff a = { .i = i };
        cr_assert_eq(weft_future_new(&a.req), 0);
        cr_assert_eq(weft_future_new(&a.rep), 0);
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, handoff_thread, &a), 0);
        void *v;
        cr_assert_eq(weft_future_await(a.req, &v, WEFT_NEVER), 0);
        cr_assert_eq((intptr_t)v, i);
        cr_assert_eq(weft_future_set(a.rep, (void *)(intptr_t)(i + 1000)), 0);
        pthread_join(th, NULL);
        weft_future_release(a.req);
        weft_future_release(a.rep);
    }
    return NULL;
}

Test(future, foreign_thread_completes_and_awaits, .timeout = 60)
{
    run_on(2, handoff_main, NULL);
}

static void *foreign_deadline_thread(void *arg)
{
    weft_future *f = arg;
    int64_t t0 = weft_now();
    cr_assert_eq(weft_future_await(f, NULL, t0 + 5000000), -ETIMEDOUT);
    cr_assert_geq(weft_now() - t0, 5000000);
    cr_assert_eq(weft_future_await(f, NULL, 0), -ETIMEDOUT);
    return NULL;
}

Test(future, foreign_thread_deadline_without_runtime, .timeout = 30)
{
    weft_future *f;
    cr_assert_eq(weft_future_new(&f), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, foreign_deadline_thread, f), 0);
    pthread_join(th, NULL);
    cr_assert_eq(weft_future_set(f, NULL), 0);
    cr_assert_eq(weft_future_await(f, NULL, WEFT_NEVER), 0);
    weft_future_release(f);
}

/* ---- cancellation of the awaiting task --------------------------------- */

static void *cancel_await_task(void *arg)
{
    int rc = weft_future_await(arg, NULL, WEFT_NEVER);
    return (void *)(intptr_t)rc;
}

static void *cancel_awaiter_main(void *arg)
{
    weft_future *f;
    cr_assert_eq(weft_future_new(&f), 0);
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, cancel_await_task, f, NULL), 0);
    for (int i = 0; i < 20; i++)
        weft_yield();
    cr_assert_eq(weft_task_cancel(t), 0);
    void *r;
    cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, -ECANCELED);
    /* the future itself is untouched and still completes normally */
    cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_PENDING);
    cr_assert_eq(weft_future_set(f, (void *)1), 0);
    void *v;
    cr_assert_eq(weft_future_await(f, &v, WEFT_NEVER), 0);
    cr_assert_eq(v, (void *)1);
    weft_future_release(f);
    return NULL;
}

Test(future, cancelled_awaiter_leaves_future_pending, .timeout = 30)
{
    run_on(2, cancel_awaiter_main, NULL);
}

/* ---- done-callbacks ------------------------------------------------------ */

struct cbrec { int order[8]; _Atomic int n; };

static void cb_record(weft_future *f, void *arg)
{
    struct cbrec *r = *(struct cbrec **)arg;
    int i = atomic_fetch_add(&r->n, 1);
    r->order[i] = (int)(((intptr_t *)arg)[1]);
}

static void cb_release(weft_future *f, void *arg)
{
    weft_future_release(f);   /* dropping the last reference inside is safe */
}

Test(future, done_callbacks, .timeout = 30)
{
    struct cbrec r = { 0 };
    intptr_t a[3][2] = { { (intptr_t)&r, 1 }, { (intptr_t)&r, 2 }, { (intptr_t)&r, 3 } };
    weft_future *f;
    cr_assert_eq(weft_future_new(&f), 0);
    cr_assert_eq(weft_future_on_done(f, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_on_done(f, cb_record, a[0]), 0);
    cr_assert_eq(weft_future_on_done(f, cb_record, a[1]), 0);
    cr_assert_eq(atomic_load(&r.n), 0);
    cr_assert_eq(weft_future_set(f, NULL), 0);
    cr_assert_eq(atomic_load(&r.n), 2);
    cr_assert_eq(r.order[0], 1);
    cr_assert_eq(r.order[1], 2);
    cr_assert_eq(weft_future_on_done(f, cb_record, a[2]), 0);  /* runs at once */
    cr_assert_eq(atomic_load(&r.n), 3);
    cr_assert_eq(r.order[2], 3);
    cr_assert_eq(weft_future_cancel(f), -EALREADY);
    cr_assert_eq(atomic_load(&r.n), 3);                        /* once only */
    weft_future_release(f);

    /* a callback that releases the last reference; a never-run callback is
     * freed with its future (ASan checks both) */
    cr_assert_eq(weft_future_new(&f), 0);
    cr_assert_eq(weft_future_on_done(f, cb_release, NULL), 0);
    cr_assert_eq(weft_future_cancel(f), 0);
    cr_assert_eq(weft_future_new(&f), 0);
    cr_assert_eq(weft_future_on_done(f, cb_record, a[0]), 0);
    weft_future_release(f);
}

/* ---- task-backed futures ------------------------------------------------ */

static void *double_it(void *arg)
{
    weft_yield();
    return (void *)((intptr_t)arg * 2);
}

static void *sleeper(void *arg)
{
    int rc = weft_sleep(60LL * 1000000000);
    atomic_store((_Atomic int *)arg, rc);
    return (void *)1;
}

static void *spawn_main(void *arg)
{
    weft_future *f;
    void *v;
    cr_assert_eq(weft_future_spawn(NULL, double_it, NULL), -EINVAL);
    cr_assert_eq(weft_future_spawn(&f, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_spawn(&f, double_it, (void *)21), 0);
    cr_assert_eq(weft_future_await(f, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, 42);
    weft_future_release(f);

    _Atomic int seen = 1;
    cr_assert_eq(weft_future_spawn(&f, sleeper, &seen), 0);
    weft_yield();
    cr_assert_eq(weft_future_cancel(f), 0);
    cr_assert_eq(weft_future_await(f, &v, WEFT_NEVER), -ECANCELED);
    weft_future_release(f);
    while (atomic_load(&seen) == 1)
        weft_yield();            /* the task acknowledges the cancellation */
    cr_assert_eq(atomic_load(&seen), -ECANCELED);
    return NULL;
}

Test(future, spawned_task_future, .timeout = 30)
{
    run_on(2, spawn_main, NULL);
}

/* ---- the race: completers, cancellers, awaiters with deadlines ---------- */

struct race {
    weft_future *f;
    _Atomic int wins, returns, values, cancels, timeouts;
    uint64_t seed;
};

static void *race_awaiter(void *arg)
{
    struct race *r = arg;
    void *v;
    int64_t dl = (r->seed & 1) ? weft_deadline_in((int64_t)(r->seed % 50000)) : WEFT_NEVER;
    int rc = weft_future_await(r->f, &v, dl);
    atomic_fetch_add(&r->returns, 1);
    if (rc == 0) {
        cr_assert_eq(v, (void *)99);
        atomic_fetch_add(&r->values, 1);
    } else if (rc == -ECANCELED) {
        atomic_fetch_add(&r->cancels, 1);
    } else {
        cr_assert_eq(rc, -ETIMEDOUT);
        atomic_fetch_add(&r->timeouts, 1);
    }
    return NULL;
}

static void *race_setter(void *arg)
{
    struct race *r = arg;
    if (weft_future_set(r->f, (void *)99) == 0)
        atomic_fetch_add(&r->wins, 1);
    return NULL;
}

static void *race_canceller(void *arg)
{
    struct race *r = arg;
    if (weft_future_cancel(r->f) == 0)
        atomic_fetch_add(&r->wins, 1);
    return NULL;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void *race_main(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    unsigned iters = (unsigned)test_scale(2000);
    for (unsigned it = 0; it < iters; it++) {
        struct race r = { 0 };
        r.seed = xorshift(&seed);
        cr_assert_eq(weft_future_new(&r.f), 0);
        enum { NA = 8 };
        weft_task a[NA], s, c;
        for (int i = 0; i < NA; i++)
            cr_assert_eq(weft_task_spawn(&a[i], race_awaiter, &r, NULL), 0);
        if (xorshift(&seed) & 1) {
            weft_task_spawn(&s, race_setter, &r, NULL);
            weft_task_spawn(&c, race_canceller, &r, NULL);
        } else {
            weft_task_spawn(&c, race_canceller, &r, NULL);
            weft_task_spawn(&s, race_setter, &r, NULL);
        }
        for (int i = 0; i < NA; i++)
            cr_assert_eq(weft_task_join(a[i], NULL, WEFT_NEVER), 0);
        weft_task_join(s, NULL, WEFT_NEVER);
        weft_task_join(c, NULL, WEFT_NEVER);
        cr_assert_eq(atomic_load(&r.wins), 1, "seed %llu", (unsigned long long)r.seed);
        cr_assert_eq(atomic_load(&r.returns), NA);
        /* never both a value and a cancellation */
        cr_assert(!(atomic_load(&r.values) && atomic_load(&r.cancels)),
                  "seed %llu: value and cancel both delivered", (unsigned long long)r.seed);
        weft_future_release(r.f);
    }
    return NULL;
}

Test(future, race_complete_cancel_timeout, .timeout = 120)
{
    uint64_t seed = (uint64_t)weft_now() | 1;
    cr_log_info("future race seed %llu", (unsigned long long)seed);
    run_on(6, race_main, (void *)(uintptr_t)seed);
}

/* ---- a foreign waker racing weft_run's teardown -------------------------- */

/* The main task returns as soon as a foreign thread's completion wakes it,
 * so weft_run tears the runtime down while that thread may still be inside
 * the wake (queueing the task, waking a worker). The wake must hold the
 * runtime until it is done (sched/wait.c); TSan and ASan check it. */
static void *completer_thread(void *arg)
{
    weft_future_set(arg, (void *)1);
    return NULL;
}

static void *await_and_leave(void *arg)
{
    void *v = NULL;
    cr_assert_eq(weft_future_await(arg, &v, WEFT_NEVER), 0);
    return v;
}

Test(future, foreign_wake_races_teardown, .timeout = 60)
{
    unsigned rounds = (unsigned)test_scale(300);
    for (unsigned i = 0; i < rounds; i++) {
        weft_future *f;
        cr_assert_eq(weft_future_new(&f), 0);
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, completer_thread, f), 0);
        weft_config cfg = { .workers = 1 + i % 3 };
        void *r;
        cr_assert_eq(weft_run(&cfg, await_and_leave, f, &r), 0);
        cr_assert_eq(r, (void *)1);
        pthread_join(th, NULL);
        weft_future_release(f);
    }
}
