/*
 * task.c — tasks: spawn, join, detach, cancel, sleep; the run-state
 * protocol (park/wake, task.h); TCB recycling; cancelling every live task
 * at shutdown.
 */
#define _GNU_SOURCE
#include "sched/task.h"
#include "sched/fence.h"
#include "sched/sanitizer.h"
#include "sched/wait.h"
#include "sched/worker.h"
#include "alloc/mem.h"
#include "alloc/objpool.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct weft__task *weft__task_current(void)
{
    struct weft__worker *w = weft__worker_current();
    return w ? w->current : NULL;
}

/* ---- wake (park and yield are in worker.c, beside the switch) ---------- */

void weft__task_wake(struct weft__task *t)
{
    uint32_t s = atomic_load_explicit(&t->state, memory_order_acquire);
    for (;;) {
        uint32_t claim = s & WEFT__TC_MASK;   /* kept: the waiter reads it */
        if ((s & WEFT__TS_MASK) == WEFT__TS_SUSPENDED) {
            /* acq_rel: acquire the saved context (pairs with the release
             * CAS in weft__sched_after_switch), release our writes to
             * whoever runs the task next. */
            if (atomic_compare_exchange_weak_explicit(&t->state, &s,
                                                      claim | WEFT__TS_RUNNABLE,
                                                      memory_order_acq_rel,
                                                      memory_order_acquire)) {
                weft__sched_ready(weft__runtime_get(), t, true);
                return;
            }
        } else if ((s & WEFT__TS_MASK) == WEFT__TS_RUNNING) {
            /* release: pairs with the acquire in weft__task_park or
             * weft__sched_after_switch that consumes the NOTIFIED. */
            if (atomic_compare_exchange_weak_explicit(&t->state, &s,
                                                      claim | WEFT__TS_NOTIFIED,
                                                      memory_order_release,
                                                      memory_order_acquire))
                return;
        } else {
            fprintf(stderr, "weft: task %p woken twice (state %u): a waiter was "
                    "signalled without a claim\n", (void *)t, s);
            abort();
        }
    }
}

void weft__task_claimed(struct weft__task *t, enum weft__claim c)
{
    if (c == WEFT__CLAIM_READY)
        weft__sched_ready(weft__runtime_get(), t, true);
    else
        weft__task_wake(t);
}

#ifndef WEFT_ASAN
_Static_assert(sizeof(struct weft__task) == 64, "a TCB is one cache line (task.h)");
#endif

/* ---- TCBs: type-stable, recycled ---------------------------------------- */

struct weft__task *weft__tcb_alloc(struct weft__runtime *rt, struct weft__worker *w)
{
    struct weft__objpool *pool = w ? &w->tcbs : &rt->foreign_tcbs;
    if (!w)
        weft__spin_lock(&rt->foreign_lock);
    struct weft__task *t = weft__objpool_get(pool);
    if (!w)
        weft__spin_unlock(&rt->foreign_lock);
    return t;
}

void weft__tcb_init(void *obj)
{
    /* A free TCB, as stale-handle checks and the shutdown walk read it. */
    struct weft__task *t = obj;
    atomic_init(&t->id, 0);
    atomic_init(&t->lock.locked, 0);
    atomic_init(&t->cancelled, false);
    t->flags = 0;
}

void weft__tcb_free(struct weft__runtime *rt, struct weft__task *t)
{
    /* Under the lock: a stale-handle reader holding it (weft_task_name)
     * finishes before the id changes. release: a later id check that reads
     * 0 also sees the task gone. */
    weft__spin_lock(&t->lock);
    atomic_store_explicit(&t->id, 0, memory_order_release);
    weft__spin_unlock(&t->lock);
    struct weft__worker *w = weft__worker_current();
    if (w && w->rt == rt) {
        weft__objpool_put(&w->tcbs, t);
        return;
    }
    weft__spin_lock(&rt->foreign_lock);
    weft__objpool_put(&rt->foreign_tcbs, t);
    weft__spin_unlock(&rt->foreign_lock);
}

void weft__tcb_free_all(struct weft__runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__objpool_destroy(&rt->workers[i].tcbs);
    weft__objpool_destroy(&rt->foreign_tcbs);
}

/* ---- cancelling everything at shutdown --------------------------------- */

