/*
 * test_future.c — futures: every outcome and error, awaiting before and
 * after completion, many awaiters on several workers and on foreign
 * threads, deadlines, cancellation of the awaiter and of the future,
 * done-callbacks (their order — added before, during and after the
 * completion, from several threads and from inside a callback — and their
 * removal, racing the completion too), task-backed futures, and a race of
 * completers, cancellers and timing-out awaiters that checks every awaiter
 * returns exactly once with the one outcome; NULL futures; a cancelled
 * task's await (at once, even on a done future); and awaiters cancelled at
 * random while completions race (every one not cancelled sees the winner).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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

/* ---- done-callbacks: removal, and order when added from inside one ------ */

struct log { int v[64]; _Atomic int n; };

static void log_put(struct log *l, int v)
{
    int i = atomic_fetch_add(&l->n, 1);
    cr_assert_lt(i, 64);
    l->v[i] = v;
}

struct tagged { struct log *log; int tag; weft_future_done_fn then; void *then_arg; int removes; };

/* logs its tag; then optionally adds (or, with `removes`, removes) another */
static void cb_tagged(weft_future *f, void *arg)
{
    struct tagged *t = arg;
    log_put(t->log, t->tag);
    if (t->then && t->removes)
        log_put(t->log, 1000 + weft_future_remove_done(f, t->then, t->then_arg));
    else if (t->then)
        cr_assert_eq(weft_future_on_done(f, t->then, t->then_arg), 0);
    log_put(t->log, -t->tag);     /* returned */
}

static void check_log(struct log *l, const int *want, int n)
{
    cr_assert_eq(atomic_load(&l->n), n, "%d callbacks logged, want %d", atomic_load(&l->n), n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(l->v[i], want[i], "log[%d] = %d, want %d", i, l->v[i], want[i]);
}

Test(future, remove_done_and_nested_order, .timeout = 30)
{
    weft_future *f;
    struct log l = { 0 };
    struct tagged a = { .log = &l, .tag = 1 }, b = { .log = &l, .tag = 2 },
                  c = { .log = &l, .tag = 3 }, x = { .log = &l, .tag = 9 };

    cr_assert_eq(weft_future_new(&f), 0);
    cr_assert_eq(weft_future_remove_done(NULL, cb_tagged, &a), -EINVAL);
    cr_assert_eq(weft_future_remove_done(f, NULL, &a), -EINVAL);
    cr_assert_eq(weft_future_on_done(NULL, cb_tagged, &a), -EINVAL);
    cr_assert_eq(weft_future_remove_done(f, cb_tagged, &a), 0);      /* none */
    /* a, b, a, c: removing a takes both of its registrations, and only them */
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &a), 0);
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &b), 0);
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &a), 0);
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &c), 0);
    cr_assert_eq(weft_future_remove_done(f, cb_tagged, &a), 2);
    cr_assert_eq(weft_future_remove_done(f, cb_tagged, &a), 0);
    cr_assert_eq(weft_future_remove_done(f, cb_record, &a), 0);     /* other fn */
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &a), 0);          /* the tail */
    cr_assert_eq(weft_future_set(f, NULL), 0);
    check_log(&l, (int[]){ 2, -2, 3, -3, 1, -1 }, 6);
    cr_assert_eq(weft_future_remove_done(f, cb_tagged, &b), 0);      /* ran: not counted */
    weft_future_release(f);

    /* added from inside a callback: after the ones already queued, and
     * after the running one has returned */
    atomic_store(&l.n, 0);
    a.then = cb_tagged;
    a.then_arg = &x;
    cr_assert_eq(weft_future_new(&f), 0);
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &a), 0);
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &b), 0);
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &c), 0);
    cr_assert_eq(weft_future_cancel(f), 0);
    check_log(&l, (int[]){ 1, -1, 2, -2, 3, -3, 9, -9 }, 8);

    /* on a done future: runs at once, and one it adds runs right after it
     * returns, before weft_future_on_done does */
    atomic_store(&l.n, 0);
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &a), 0);
    check_log(&l, (int[]){ 1, -1, 9, -9 }, 4);

    /* a callback removes a later one (counted, never runs), and itself
     * (started: not counted) */
    weft_future_release(f);
    atomic_store(&l.n, 0);
    a.then = cb_tagged;
    a.then_arg = &c;
    a.removes = 1;
    b.then = cb_tagged;
    b.then_arg = &b;
    b.removes = 1;
    cr_assert_eq(weft_future_new(&f), 0);
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &a), 0);
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &b), 0);
    cr_assert_eq(weft_future_on_done(f, cb_tagged, &c), 0);
    cr_assert_eq(weft_future_fail(f, -EIO), 0);
    check_log(&l, (int[]){ 1, 1001, -1, 2, 1000, -2 }, 6);
    weft_future_release(f);
}

