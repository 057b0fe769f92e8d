/*
 * test_group.c — task groups: all children succeed; the first failure
 * cancels the siblings and is reported; a cancelled parent cancels the
 * group and still waits for every child to acknowledge; deadlines; nested
 * groups; spawn errors; and a stress of random failures and cancellations.
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

struct counts { _Atomic int started, finished, cancelled; };

static struct counts g_counts;

static int ok_child(void *arg)
{
    atomic_fetch_add(&g_counts.started, 1);
    weft_yield();
    atomic_fetch_add(&g_counts.finished, 1);
    return 0;
}

/* sleeps "forever"; acknowledges cancellation by returning -ECANCELED */
static int forever_child(void *arg)
{
    atomic_fetch_add(&g_counts.started, 1);
    int rc = weft_sleep(60LL * 1000000000);
    if (rc == -ECANCELED)
        atomic_fetch_add(&g_counts.cancelled, 1);
    atomic_fetch_add(&g_counts.finished, 1);
    return rc;
}

static int failing_child(void *arg)
{
    atomic_fetch_add(&g_counts.started, 1);
    for (intptr_t i = 0; i < (intptr_t)arg; i++)
        weft_yield();
    atomic_fetch_add(&g_counts.finished, 1);
    return -EIO;
}

static int positive_child(void *arg)
{
    return 3;
}

static void reset(void)
{
    atomic_store(&g_counts.started, 0);
    atomic_store(&g_counts.finished, 0);
    atomic_store(&g_counts.cancelled, 0);
}

