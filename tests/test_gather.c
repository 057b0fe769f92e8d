/*
 * test_gather.c — weft_wait (all / first), weft_gather, as_completed and
 * wait_for: results, completion order, deadlines, the first failure, a
 * caller cancelled while waiting, errors, a race of many futures completed
 * from several workers and a foreign thread, and the exact completion
 * order under concurrent completion: as_completed, wait-first and gather's
 * first failure follow the order of the completions (each future's
 * internal completion number, and every happens-before order); and a
 * cancelled caller, whom every call answers -ECANCELED at once.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "weft.h"
#include "sync/future.h"      /* the completion numbers, to check the order */
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

static _Atomic int acked, slow_started;

static void *slow_op(void *arg)
{
    atomic_store(&slow_started, 1);
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
    atomic_store(&slow_started, 0);
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, wait_for_cancelled_caller, NULL, NULL), 0);
    /* Cancel the caller once its operation runs (cancelled earlier, its
     * wait_for would return at once, spawning nothing). */
    while (!atomic_load(&slow_started))
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

/* ---- exact completion order under concurrency --------------------------- */

/*
 * One completer sets f[0], f[1], ... in order while the consumer iterates
 * as_completed at the same time: every completion happens before the next
 * one, so the indexes must come out exactly 0, 1, 2, ... (A scan that read
 * f[k] just before it completed and f[k+1] just after would otherwise
 * return k+1 first.)
 */
enum { ON = 64 };

struct inorder { weft_future *f[ON]; _Atomic int go; };

static void complete_in_order(struct inorder *o)
{
    while (!atomic_load(&o->go))
        ;
    for (int i = 0; i < ON; i++)
        cr_assert_eq(weft_future_set(o->f[i], (void *)(intptr_t)i), 0);
}

static void *in_order_thread(void *arg)
{
    complete_in_order(arg);
    return NULL;
}

static void *in_order_task(void *arg)
{
    complete_in_order(arg);
    return NULL;
}

/* A relay across workers: task k awaits f[k-1] and then sets f[k], so each
 * completion happens before the next through the future itself. */
struct relay { struct inorder *o; int k; };

static void *relay_task(void *arg)
{
    struct relay *r = arg;
    if (r->k > 0)
        cr_assert_eq(weft_future_await(r->o->f[r->k - 1], NULL, WEFT_NEVER), 0);
    else
        while (!atomic_load(&r->o->go))
            weft_yield();
    cr_assert_eq(weft_future_set(r->o->f[r->k], NULL), 0);
    return NULL;
}

static void *in_order_main(void *arg)
{
    unsigned rounds = (unsigned)test_scale(300);
    for (unsigned round = 0; round < rounds; round++) {
        struct inorder o = { 0 };
        for (int i = 0; i < ON; i++)
            cr_assert_eq(weft_future_new(&o.f[i]), 0);
        weft_as_completed *it;
        cr_assert_eq(weft_as_completed_new(&it, o.f, ON), 0);
        int mode = round % 3;
        pthread_t th;
        weft_task t, relays[ON];
        struct relay rs[ON];
        if (mode == 0) {
            cr_assert_eq(pthread_create(&th, NULL, in_order_thread, &o), 0);
        } else if (mode == 1) {
            cr_assert_eq(weft_task_spawn(&t, in_order_task, &o, NULL), 0);
        } else {
            for (int k = 0; k < ON; k++) {
                rs[k] = (struct relay){ &o, k };
                cr_assert_eq(weft_task_spawn(&relays[k], relay_task, &rs[k], NULL), 0);
            }
        }
        atomic_store(&o.go, 1);
        for (int k = 0; k < ON; k++) {
            int i = weft_as_completed_next(it, WEFT_NEVER);
            cr_assert_eq(i, k, "round %u (mode %d): got index %d as #%d", round, mode, i, k);
        }
        cr_assert_eq(weft_as_completed_next(it, 0), -EPIPE);
        weft_as_completed_free(it);
        if (mode == 0) {
            pthread_join(th, NULL);   /* it only sets futures: never blocks */
        } else if (mode == 1) {
            cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
        } else {
            for (int k = 0; k < ON; k++)
                cr_assert_eq(weft_task_join(relays[k], NULL, WEFT_NEVER), 0);
        }
        for (int i = 0; i < ON; i++)
            weft_future_release(o.f[i]);
    }
    return NULL;
}

Test(gather, as_completed_follows_happens_before, .timeout = 120)
{
    run_on(4, in_order_main, NULL);
}

/*
 * Several completers on different workers and a foreign thread complete
 * disjoint, interleaved sets at the same time. The consumers check against
 * the futures' completion numbers (the one order of all completions):
 * as_completed yields strictly increasing numbers; weft_wait(FIRST) returns
 * the future with the smallest number of the whole set (later completions
 * get larger ones); weft_gather reports the failure with the smallest
 * number among the failures.
 */
enum { CN = 48, CW = 4 };

struct conc { weft_future *f[CN]; _Atomic int go; int who; };
struct concarg { struct conc *c; int w; };

static void complete_share(struct conc *c, int w)
{
    while (!atomic_load(&c->go))
        ;
    for (int i = w; i < CN; i += CW + 1) {
        if (i % 5 == 3)
            weft_future_fail(c->f[i], -(100 + i));
        else
            weft_future_set(c->f[i], (void *)(intptr_t)i);
        if (i % 7 == 0)
            weft_yield();
    }
}

/* Run as a task and, unchanged, as a foreign thread's start routine. */
static void *share_task(void *arg)
{
    struct concarg *a = arg;
    complete_share(a->c, a->w);
    return NULL;
}

