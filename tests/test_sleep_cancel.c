/*
 * test_sleep_cancel.c — timers (sleep, deadlines), cancellation, and what
 * weft_run does with tasks still alive when main returns.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "weft.h"
#include "tests/helpers.h"

/* Generous: sanitizer builds on a loaded 2-core machine. Early wake-ups
 * are never allowed; late ones only up to this. */
#define LATE_NS (TEST_SANITIZED ? 500000000 : 200000000)

struct sleeper_rec {
    int64_t deadline, started, woke;
    int rc;
    int order;
};

static _Atomic int g_order;

static void *sleep_until_rec(void *arg)
{
    struct sleeper_rec *r = arg;
    r->started = weft_now();
    r->rc = weft_sleep_until(r->deadline);
    r->woke = weft_now();
    r->order = atomic_fetch_add(&g_order, 1);
    return NULL;
}

static void *sleep_order_main(void *arg)
{
    enum { N = 10 };
    struct sleeper_rec rec[N];
    weft_task t[N];
    int64_t base = weft_now() + 50000000;
    atomic_store(&g_order, 0);
    /* Spawned in a shuffled order; deadlines 20 ms apart. */
    int perm[N];
    for (int i = 0; i < N; i++)
        perm[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = rand() % (i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    for (int k = 0; k < N; k++) {
        int i = perm[k];
        rec[i] = (struct sleeper_rec){ .deadline = base + (int64_t)i * 20000000 };
        cr_assert_eq(weft_task_spawn(&t[i], sleep_until_rec, &rec[i], NULL), 0);
    }
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_task_join(t[i], NULL, WEFT_NEVER), 0);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(rec[i].rc, 0);
        cr_assert_geq(rec[i].woke, rec[i].deadline, "task %d woke %ld ns early", i,
                      (long)(rec[i].deadline - rec[i].woke));
        cr_assert_lt(rec[i].woke - rec[i].deadline, LATE_NS, "task %d woke %ld ns late", i,
                     (long)(rec[i].woke - rec[i].deadline));
    }
    /* Deadline order, among the tasks that were already asleep when the
     * earlier deadline passed (a task that starts late on a loaded machine
     * finds its deadline gone and returns at once, in start order). */
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            if (rec[j].started < rec[i].deadline)
                cr_assert_lt(rec[i].order, rec[j].order, "task %d (deadline %d ms) woke after task %d",
                             i, i * 20, j);
    return NULL;
}

Test(sleep, wakes_in_deadline_order_never_early, .timeout = 60)
{
    weft_config cfg = { .workers = 1 };
    cr_assert_eq(weft_run(&cfg, sleep_order_main, NULL, NULL), 0);
}

static void *many_sleepers_main(void *arg)
{
    /* Many concurrent sleeps across workers: each wakes at or after its
     * deadline, and all wake. */
    enum { N = 2000 };
    static struct sleeper_rec rec[N];
    static weft_task t[N];
    int64_t base = weft_now();
    for (int i = 0; i < N; i++) {
        rec[i] = (struct sleeper_rec){ .deadline = base + (rand() % 50) * 1000000 };
        cr_assert_eq(weft_task_spawn(&t[i], sleep_until_rec, &rec[i], NULL), 0);
    }
    int early = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(weft_task_join(t[i], NULL, WEFT_NEVER), 0);
        early += rec[i].woke < rec[i].deadline;
        bad += rec[i].rc != 0;
    }
    cr_assert_eq(early, 0);
    cr_assert_eq(bad, 0);
    return NULL;
}

Test(sleep, many_sleepers_on_many_workers, .timeout = 60)
{
    weft_config cfg = { .workers = 4 };
    cr_assert_eq(weft_run(&cfg, many_sleepers_main, NULL, NULL), 0);
}