/*
 * Concurrent adders racing the completion: callbacks added before the
 * completion (ordered by happens-before) run first; each adder's callbacks
 * run in the order it added them, whether added before, during or after the
 * completion; no two callbacks of the future ever overlap; each runs once.
 */
enum { CB_ADDERS = 4, CB_PER = 24, CB_EARLY = 8 };

struct cborder {
    weft_future *f;
    _Atomic int inside, n, go;
    int log[CB_EARLY + CB_ADDERS * CB_PER];
    struct cbarg { struct cborder *o; int who, idx; } args[CB_ADDERS + 1][CB_PER];
};

static void cb_order(weft_future *f, void *arg)
{
    struct cbarg *a = arg;
    struct cborder *o = a->o;
    cr_assert_eq(atomic_exchange(&o->inside, 1), 0, "two callbacks of one future overlap");
    int i = atomic_fetch_add(&o->n, 1);
    o->log[i] = a->who * 1000 + a->idx;
    for (volatile int k = 0; k < 100; k++)
        ;                                    /* widen the window */
    atomic_store(&o->inside, 0);
}

static void cb_adder_body(struct cborder *o, int who)
{
    while (!atomic_load(&o->go))
        ;
    for (int k = 0; k < CB_PER; k++) {
        cr_assert_eq(weft_future_on_done(o->f, cb_order, &o->args[who][k]), 0);
        if (k % 4 == 3)
            weft_yield();
    }
}

/* Run as a task and, unchanged, as a foreign thread's start routine. */
static void *cb_adder_task(void *arg)
{
    struct cbarg *a = arg;
    cb_adder_body(a->o, a->who);
    return NULL;
}

static void *cb_completer(void *arg)
{
    struct cborder *o = arg;
    while (!atomic_load(&o->go))
        ;
    for (int k = 0; k < 3; k++)
        weft_yield();
    cr_assert_eq(weft_future_set(o->f, NULL), 0);
    return NULL;
}

static void *cb_concurrent_main(void *arg)
{
    unsigned rounds = (unsigned)test_scale(400);
    for (unsigned r = 0; r < rounds; r++) {
        struct cborder *o = calloc(1, sizeof(*o));
        cr_assert_eq(weft_future_new(&o->f), 0);
        for (int w = 0; w <= CB_ADDERS; w++)
            for (int k = 0; k < CB_PER; k++)
                o->args[w][k] = (struct cbarg){ o, w, k };
        for (int k = 0; k < CB_EARLY; k++)      /* who 0: before the set */
            cr_assert_eq(weft_future_on_done(o->f, cb_order, &o->args[0][k]), 0);
        weft_task adders[CB_ADDERS], done;
        pthread_t th;
        /* adders 1..3 are tasks, adder 4 a foreign thread; the completer
         * is a task, on another worker or not */
        for (int w = 1; w < CB_ADDERS; w++)
            cr_assert_eq(weft_task_spawn(&adders[w], cb_adder_task, &o->args[w][0], NULL), 0);
        cr_assert_eq(pthread_create(&th, NULL, cb_adder_task, &o->args[CB_ADDERS][0]), 0);
        cr_assert_eq(weft_task_spawn(&done, cb_completer, o, NULL), 0);
        atomic_store(&o->go, 1);
        for (int w = 1; w < CB_ADDERS; w++)
            cr_assert_eq(weft_task_join(adders[w], NULL, WEFT_NEVER), 0);
        pthread_join(th, NULL);
        cr_assert_eq(weft_task_join(done, NULL, WEFT_NEVER), 0);
        /* every call that could have been running callbacks has returned */
        int total = CB_EARLY + CB_ADDERS * CB_PER;
        cr_assert_eq(atomic_load(&o->n), total, "round %u", r);
        int next[CB_ADDERS + 1] = { 0 };
        for (int i = 0; i < total; i++) {
            int who = o->log[i] / 1000, idx = o->log[i] % 1000;
            if (i < CB_EARLY)
                cr_assert_eq(who, 0, "round %u: an early callback ran late", r);
            cr_assert_eq(idx, next[who], "round %u: adder %d's callback %d ran as #%d",
                         r, who, idx, next[who]);
            next[who]++;
        }
        weft_future_release(o->f);
        free(o);
    }
    return NULL;
}

Test(future, done_callbacks_concurrent_order, .timeout = 120)
{
    run_on(6, cb_concurrent_main, NULL);
}

/* remove_done racing the completion: each registration is either removed
 * (counted, never run) or run (not counted) — never both, never neither. */
enum { RM_N = 16 };

struct rmrace {
    weft_future *f;
    _Atomic int ran[RM_N], go;
    int removed[RM_N];
};

static void cb_mark(weft_future *f, void *arg)
{
    _Atomic int *slot = arg;
    atomic_fetch_add(slot, 1);
}

