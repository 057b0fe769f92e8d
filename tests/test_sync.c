/*
 * test_sync.c — mutex, condition variable, semaphore, event and wait
 * group: semantics and every error (NULL objects included), deadlines,
 * cancellation while waiting and before (a cancelled task's blocking call
 * on a ready primitive takes nothing), contention from tasks on several
 * workers plus foreign threads, and conservation while releases, signals,
 * sets and counts race the waiters' timeouts and cancellations: permits and
 * ownership never lost or duplicated, every queued item taken once, every
 * waiter of an event or a wait group woken, timed waits from tasks and
 * foreign threads.
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
    uint64_t seed = test_seed("sync cancel race");
    for (unsigned workers = 1; workers <= 4; workers *= 2) {
        uint64_t s = seed + workers;
        run_on(workers, sync_race_main, &s);
    }
}

/* ---- NULL arguments ---------------------------------------------------------- */

Test(sync, null_objects_are_einval, .timeout = 30)
{
    cr_assert_eq(weft_mutex_new(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_lock(NULL, WEFT_NEVER), -EINVAL);
    cr_assert_eq(weft_mutex_trylock(NULL), -EINVAL);
    cr_assert_eq(weft_mutex_unlock(NULL), -EINVAL);
    cr_assert_eq(weft_cond_new(NULL), -EINVAL);
    cr_assert_eq(weft_cond_signal(NULL), -EINVAL);
    cr_assert_eq(weft_cond_broadcast(NULL), -EINVAL);
    weft_mutex *m;
    weft_cond *c;
    cr_assert_eq(weft_mutex_new(&m), 0);
    cr_assert_eq(weft_cond_new(&c), 0);
    cr_assert_eq(weft_cond_wait(NULL, m, WEFT_NEVER), -EINVAL);
    cr_assert_eq(weft_cond_wait(c, NULL, WEFT_NEVER), -EINVAL);
    cr_assert_eq(weft_sem_new(NULL, 0), -EINVAL);
    cr_assert_eq(weft_sem_acquire(NULL, WEFT_NEVER), -EINVAL);
    cr_assert_eq(weft_sem_try_acquire(NULL), -EINVAL);
    cr_assert_eq(weft_sem_release(NULL), -EINVAL);
    cr_assert_eq(weft_sem_value(NULL), 0);
    cr_assert_eq(weft_event_new(NULL), -EINVAL);
    cr_assert_eq(weft_event_set(NULL), -EINVAL);
    cr_assert_eq(weft_event_clear(NULL), -EINVAL);
    cr_assert_eq(weft_event_wait(NULL, WEFT_NEVER), -EINVAL);
    cr_assert_not(weft_event_is_set(NULL));
    cr_assert_eq(weft_waitgroup_new(NULL), -EINVAL);
    cr_assert_eq(weft_waitgroup_add(NULL, 1), -EINVAL);
    cr_assert_eq(weft_waitgroup_done(NULL), -EINVAL);
    cr_assert_eq(weft_waitgroup_wait(NULL, WEFT_NEVER), -EINVAL);
    weft_mutex_free(NULL);
    weft_cond_free(NULL);
    weft_sem_free(NULL);
    weft_event_free(NULL);
    weft_waitgroup_free(NULL);
    weft_cond_free(c);
    weft_mutex_free(m);
}

/* ---- cancellation points on ready primitives ---------------------------------- */

/* A cancelled task's blocking calls return -ECANCELED at once even where
 * they would not wait, and take nothing; polls (deadline 0, try_*) and the
 * calls that never wait still work. */
static void *cancelled_ready_body(void *arg)
{
    (void)arg;
    weft_mutex *m;
    weft_cond *c;
    weft_sem *s;
    weft_event *e;
    weft_waitgroup *wg;
    cr_assert_eq(weft_mutex_new(&m), 0);
    cr_assert_eq(weft_cond_new(&c), 0);
    cr_assert_eq(weft_sem_new(&s, 2), 0);
    cr_assert_eq(weft_event_new(&e), 0);
    cr_assert_eq(weft_waitgroup_new(&wg), 0);
    cr_assert_eq(weft_event_set(e), 0);
    cr_assert_eq(weft_task_cancel(weft_task_self()), 0);
    cr_assert(weft_task_cancelled());
    int64_t dls[2] = { WEFT_NEVER, weft_deadline_in(1000000000) };
    for (int d = 0; d < 2; d++) {
        /* free mutex: not taken */
        cr_assert_eq(weft_mutex_lock(m, dls[d]), -ECANCELED);
        cr_assert_eq(weft_mutex_trylock(m), 0);             /* it was free */
        /* held mutex: a cond wait returns at once, still holding it */
        cr_assert_eq(weft_cond_wait(c, m, dls[d]), -ECANCELED);
        cr_assert_eq(weft_mutex_trylock(m), -EBUSY);
        cr_assert_eq(weft_mutex_unlock(m), 0);
        cr_assert_eq(weft_cond_wait(c, m, dls[d]), -EPERM);  /* not locked */
        /* permits there: none taken */
        cr_assert_eq(weft_sem_acquire(s, dls[d]), -ECANCELED);
        cr_assert_eq(weft_sem_value(s), 2);
        /* set event, zero count */
        cr_assert_eq(weft_event_wait(e, dls[d]), -ECANCELED);
        cr_assert(weft_event_is_set(e));
        cr_assert_eq(weft_waitgroup_wait(wg, dls[d]), -ECANCELED);
    }
    /* polls are not cancellation points */
    cr_assert_eq(weft_mutex_lock(m, 0), 0);
    cr_assert_eq(weft_cond_wait(c, m, 0), -ETIMEDOUT);   /* and m still held */
    cr_assert_eq(weft_mutex_trylock(m), -EBUSY);
    cr_assert_eq(weft_mutex_unlock(m), 0);
    cr_assert_eq(weft_sem_acquire(s, 0), 0);
    cr_assert_eq(weft_sem_try_acquire(s), 0);
    cr_assert_eq(weft_sem_try_acquire(s), -EAGAIN);
    cr_assert_eq(weft_sem_release(s), 0);
    cr_assert_eq(weft_sem_release(s), 0);
    cr_assert_eq(weft_event_wait(e, 0), 0);
    cr_assert_eq(weft_waitgroup_wait(wg, 0), 0);
    cr_assert_eq(weft_waitgroup_add(wg, 1), 0);
    cr_assert_eq(weft_waitgroup_done(wg), 0);
    cr_assert_eq(weft_event_clear(e), 0);
    cr_assert_eq(weft_cond_signal(c), 0);
    /* everything intact for a task that is not cancelled */
    cr_assert_eq(weft_sem_value(s), 2);
    cr_assert_eq(weft_mutex_trylock(m), 0);
    cr_assert_eq(weft_mutex_unlock(m), 0);
    weft_mutex_free(m);
    weft_cond_free(c);
    weft_sem_free(s);
    weft_event_free(e);
    weft_waitgroup_free(wg);
    return (void *)1;
}

static void *cancelled_ready_main(void *arg)
{
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, cancelled_ready_body, arg, NULL), 0);
    void *r;
    cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
    cr_assert_eq(r, (void *)1);
    return NULL;
}