/*
 * Set @t's cancel flag and end its current wait, if it can be ended now.
 * Under t->lock. Returns true when the caller must still run the heavy
 * fence and then cancel_recheck(@t): where the fence exists (fence.h), a
 * task switching away from a wait held under its primitive's lock marks
 * itself SUSPENDED with a plain store and reads the flag without a
 * barrier, so a cancellation claims only waits already SUSPENDED, and a
 * task it found running, queued or switching must be made to see the
 * flag by the fence (or be found SUSPENDED after it). Without the fence
 * every switch away is a seq_cst CAS, and a claim of a running task's
 * open wait is safe (task.h).
 */
static bool cancel_locked(struct weft__task *t)
{
    /* seq_cst: before the claim CAS below in the total order (task.h):
     * if that CAS finds no open wait, the waiting task's switch-away sees
     * the flag. Waits that publish themselves (t->waiter) read it under
     * t->lock instead. */
    atomic_store_explicit(&t->cancelled, true, memory_order_seq_cst);
    struct weft__waiter *w = t->waiter;
    if (w && w->on_cancel) {
        w->on_cancel(w);     /* the wait ends itself, later (wait.h) */
        return false;
    }
    if (w) {
        weft__waiter_wake(w, -ECANCELED);
        return false;
    }
    enum weft__claim c = weft__fence_asym ? weft__task_claim_parked(t, WEFT__TC_CANCELLED)
                                          : weft__task_claim(t, WEFT__TC_CANCELLED);
    if (c) {                 /* a cancellable wait: it returns -ECANCELED */
        weft__task_claimed(t, c);
        return false;
    }
    /* The calling task sees its own flag (program order); a finished one
     * waits no more. */
    return weft__fence_asym && t != weft__task_current() && t->join != WEFT__JOIN_FINISHED;
}

/* After the heavy fence that followed cancel_locked(@t): claim the wait
 * @t may have parked in meanwhile. Under t->lock. */
static void cancel_recheck(struct weft__task *t)
{
    enum weft__claim c = weft__task_claim_parked(t, WEFT__TC_CANCELLED);
    if (c)
        weft__task_claimed(t, c);
}

struct cancel_walk {
    bool recheck;            /* out (pass 1): some task needs cancel_recheck */
    bool second;             /* pass 2: recheck the flagged tasks */
};

static void cancel_if_live(void *obj, void *arg)
{
    struct weft__task *t = obj;
    struct cancel_walk *cw = arg;
    /* acquire: pairs with spawn's release store of the id, so a live
     * task's fields are initialised when we look at them. */
    uint64_t id = atomic_load_explicit(&t->id, memory_order_acquire);
    if (!id || (id & WEFT__ID_LOW_MASK) == WEFT__ROOT_ID)
        return;
    weft__spin_lock(&t->lock);
    /* acquire, as above: the TCB may have been recycled for a new task
     * since the first look, and its setup must be visible before we read
     * join or write cancelled. */
    if (atomic_load_explicit(&t->id, memory_order_acquire) && t->join != WEFT__JOIN_FINISHED) {
        if (!cw->second)
            cw->recheck |= cancel_locked(t);
        else if (atomic_load_explicit(&t->cancelled, memory_order_relaxed))
            cancel_recheck(t);
    }
    weft__spin_unlock(&t->lock);
}

static void cancel_walk(struct weft__runtime *rt, struct cancel_walk *cw)
{
    /* Every TCB lives in a pool (type-stable), so the pools are the
     * registry of live tasks: no list to maintain on the spawn path. */
    for (unsigned i = 0; i < rt->nworkers; i++)
        weft__objpool_walk(&rt->workers[i].tcbs, cancel_if_live, cw);
    weft__spin_lock(&rt->foreign_lock);
    weft__objpool_walk(&rt->foreign_tcbs, cancel_if_live, cw);
    weft__spin_unlock(&rt->foreign_lock);
}

void weft__runtime_cancel_all(struct weft__runtime *rt)
{
    /* Flag them all, then one heavy fence for the lot (not one per task). */
    struct cancel_walk cw = { .recheck = false, .second = false };
    cancel_walk(rt, &cw);
    if (cw.recheck) {
        weft__fence_heavy();
        cw.second = true;
        cancel_walk(rt, &cw);
    }
}

/* ---- life and death ----------------------------------------------------- */

