/*
 * test_gather.c — weft_wait (all / first), weft_gather, as_completed and
 * wait_for: results, completion order, deadlines, the first failure, a
 * caller cancelled while waiting, errors, and a race of many futures
 * completed from several workers and a foreign thread.
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

static void *sleep_then(void *arg)
{
    /* sleeps arg ms, returns arg; -1 when cancelled */
    intptr_t ms = (intptr_t)arg;
    if (weft_sleep(ms * 1000000) == -ECANCELED)
        return (void *)(intptr_t)-1;
    return arg;
}

static void *errors_main(void *arg)
{
    weft_future *f[2];
    cr_assert_eq(weft_future_new(&f[0]), 0);
    cr_assert_eq(weft_future_new(&f[1]), 0);
    cr_assert_eq(weft_wait(NULL, 1, WEFT_WAIT_ALL, 0), -EINVAL);
    cr_assert_eq(weft_wait(f, 2, 9, 0), -EINVAL);
    cr_assert_eq(weft_wait(f, 0, WEFT_WAIT_FIRST, 0), -EINVAL);
    cr_assert_eq(weft_wait(f, 0, WEFT_WAIT_ALL, 0), 0);
    weft_future *withnull[2] = { f[0], NULL };
    cr_assert_eq(weft_wait(withnull, 2, WEFT_WAIT_ALL, 0), -EINVAL);
    cr_assert_eq(weft_gather(withnull, 2, NULL, 0), -EINVAL);
    weft_as_completed *it;
    cr_assert_eq(weft_as_completed_new(&it, withnull, 2), -EINVAL);
    cr_assert_eq(weft_as_completed_new(NULL, f, 2), -EINVAL);
    cr_assert_eq(weft_as_completed_next(NULL, 0), -EINVAL);
    cr_assert_eq(weft_wait_for(NULL, NULL, NULL, 0), -EINVAL);
    /* nothing done: deadlines */
    cr_assert_eq(weft_wait(f, 2, WEFT_WAIT_FIRST, 0), -ETIMEDOUT);
    cr_assert_eq(weft_wait(f, 2, WEFT_WAIT_ALL, weft_deadline_in(1000000)), -ETIMEDOUT);
    cr_assert_eq(weft_gather(f, 2, NULL, weft_deadline_in(1000000)), -ETIMEDOUT);
    /* a future failed with -ETIMEDOUT counts as done for weft_wait */
    cr_assert_eq(weft_future_fail(f[0], -ETIMEDOUT), 0);
    cr_assert_eq(weft_wait(f, 2, WEFT_WAIT_FIRST, 0), 0);
    cr_assert_eq(weft_future_set(f[1], NULL), 0);
    cr_assert_eq(weft_wait(f, 2, WEFT_WAIT_ALL, 0), 0);
    weft_future_release(f[0]);
    weft_future_release(f[1]);
    return NULL;
}

Test(gather, errors_and_deadlines, .timeout = 30)
{
    run_on(2, errors_main, NULL);
}

static void *first_main(void *arg)
{
    weft_future *f[3];
    cr_assert_eq(weft_future_spawn(&f[0], sleep_then, (void *)(intptr_t)2000), 0);
    cr_assert_eq(weft_future_spawn(&f[1], sleep_then, (void *)(intptr_t)1), 0);
    cr_assert_eq(weft_future_spawn(&f[2], sleep_then, (void *)(intptr_t)2000), 0);
    cr_assert_eq(weft_wait(f, 3, WEFT_WAIT_FIRST, WEFT_NEVER), 1);
    void *v;
    cr_assert_eq(weft_future_result(f[1], &v), 0);
    cr_assert_eq((intptr_t)v, 1);
    cr_assert_eq(weft_future_state_get(f[0]), WEFT_FUTURE_PENDING);
    for (int i = 0; i < 3; i++) {
        weft_future_cancel(f[i]);
        weft_future_release(f[i]);
    }
    return NULL;
}

Test(gather, wait_first_returns_first_done, .timeout = 30)
{
    run_on(2, first_main, NULL);
}

static void *gather_main(void *arg)
{
    enum { N = 50 };
    weft_future *f[N];
    void *vals[N];
    for (intptr_t i = 0; i < N; i++)
        cr_assert_eq(weft_future_spawn(&f[i], sleep_then, (void *)(i % 3)), 0);
    cr_assert_eq(weft_gather(f, N, vals, WEFT_NEVER), 0);
    for (intptr_t i = 0; i < N; i++) {
        cr_assert_eq((intptr_t)vals[i], i % 3);
        weft_future_release(f[i]);
    }
    /* the first failure in completion order is reported at once */
    weft_future *g[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_future_new(&g[i]), 0);
    cr_assert_eq(weft_future_set(g[0], (void *)1), 0);
    cr_assert_eq(weft_future_fail(g[2], -EIO), 0);
    cr_assert_eq(weft_future_fail(g[1], -ENOSPC), 0);
    cr_assert_eq(weft_gather(g, 3, vals, WEFT_NEVER), -EIO);
    weft_future *h[2];
    cr_assert_eq(weft_future_new(&h[0]), 0);
    cr_assert_eq(weft_future_new(&h[1]), 0);
    cr_assert_eq(weft_future_cancel(h[1]), 0);
    cr_assert_eq(weft_gather(h, 2, NULL, WEFT_NEVER), -ECANCELED);  /* h[0] never done */
    for (int i = 0; i < 3; i++)
        weft_future_release(g[i]);
    weft_future_release(h[0]);
    weft_future_release(h[1]);
    return NULL;
}