Test(sync, cancelled_task_takes_nothing_from_ready_primitives, .timeout = 30)
{
    run_on(2, cancelled_ready_main, NULL);
    /* a foreign thread has no task: never cancelled, nothing checked */
    weft_sem *s;
    cr_assert_eq(weft_sem_new(&s, 1), 0);
    cr_assert_eq(weft_sem_acquire(s, WEFT_NEVER), 0);
    cr_assert_eq(weft_sem_value(s), 0);
    weft_sem_free(s);
}

/* ---- conservation under timeouts and cancels -------------------------------- */

/*
 * k permits (a mutex: k = 1), acquirers on 6 workers and on 2 foreign
 * threads with random deadlines, a canceller cancelling random acquirer
 * tasks (which are replaced), while every release races the waiters'
 * timeouts and cancellations. An acquirer that got the permit counts
 * itself inside (never more than k at once), yields while holding it,
 * and gives it back: the total taken equals the total given back, and at
 * the end exactly k permits are there — none lost, none duplicated.
 */
#define CONS_TASKS 8
#define CONS_THREADS 2

struct conserve {
    bool mutex;              /* else the semaphore */
    unsigned k;
    weft_mutex *m;
    weft_sem *s;
    _Atomic int inside, peak;
    _Atomic uint64_t taken, given, timeouts, cancels;
    _Atomic int stop;
    uint64_t per;            /* acquisitions each thread makes */
    uint64_t seed;
};