void weft__task_entry(void *arg, void *fn)
{
    struct weft__task *t = arg;
    WEFT__ASAN_FINISH(NULL);
    weft__sched_after_switch(weft__worker_current());
    /* fn came through the first frame: its field is the context now. */
    t->result = ((weft_task_fn)fn)(t->arg);   /* result replaces arg (a union) */
    weft__sched_switch(weft__worker_current(), WEFT__SW_EXIT);
    __builtin_unreachable();
}

/* Shutdown: the task just counted as finished may have been the last one;
 * tell the root task (runtime.c), which waits for no task to be live. */
static void quiesce_check(struct weft__runtime *rt)
{
    /* The fence pairs with the one in root_main between publishing
     * `quiesce` and counting: either we see its waiter, or it sees our
     * finish. Liveness only (no data passes), so TSan need not model it. */
    weft__storeload(&rt->quiesce_pairing);
    struct weft__waiter *q = atomic_load_explicit(&rt->quiesce, memory_order_acquire);
    if (q && weft__runtime_live(rt) == 0)
        weft__waiter_wake(q, 0);
}

void weft__task_exit_finish(struct weft__task *t)
{
    struct weft__runtime *rt = weft__runtime_get();
    if (t->flags & WEFT__TF_ROOT) {
        /* weft_run collects it; if it could not even start (no stack),
         * nothing else will stop the runtime. */
        if (t->flags & WEFT__TF_NOSTACK) {
            rt->main_error = weft__task_start_error(t);
            atomic_store_explicit(&rt->stop, true, memory_order_release);
            weft__sched_wake_all(rt);
        }
        return;
    }
    struct weft__worker *w = weft__worker_current();
    weft__spin_lock(&t->lock);
    uintptr_t j = t->join;
    /* A waiting joiner is the one collector: others now see DETACHED
     * (-EINVAL), never FINISHED, so no second join collects it too. */
    t->join = j > WEFT__JOIN_FINISHED ? WEFT__JOIN_DETACHED : WEFT__JOIN_FINISHED;
    if (j > WEFT__JOIN_FINISHED && !WEFT__JOIN_IS_HOOK(j))   /* a joiner is waiting */
        weft__waiter_wake((struct weft__waiter *)j, 0);
    weft__spin_unlock(&t->lock);
    if (j == WEFT__JOIN_DETACHED) {
        weft__tcb_free(rt, t);
    } else if (WEFT__JOIN_IS_HOOK(j)) {   /* a collector: hand it the result */
        struct weft__join_hook *hook = (struct weft__join_hook *)(j & ~WEFT__JOIN_HOOK);
        void *result = t->result;
        int error = weft__task_start_error(t);
        weft__tcb_free(rt, t);
        hook->fn(hook, result, error);
    }
    /* release: weft__runtime_live's acquire reads of `finished` then see
     * the spawn counts of every task this one spawned (runtime.c). */
    atomic_store_explicit(&w->stats.finished,
        atomic_load_explicit(&w->stats.finished, memory_order_relaxed) + 1,
        memory_order_release);
    if (atomic_load_explicit(&rt->shutdown, memory_order_relaxed))
        quiesce_check(rt);
}

/* ---- public calls ------------------------------------------------------- */

void weft__task_setup(struct weft__task *t, weft_task_fn fn, void *arg, const char *name,
                      size_t stack_size, uintptr_t join)
{
    t->fn = fn;
    t->arg = arg;
    t->next = NULL;
    t->stack = stack_size | 1;
    t->join = join;
    t->waiter = NULL;
    t->flags = 0;
    atomic_store_explicit(&t->cancelled, false, memory_order_relaxed);
    atomic_store_explicit(&t->state, WEFT__TS_RUNNABLE, memory_order_relaxed);
    if (name) {
        snprintf(weft__objpool_side(t), WEFT__TASK_SIDE, "%s", name);
        t->flags = WEFT__TF_NAMED;
    }
}