static void *concurrent_order_main(void *arg)
{
    unsigned rounds = (unsigned)test_scale(300);
    for (unsigned round = 0; round < rounds; round++) {
        struct conc c = { 0 };
        for (int i = 0; i < CN; i++)
            cr_assert_eq(weft_future_new(&c.f[i]), 0);
        struct concarg args[CW + 1];
        weft_task ts[CW];
        pthread_t th;
        for (int w = 0; w <= CW; w++)
            args[w] = (struct concarg){ &c, w };
        for (int w = 0; w < CW; w++)
            cr_assert_eq(weft_task_spawn(&ts[w], share_task, &args[w], NULL), 0);
        cr_assert_eq(pthread_create(&th, NULL, share_task, &args[CW]), 0);
        weft_as_completed *it;
        cr_assert_eq(weft_as_completed_new(&it, c.f, CN), 0);
        atomic_store(&c.go, 1);

        int mode = round % 3, first = -1, gathered = 0;
        if (mode == 1)
            first = weft_wait(c.f, CN, WEFT_WAIT_FIRST, WEFT_NEVER);
        else if (mode == 2)
            gathered = weft_gather(c.f, CN, NULL, WEFT_NEVER);
        uint64_t last = 0;
        for (int k = 0; k < CN; k++) {
            int i = weft_as_completed_next(it, WEFT_NEVER);
            cr_assert(i >= 0 && i < CN);
            cr_assert_gt(c.f[i]->seq, last, "round %u: index %d out of completion order",
                         round, i);
            last = c.f[i]->seq;
        }
        weft_as_completed_free(it);
        for (int w = 0; w < CW; w++)
            cr_assert_eq(weft_task_join(ts[w], NULL, WEFT_NEVER), 0);
        pthread_join(th, NULL);

        uint64_t min_all = UINT64_MAX, min_fail = UINT64_MAX;
        int fail_err = 0;
        for (int i = 0; i < CN; i++) {
            if (c.f[i]->seq < min_all)
                min_all = c.f[i]->seq;
            if (weft_future_state_get(c.f[i]) == WEFT_FUTURE_ERROR && c.f[i]->seq < min_fail) {
                min_fail = c.f[i]->seq;
                fail_err = c.f[i]->error;
            }
        }
        if (mode == 1)
            cr_assert_eq(c.f[first]->seq, min_all, "round %u: wait-first returned a "
                         "future that did not complete first", round);
        if (mode == 2)
            cr_assert_eq(gathered, fail_err, "round %u: gather returned %d, the first "
                         "failure was %d", round, gathered, fail_err);
        for (int i = 0; i < CN; i++)
            weft_future_release(c.f[i]);
    }
    return NULL;
}

Test(gather, exact_order_of_concurrent_completions, .timeout = 120)
{
    run_on(6, concurrent_order_main, NULL);
}

/* ---- a cancelled caller: every call here is a cancellation point -------- */

static _Atomic int g_ran_for;

static void *count_run(void *arg)
{
    atomic_fetch_add(&g_ran_for, 1);
    return arg;
}

static void *cancelled_caller_body(void *arg)
{
    weft_future **f = arg;         /* both done: f[0] a value, f[1] a failure */
    void *vals[2] = { NULL, NULL }, *r = NULL;
    weft_as_completed *it;
    cr_assert_eq(weft_as_completed_new(&it, f, 2), 0);
    cr_assert_eq(weft_task_cancel(weft_task_self()), 0);
    int64_t dls[2] = { WEFT_NEVER, weft_deadline_in(1000000000) };
    for (int d = 0; d < 2; d++) {
        cr_assert_eq(weft_wait(f, 2, WEFT_WAIT_ALL, dls[d]), -ECANCELED);
        cr_assert_eq(weft_wait(f, 0, WEFT_WAIT_ALL, dls[d]), -ECANCELED);
        cr_assert_eq(weft_wait(f, 2, WEFT_WAIT_FIRST, dls[d]), -ECANCELED);
        cr_assert_eq(weft_gather(f, 1, vals, dls[d]), -ECANCELED);
        cr_assert_null(vals[0]);
        cr_assert_eq(weft_as_completed_next(it, dls[d]), -ECANCELED);
        cr_assert_eq(weft_wait_for(count_run, (void *)1, &r, dls[d]), -ECANCELED);
    }
    cr_assert_eq(atomic_load(&g_ran_for), 0);      /* nothing was spawned */
    /* polls still work, and the iterator lost nothing */
    cr_assert_eq(weft_wait(f, 2, WEFT_WAIT_ALL, 0), 0);
    int first = weft_wait(f, 2, WEFT_WAIT_FIRST, 0);
    cr_assert(first == 0 || first == 1);
    cr_assert_eq(weft_gather(f, 1, vals, 0), 0);
    cr_assert_eq(vals[0], (void *)3);
    cr_assert_eq(weft_gather(f, 2, vals, 0), -EIO);
    int a = weft_as_completed_next(it, 0), b = weft_as_completed_next(it, 0);
    cr_assert_eq(a + b, 1);
    cr_assert_eq(weft_as_completed_next(it, 0), -EPIPE);
    weft_as_completed_free(it);
    return NULL;
}

Test(gather, cancelled_caller_returns_at_once, .timeout = 30)
{
    weft_future *f[2];
    cr_assert_eq(weft_future_new(&f[0]), 0);
    cr_assert_eq(weft_future_new(&f[1]), 0);
    cr_assert_eq(weft_future_set(f[0], (void *)3), 0);
    cr_assert_eq(weft_future_fail(f[1], -EIO), 0);
    run_on(2, cancelled_caller_body, f);
    weft_future_release(f[0]);
    weft_future_release(f[1]);
}
