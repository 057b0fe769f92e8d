/*
 * test_sync.c — mutex, condition variable, semaphore, event and wait
 * group: semantics and every error, deadlines, cancellation while waiting,
 * and contention from tasks on several workers plus foreign threads.
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

/* ---- mutex ---------------------------------------------------------------- */

Test(sync, mutex_errors_without_runtime, .timeout = 30)
{
    weft_mutex *m;
    cr_assert_eq(weft_mutex_new(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_lock(NULL, 0), -EINVAL);
    cr_assert_eq(weft_mutex_new(&m), 0);
    cr_assert_eq(weft_mutex_unlock(m), -EPERM);
    cr_assert_eq(weft_mutex_trylock(m), 0);
    cr_assert_eq(weft_mutex_trylock(m), -EBUSY);
    cr_assert_eq(weft_mutex_lock(m, 0), -ETIMEDOUT);
    cr_assert_eq(weft_mutex_lock(m, weft_deadline_in(1000000)), -ETIMEDOUT);
    cr_assert_eq(weft_mutex_unlock(m), 0);
    cr_assert_eq(weft_mutex_lock(m, 0), 0);
    cr_assert_eq(weft_mutex_unlock(m), 0);
    weft_mutex_free(m);
}

struct counter {
    weft_mutex *m;
    uint64_t value;          /* guarded by m, deliberately not atomic */
    _Atomic int inside;
    uint64_t per;
};

static void *mutex_worker(void *arg)
{
    struct counter *c = arg;
    for (uint64_t i = 0; i < c->per; i++) {
        cr_assert_eq(weft_mutex_lock(c->m, WEFT_NEVER), 0);
        cr_assert_eq(atomic_fetch_add(&c->inside, 1), 0, "two owners at once");
        uint64_t v = c->value;
        if (i % 16 == 0)
            weft_yield();    /* hold it across a switch */
        c->value = v + 1;
        atomic_fetch_sub(&c->inside, 1);
        cr_assert_eq(weft_mutex_unlock(c->m), 0);
    }
    return NULL;
}

static void *mutex_main(void *arg)
{
    struct counter *c = arg;
    weft_task t[16];
    for (int i = 0; i < 16; i++)
        cr_assert_eq(weft_task_spawn(&t[i], mutex_worker, c, NULL), 0);
    for (int i = 0; i < 16; i++)
        weft_task_join(t[i], NULL, WEFT_NEVER);
    return NULL;
}

Test(sync, mutex_excludes_tasks_and_threads, .timeout = 60)
{
    struct counter c = { .per = test_scale(5000) };
    cr_assert_eq(weft_mutex_new(&c.m), 0);
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, mutex_worker, &c), 0);
    run_on(4, mutex_main, &c);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    cr_assert_eq(c.value, 18 * c.per);
    weft_mutex_free(c.m);
}

static void *lock_forever(void *arg)
{
    return (void *)(intptr_t)weft_mutex_lock(arg, WEFT_NEVER);
}