int weft_task_spawn(weft_task *out, weft_task_fn fn, void *arg, const weft_task_opts *opts)
{
    if (!fn)
        return -EINVAL;
    size_t stack_size = 0;
    if (opts && opts->stack_size) {
        if (opts->stack_size < WEFT_STACK_MIN || opts->stack_size > WEFT_STACK_MAX)
            return -EINVAL;
        stack_size = weft__stack_round(opts->stack_size);
    }
    struct weft__worker *w = weft__worker_current();
    struct weft__runtime *rt;
    if (w)
        rt = w->rt;
    else if (!(rt = weft__runtime_enter()))
        return -ESRCH;

    struct weft__task *t = weft__tcb_alloc(rt, w);
    if (!t) {
        if (!w)
            weft__runtime_leave();
        return -ENOMEM;
    }
    uint64_t seq = w ? (++w->id_seq << 11) | (w->index + 1)
                     : (atomic_fetch_add_explicit(&rt->foreign_id_seq, 1,
                                                  memory_order_relaxed) + 1) << 11;
    uint64_t id = rt->id_gen | (seq & WEFT__ID_LOW_MASK);
    weft__task_setup(t, fn, arg, opts ? opts->name : NULL, stack_size,
                     out ? 0 : WEFT__JOIN_DETACHED);
    /* release: a handle check that reads this id sees the fields above. */
    atomic_store_explicit(&t->id, id, memory_order_release);

    /* Counted before the task can run, so it is counted before it can
     * finish (release: see weft__runtime_live). */
    if (w)
        atomic_store_explicit(&w->stats.spawned,
            atomic_load_explicit(&w->stats.spawned, memory_order_relaxed) + 1,
            memory_order_release);
    else
        atomic_fetch_add_explicit(&rt->foreign_spawned, 1, memory_order_release);
    if (out)
        *out = (weft_task){ .ptr = t, .id = id };
    weft__sched_ready(rt, t, false);
    if (!w)
        weft__runtime_leave();
    return 0;
}

/* Lock @h's TCB if @h still names it; NULL (unlocked) if it is stale. */
static struct weft__task *lock_handle(weft_task h)
{
    struct weft__task *t = h.ptr;
    /* A handle of another run: its TCB may be freed memory (task.h). */
    struct weft__runtime *rt = weft__runtime_get();
    if (!t || !h.id || !rt || (h.id & ~WEFT__ID_LOW_MASK) != rt->id_gen)
        return NULL;
    if (atomic_load_explicit(&t->id, memory_order_acquire) != h.id)
        return NULL;
    weft__spin_lock(&t->lock);
    if (atomic_load_explicit(&t->id, memory_order_relaxed) != h.id) {
        weft__spin_unlock(&t->lock);
        return NULL;
    }
    return t;
}

static int task_join(weft_task h, void **result, int64_t deadline)
{
    struct weft__task *self = weft__task_current();
    if (h.ptr && h.ptr == self && atomic_load_explicit(&self->id, memory_order_relaxed) == h.id)
        return -EDEADLK;
    struct weft__waiter wt;
    weft__waiter_init(&wt);
    struct weft__task *t = lock_handle(h);
    if (!t)
        return -ESRCH;
    uintptr_t j = t->join;
    if (j == WEFT__JOIN_DETACHED || j > WEFT__JOIN_FINISHED) {
        weft__spin_unlock(&t->lock);
        return -EINVAL;
    }
    if (j == 0) {
        t->join = (uintptr_t)&wt;
        weft__spin_unlock(&t->lock);
        int rc = weft__waiter_wait(&wt, deadline);
        if (rc) {
            /* Timed out or cancelled: withdraw, unless the task finished
             * meanwhile (then it is ours to collect after all). Taking the
             * lock also waits out a finisher still touching `wt`. */
            weft__spin_lock(&t->lock);
            bool withdrawn = t->join == (uintptr_t)&wt;
            if (withdrawn)
                t->join = 0;
            weft__spin_unlock(&t->lock);
            if (withdrawn)
                return rc;
        }
    } else {
        /* FINISHED: ours to collect; mark it so a concurrent join does
         * not collect it as well (it gets -EINVAL, then -ESRCH). */
        t->join = WEFT__JOIN_DETACHED;
        weft__spin_unlock(&t->lock);
    }
    if (result)
        *result = t->result;
    int err = weft__task_start_error(t);
    weft__tcb_free(weft__runtime_get(), t);
    return err;
}

static int task_detach(weft_task h)
{
    struct weft__task *t = lock_handle(h);
    if (!t)
        return -ESRCH;
    uintptr_t j = t->join;
    if (j == 0)
        t->join = WEFT__JOIN_DETACHED;
    weft__spin_unlock(&t->lock);
    if (j == WEFT__JOIN_FINISHED)
        weft__tcb_free(weft__runtime_get(), t);
    else if (j != 0)
        return -EINVAL;
    return 0;
}