static void *rm_completer(void *arg)
{
    struct rmrace *r = arg;
    while (!atomic_load(&r->go))
        ;
    weft_future_set(r->f, NULL);
    return NULL;
}

static void *rm_main(void *arg)
{
    unsigned rounds = (unsigned)test_scale(2000);
    for (unsigned round = 0; round < rounds; round++) {
        struct rmrace r = { 0 };
        cr_assert_eq(weft_future_new(&r.f), 0);
        for (int i = 0; i < RM_N; i++)
            cr_assert_eq(weft_future_on_done(r.f, cb_mark, &r.ran[i]), 0);
        pthread_t th;
        weft_task t;
        bool foreign = round & 1;
        if (foreign)
            cr_assert_eq(pthread_create(&th, NULL, rm_completer, &r), 0);
        else
            cr_assert_eq(weft_task_spawn(&t, rm_completer, &r, NULL), 0);
        atomic_store(&r.go, 1);
        for (int i = RM_N - 1; i >= 0; i--)   /* from the tail: meet the runner */
            r.removed[i] = weft_future_remove_done(r.f, cb_mark, &r.ran[i]);
        if (foreign)
            pthread_join(th, NULL);
        else
            cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
        for (int i = 0; i < RM_N; i++)
            cr_assert_eq(atomic_load(&r.ran[i]) + r.removed[i], 1,
                         "round %u: callback %d ran %d times, removed %d", round, i,
                         atomic_load(&r.ran[i]), r.removed[i]);
        weft_future_release(r.f);
    }
    return NULL;
}

