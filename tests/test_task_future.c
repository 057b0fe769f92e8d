/*
 * test_task_future.c — weft_task_future: a future for a plain task's
 * result. Every error; a task converted while running and after it has
 * finished; one that never ran (no stack); join/detach/cancel on a
 * converted handle; cancelling the future cancels the task; a task that
 * converts itself; done-callbacks of such a future (they run in a task);
 * conversion from a foreign thread; and a race on 6 workers where tasks
 * spawned by tasks and by a foreign thread are converted by other tasks and
 * threads while they finish, then collected through weft_as_completed,
 * weft_wait and weft_gather — each result exactly once.
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

static void *twice(void *arg)
{
    return (void *)((intptr_t)arg * 2);
}

/* waits for the event, then returns arg * 2 (or -1 if cancelled) */
struct gate { weft_event *e; intptr_t x; weft_future *done; };

static void *gated(void *arg)
{
    struct gate *g = arg;
    if (weft_event_wait(g->e, WEFT_NEVER) == -ECANCELED)
        return (void *)(intptr_t)-1;
    return (void *)(g->x * 2);
}

/* gated, then says it is done with the event (holding a reference to
 * `done`, so that signalling does not race the waiter freeing it) */
static void *gated_done(void *arg)
{
    struct gate *g = arg;
    void *r = gated(g);
    weft_future *done = g->done;
    weft_future_set(done, NULL);
    weft_future_release(done);
    return r;
}

/* Wait until the runtime has counted @n more finished tasks than @base
 * (weft_stats.finished counts a task once its join state is settled and,
 * for a converted one, its future completed). The counters are read
 * relaxed: this orders nothing else (x86-64, the only target, does not
 * reorder the stores before it), so tests use it only with atomics and the
 * tasks' own locks. */
static void wait_finished(uint64_t base, uint64_t n)
{
    weft_stats st;
    for (;;) {
        cr_assert_eq(weft_stats_get(&st), 0);
        if (st.finished >= base + n)
            return;
        weft_yield();
    }
}

static uint64_t finished_now(void)
{
    weft_stats st;
    cr_assert_eq(weft_stats_get(&st), 0);
    return st.finished;
}

/* ---- errors -------------------------------------------------------------- */

static weft_task g_old_handle;

struct joinarg { weft_task t; void *r; };

static void *join_it(void *arg)
{
    struct joinarg *ja = arg;
    cr_assert_eq(weft_task_join(ja->t, &ja->r, WEFT_NEVER), 0);
    return NULL;
}

/* One worker, so that the deadline-0 joins below (which register and
 * withdraw at once) never overlap another task's join. */