static void *basics_main(void *arg)
{
    weft_group *g;
    cr_assert_eq(weft_group_new(NULL), -EINVAL);
    cr_assert_eq(weft_group_spawn(NULL, ok_child, NULL), -EINVAL);
    cr_assert_eq(weft_group_wait(NULL, 0), -EINVAL);

    /* all succeed; leaving waits for all */
    reset();
    cr_assert_eq(weft_group_new(&g), 0);
    cr_assert_eq(weft_group_spawn(g, NULL, NULL), -EINVAL);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(weft_group_spawn(g, ok_child, NULL), 0);
    cr_assert_eq(weft_group_wait(g, WEFT_NEVER), 0);
    cr_assert_eq(atomic_load(&g_counts.finished), 100);
    cr_assert_eq(weft_group_wait(g, WEFT_NEVER), -EINVAL);      /* once */
    cr_assert_eq(weft_group_spawn(g, ok_child, NULL), -EINVAL); /* closed */
    weft_group_free(g);

    /* an empty group */
    cr_assert_eq(weft_group_new(&g), 0);
    cr_assert_eq(weft_group_wait(g, 0), 0);
    weft_group_free(g);

    /* the first failure cancels the siblings and is reported */
    reset();
    cr_assert_eq(weft_group_new(&g), 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(weft_group_spawn(g, forever_child, NULL), 0);
    cr_assert_eq(weft_group_spawn(g, failing_child, (void *)(intptr_t)5), 0);
    cr_assert_eq(weft_group_wait(g, WEFT_NEVER), -EIO);
    cr_assert_eq(atomic_load(&g_counts.finished), 11);          /* all acknowledged */
    cr_assert_eq(atomic_load(&g_counts.cancelled), 10);
    weft_group_free(g);

    /* a positive failure is reported as -ECHILD; spawning after a failure */
    cr_assert_eq(weft_group_new(&g), 0);
    cr_assert_eq(weft_group_spawn(g, forever_child, NULL), 0);
    cr_assert_eq(weft_group_spawn(g, positive_child, NULL), 0);
    while (weft_group_spawn(g, ok_child, NULL) == 0)
        weft_yield();   /* eventually refused: the group is cancelling */
    cr_assert_eq(weft_group_spawn(g, ok_child, NULL), -ECANCELED);
    cr_assert_eq(weft_group_wait(g, WEFT_NEVER), -ECHILD);
    weft_group_free(g);

    /* a deadline cancels the children and still waits for them */
    reset();
    cr_assert_eq(weft_group_new(&g), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(weft_group_spawn(g, forever_child, NULL), 0);
    cr_assert_eq(weft_group_wait(g, weft_deadline_in(2000000)), -ETIMEDOUT);
    cr_assert_eq(atomic_load(&g_counts.finished), 5);
    weft_group_free(g);

    /* explicit cancel */
    reset();
    cr_assert_eq(weft_group_new(&g), 0);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(weft_group_spawn(g, forever_child, NULL), 0);
    weft_yield();
    cr_assert_eq(weft_group_cancel(g), 0);
    cr_assert_eq(weft_group_wait(g, WEFT_NEVER), -ECANCELED);
    cr_assert_eq(atomic_load(&g_counts.finished), 5);
    weft_group_free(g);
    return NULL;
}

Test(group, semantics_and_errors, .timeout = 30)
{
    run_on(4, basics_main, NULL);
}

/* ---- cancelling the parent ------------------------------------------------ */

/* a child that keeps working for a while after it is cancelled: the
 * parent must not return before it has */
static int slow_ack_child(void *arg)
{
    atomic_fetch_add(&g_counts.started, 1);
    int rc = weft_sleep(60LL * 1000000000);
    for (int i = 0; i < 50; i++)
        weft_yield();    /* -ECANCELED each time: sticky, but it may go on */
    atomic_fetch_add(&g_counts.finished, 1);
    return rc;
}

static void *parent(void *arg)
{
    weft_group *g;
    cr_assert_eq(weft_group_new(&g), 0);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_group_spawn(g, i % 2 ? slow_ack_child : forever_child, NULL), 0);
    int rc = weft_group_wait(g, WEFT_NEVER);
    int fin = atomic_load(&g_counts.finished);
    weft_group_free(g);
    return (void *)(intptr_t)(rc == -ECANCELED && fin == 8);
}

static void *parent_cancel_main(void *arg)
{
    reset();
    weft_task p;
    cr_assert_eq(weft_task_spawn(&p, parent, NULL, NULL), 0);
    while (atomic_load(&g_counts.started) < 8)
        weft_yield();
    cr_assert_eq(weft_task_cancel(p), 0);
    void *ok;
    cr_assert_eq(weft_task_join(p, &ok, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)ok, 1, "parent returned before its children acknowledged");
    return NULL;
}

Test(group, cancelled_parent_cancels_and_awaits_children, .timeout = 30)
{
    run_on(4, parent_cancel_main, NULL);
}

/* ---- nested groups ---------------------------------------------------------- */

static int nested_child(void *arg)
{
    intptr_t depth = (intptr_t)arg;
    if (depth == 0)
        return forever_child(NULL);
    weft_group *g;
    cr_assert_eq(weft_group_new(&g), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_group_spawn(g, nested_child, (void *)(depth - 1)), 0);
    int rc = weft_group_wait(g, WEFT_NEVER);
    weft_group_free(g);
    atomic_fetch_add(&g_counts.finished, 1);
    return rc;
}

static void *nested_main(void *arg)
{
    reset();
    weft_group *g;
    cr_assert_eq(weft_group_new(&g), 0);
    cr_assert_eq(weft_group_spawn(g, nested_child, (void *)(intptr_t)3), 0);
    while (atomic_load(&g_counts.started) < 27)
        weft_yield();
    cr_assert_eq(weft_group_spawn(g, failing_child, NULL), 0);
    cr_assert_eq(weft_group_wait(g, WEFT_NEVER), -EIO);
    /* 27 leaves + 13 inner groups + the failing child */
    cr_assert_eq(atomic_load(&g_counts.finished), 27 + 13 + 1);
    weft_group_free(g);
    return NULL;
}

Test(group, nested_groups_cancel_all_the_way_down, .timeout = 30)
{
    run_on(4, nested_main, NULL);
}

/* ---- stress: random failures, cancellations, deadlines --------------------- */

struct stress_arg { uint64_t seed; _Atomic int *live; };

static int random_child(void *arg)
{
    struct stress_arg *a = arg;
    uint64_t x = a->seed;
    atomic_fetch_add(a->live, 1);
    int rc = 0;
    for (int i = 0; i < (int)(x % 7); i++) {
        if ((rc = weft_yield()) != 0)
            break;
    }
    if (!rc && x % 5 == 0)
        rc = weft_sleep((int64_t)(x % 100000));
    if (!rc && x % 23 == 0)
        rc = -EIO;
    atomic_fetch_sub(a->live, 1);
    return rc;
}

static void *stress_main(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    unsigned rounds = (unsigned)test_scale(400);
    for (unsigned r = 0; r < rounds; r++) {
        _Atomic int live = 0;
        enum { N = 24 };
        struct stress_arg a[N];
        weft_group *g;
        cr_assert_eq(weft_group_new(&g), 0);
        for (int i = 0; i < N; i++) {
            seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
            a[i] = (struct stress_arg){ seed, &live };
            int rc = weft_group_spawn(g, random_child, &a[i]);
            cr_assert(rc == 0 || rc == -ECANCELED);
        }
        int64_t dl = seed % 3 == 0 ? weft_deadline_in((int64_t)(seed % 50000)) : WEFT_NEVER;
        if (seed % 7 == 0)
            weft_group_cancel(g);
        int rc = weft_group_wait(g, dl);
        cr_assert(rc == 0 || rc == -EIO || rc == -ETIMEDOUT || rc == -ECANCELED,
                  "seed %llu: %d", (unsigned long long)seed, rc);
        cr_assert_eq(atomic_load(&live), 0, "seed %llu: a child outlived its group",
                     (unsigned long long)seed);
        weft_group_free(g);
    }
    return NULL;
}

Test(group, stress_random_failures_and_cancels, .timeout = 60)
{
    uint64_t seed = test_seed("group stress");
    run_on(6, stress_main, (void *)(uintptr_t)seed);
}

/* ---- a child that never has to wait still stops -------------------------- */

/*
 * The child loops on weft_chan_recv, and its channel never runs dry: it
 * feeds every item back in (a producer that always keeps up). Its receives
 * never have to wait, so only their cancellation point can end the loop
 * once the group is cancelled; without it weft_group_wait — which cannot
 * itself be cancelled — would wait forever. The yield lets the parent run
 * meanwhile; its result is ignored, as a careless child would.
 */
static _Atomic int g_fed_started;

static int fed_child(void *arg)
{
    weft_chan *c = arg;
    uint64_t x;
    int rc;
    atomic_fetch_add(&g_fed_started, 1);
    while ((rc = weft_chan_recv(c, &x, WEFT_NEVER)) == 0) {
        cr_assert_eq(weft_chan_try_send(c, &x), 0);
        weft_yield();
    }
    return rc;
}

static void *fed_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 20; round++) {
        weft_chan *c;
        weft_group *g;
        cr_assert_eq(weft_chan_unbounded(&c, sizeof(uint64_t)), 0);
        for (uint64_t i = 0; i < 8; i++)
            cr_assert_eq(weft_chan_send(c, &i, WEFT_NEVER), 0);
        cr_assert_eq(weft_group_new(&g), 0);
        atomic_store(&g_fed_started, 0);
        for (int i = 0; i < 4; i++)
            cr_assert_eq(weft_group_spawn(g, fed_child, c), 0);
        if (round % 2)                 /* also before every child has started */
            while (atomic_load(&g_fed_started) < 4)
                weft_yield();
        cr_assert_eq(weft_group_cancel(g), 0);
        cr_assert_eq(weft_group_wait(g, WEFT_NEVER), -ECANCELED);
        cr_assert_eq(weft_chan_len(c), 8);  /* nothing lost: each fed its item back */
        weft_group_free(g);
        weft_chan_free(c);
    }
    return NULL;
}