static void *sleep_edges_main(void *arg)
{
    cr_assert_eq(weft_sleep(0), 0);
    cr_assert_eq(weft_sleep(-5), 0);
    cr_assert_eq(weft_sleep_until(0), 0);
    int64_t t0 = weft_now();
    cr_assert_eq(weft_sleep(2000000), 0);
    cr_assert_geq(weft_now() - t0, 2000000);
    cr_assert_eq(weft_deadline_in(INT64_MAX), WEFT_NEVER);
    cr_assert_lt(weft_deadline_in(-1), weft_now());
    return NULL;
}

Test(sleep, edge_cases, .timeout = 30)
{
    cr_assert_eq(weft_run(NULL, sleep_edges_main, NULL, NULL), 0);
    /* outside a task: blocks the thread */
    int64_t t0 = weft_now();
    cr_assert_eq(weft_sleep(1000000), 0);
    cr_assert_geq(weft_now() - t0, 1000000);
}

/* ---- cancellation -------------------------------------------------------- */

static void *sleep_forever_twice(void *arg)
{
    int first = weft_sleep_until(WEFT_NEVER);
    /* sticky: the next wait returns at once, too */
    int second = weft_sleep(1000000000);
    int y = weft_yield();
    return (void *)(intptr_t)(first == -ECANCELED && second == -ECANCELED &&
                              y == -ECANCELED && weft_task_cancelled());
}

static void *cancel_main(void *arg)
{
    weft_task t;
    void *r;
    cr_assert_eq(weft_task_spawn(&t, sleep_forever_twice, NULL, NULL), 0);
    weft_sleep(1000000);
    cr_assert_eq(weft_task_cancel(t), 0);
    cr_assert_eq(weft_task_cancel(t), 0);     /* idempotent */
    cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, 1);
    cr_assert_eq(weft_task_cancel(t), -ESRCH);
    cr_assert(!weft_task_cancelled());
    return NULL;
}

Test(cancel, pending_and_later_waits_return_ecanceled, .timeout = 30)
{
    weft_config cfg = { .workers = 2 };
    cr_assert_eq(weft_run(&cfg, cancel_main, NULL, NULL), 0);
}

/* A cancelled task's weft_yield still yields: a loop that ignores the
 * result (polling a flag) must let the task that sets the flag run, on
 * one worker too. (It used to return at once without switching, and this
 * test hung.) */
static atomic_int poll_flag;

static void *poll_until_flag(void *arg)
{
    while (!atomic_load(&poll_flag))
        weft_yield();
    return NULL;
}

/* Sets the flag after a sleep: its timer runs only when the worker gets
 * back to its loop, which a yield loop reaches every WEFT__FAIR_TICKS. */
static void *set_flag_later(void *arg)
{
    weft_sleep(5000000);
    atomic_store(&poll_flag, 1);
    return NULL;
}

static void *cancelled_yield_main(void *arg)
{
    atomic_store(&poll_flag, 0);
    weft_task a, b;
    cr_assert_eq(weft_task_spawn(&b, set_flag_later, NULL, NULL), 0);
    cr_assert_eq(weft_task_spawn(&a, poll_until_flag, NULL, NULL), 0);
    weft_yield();                        /* both start */
    cr_assert_eq(weft_task_cancel(a), 0);
    cr_assert_eq(weft_task_join(a, NULL, WEFT_NEVER), 0);
    cr_assert_eq(weft_task_join(b, NULL, WEFT_NEVER), 0);
    cr_assert_eq(atomic_load(&poll_flag), 1);
    return NULL;
}

Test(cancel, cancelled_yield_still_lets_others_run, .timeout = 30)
{
    weft_config one = { .workers = 1 }, four = { .workers = 4 };
    cr_assert_eq(weft_run(&one, cancelled_yield_main, NULL, NULL), 0);
    cr_assert_eq(weft_run(&four, cancelled_yield_main, NULL, NULL), 0);
}

static void *sleeper_fn_20ms(void *arg)
{
    return (void *)(intptr_t)weft_sleep(20000000);
}