static int conserve_take(struct conserve *c, int64_t dl)
{
    return c->mutex ? weft_mutex_lock(c->m, dl) : weft_sem_acquire(c->s, dl);
}

static void conserve_give(struct conserve *c)
{
    cr_assert_eq(c->mutex ? weft_mutex_unlock(c->m) : weft_sem_release(c->s), 0);
}

static void conserve_hold(struct conserve *c, uint64_t r)
{
    int now = atomic_fetch_add(&c->inside, 1) + 1;
    cr_assert_leq(now, (int)c->k, "seed %llu: %d holders of %u permits",
                  (unsigned long long)c->seed, now, c->k);
    int p = atomic_load(&c->peak);
    while (now > p && !atomic_compare_exchange_weak(&c->peak, &p, now))
        ;
    atomic_fetch_add(&c->taken, 1);
    if (r % 3 == 0)
        weft_yield();        /* hold it across a switch (a no-op on threads) */
    atomic_fetch_sub(&c->inside, 1);
    atomic_fetch_add(&c->given, 1);
    conserve_give(c);
}

/* After 0-3 yields, cancel a random one of the @n tasks @t, join it and
 * put a new task running @fn(@arg) in its place. */
static void cancel_one(weft_task *t, int n, void *(*fn)(void *), void *arg, uint64_t *rng)
{
    uint64_t r = test_xorshift(rng);
    for (unsigned y = r % 4; y; y--)
        weft_yield();
    int k = (int)((r >> 8) % (uint64_t)n);
    cr_assert_eq(weft_task_cancel(t[k]), 0);
    cr_assert_eq(weft_task_join(t[k], NULL, WEFT_NEVER), 0);
    cr_assert_eq(weft_task_spawn(&t[k], fn, arg, NULL), 0);
}

/* Until stopped (tasks) or @per acquisitions (threads). */
static void *conserve_body(void *arg)
{
    struct conserve *c = arg;
    uint64_t rng = c->seed ^ (uint64_t)(uintptr_t)&rng;
    bool thread = !weft_task_self().ptr;
    for (uint64_t n = 0; thread ? n < c->per : !atomic_load(&c->stop);) {
        uint64_t r = test_xorshift(&rng);
        int64_t dl = r % 2 ? weft_deadline_in((int64_t)(r % 40000)) : WEFT_NEVER;
        int rc = conserve_take(c, dl);
        if (rc == 0) {
            conserve_hold(c, r >> 8);
            n++;
        } else if (rc == -ETIMEDOUT) {
            atomic_fetch_add(&c->timeouts, 1);
        } else {
            cr_assert_eq(rc, -ECANCELED, "seed %llu: %d", (unsigned long long)c->seed, rc);
            cr_assert_not(thread);
            atomic_fetch_add(&c->cancels, 1);
            return NULL;
        }
    }
    return NULL;
}

static void *conserve_main(void *arg)
{
    struct conserve *c = arg;
    uint64_t rng = c->seed;
    pthread_t th[CONS_THREADS];
    for (int i = 0; i < CONS_THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, conserve_body, c), 0);
    weft_task t[CONS_TASKS];
    for (int i = 0; i < CONS_TASKS; i++)
        cr_assert_eq(weft_task_spawn(&t[i], conserve_body, c, NULL), 0);
    unsigned rounds = (unsigned)test_scale(1500);
    for (unsigned i = 0; i < rounds; i++) {
        cancel_one(t, CONS_TASKS, conserve_body, c, &rng);
    }
    atomic_store(&c->stop, 1);
    for (int i = 0; i < CONS_TASKS; i++)
        cr_assert_eq(weft_task_join(t[i], NULL, WEFT_NEVER), 0);
    for (int i = 0; i < CONS_THREADS; i++)
        pthread_join(th[i], NULL);
    return NULL;
}