static void *errors_main(void *arg)
{
    weft_future *f, *g;
    weft_task t;
    void *v;

    /* bad arguments and stale handles */
    cr_assert_eq(weft_task_spawn(&t, twice, (void *)1, NULL), 0);
    cr_assert_eq(weft_task_future(t, NULL), -EINVAL);
    cr_assert_eq(weft_task_future((weft_task){ 0 }, &f), -ESRCH);
    cr_assert_eq(weft_task_future((weft_task){ .ptr = t.ptr, .id = t.id + 1 }, &f), -ESRCH);
    cr_assert_eq(weft_task_join(t, &v, WEFT_NEVER), 0);   /* still joinable */
    cr_assert_eq((intptr_t)v, 2);
    cr_assert_eq(weft_task_future(t, &f), -ESRCH);        /* joined: stale */
    g_old_handle = t;

    /* the main task is detached */
    cr_assert_eq(weft_task_future(weft_task_self(), &f), -EINVAL);

    /* a detached task, while it is alive */
    struct gate gt = { .x = 5 };
    cr_assert_eq(weft_event_new(&gt.e), 0);
    cr_assert_eq(weft_future_new(&gt.done), 0);
    weft_future_retain(gt.done);             /* one for the task */
    cr_assert_eq(weft_task_spawn(&t, gated_done, &gt, NULL), 0);
    cr_assert_eq(weft_task_detach(t), 0);
    cr_assert_eq(weft_task_future(t, &f), -EINVAL);

    /* a task with a joiner waiting */
    weft_task u, joiner;
    cr_assert_eq(weft_task_spawn(&u, gated, &gt, NULL), 0);
    struct joinarg ja = { u, NULL };
    cr_assert_eq(weft_task_spawn(&joiner, join_it, &ja, NULL), 0);
    while (weft_task_join(u, NULL, 0) == -ETIMEDOUT)
        weft_yield();                          /* until the joiner waits */
    cr_assert_eq(weft_task_join(u, NULL, 0), -EINVAL);
    cr_assert_eq(weft_task_future(u, &f), -EINVAL);

    /* converted once: a second conversion, a join and a detach all fail
     * while it runs; cancel and name still work */
    weft_task w;
    cr_assert_eq(weft_task_spawn(&w, gated, &gt, &(weft_task_opts){ .name = "conv" }), 0);
    cr_assert_eq(weft_task_future(w, &f), 0);
    cr_assert_eq(weft_task_future(w, &g), -EINVAL);
    cr_assert_eq(weft_task_join(w, NULL, 0), -EINVAL);
    cr_assert_eq(weft_task_join(w, NULL, WEFT_NEVER), -EINVAL);
    cr_assert_eq(weft_task_detach(w), -EINVAL);
    char name[8];
    cr_assert_eq(weft_task_name(w, name, sizeof(name)), 4);
    cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_PENDING);
    cr_assert_eq(weft_future_result(f, &v), -EAGAIN);

    cr_assert_eq(weft_event_set(gt.e), 0);
    cr_assert_eq(weft_future_await(f, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, 10);
    /* the runtime released the task before completing the future: once the
     * future is seen done, the handle is stale */
    cr_assert_eq(weft_task_join(w, NULL, 0), -ESRCH);
    cr_assert_eq(weft_task_detach(w), -ESRCH);
    cr_assert_eq(weft_task_cancel(w), -ESRCH);
    cr_assert_eq(weft_task_name(w, name, sizeof(name)), -ESRCH);
    cr_assert_eq(weft_task_future(w, &g), -ESRCH);
    cr_assert_eq(weft_future_cancel(f), -EALREADY);  /* cancels nothing now */
    weft_future_release(f);
    cr_assert_eq(weft_task_join(joiner, NULL, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)ja.r, 10);
    cr_assert_eq(weft_future_await(gt.done, NULL, WEFT_NEVER), 0);  /* t is done with e */
    weft_future_release(gt.done);
    weft_event_free(gt.e);
    return NULL;
}

Test(task_future, errors, .timeout = 30)
{
    run_on(1, errors_main, NULL);
    /* no runtime: a foreign thread gets -ESRCH, even for an old handle */
    weft_future *f;
    cr_assert_eq(weft_task_future(g_old_handle, &f), -ESRCH);
    cr_assert_eq(weft_task_future((weft_task){ 0 }, &f), -ESRCH);
}

/* ---- a task that has already finished; one that never ran ---------------- */

static void *finished_main(void *arg)
{
    weft_future *f;
    weft_task t;
    void *v;
    uint64_t base = finished_now();
    cr_assert_eq(weft_task_spawn(&t, twice, (void *)21, NULL), 0);
    wait_finished(base, 1);
    cr_assert_eq(weft_task_future(t, &f), 0);
    /* completed by the call itself: no waiting */
    cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_VALUE);
    cr_assert_eq(weft_future_result(f, &v), 0);
    cr_assert_eq((intptr_t)v, 42);
    cr_assert_eq(weft_task_join(t, NULL, 0), -ESRCH);
    cr_assert_eq(weft_future_cancel(f), -EALREADY);
    weft_future_release(f);

    /* no stack for it: the future fails with -ENOMEM, whether converted
     * before or after the failed start */
    weft_task_opts huge = { .stack_size = WEFT_STACK_MAX };   /* valid, unmappable */
    for (int after = 0; after < 2; after++) {
        base = finished_now();
        cr_assert_eq(weft_task_spawn(&t, twice, (void *)1, &huge), 0);
        if (after)
            wait_finished(base, 1);
        cr_assert_eq(weft_task_future(t, &f), 0);
        cr_assert_eq(weft_future_await(f, &v, WEFT_NEVER), -ENOMEM);
        cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_ERROR);
        weft_future_release(f);
    }
    return NULL;
}