Test(gather, gather_values_and_first_failure, .timeout = 30)
{
    run_on(4, gather_main, NULL);
}

static void *as_completed_main(void *arg)
{
    enum { N = 8 };
    weft_future *f[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_future_new(&f[i]), 0);
    /* complete in a scrambled order; as_completed must follow it */
    int order[N] = { 5, 2, 7, 0, 3, 6, 1, 4 };
    weft_as_completed *it;
    cr_assert_eq(weft_as_completed_new(&it, f, N), 0);
    cr_assert_eq(weft_as_completed_next(it, 0), -ETIMEDOUT);
    for (int k = 0; k < 4; k++)
        cr_assert_eq(weft_future_set(f[order[k]], NULL), 0);
    for (int k = 0; k < 4; k++)   /* already done: completion order */
        cr_assert_eq(weft_as_completed_next(it, WEFT_NEVER), order[k]);
    for (int k = 4; k < N; k++) {
        cr_assert_eq(weft_future_cancel(f[order[k]]), 0);
        cr_assert_eq(weft_as_completed_next(it, WEFT_NEVER), order[k]);
    }
    cr_assert_eq(weft_as_completed_next(it, WEFT_NEVER), -EPIPE);
    weft_as_completed_free(it);
    weft_as_completed_free(NULL);
    for (int i = 0; i < N; i++)
        weft_future_release(f[i]);
    return NULL;
}

Test(gather, as_completed_in_completion_order, .timeout = 30)
{
    run_on(2, as_completed_main, NULL);
}

/* ---- wait_for ------------------------------------------------------------ */

static _Atomic int acked;

static void *slow_op(void *arg)
{
    int rc = weft_sleep(60LL * 1000000000);
    atomic_store(&acked, rc == -ECANCELED ? 1 : 2);
    return NULL;
}

static void *wait_for_cancelled_caller(void *arg)
{
    return (void *)(intptr_t)weft_wait_for(slow_op, NULL, NULL, WEFT_NEVER);
}

static void *wait_for_main(void *arg)
{
    void *v;
    cr_assert_eq(weft_wait_for(sleep_then, (void *)(intptr_t)1, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, 1);
    atomic_store(&acked, 0);
    cr_assert_eq(weft_wait_for(slow_op, NULL, &v, weft_deadline_in(2000000)), -ETIMEDOUT);
    cr_assert_eq(atomic_load(&acked), 1);     /* it returned before wait_for did */
    atomic_store(&acked, 0);
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, wait_for_cancelled_caller, NULL, NULL), 0);
    for (int i = 0; i < 20; i++)
        weft_yield();
    cr_assert_eq(weft_task_cancel(t), 0);
    cr_assert_eq(weft_task_join(t, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, -ECANCELED);
    cr_assert_eq(atomic_load(&acked), 1);
    return NULL;
}

Test(gather, wait_for_cancels_and_awaits, .timeout = 30)
{
    run_on(2, wait_for_main, NULL);
}

/* ---- race: completions from workers and a foreign thread ----------------- */

struct race { weft_future **f; int n; };

static void *complete_half(void *arg)
{
    struct race *r = arg;
    for (int i = 0; i < r->n; i += 2)
        weft_future_set(r->f[i], (void *)(intptr_t)i);
    return NULL;
}

static void *complete_other_half(void *arg)
{
    struct race *r = arg;
    for (int i = 1; i < r->n; i += 2) {
        weft_future_set(r->f[i], (void *)(intptr_t)i);
        if (i % 8 == 1)
            weft_yield();
    }
    return NULL;
}

static void *race_main(void *arg)
{
    unsigned rounds = (unsigned)test_scale(300);
    for (unsigned round = 0; round < rounds; round++) {
        enum { N = 40 };
        weft_future *f[N];
        for (int i = 0; i < N; i++)
            cr_assert_eq(weft_future_new(&f[i]), 0);
        struct race r = { f, N };
        weft_as_completed *it;
        cr_assert_eq(weft_as_completed_new(&it, f, N), 0);
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, complete_half, &r), 0);
        weft_task t;
        cr_assert_eq(weft_task_spawn(&t, complete_other_half, &r, NULL), 0);
        uint8_t seen[N] = { 0 };
        for (int k = 0; k < N; k++) {
            int i = weft_as_completed_next(it, WEFT_NEVER);
            cr_assert(i >= 0 && i < N, "round %u: %d", round, i);
            cr_assert_eq(seen[i], 0);
            seen[i] = 1;
        }
        cr_assert_eq(weft_as_completed_next(it, 0), -EPIPE);
        weft_as_completed_free(it);
        weft_task_join(t, NULL, WEFT_NEVER);
        pthread_join(th, NULL);
        void *vals[N];
        cr_assert_eq(weft_gather(f, N, vals, 0), 0);
        for (int i = 0; i < N; i++) {
            cr_assert_eq((intptr_t)vals[i], i);
            weft_future_release(f[i]);
        }
    }
    return NULL;
}

Test(gather, race_completions_across_threads, .timeout = 60)
{
    run_on(4, race_main, NULL);
}