/* A cancelled joiner gives up; the task it joined stays joinable. */
static void *join_then_report(void *arg)
{
    weft_task *t = arg;
    return (void *)(intptr_t)weft_task_join(*t, NULL, WEFT_NEVER);
}

static void *cancel_joiner_main(void *arg)
{
    weft_task sleeper, joiner;
    void *r;
    cr_assert_eq(weft_task_spawn(&sleeper, sleeper_fn_20ms, NULL, NULL), 0);
    cr_assert_eq(weft_task_spawn(&joiner, join_then_report, &sleeper, NULL), 0);
    weft_sleep(2000000);
    cr_assert_eq(weft_task_cancel(joiner), 0);
    cr_assert_eq(weft_task_join(joiner, &r, WEFT_NEVER), 0);
    int rc = (int)(intptr_t)r;
    /* normally -ECANCELED; 0 if the sleeper happened to finish first */
    cr_assert(rc == -ECANCELED || rc == 0, "joiner got %d", rc);
    if (rc == -ECANCELED)
        cr_assert_eq(weft_task_join(sleeper, NULL, WEFT_NEVER), 0);
    return NULL;
}

Test(cancel, cancelled_joiner_leaves_task_joinable, .timeout = 30)
{
    weft_config cfg = { .workers = 2 };
    cr_assert_eq(weft_run(&cfg, cancel_joiner_main, NULL, NULL), 0);
}

/* ---- shutdown: asyncio.run semantics -------------------------------------- */

static _Atomic int g_cancelled, g_started;

static void *wait_forever(void *arg)
{
    atomic_fetch_add(&g_started, 1);
    if (weft_sleep_until(WEFT_NEVER) == -ECANCELED)
        atomic_fetch_add(&g_cancelled, 1);
    /* cleanup after cancellation may spawn: such a task starts cancelled */
    if (arg)
        weft_task_spawn(NULL, wait_forever, NULL, NULL);
    return NULL;
}

static void *leave_tasks_behind(void *arg)
{
    int n = (int)(intptr_t)arg;
    for (int i = 0; i < n; i++)
        cr_assert_eq(weft_task_spawn(i % 2 ? NULL : &(weft_task){ 0 }, wait_forever,
                                     (void *)(intptr_t)(i % 3 == 0), NULL), 0);
    /* let some start, not necessarily all */
    weft_sleep(1000000);
    return NULL;
}

Test(shutdown, main_return_cancels_and_waits_for_the_rest, .timeout = 60)
{
    for (unsigned workers = 1; workers <= 8; workers *= 2) {
        atomic_store(&g_cancelled, 0);
        atomic_store(&g_started, 0);
        weft_config cfg = { .workers = workers };
        cr_assert_eq(weft_run(&cfg, leave_tasks_behind, (void *)(intptr_t)300, NULL), 0);
        /* every task that started was cancelled out of its wait (those
         * spawned during shutdown included), and weft_run waited for all */
        cr_assert_eq(atomic_load(&g_cancelled), atomic_load(&g_started));
        cr_assert_geq(atomic_load(&g_started), 300);
    }
}

/* Main may cancel itself (it is a task like any other): its own waits then
 * fail, but weft_run still shuts down and returns. */
static void *self_cancelling_main(void *arg)
{
    weft_task child;
    cr_assert_eq(weft_task_spawn(&child, wait_forever, NULL, NULL), 0);
    cr_assert_eq(weft_task_cancel(weft_task_self()), 0);
    cr_assert_eq(weft_sleep(1000000), -ECANCELED);
    cr_assert_eq(weft_task_detach(child), 0);
    return (void *)7;
}

Test(shutdown, main_that_cancelled_itself_still_returns, .timeout = 30)
{
    for (unsigned workers = 1; workers <= 2; workers++) {
        weft_config cfg = { .workers = workers };
        void *r;
        cr_assert_eq(weft_run(&cfg, self_cancelling_main, NULL, &r), 0);
        cr_assert_eq((intptr_t)r, 7);
    }
}