static void *mutex_cancel_main(void *arg)
{
    weft_mutex *m;
    cr_assert_eq(weft_mutex_new(&m), 0);
    cr_assert_eq(weft_mutex_lock(m, WEFT_NEVER), 0);
    weft_task a, b;
    cr_assert_eq(weft_task_spawn(&a, lock_forever, m, NULL), 0);
    cr_assert_eq(weft_task_spawn(&b, lock_forever, m, NULL), 0);
    for (int i = 0; i < 20; i++)
        weft_yield();
    cr_assert_eq(weft_task_cancel(a), 0);
    void *r;
    cr_assert_eq(weft_task_join(a, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, -ECANCELED);
    cr_assert_eq(weft_mutex_unlock(m), 0);          /* goes to b, not to a */
    cr_assert_eq(weft_task_join(b, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, 0);
    cr_assert_eq(weft_mutex_trylock(m), -EBUSY);    /* b owns it */
    cr_assert_eq(weft_mutex_unlock(m), 0);
    weft_mutex_free(m);
    return NULL;
}

Test(sync, mutex_cancelled_waiter_skipped, .timeout = 30)
{
    run_on(2, mutex_cancel_main, NULL);
}

/* ---- condition variable --------------------------------------------------- */

struct queue {
    weft_mutex *m;
    weft_cond *nonempty;
    int items;               /* guarded by m */
    int taken;
    int total;
};

static void *cond_consumer(void *arg)
{
    struct queue *q = arg;
    cr_assert_eq(weft_mutex_lock(q->m, WEFT_NEVER), 0);
    for (;;) {
        while (q->items == 0 && q->taken < q->total)
            cr_assert_eq(weft_cond_wait(q->nonempty, q->m, WEFT_NEVER), 0);
        if (q->taken == q->total)
            break;
        q->items--;
        q->taken++;
    }
    weft_cond_broadcast(q->nonempty);   /* let the others see the end */
    cr_assert_eq(weft_mutex_unlock(q->m), 0);
    return NULL;
}

static void *cond_main(void *arg)
{
    struct queue *q = arg;
    weft_task t[6];
    for (int i = 0; i < 6; i++)
        cr_assert_eq(weft_task_spawn(&t[i], cond_consumer, q, NULL), 0);
    for (int i = 0; i < q->total; i++) {
        cr_assert_eq(weft_mutex_lock(q->m, WEFT_NEVER), 0);
        q->items++;
        cr_assert_eq(weft_cond_signal(q->nonempty), 0);
        cr_assert_eq(weft_mutex_unlock(q->m), 0);
        if (i % 7 == 0)
            weft_yield();
    }
    for (int i = 0; i < 6; i++)
        weft_task_join(t[i], NULL, WEFT_NEVER);
    cr_assert_eq(q->taken, q->total);
    return NULL;
}

Test(sync, cond_producer_consumers, .timeout = 60)
{
    struct queue q = { .total = (int)test_scale(20000) };
    cr_assert_eq(weft_mutex_new(&q.m), 0);
    cr_assert_eq(weft_cond_new(&q.nonempty), 0);
    run_on(4, cond_main, &q);
    weft_cond_free(q.nonempty);
    weft_mutex_free(q.m);
}

static void *cond_wait_cancelled(void *arg)
{
    struct queue *q = arg;
    cr_assert_eq(weft_mutex_lock(q->m, WEFT_NEVER), 0);
    int rc = weft_cond_wait(q->nonempty, q->m, WEFT_NEVER);
    /* holds the mutex again even though cancelled */
    cr_assert_eq(weft_mutex_trylock(q->m), -EBUSY);
    q->items = 99;
    cr_assert_eq(weft_mutex_unlock(q->m), 0);
    return (void *)(intptr_t)rc;
}

static void *cond_edge_main(void *arg)
{
    struct queue q = { 0 };
    cr_assert_eq(weft_mutex_new(&q.m), 0);
    cr_assert_eq(weft_cond_new(&q.nonempty), 0);
    cr_assert_eq(weft_cond_wait(q.nonempty, q.m, WEFT_NEVER), -EPERM);  /* not locked */
    cr_assert_eq(weft_cond_wait(NULL, q.m, 0), -EINVAL);
    cr_assert_eq(weft_mutex_lock(q.m, WEFT_NEVER), 0);
    cr_assert_eq(weft_cond_wait(q.nonempty, q.m, weft_deadline_in(1000000)), -ETIMEDOUT);
    cr_assert_eq(weft_mutex_trylock(q.m), -EBUSY);                       /* still held */
    cr_assert_eq(weft_cond_signal(q.nonempty), 0);                       /* nobody: no-op */
    /* a cancelled waiter re-takes the mutex: while we hold it, it cannot return */
    weft_task t;
    cr_assert_eq(weft_mutex_unlock(q.m), 0);
    cr_assert_eq(weft_task_spawn(&t, cond_wait_cancelled, &q, NULL), 0);
    for (int i = 0; i < 20; i++)
        weft_yield();
    cr_assert_eq(weft_mutex_lock(q.m, WEFT_NEVER), 0);
    cr_assert_eq(weft_task_cancel(t), 0);
    for (int i = 0; i < 20; i++)
        weft_yield();
    cr_assert_eq(q.items, 0);
    cr_assert_eq(weft_mutex_unlock(q.m), 0);
    void *r;
    cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, -ECANCELED);
    cr_assert_eq(q.items, 99);
    weft_cond_free(q.nonempty);
    weft_mutex_free(q.m);
    return NULL;
}

Test(sync, cond_timeout_and_cancel_keep_mutex, .timeout = 30)
{
    run_on(2, cond_edge_main, NULL);
}

/* ---- semaphore ------------------------------------------------------------ */

struct semtest { weft_sem *s; _Atomic int inside, max; int per; };

static void *sem_worker(void *arg)
{
    struct semtest *st = arg;
    for (int i = 0; i < st->per; i++) {
        cr_assert_eq(weft_sem_acquire(st->s, WEFT_NEVER), 0);
        int now = atomic_fetch_add(&st->inside, 1) + 1;
        int m = atomic_load(&st->max);
        while (now > m && !atomic_compare_exchange_weak(&st->max, &m, now))
            ;
        weft_yield();
        atomic_fetch_sub(&st->inside, 1);
        cr_assert_eq(weft_sem_release(st->s), 0);
    }
    return NULL;
}

static void *sem_main(void *arg)
{
    struct semtest *st = arg;
    weft_task t[12];
    for (int i = 0; i < 12; i++)
        cr_assert_eq(weft_task_spawn(&t[i], sem_worker, st, NULL), 0);
    for (int i = 0; i < 12; i++)
        weft_task_join(t[i], NULL, WEFT_NEVER);
    return NULL;
}

Test(sync, semaphore_bounds_concurrency, .timeout = 60)
{
    weft_sem *s;
    cr_assert_eq(weft_sem_new(NULL, 1), -EINVAL);
    cr_assert_eq(weft_sem_new(&s, 1), 0);
    cr_assert_eq(weft_sem_try_acquire(s), 0);
    cr_assert_eq(weft_sem_try_acquire(s), -EAGAIN);
    cr_assert_eq(weft_sem_acquire(s, 0), -ETIMEDOUT);
    cr_assert_eq(weft_sem_acquire(s, weft_deadline_in(1000000)), -ETIMEDOUT);
    cr_assert_eq(weft_sem_release(s), 0);
    cr_assert_eq(weft_sem_value(s), 1);
    weft_sem_free(s);
    cr_assert_eq(weft_sem_new(&s, UINT32_MAX), 0);
    cr_assert_eq(weft_sem_release(s), -EOVERFLOW);
    weft_sem_free(s);

    struct semtest st = { .per = (int)test_scale(2000) };
    cr_assert_eq(weft_sem_new(&st.s, 3), 0);
    run_on(4, sem_main, &st);
    cr_assert_leq(atomic_load(&st.max), 3);
    cr_assert_eq(weft_sem_value(st.s), 3);
    weft_sem_free(st.s);
}

/* ---- event ---------------------------------------------------------------- */

static void *event_waiter(void *arg)
{
    return (void *)(intptr_t)weft_event_wait(arg, WEFT_NEVER);
}

static void *event_thread(void *arg)
{
    return event_waiter(arg);
}

static void *event_main(void *arg)
{
    weft_event *e = arg;
    weft_task t[20];
    for (int i = 0; i < 20; i++)
        cr_assert_eq(weft_task_spawn(&t[i], event_waiter, e, NULL), 0);
    for (int i = 0; i < 20; i++)
        weft_yield();
    cr_assert_eq(weft_event_set(e), 0);
    for (int i = 0; i < 20; i++) {
        void *r;
        cr_assert_eq(weft_task_join(t[i], &r, WEFT_NEVER), 0);
        cr_assert_eq((intptr_t)r, 0);
    }
    return NULL;
}

Test(sync, event_wakes_all, .timeout = 30)
{
    weft_event *e;
    cr_assert_eq(weft_event_new(&e), 0);
    cr_assert_not(weft_event_is_set(e));
    cr_assert_eq(weft_event_wait(e, 0), -ETIMEDOUT);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, event_thread, e), 0);
    run_on(3, event_main, e);
    void *r;
    pthread_join(th, &r);
    cr_assert_eq((intptr_t)r, 0);
    cr_assert(weft_event_is_set(e));
    cr_assert_eq(weft_event_wait(e, 0), 0);
    cr_assert_eq(weft_event_clear(e), 0);
    cr_assert_eq(weft_event_wait(e, weft_deadline_in(1000000)), -ETIMEDOUT);
    cr_assert_eq(weft_event_set(NULL), -EINVAL);
    weft_event_free(e);
}