Test(group, cancelled_child_on_a_fed_channel_stops, .timeout = 30)
{
    run_on(4, fed_main, NULL);
}

/* ---- a foreign thread waits on and cancels groups ------------------------ */

struct fgroup { weft_group *g; _Atomic int ready; int wait_rc; };

static int spin_yield_child(void *arg)
{
    (void)arg;
    atomic_fetch_add(&g_counts.started, 1);
    int rc;
    while ((rc = weft_yield()) == 0)      /* running, not parked */
        ;
    atomic_fetch_add(&g_counts.finished, 1);
    return rc;
}

/* A foreign owner: spawns, then leaves the group with a deadline (the
 * children are cancelled when it passes and waited for). */
static void *foreign_owner(void *arg)
{
    struct fgroup *f = arg;
    weft_group *g;
    cr_assert_eq(weft_group_new(&g), 0);
    for (int i = 0; i < 6; i++)
        cr_assert_eq(weft_group_spawn(g, i % 2 ? forever_child : spin_yield_child, NULL), 0);
    f->wait_rc = weft_group_wait(g, weft_deadline_in(3000000));
    weft_group_free(g);
    return NULL;
}

/* A foreign canceller: cancels a group whose owner is a task. */
static void *foreign_canceller(void *arg)
{
    struct fgroup *f = arg;
    while (!atomic_load(&f->ready))
        sched_yield();
    cr_assert_eq(weft_group_cancel(f->g), 0);
    return NULL;
}