Test(task_future, already_finished_and_never_ran, .timeout = 30)
{
    run_on(1, finished_main, NULL);
}

/* ---- cancelling the future cancels the task ------------------------------ */

static _Atomic int g_sleep_rc = 1;

static void *long_sleep(void *arg)
{
    atomic_store(&g_sleep_rc, weft_sleep(60LL * 1000000000));
    return (void *)7;
}

static void *cancel_main(void *arg)
{
    weft_future *f;
    weft_task t;
    void *v;
    uint64_t base = finished_now();
    cr_assert_eq(weft_task_spawn(&t, long_sleep, NULL, NULL), 0);
    cr_assert_eq(weft_task_future(t, &f), 0);
    cr_assert_eq(weft_future_cancel(f), 0);
    cr_assert_eq(weft_future_await(f, &v, WEFT_NEVER), -ECANCELED);
    cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_CANCELLED);
    wait_finished(base, 1);                  /* it acknowledged and returned */
    cr_assert_eq(atomic_load(&g_sleep_rc), -ECANCELED);
    cr_assert_eq(weft_future_state_get(f), WEFT_FUTURE_CANCELLED);  /* 7 dropped */
    cr_assert_eq(weft_task_join(t, NULL, 0), -ESRCH);
    weft_future_release(f);

    /* the reverse: cancelling the task leaves the future to its result */
    atomic_store(&g_sleep_rc, 1);
    cr_assert_eq(weft_task_spawn(&t, long_sleep, NULL, NULL), 0);
    cr_assert_eq(weft_task_future(t, &f), 0);
    cr_assert_eq(weft_task_cancel(t), 0);
    cr_assert_eq(weft_future_await(f, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, 7);
    cr_assert_eq(atomic_load(&g_sleep_rc), -ECANCELED);
    weft_future_release(f);

    /* releasing our reference before the task finishes is fine (the task's
     * own reference keeps the future until it has set it: ASan checks) */
    struct gate gt = { .x = 3 };
    cr_assert_eq(weft_event_new(&gt.e), 0);
    cr_assert_eq(weft_future_new(&gt.done), 0);
    weft_future_retain(gt.done);             /* one for the task */
    cr_assert_eq(weft_task_spawn(&t, gated_done, &gt, NULL), 0);
    cr_assert_eq(weft_task_future(t, &f), 0);
    weft_future_release(f);
    cr_assert_eq(weft_event_set(gt.e), 0);
    cr_assert_eq(weft_future_await(gt.done, NULL, WEFT_NEVER), 0);  /* e unused now */
    weft_future_release(gt.done);
    weft_event_free(gt.e);
    return NULL;
}

Test(task_future, cancel_and_release, .timeout = 30)
{
    run_on(2, cancel_main, NULL);
}

/* ---- a task converts itself; callbacks run in a task --------------------- */

struct selfconv { weft_future *f; weft_event *ready, *checked; };

static void *convert_self(void *arg)
{
    struct selfconv *s = arg;
    cr_assert_eq(weft_task_future(weft_task_self(), &s->f), 0);
    cr_assert_eq(weft_future_await(s->f, NULL, 0), -ETIMEDOUT);   /* not yet */
    weft_event_set(s->ready);
    /* Alive until main has looked at our handle (else it may find us
     * finished and collected: -ESRCH, not -EINVAL). */
    cr_assert_eq(weft_event_wait(s->checked, WEFT_NEVER), 0);
    return (void *)99;
}

struct cbseen { _Atomic int calls; uint64_t self_id, task_id; };

static void cb_where(weft_future *f, void *arg)
{
    struct cbseen *c = arg;
    c->self_id = weft_task_self().id;
    cr_assert_eq(weft_future_result(f, NULL), 0);
    atomic_fetch_add(&c->calls, 1);
}