static void conserve_run(bool mutex, unsigned k)
{
    cr_log_info("conservation (%s, k %u)", mutex ? "mutex" : "sem", k);
    uint64_t seed = test_seed("conservation");
    for (unsigned round = 0; round < 2; round++) {
        struct conserve c = { .mutex = mutex, .k = k, .per = test_scale(3000),
                              .seed = seed + round };
        if (mutex)
            cr_assert_eq(weft_mutex_new(&c.m), 0);
        else
            cr_assert_eq(weft_sem_new(&c.s, k), 0);
        run_on(round ? 8 : 6, conserve_main, &c);
        cr_assert_eq(atomic_load(&c.inside), 0);
        cr_assert_eq(atomic_load(&c.taken), atomic_load(&c.given));
        cr_assert_geq(atomic_load(&c.taken), CONS_THREADS * c.per);
        cr_assert_leq(atomic_load(&c.peak), (int)k);
        if (mutex) {
            cr_assert_eq(weft_mutex_trylock(c.m), 0, "seed %llu: mutex left locked",
                         (unsigned long long)c.seed);
            cr_assert_eq(weft_mutex_unlock(c.m), 0);
            weft_mutex_free(c.m);
        } else {
            cr_assert_eq(weft_sem_value(c.s), k, "seed %llu: %u permits of %u",
                         (unsigned long long)c.seed, weft_sem_value(c.s), k);
            for (unsigned i = 0; i < k; i++)
                cr_assert_eq(weft_sem_try_acquire(c.s), 0);
            cr_assert_eq(weft_sem_try_acquire(c.s), -EAGAIN);
            weft_sem_free(c.s);
        }
        cr_log_info("taken %llu, timeouts %llu, cancels %llu",
                    (unsigned long long)c.taken, (unsigned long long)c.timeouts,
                    (unsigned long long)c.cancels);
    }
}

Test(sync, semaphore_conserves_permits_under_timeouts_and_cancels, .timeout = 120)
{
    conserve_run(false, 3);
}

Test(sync, mutex_conserves_ownership_under_timeouts_and_cancels, .timeout = 120)
{
    conserve_run(true, 1);
}

/* ---- condition variable: signals racing timeouts and cancels ----------------- */

/*
 * Producers (tasks and a foreign thread) push numbered items onto a
 * mutex-guarded stack and signal (sometimes broadcast); consumers (tasks
 * and a foreign thread) wait with random deadlines, and a canceller cancels
 * random consumer tasks (replaced). Every return of weft_cond_wait but
 * -EPERM holds the mutex; a signal claimed by a waiter whose deadline or
 * cancellation won goes to the next one, so no item is stranded; every
 * item is taken exactly once.
 */
#define CQ_PROD 3
#define CQ_CONS 5

struct cq {
    weft_mutex *m;
    weft_cond *c;
    uint64_t *stack;         /* guarded by m */
    size_t len;
    bool done;               /* guarded by m: producers are finished */
    uint64_t per;
    _Atomic uint8_t *seen;
    _Atomic uint64_t taken, cancels, timeouts;
    uint64_t seed;
};

struct cq_prod { struct cq *q; uint64_t id; };

static void *cq_producer(void *arg)
{
    struct cq_prod *p = arg;
    struct cq *q = p->q;
    uint64_t rng = test_seed_for(q->seed, p->id);
    for (uint64_t i = 0; i < q->per; i++) {
        cr_assert_eq(weft_mutex_lock(q->m, WEFT_NEVER), 0);
        q->stack[q->len++] = p->id * q->per + i;
        uint64_t r = test_xorshift(&rng);
        cr_assert_eq(r % 16 ? weft_cond_signal(q->c) : weft_cond_broadcast(q->c), 0);
        cr_assert_eq(weft_mutex_unlock(q->m), 0);
        if (r % 4 == 0)
            weft_yield();
    }
    return NULL;
}