Test(future, remove_done_races_completion, .timeout = 120)
{
    run_on(4, rm_main, NULL);
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

static void *race_main(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    unsigned iters = (unsigned)test_scale(2000);
    for (unsigned it = 0; it < iters; it++) {
        struct race r = { 0 };
        r.seed = test_xorshift(&seed);
        cr_assert_eq(weft_future_new(&r.f), 0);
        enum { NA = 8 };
        weft_task a[NA], s, c;
        for (int i = 0; i < NA; i++)
            cr_assert_eq(weft_task_spawn(&a[i], race_awaiter, &r, NULL), 0);
        if (test_xorshift(&seed) & 1) {
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
    uint64_t seed = test_seed("future race");
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

/* ---- NULL arguments ------------------------------------------------------ */

Test(future, null_future_is_einval, .timeout = 30)
{
    void *v = NULL;
    cr_assert_eq(weft_future_set(NULL, v), -EINVAL);
    cr_assert_eq(weft_future_fail(NULL, -EIO), -EINVAL);
    cr_assert_eq(weft_future_cancel(NULL), -EINVAL);
    cr_assert_eq(weft_future_await(NULL, &v, WEFT_NEVER), -EINVAL);
    cr_assert_eq(weft_future_await(NULL, &v, 0), -EINVAL);
    cr_assert_eq(weft_future_result(NULL, &v), -EINVAL);
    cr_assert_eq(weft_future_state_get(NULL), WEFT_FUTURE_INVALID);
    cr_assert_eq((int)weft_future_state_get(NULL), -EINVAL);
    cr_assert_eq(weft_future_on_done(NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_remove_done(NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_future_spawn(NULL, NULL, NULL), -EINVAL);
    weft_future_retain(NULL);
    weft_future_release(NULL);
}

/* ---- a cancelled task's await is a cancellation point ------------------- */

static void *cancelled_await_body(void *arg)
{
    weft_future *done = arg, *pending;
    void *v = NULL;
    cr_assert_eq(weft_future_new(&pending), 0);
    cr_assert_eq(weft_task_cancel(weft_task_self()), 0);
    cr_assert_eq(weft_future_await(done, &v, WEFT_NEVER), -ECANCELED);
    cr_assert_eq(weft_future_await(done, &v, weft_deadline_in(1000000000)), -ECANCELED);
    cr_assert_eq(weft_future_await(pending, &v, WEFT_NEVER), -ECANCELED);
    cr_assert_null(v);
    /* the futures are untouched, and a poll or a result still reads them */
    cr_assert_eq(weft_future_state_get(done), WEFT_FUTURE_VALUE);
    cr_assert_eq(weft_future_state_get(pending), WEFT_FUTURE_PENDING);
    cr_assert_eq(weft_future_await(done, &v, 0), 0);
    cr_assert_eq(v, (void *)5);
    cr_assert_eq(weft_future_await(pending, &v, 0), -ETIMEDOUT);
    cr_assert_eq(weft_future_result(done, &v), 0);
    /* completions are not cancellation points */
    cr_assert_eq(weft_future_set(pending, (void *)6), 0);
    cr_assert_eq(weft_future_result(pending, &v), 0);
    cr_assert_eq(v, (void *)6);
    weft_future_release(pending);
    return NULL;
}

Test(future, cancelled_task_await_returns_at_once, .timeout = 30)
{
    weft_future *f;
    cr_assert_eq(weft_future_new(&f), 0);
    cr_assert_eq(weft_future_set(f, (void *)5), 0);
    run_on(2, cancelled_await_body, f);
    weft_future_release(f);
}

/* ---- awaiters cancelled at random while completions race ---------------- */

/*
 * Twelve awaiting tasks and a foreign thread await one future; a setter
 * and a failer race to complete it while a canceller cancels a random
 * subset of the awaiting tasks, marking each before it cancels it. Every
 * unmarked awaiter must see the outcome that won; a marked one sees that
 * outcome or -ECANCELED, nothing else.
 */
#define CA_N 12

struct cancel_race {
    weft_future *f;
    uint64_t seed;
    weft_task t[CA_N];
    _Atomic int marked[CA_N + 1];
    int rc[CA_N + 1];
    void *v[CA_N + 1];
    _Atomic int cancelled_seen;
};

struct ca_arg { struct cancel_race *r; int i; };

static void *ca_awaiter(void *arg)
{
    struct ca_arg *a = arg;
    struct cancel_race *r = a->r;
    uint64_t x = test_seed_for(r->seed, (uint64_t)a->i);
    int64_t dl = x % 3 == 0 ? weft_deadline_in(30LL * 1000000000) : WEFT_NEVER;
    r->v[a->i] = NULL;
    r->rc[a->i] = weft_future_await(r->f, &r->v[a->i], dl);
    return NULL;
}

static void *ca_set(void *arg)
{
    struct cancel_race *r = arg;
    for (unsigned y = r->seed % 3; y; y--)
        weft_yield();
    weft_future_set(r->f, (void *)77);
    return NULL;
}

static void *ca_fail(void *arg)
{
    struct cancel_race *r = arg;
    for (unsigned y = (r->seed >> 2) % 3; y; y--)
        weft_yield();
    weft_future_fail(r->f, -EIO);
    return NULL;
}

static void *ca_canceller(void *arg)
{
    struct cancel_race *r = arg;
    test_cancel_some(r->t, r->marked, CA_N, r->seed, 2);
    return NULL;
}

static void *ca_main(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    unsigned iters = (unsigned)test_scale(600);
    for (unsigned it = 0; it < iters; it++) {
        struct cancel_race r = { .seed = test_xorshift(&seed) };
        struct ca_arg a[CA_N + 1];
        cr_assert_eq(weft_future_new(&r.f), 0);
        for (int i = 0; i <= CA_N; i++)
            a[i] = (struct ca_arg){ &r, i };
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, ca_awaiter, &a[CA_N]), 0);
        for (int i = 0; i < CA_N; i++)
            cr_assert_eq(weft_task_spawn(&r.t[i], ca_awaiter, &a[i], NULL), 0);
        weft_task c, s, fl;
        cr_assert_eq(weft_task_spawn(&c, ca_canceller, &r, NULL), 0);
        cr_assert_eq(weft_task_spawn(r.seed & 8 ? &s : &fl, r.seed & 8 ? ca_set : ca_fail,
                                     &r, NULL), 0);
        cr_assert_eq(weft_task_spawn(r.seed & 8 ? &fl : &s, r.seed & 8 ? ca_fail : ca_set,
                                     &r, NULL), 0);
        cr_assert_eq(weft_task_join(c, NULL, WEFT_NEVER), 0);
        cr_assert_eq(weft_task_join(s, NULL, WEFT_NEVER), 0);
        cr_assert_eq(weft_task_join(fl, NULL, WEFT_NEVER), 0);
        for (int i = 0; i < CA_N; i++)
            cr_assert_eq(weft_task_join(r.t[i], NULL, WEFT_NEVER), 0);
        pthread_join(th, NULL);
        void *won_v = NULL;
        int won = weft_future_result(r.f, &won_v);
        cr_assert(won == 0 || won == -EIO);
        for (int i = 0; i <= CA_N; i++) {
            bool marked = atomic_load(&r.marked[i]);
            if (marked && r.rc[i] == -ECANCELED)
                continue;
            cr_assert_eq(r.rc[i], won, "seed %llu awaiter %d (marked %d): %d, outcome %d",
                         (unsigned long long)r.seed, i, marked, r.rc[i], won);
            if (won == 0)
                cr_assert_eq(r.v[i], (void *)77, "seed %llu awaiter %d",
                             (unsigned long long)r.seed, i);
        }
        weft_future_release(r.f);
    }
    return NULL;
}

Test(future, awaiters_cancelled_while_completions_race, .timeout = 120)
{
    uint64_t seed = test_seed("await/cancel race");
    run_on(6, ca_main, (void *)(uintptr_t)seed);
}