static void *self_main(void *arg)
{
    struct selfconv s = { 0 };
    cr_assert_eq(weft_event_new(&s.ready), 0);
    cr_assert_eq(weft_event_new(&s.checked), 0);
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, convert_self, &s, NULL), 0);
    cr_assert_eq(weft_event_wait(s.ready, WEFT_NEVER), 0);
    void *v;
    cr_assert_eq(weft_task_join(t, NULL, 0), -EINVAL);   /* the future has it */
    cr_assert_eq(weft_event_set(s.checked), 0);
    cr_assert_eq(weft_future_await(s.f, &v, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)v, 99);
    weft_future_release(s.f);
    weft_event_free(s.ready);
    weft_event_free(s.checked);

    /* a callback added while the task runs: it runs once, in a task (the
     * runtime spawns one for it), not in the finished one */
    unsigned rounds = (unsigned)test_scale(200);
    for (unsigned r = 0; r < rounds; r++) {
        struct gate gt = { .x = 4 };
        struct cbseen c = { 0 };
        weft_future *f;
        cr_assert_eq(weft_event_new(&gt.e), 0);
        cr_assert_eq(weft_task_spawn(&t, gated, &gt, NULL), 0);
        c.task_id = t.id;
        cr_assert_eq(weft_task_future(t, &f), 0);
        cr_assert_eq(weft_future_on_done(f, cb_where, &c), 0);
        cr_assert_eq(weft_event_set(gt.e), 0);
        cr_assert_eq(weft_future_await(f, &v, WEFT_NEVER), 0);
        while (atomic_load(&c.calls) == 0)
            weft_yield();        /* the callbacks' task runs after the wake */
        cr_assert_neq(c.self_id, 0);
        cr_assert_neq(c.self_id, c.task_id);
        weft_future_release(f);
        weft_event_free(gt.e);
        cr_assert_eq(atomic_load(&c.calls), 1);
    }
    return NULL;
}

Test(task_future, self_conversion_and_callbacks, .timeout = 60)
{
    run_on(4, self_main, NULL);
}

/* ---- race: conversions across workers and a foreign thread --------------- */

enum { RN = 48 };

struct round {
    weft_task t[RN];
    weft_future *f[RN];
    _Atomic int spawned_by_thread, converted;
    weft_event *handles_ready;
};

/* finishes at once, after a few yields, or after a short sleep */
static void *work(void *arg)
{
    intptr_t x = (intptr_t)arg;
    switch (x % 3) {
    case 1:
        for (int i = 0; i < (int)(x % 5); i++)
            weft_yield();
        break;
    case 2:
        weft_sleep(1000 * (x % 7));
        break;
    }
    return (void *)(x * 3 + 1);
}

/* a foreign thread spawns the odd-numbered tasks */
static void *spawner_thread(void *arg)
{
    struct round *r = arg;
    for (int i = 1; i < RN; i += 2)
        cr_assert_eq(weft_task_spawn(&r->t[i], work, (void *)(intptr_t)i, NULL), 0);
    weft_event_set(r->handles_ready);
    return NULL;
}

/* converters: a task converts indexes 0 mod 3, a foreign thread 1 mod 3,
 * the main task 2 mod 3 (each while the tasks may be finishing) */
struct conv { struct round *r; int k; };

static void convert_some(struct round *r, int k)
{
    for (int i = k; i < RN; i += 3) {
        cr_assert_eq(weft_task_future(r->t[i], &r->f[i]), 0);
        atomic_fetch_add(&r->converted, 1);
    }
}

/* Run as a task and, unchanged, as a foreign thread's start routine. */
static void *convert_task(void *arg)
{
    struct conv *c = arg;
    convert_some(c->r, c->k);
    return NULL;
}