static void *cq_consumer(void *arg)
{
    struct cq *q = arg;
    uint64_t rng = q->seed ^ (uint64_t)(uintptr_t)&rng;
    int lrc = weft_mutex_lock(q->m, WEFT_NEVER);
    if (lrc == -ECANCELED)
        return NULL;                     /* cancelled before it began */
    cr_assert_eq(lrc, 0);
    for (;;) {
        while (q->len == 0 && !q->done) {
            uint64_t r = test_xorshift(&rng);
            int64_t dl = r % 2 ? weft_deadline_in((int64_t)(r % 50000)) : WEFT_NEVER;
            int rc = weft_cond_wait(q->c, q->m, dl);
            cr_assert_eq(weft_mutex_trylock(q->m), -EBUSY, "returned without the mutex");
            if (rc == -ECANCELED) {
                atomic_fetch_add(&q->cancels, 1);
                cr_assert_eq(weft_mutex_unlock(q->m), 0);
                return NULL;
            }
            if (rc == -ETIMEDOUT)
                atomic_fetch_add(&q->timeouts, 1);
            else
                cr_assert_eq(rc, 0, "seed %llu: %d", (unsigned long long)q->seed, rc);
        }
        if (q->len == 0)
            break;                       /* done and drained */
        uint64_t item = q->stack[--q->len];
        cr_assert_eq(atomic_fetch_add(&q->seen[item], 1), 0, "item %llu twice",
                     (unsigned long long)item);
        atomic_fetch_add(&q->taken, 1);
        if (item % 5 == 0) {             /* sometimes let go in between */
            cr_assert_eq(weft_mutex_unlock(q->m), 0);
            weft_yield();
            int rc = weft_mutex_lock(q->m, WEFT_NEVER);
            if (rc == -ECANCELED)
                return NULL;
            cr_assert_eq(rc, 0);
        }
    }
    cr_assert_eq(weft_mutex_unlock(q->m), 0);
    return NULL;
}

static void *cq_main(void *arg)
{
    struct cq *q = arg;
    uint64_t rng = q->seed;
    struct cq_prod pa[CQ_PROD + 1];
    weft_task prod[CQ_PROD], cons[CQ_CONS];
    pthread_t fprod, fcons;
    for (int i = 0; i <= CQ_PROD; i++)
        pa[i] = (struct cq_prod){ q, (uint64_t)i };
    cr_assert_eq(pthread_create(&fcons, NULL, cq_consumer, q), 0);
    for (int i = 0; i < CQ_CONS; i++)
        cr_assert_eq(weft_task_spawn(&cons[i], cq_consumer, q, NULL), 0);
    for (int i = 0; i < CQ_PROD; i++)
        cr_assert_eq(weft_task_spawn(&prod[i], cq_producer, &pa[i], NULL), 0);
    cr_assert_eq(pthread_create(&fprod, NULL, cq_producer, &pa[CQ_PROD]), 0);
    for (unsigned n = 0; n < 300 || atomic_load(&q->taken) < (CQ_PROD + 1) * q->per * 3 / 4;
         n++) {
        cancel_one(cons, CQ_CONS, cq_consumer, q, &rng);
    }
    for (int i = 0; i < CQ_PROD; i++)
        cr_assert_eq(weft_task_join(prod[i], NULL, WEFT_NEVER), 0);
    pthread_join(fprod, NULL);
    cr_assert_eq(weft_mutex_lock(q->m, WEFT_NEVER), 0);
    q->done = true;
    cr_assert_eq(weft_cond_broadcast(q->c), 0);
    cr_assert_eq(weft_mutex_unlock(q->m), 0);
    for (int i = 0; i < CQ_CONS; i++)
        cr_assert_eq(weft_task_join(cons[i], NULL, WEFT_NEVER), 0);
    pthread_join(fcons, NULL);
    return NULL;
}