static void *foreign_group_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 10; round++) {
        /* a thread leaves a group of tasks */
        reset();
        struct fgroup f = { 0 };
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, foreign_owner, &f), 0);
        pthread_join(th, NULL);
        cr_assert_eq(f.wait_rc, -ETIMEDOUT);
        cr_assert_eq(atomic_load(&g_counts.finished), 6, "children outlived the group");

        /* a thread cancels the group a task waits on */
        reset();
        cr_assert_eq(weft_group_new(&f.g), 0);
        for (int i = 0; i < 6; i++)
            cr_assert_eq(weft_group_spawn(f.g, i % 2 ? forever_child : spin_yield_child, NULL), 0);
        cr_assert_eq(pthread_create(&th, NULL, foreign_canceller, &f), 0);
        if (round % 2)
            while (atomic_load(&g_counts.started) < 6)
                weft_yield();
        atomic_store(&f.ready, 1);
        cr_assert_eq(weft_group_wait(f.g, WEFT_NEVER), -ECANCELED);
        pthread_join(th, NULL);              /* before the group goes */
        cr_assert_eq(atomic_load(&g_counts.finished), atomic_load(&g_counts.started));
        weft_group_free(f.g);
    }
    return NULL;
}

Test(group, foreign_thread_waits_and_cancels, .timeout = 60)
{
    run_on(4, foreign_group_main, NULL);
}

/* ---- one cancel, many children: running, parked, not yet started -------- */

/* More children than the canceller's handle batch holds on its stack (16),
 * so the batch grows; from a task and from a foreign thread. */
static void *many_cancel_thread(void *arg)
{
    cr_assert_eq(weft_group_cancel(arg), 0);
    return NULL;
}

static void *many_children_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 8; round++) {
        reset();
        weft_group *g;
        cr_assert_eq(weft_group_new(&g), 0);
        for (int i = 0; i < 100; i++)
            cr_assert_eq(weft_group_spawn(g, i % 3 ? spin_yield_child : forever_child, NULL), 0);
        while (atomic_load(&g_counts.started) < 100 - round * 10)
            weft_yield();
        if (round % 2) {
            pthread_t th;
            cr_assert_eq(pthread_create(&th, NULL, many_cancel_thread, g), 0);
            cr_assert_eq(weft_group_wait(g, WEFT_NEVER), -ECANCELED);
            pthread_join(th, NULL);
        } else {
            cr_assert_eq(weft_group_cancel(g), 0);
            cr_assert_eq(weft_group_wait(g, WEFT_NEVER), -ECANCELED);
        }
        cr_assert_eq(atomic_load(&g_counts.finished), atomic_load(&g_counts.started));
        weft_group_free(g);
    }
    return NULL;
}

Test(group, cancel_reaches_many_children, .timeout = 60)
{
    run_on(6, many_children_main, NULL);
}