/* ---- wait group ------------------------------------------------------------ */

struct wgtest { weft_waitgroup *wg; _Atomic int done; };

static void *wg_child(void *arg)
{
    struct wgtest *w = arg;
    weft_yield();
    atomic_fetch_add(&w->done, 1);
    cr_assert_eq(weft_waitgroup_done(w->wg), 0);
    return NULL;
}

static void *wg_main(void *arg)
{
    struct wgtest w = { 0 };
    cr_assert_eq(weft_waitgroup_new(&w.wg), 0);
    cr_assert_eq(weft_waitgroup_wait(w.wg, 0), 0);            /* zero: at once */
    cr_assert_eq(weft_waitgroup_add(w.wg, -1), -EINVAL);
    cr_assert_eq(weft_waitgroup_add(w.wg, 100), 0);
    cr_assert_eq(weft_waitgroup_wait(w.wg, 0), -ETIMEDOUT);
    for (int i = 0; i < 100; i++)
        cr_assert_eq(weft_task_spawn(NULL, wg_child, &w, NULL), 0);
    cr_assert_eq(weft_waitgroup_wait(w.wg, WEFT_NEVER), 0);
    cr_assert_eq(atomic_load(&w.done), 100);
    cr_assert_eq(weft_waitgroup_add(w.wg, INT64_MAX), 0);
    cr_assert_eq(weft_waitgroup_add(w.wg, 1), -EINVAL);      /* overflow */
    cr_assert_eq(weft_waitgroup_add(w.wg, -INT64_MAX), 0);
    weft_waitgroup_free(w.wg);
    return NULL;
}