static int task_join_hook(weft_task h, struct weft__join_hook *hook, void **result,
                          int *error)
{
    struct weft__task *t = lock_handle(h);
    if (!t)
        return -ESRCH;
    uintptr_t j = t->join;
    if (j == 0) {
        t->join = (uintptr_t)hook | WEFT__JOIN_HOOK;
        weft__spin_unlock(&t->lock);
        return 0;
    }
    if (j != WEFT__JOIN_FINISHED) {       /* detached (the root too), or taken */
        weft__spin_unlock(&t->lock);
        return -EINVAL;
    }
    t->join = WEFT__JOIN_DETACHED;        /* ours to collect, as in task_join */
    weft__spin_unlock(&t->lock);
    *result = t->result;
    *error = weft__task_start_error(t);
    weft__tcb_free(weft__runtime_get(), t);
    return 1;
}

int weft__task_cancel_begin(weft_task h)
{
    struct weft__task *t = lock_handle(h);
    if (!t)
        return -ESRCH;
    bool recheck = cancel_locked(t);
    weft__spin_unlock(&t->lock);
    return recheck;
}

void weft__task_cancel_recheck(weft_task h)
{
    struct weft__task *t = lock_handle(h);
    if (!t)
        return;              /* finished, or recycled: nothing to end */
    cancel_recheck(t);
    weft__spin_unlock(&t->lock);
}

static int task_cancel(weft_task h)
{
    int rc = weft__task_cancel_begin(h);
    if (rc <= 0)
        return rc;
    weft__fence_heavy();
    weft__task_cancel_recheck(h);
    return 0;
}

weft_task weft_task_self(void)
{
    struct weft__task *t = weft__task_current();
    if (!t)
        return (weft_task){ 0 };
    return (weft_task){ .ptr = t, .id = atomic_load_explicit(&t->id, memory_order_relaxed) };
}

bool weft_task_cancelled(void)
{
    struct weft__task *t = weft__task_current();
    return t && atomic_load_explicit(&t->cancelled, memory_order_relaxed);
}

static int task_name(weft_task h, char *buf, size_t len)
{
    struct weft__task *t = lock_handle(h);
    if (!t)
        return -ESRCH;
    int n = snprintf(buf, len, "%s", weft__task_name(t));
    weft__spin_unlock(&t->lock);
    return n;
}

/* A foreign thread holds the runtime (its read lock) across a call on a
 * handle: otherwise weft_run could free the TCB pools under it, e.g. right
 * after the task it joined, the last one, has finished. */
#define WITH_RUNTIME(call)                                                     \
    do {                                                                       \
        if (weft__worker_current())                                            \
            return call;                                                       \
        int rc_ = weft__runtime_hold() ? call : -ESRCH;                        \
        weft__runtime_leave();                                                 \
        return rc_;                                                            \
    } while (0)

int weft_task_join(weft_task h, void **result, int64_t deadline)
{
    WITH_RUNTIME(task_join(h, result, deadline));
}

int weft_task_detach(weft_task h)
{
    WITH_RUNTIME(task_detach(h));
}

int weft__task_join_hook(weft_task h, struct weft__join_hook *hook, void **result,
                         int *error)
{
    WITH_RUNTIME(task_join_hook(h, hook, result, error));
}

int weft_task_cancel(weft_task h)
{
    WITH_RUNTIME(task_cancel(h));
}

int weft_task_name(weft_task h, char *buf, size_t len)
{
    if (!buf || !len)
        return -EINVAL;
    WITH_RUNTIME(task_name(h, buf, len));
}


int weft_sleep_until(int64_t deadline)
{
    if (!weft__task_current()) {
        struct timespec ts = { .tv_sec = deadline / 1000000000,
                               .tv_nsec = deadline % 1000000000 };
        if (deadline < 0)
            return 0;
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
            ;
        return 0;
    }
    struct weft__waiter w;
    weft__waiter_init(&w);
    int rc = weft__waiter_wait(&w, deadline);
    return rc == -ETIMEDOUT ? 0 : rc;
}

int weft_sleep(int64_t ns)
{
    return weft_sleep_until(weft_deadline_in(ns));
}