Test(sync, cond_signals_race_timeouts_and_cancels, .timeout = 120)
{
    uint64_t seed = test_seed("cond stress");
    for (unsigned round = 0; round < 2; round++) {
        struct cq q = { .per = test_scale(6000), .seed = seed + round };
        uint64_t total = (CQ_PROD + 1) * q.per;
        q.stack = calloc(total, sizeof(*q.stack));
        q.seen = calloc(total, 1);
        cr_assert_eq(weft_mutex_new(&q.m), 0);
        cr_assert_eq(weft_cond_new(&q.c), 0);
        run_on(round ? 8 : 4, cq_main, &q);
        cr_assert_eq(atomic_load(&q.taken), total, "seed %llu: %llu of %llu taken",
                     (unsigned long long)q.seed, (unsigned long long)q.taken,
                     (unsigned long long)total);
        for (uint64_t i = 0; i < total; i++)
            cr_assert_eq(atomic_load(&q.seen[i]), 1, "seed %llu item %llu",
                         (unsigned long long)q.seed, (unsigned long long)i);
        cr_assert_eq(weft_mutex_trylock(q.m), 0);
        cr_assert_eq(weft_mutex_unlock(q.m), 0);
        cr_log_info("cancels %llu, timeouts %llu", (unsigned long long)q.cancels,
                    (unsigned long long)q.timeouts);
        weft_cond_free(q.c);
        weft_mutex_free(q.m);
        free(q.stack);
        free((void *)q.seen);
    }
}

/* ---- wait groups: timed waits, from tasks and foreign threads --------------- */

struct wgt { weft_waitgroup *wg; _Atomic int go; int rc[4]; int64_t waited[2]; };

/* Timed waits: one that runs out while the count is up, and one woken by
 * the last done() well before its deadline. Task or foreign thread. */
static void *wg_timed_waiter(void *arg)
{
    struct wgt *w = arg;
    int i = weft_task_self().ptr ? 0 : 2;
    int64_t t0 = weft_now();
    w->rc[i] = weft_waitgroup_wait(w->wg, t0 + 3000000);
    w->waited[i / 2] = weft_now() - t0;
    atomic_fetch_add(&w->go, 1);
    w->rc[i + 1] = weft_waitgroup_wait(w->wg, weft_deadline_in(30LL * 1000000000));
    return NULL;
}

static void *wg_doner(void *arg)
{
    struct wgt *w = arg;
    weft_yield();
    cr_assert_eq(weft_waitgroup_done(w->wg), 0);
    return NULL;
}

static void *wg_timed_main(void *arg)
{
    struct wgt *w = arg;
    cr_assert_eq(weft_waitgroup_add(w->wg, 8), 0);
    pthread_t th;
    weft_task t;
    cr_assert_eq(pthread_create(&th, NULL, wg_timed_waiter, w), 0);
    cr_assert_eq(weft_task_spawn(&t, wg_timed_waiter, w, NULL), 0);
    while (atomic_load(&w->go) < 2)          /* both timed out once */
        weft_yield();
    for (int i = 0; i < 8; i++)
        cr_assert_eq(weft_task_spawn(NULL, wg_doner, w, NULL), 0);
    cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
    pthread_join(th, NULL);
    return NULL;
}

Test(sync, waitgroup_timed_waits_from_tasks_and_threads, .timeout = 30)
{
    struct wgt w = { 0 };
    cr_assert_eq(weft_waitgroup_new(&w.wg), 0);
    run_on(4, wg_timed_main, &w);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(w.rc[2 * i], -ETIMEDOUT, "%s", i ? "thread" : "task");
        cr_assert_geq(w.waited[i], 3000000);
        cr_assert_eq(w.rc[2 * i + 1], 0, "%s", i ? "thread" : "task");
    }
    cr_assert_eq(weft_waitgroup_wait(w.wg, weft_deadline_in(1000000)), 0);
    weft_waitgroup_free(w.wg);
}

/* ---- event set and wait-group done racing timeouts and cancels -------------- */

/*
 * Each round: waiters on an event (or a wait group at 1) — tasks with and
 * without deadlines and a foreign thread — while a canceller cancels a
 * random subset of the tasks (marking each first) and a setter sets the
 * event (or counts the group down) after a random number of yields. A set
 * wakes every waiter whose wait had not ended another way: an unmarked
 * waiter without deadline must return 0, one with a deadline 0 or
 * -ETIMEDOUT, a marked one may also return -ECANCELED; nothing hangs.
 */