Test(sync, waitgroup_counts_down, .timeout = 30)
{
    run_on(4, wg_main, NULL);
}

/* ---- cancellation racing the start of a wait ------------------------------ */

/* The waits above keep their claim in the task's state word and hold the
 * primitive's lock across the switch away (docs/design.md §6). Cancel
 * waiters at random points of their wait's start (before it opens, while
 * it parks, after), from a task that may be on another worker: each must
 * return -ECANCELED (a lost cancel hangs the join: the test's timeout),
 * and the primitive must come out intact (no permit, signal or count lost
 * or duplicated). ctest runs this file with WEFT_NO_MEMBARRIER=1 too. */

#define SYNC_RACE_ROUNDS 600

enum prim { P_MUTEX, P_SEM, P_EVENT, P_WAITGROUP, P_COUNT };

struct prims {
    weft_mutex *m;
    weft_sem *s;
    weft_event *e;
    weft_waitgroup *wg;
};

struct waiter_arg { struct prims *p; enum prim which; };

static void *blocked_on(void *arg)
{
    struct waiter_arg *a = arg;
    switch (a->which) {
    case P_MUTEX:     return (void *)(intptr_t)weft_mutex_lock(a->p->m, WEFT_NEVER);
    case P_SEM:       return (void *)(intptr_t)weft_sem_acquire(a->p->s, WEFT_NEVER);
    case P_EVENT:     return (void *)(intptr_t)weft_event_wait(a->p->e, WEFT_NEVER);
    default:          return (void *)(intptr_t)weft_waitgroup_wait(a->p->wg, WEFT_NEVER);
    }
}

static void *sync_race_main(void *arg)
{
    uint64_t rng = *(uint64_t *)arg;
    struct prims p;
    cr_assert_eq(weft_mutex_new(&p.m), 0);
    cr_assert_eq(weft_sem_new(&p.s, 0), 0);
    cr_assert_eq(weft_event_new(&p.e), 0);
    cr_assert_eq(weft_waitgroup_new(&p.wg), 0);
    cr_assert_eq(weft_mutex_lock(p.m, WEFT_NEVER), 0);    /* held: waiters block */
    cr_assert_eq(weft_waitgroup_add(p.wg, 1), 0);          /* never done meanwhile */
    for (unsigned i = 0; i < SYNC_RACE_ROUNDS * P_COUNT; i++) {
        struct waiter_arg a = { &p, (enum prim)(i % P_COUNT) };
        weft_task t;
        cr_assert_eq(weft_task_spawn(&t, blocked_on, &a, NULL), 0);
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        for (unsigned y = rng % 3; y; y--)
            weft_yield();
        cr_assert_eq(weft_task_cancel(t), 0);
        void *r;
        cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
        cr_assert_eq((intptr_t)r, -ECANCELED, "round %u (primitive %d): %d", i, (int)a.which,
                     (int)(intptr_t)r);
    }
    /* Intact: exactly what was given is there to take. */
    cr_assert_eq(weft_sem_try_acquire(p.s), -EAGAIN);
    cr_assert_eq(weft_sem_release(p.s), 0);
    cr_assert_eq(weft_sem_try_acquire(p.s), 0);
    cr_assert_eq(weft_sem_try_acquire(p.s), -EAGAIN);
    cr_assert_eq(weft_mutex_trylock(p.m), -EBUSY);
    cr_assert_eq(weft_mutex_unlock(p.m), 0);
    cr_assert_eq(weft_mutex_trylock(p.m), 0);
    cr_assert_eq(weft_mutex_unlock(p.m), 0);
    cr_assert_eq(weft_event_wait(p.e, 0), -ETIMEDOUT);
    cr_assert_eq(weft_event_set(p.e), 0);
    cr_assert_eq(weft_event_wait(p.e, WEFT_NEVER), 0);
    cr_assert_eq(weft_waitgroup_wait(p.wg, 0), -ETIMEDOUT);
    cr_assert_eq(weft_waitgroup_done(p.wg), 0);
    cr_assert_eq(weft_waitgroup_wait(p.wg, WEFT_NEVER), 0);
    weft_mutex_free(p.m);
    weft_sem_free(p.s);
    weft_event_free(p.e);
    weft_waitgroup_free(p.wg);
    return NULL;
}

Test(sync, cancel_races_wait_start, .timeout = 120)
{
    uint64_t seed = (uint64_t)weft_now() | 1;
    cr_log_info("sync cancel race seed %llu", (unsigned long long)seed);
    for (unsigned workers = 1; workers <= 4; workers *= 2) {
        uint64_t s = seed + workers;
        run_on(workers, sync_race_main, &s);
    }
}