static void *race_main(void *arg)
{
    unsigned rounds = (unsigned)test_scale(150);
    for (unsigned round = 0; round < rounds; round++) {
        struct round *r = calloc(1, sizeof(*r));
        cr_assert_eq(weft_event_new(&r->handles_ready), 0);
        pthread_t sp, cv;
        cr_assert_eq(pthread_create(&sp, NULL, spawner_thread, r), 0);
        for (int i = 0; i < RN; i += 2)
            cr_assert_eq(weft_task_spawn(&r->t[i], work, (void *)(intptr_t)i, NULL), 0);
        cr_assert_eq(weft_event_wait(r->handles_ready, WEFT_NEVER), 0);
        struct conv c0 = { r, 0 }, c1 = { r, 1 };
        weft_task ct;
        cr_assert_eq(weft_task_spawn(&ct, convert_task, &c0, NULL), 0);
        cr_assert_eq(pthread_create(&cv, NULL, convert_task, &c1), 0);
        convert_some(r, 2);
        cr_assert_eq(weft_task_join(ct, NULL, WEFT_NEVER), 0);
        pthread_join(cv, NULL);
        pthread_join(sp, NULL);
        cr_assert_eq(atomic_load(&r->converted), RN);

        int mode = round % 3;
        if (mode == 0) {               /* as_completed: each index once */
            weft_as_completed *it;
            uint8_t seen[RN] = { 0 };
            cr_assert_eq(weft_as_completed_new(&it, r->f, RN), 0);
            for (int k = 0; k < RN; k++) {
                int i = weft_as_completed_next(it, WEFT_NEVER);
                cr_assert(i >= 0 && i < RN, "round %u: %d", round, i);
                cr_assert_eq(seen[i], 0, "round %u: index %d twice", round, i);
                seen[i] = 1;
                void *v;
                cr_assert_eq(weft_future_result(r->f[i], &v), 0);
                cr_assert_eq((intptr_t)v, i * 3 + 1);
            }
            cr_assert_eq(weft_as_completed_next(it, 0), -EPIPE);
            weft_as_completed_free(it);
        } else if (mode == 1) {        /* wait first, then all */
            int i = weft_wait(r->f, RN, WEFT_WAIT_FIRST, WEFT_NEVER);
            cr_assert(i >= 0 && i < RN);
            cr_assert_neq(weft_future_state_get(r->f[i]), WEFT_FUTURE_PENDING);
            cr_assert_eq(weft_wait(r->f, RN, WEFT_WAIT_ALL, WEFT_NEVER), 0);
        }
        void *vals[RN];                /* gather: every value, once each */
        cr_assert_eq(weft_gather(r->f, RN, vals, WEFT_NEVER), 0);
        for (int i = 0; i < RN; i++) {
            cr_assert_eq((intptr_t)vals[i], i * 3 + 1, "round %u: value %d", round, i);
            cr_assert_eq(weft_task_join(r->t[i], NULL, 0), -ESRCH);
            weft_future_release(r->f[i]);
        }
        weft_event_free(r->handles_ready);
        free(r);
    }
    return NULL;
}

Test(task_future, race_across_workers_and_threads, .timeout = 120)
{
    run_on(6, race_main, NULL);
}

/* ---- a foreign thread converts and awaits -------------------------------- */

struct fconv { weft_task t; void *v; int rc; weft_event *converted, *finished; };

static void *foreign_convert(void *arg)
{
    struct fconv *c = arg;
    weft_future *f;
    c->rc = weft_task_future(c->t, &f);
    weft_event_set(c->converted);
    if (c->rc == 0) {
        c->rc = weft_future_await(f, &c->v, WEFT_NEVER);
        weft_future_release(f);
    }
    weft_event_set(c->finished);
    return NULL;
}

static void *foreign_main(void *arg)
{
    unsigned rounds = (unsigned)test_scale(100);
    for (unsigned r = 0; r < rounds; r++) {
        struct gate gt = { .x = 8 };
        cr_assert_eq(weft_event_new(&gt.e), 0);
        struct fconv c = { 0 };
        cr_assert_eq(weft_event_new(&c.converted), 0);
        cr_assert_eq(weft_event_new(&c.finished), 0);
        cr_assert_eq(weft_task_spawn(&c.t, gated, &gt, NULL), 0);
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, foreign_convert, &c), 0);
        /* half the rounds: let the task finish only once converted; the
         * other half: let it race the conversion */
        if (r & 1)
            cr_assert_eq(weft_event_wait(c.converted, WEFT_NEVER), 0);
        cr_assert_eq(weft_event_set(gt.e), 0);
        /* park, not pthread_join: the thread awaits a task of this runtime */
        cr_assert_eq(weft_event_wait(c.finished, WEFT_NEVER), 0);
        pthread_join(th, NULL);
        cr_assert_eq(c.rc, 0);
        cr_assert_eq((intptr_t)c.v, 16);
        cr_assert_eq(weft_task_join(c.t, NULL, 0), -ESRCH);
        weft_event_free(gt.e);
        weft_event_free(c.converted);
        weft_event_free(c.finished);
    }
    return NULL;
}

Test(task_future, foreign_thread_converts_and_awaits, .timeout = 30)
{
    run_on(2, foreign_main, NULL);
}