#define EW_N 10

struct ewr {
    bool group;
    weft_event *e;
    weft_waitgroup *wg;
    uint64_t seed;
    weft_task t[EW_N];
    _Atomic int marked[EW_N + 1];
    int rc[EW_N + 1];
};

struct ew_arg { struct ewr *r; int i; };

static bool ew_timed(struct ewr *r, int i)
{
    return (r->seed >> (i % 32)) & 1;
}

static void *ew_waiter(void *arg)
{
    struct ew_arg *a = arg;
    struct ewr *r = a->r;
    int64_t dl = ew_timed(r, a->i) ? weft_deadline_in((int64_t)(r->seed % 40000)) : WEFT_NEVER;
    r->rc[a->i] = r->group ? weft_waitgroup_wait(r->wg, dl) : weft_event_wait(r->e, dl);
    return NULL;
}

static void *ew_setter(void *arg)
{
    struct ewr *r = arg;
    for (unsigned y = r->seed % 4; y; y--)
        weft_yield();
    cr_assert_eq(r->group ? weft_waitgroup_done(r->wg) : weft_event_set(r->e), 0);
    return NULL;
}

static void *ew_canceller(void *arg)
{
    struct ewr *r = arg;
    test_cancel_some(r->t, r->marked, EW_N, r->seed, 3);
    return NULL;
}

static void *ew_main(void *arg)
{
    uint64_t seed = *(uint64_t *)arg;
    unsigned rounds = (unsigned)test_scale(300);
    for (unsigned round = 0; round < rounds; round++) {
        struct ewr r = { .group = round % 2, .seed = test_xorshift(&seed) };
        struct ew_arg a[EW_N + 1];
        cr_assert_eq(weft_event_new(&r.e), 0);
        cr_assert_eq(weft_waitgroup_new(&r.wg), 0);
        cr_assert_eq(weft_waitgroup_add(r.wg, 1), 0);
        for (int i = 0; i <= EW_N; i++)
            a[i] = (struct ew_arg){ &r, i };
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, ew_waiter, &a[EW_N]), 0);
        for (int i = 0; i < EW_N; i++)
            cr_assert_eq(weft_task_spawn(&r.t[i], ew_waiter, &a[i], NULL), 0);
        weft_task c, s;
        cr_assert_eq(weft_task_spawn(&c, ew_canceller, &r, NULL), 0);
        cr_assert_eq(weft_task_spawn(&s, ew_setter, &r, NULL), 0);
        cr_assert_eq(weft_task_join(c, NULL, WEFT_NEVER), 0);
        cr_assert_eq(weft_task_join(s, NULL, WEFT_NEVER), 0);
        for (int i = 0; i < EW_N; i++)
            cr_assert_eq(weft_task_join(r.t[i], NULL, WEFT_NEVER), 0);
        pthread_join(th, NULL);
        for (int i = 0; i <= EW_N; i++) {
            int rc = r.rc[i];
            bool ok = rc == 0 || (ew_timed(&r, i) && rc == -ETIMEDOUT) ||
                      (atomic_load(&r.marked[i]) && rc == -ECANCELED);
            cr_assert(ok, "seed %llu %s waiter %d (timed %d, marked %d): %d",
                      (unsigned long long)r.seed, r.group ? "group" : "event", i,
                      ew_timed(&r, i), atomic_load(&r.marked[i]), rc);
        }
        /* the primitive is in its final state: a later wait returns at once */
        cr_assert_eq(r.group ? weft_waitgroup_wait(r.wg, 0) : weft_event_wait(r.e, 0), 0);
        weft_event_free(r.e);
        weft_waitgroup_free(r.wg);
    }
    return NULL;
}

Test(sync, event_and_waitgroup_wakes_race_timeouts_and_cancels, .timeout = 120)
{
    uint64_t seed = test_seed("event/waitgroup race");
    run_on(6, ew_main, &seed);
}
