/*
 * future.c — futures: one atomic transition out of PENDING (set, fail or
 * cancel, under the future's lock), any number of awaiters on a wait queue
 * (waitq.h), done-callbacks, and task-backed futures.
 */
#include "sync/future.h"
#include "alloc/mem.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

/* Completion order across all futures (for as_completed). */
static _Atomic uint64_t g_future_seq;

int weft_future_new(weft_future **out)
{
    if (!out)
        return -EINVAL;
    weft_future *f = weft__mem_alloc(sizeof(*f));
    if (!f)
        return -ENOMEM;
    /* relaxed: not yet shared; handing @f to another thread publishes it. */
    atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
    atomic_store_explicit(&f->state, WEFT_FUTURE_PENDING, memory_order_relaxed);
    *out = f;
    return 0;
}

void weft_future_retain(weft_future *f)
{
    if (!f)
        return;
    atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed); /* relaxed: the
                                * caller already holds a reference */
}

void weft_future_release(weft_future *f)
{
    if (!f)
        return;
    /* acq_rel: the release orders our uses before the free; the acquire in
     * the last releaser sees every other holder's uses. */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    struct weft__future_cb *cb = f->cbs;
    while (cb) {
        struct weft__future_cb *next = cb->next;
        weft__mem_free(cb, sizeof(*cb));
        cb = next;
    }
    weft__mem_free(f, sizeof(*f));
}

/*
 * Run @f's callbacks until none is left, then give up the runner's role.
 * The caller is the runner (set `cb_running` under the lock) and holds a
 * reference. Each callback is popped under the lock, so once popped it can
 * no longer be removed; it runs outside the lock, so it may call anything
 * on @f (a callback it adds is appended and runs after the ones queued).
 */
static void run_callbacks(weft_future *f)
{
    for (;;) {
        weft__spin_lock(&f->lock);
        struct weft__future_cb *cb = f->cbs;
        if (!cb) {
            f->cb_running = false;
            weft__spin_unlock(&f->lock);
            return;
        }
        if (!(f->cbs = cb->next))
            f->cbs_tail = NULL;
        weft__spin_unlock(&f->lock);
        cb->fn(f, cb->arg);
        weft__mem_free(cb, sizeof(*cb));
    }
}

/* The body of the task that runs a task-backed future's callbacks. */
static void *callback_task(void *arg)
{
    weft_future *f = arg;
    run_callbacks(f);
    weft_future_release(f);
    return NULL;
}

/*
 * The one transition out of PENDING. With @defer (the caller is the
 * scheduler's after-switch code, not a task: see weft__task_join_hook), the
 * callbacks run in a task spawned for them instead of on this thread.
 */
static int complete(weft_future *f, int state, void *value, int error, bool defer)
{
    if (!f)
        return -EINVAL;
    struct weft__wakelist wake = { 0 };
    weft__spin_lock(&f->lock);
    /* relaxed: under f->lock, which every state change holds. */
    if (atomic_load_explicit(&f->state, memory_order_relaxed) != WEFT_FUTURE_PENDING) {
        weft__spin_unlock(&f->lock);
        return -EALREADY;
    }
    f->value = value;
    f->error = error;
    /* relaxed: the number only has to be unique and ordered like the
     * transitions; this RMW is totally ordered with every other completion's
     * (one atomic), and `state`'s release below publishes the result. Taken
     * under f->lock, so a reader that sees @f PENDING under the lock knows
     * it will get a larger number (future.h, gather.c). */
    f->seq = atomic_fetch_add_explicit(&g_future_seq, 1, memory_order_relaxed) + 1;
    /* release: pairs with the acquire loads of `state` in the lock-free
     * readers (await's fast path, weft__future_outcome's callers). */
    atomic_store_explicit(&f->state, state, memory_order_release);
    weft__waitq_claim_all(&f->waiters, &wake);
    bool run = f->cbs != NULL;
    if (run) {
        f->cb_running = true;       /* we are the runner */
        weft_future_retain(f);      /* alive through the callbacks, even if
                                     * one of them drops the last reference */
    }
    weft_task task = f->task;
    weft__spin_unlock(&f->lock);

    weft__wakelist_signal(&wake, 0);
    if (state == WEFT_FUTURE_CANCELLED && task.ptr)
        weft_task_cancel(task);   /* -ESRCH if it already finished: fine */
    if (run) {
        /* Deferred: the spawned task takes over the runner's role and our
         * reference. If it cannot be had (no memory), run them here. */
        if (defer && weft_task_spawn(NULL, callback_task, f, NULL) == 0)
            return 0;
        run_callbacks(f);
        weft_future_release(f);
    }
    return 0;
}

int weft_future_set(weft_future *f, void *value)
{
    return complete(f, WEFT_FUTURE_VALUE, value, 0, false);
}

int weft_future_fail(weft_future *f, int error)
{
    if (error >= 0)
        return -EINVAL;
    return complete(f, WEFT_FUTURE_ERROR, NULL, error, false);   /* NULL @f: -EINVAL */
}

int weft_future_cancel(weft_future *f)
{
    return complete(f, WEFT_FUTURE_CANCELLED, NULL, -ECANCELED, false);
}

_Static_assert(WEFT_FUTURE_INVALID == -EINVAL, "weft.h spells -EINVAL out");

weft_future_state weft_future_state_get(const weft_future *f)
{
    if (!f)
        return WEFT_FUTURE_INVALID;
    /* acquire: pairs with complete()'s release store. */
    return (weft_future_state)atomic_load_explicit(&f->state, memory_order_acquire);
}

int weft__future_outcome(const weft_future *f, void **value)
{
    switch (atomic_load_explicit(&f->state, memory_order_acquire)) { /* pairs with complete() */
    case WEFT_FUTURE_VALUE:
        if (value)
            *value = f->value;
        return 0;
    case WEFT_FUTURE_ERROR:
    case WEFT_FUTURE_CANCELLED:
        return f->error;
    default:
        return -EAGAIN;
    }
}

int weft_future_result(const weft_future *f, void **value)
{
    if (!f)
        return -EINVAL;
    return weft__future_outcome(f, value);
}

bool weft__future_link(weft_future *f, struct weft__wnode *n)
{
    weft__spin_lock(&f->lock);
    /* relaxed: under f->lock. */
    bool pending = atomic_load_explicit(&f->state, memory_order_relaxed) == WEFT_FUTURE_PENDING;
    if (pending)
        weft__waitq_push(&f->waiters, n);
    weft__spin_unlock(&f->lock);
    return pending;
}

void weft__future_unlink(weft_future *f, struct weft__wnode *n)
{
    weft__spin_lock(&f->lock);
    weft__waitq_remove(&f->waiters, n);
    weft__spin_unlock(&f->lock);
}

int weft__future_await(weft_future *f, void **value, int64_t deadline, unsigned flags)
{
    if (!f)
        return -EINVAL;
    /* A cancellable await is a cancellation point, done or not (waitq.h);
     * the NOCANCEL ones (groups' and generators' exits) are not. */
    if (!flags && weft__cancel_point(deadline))
        return -ECANCELED;
    /* acquire: pairs with complete()'s release store (the fast path). */
    if (atomic_load_explicit(&f->state, memory_order_acquire) == WEFT_FUTURE_PENDING) {
        struct weft__waiter w;
        struct weft__wnode n;
        weft__spin_lock(&f->lock);
        /* relaxed: under f->lock. */
        if (atomic_load_explicit(&f->state, memory_order_relaxed) == WEFT_FUTURE_PENDING) {
            if (deadline != WEFT_NEVER && deadline <= weft_now()) {
                weft__spin_unlock(&f->lock);   /* a poll, or too late: no wait */
                return -ETIMEDOUT;
            }
            /* Set up only now that the wait is certain (a cancellable one
             * must be waited on, sched/wait.h). */
            if (flags)
                weft__waiter_init(&w);
            else
                weft__waiter_init_cancellable(&w);
            weft__wnode_init(&n, &w, NULL, 0, NULL);
            weft__waitq_push(&f->waiters, &n);
            int rc = weft__waitq_block(&f->lock, &f->waiters, &n, deadline, flags);
            if (rc)
                return rc;   /* deadline or cancellation: wakers only send 0 */
        } else {
            weft__spin_unlock(&f->lock);
        }
    }
    return weft__future_outcome(f, value);
}

int weft_future_await(weft_future *f, void **value, int64_t deadline)
{
    return weft__future_await(f, value, deadline, 0);
}

int weft_future_on_done(weft_future *f, weft_future_done_fn fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    struct weft__future_cb *cb = NULL;
    /* acquire: pairs with complete()'s release store. Only a hint here
     * (allocate outside the spinlock when the callback will be queued);
     * the decision is taken under the lock below. */
    bool need = atomic_load_explicit(&f->state, memory_order_acquire) == WEFT_FUTURE_PENDING;
    for (;;) {
        if (need && !cb) {
            if (!(cb = weft__mem_alloc(sizeof(*cb))))
                return -ENOMEM;
            cb->fn = fn;
            cb->arg = arg;
        }
        weft__spin_lock(&f->lock);
        /* relaxed: under f->lock, which every state change holds. */
        need = atomic_load_explicit(&f->state, memory_order_relaxed) == WEFT_FUTURE_PENDING ||
               f->cb_running;
        if (!need)
            break;                   /* done, and nobody runs callbacks: we do */
        if (cb) {                    /* pending, or a runner will get to it */
            if (f->cbs_tail)
                f->cbs_tail->next = cb;
            else
                f->cbs = cb;
            f->cbs_tail = cb;
            weft__spin_unlock(&f->lock);
            return 0;
        }
        weft__spin_unlock(&f->lock);
    }
    f->cb_running = true;            /* become the runner (cbs is empty) */
    weft_future_retain(f);           /* @fn may drop the caller's reference */
    weft__spin_unlock(&f->lock);
    weft__mem_free(cb, sizeof(*cb)); /* allocated on a stale hint; NULL is fine */
    fn(f, arg);
    run_callbacks(f);                /* any added meanwhile, in order */
    weft_future_release(f);
    return 0;
}

int weft_future_remove_done(weft_future *f, weft_future_done_fn fn, void *arg)
{
    if (!f || !fn)
        return -EINVAL;
    struct weft__future_cb *gone = NULL, *kept = NULL, **p = &f->cbs;
    int n = 0;
    weft__spin_lock(&f->lock);
    while (*p) {
        struct weft__future_cb *cb = *p;
        if (cb->fn == fn && cb->arg == arg) {
            *p = cb->next;
            cb->next = gone;
            gone = cb;
            n++;
        } else {
            kept = cb;
            p = &cb->next;
        }
    }
    f->cbs_tail = kept;
    weft__spin_unlock(&f->lock);
    while (gone) {
        struct weft__future_cb *next = gone->next;
        weft__mem_free(gone, sizeof(*gone));
        gone = next;
    }
    return n;
}

/* ---- task-backed futures ------------------------------------------------ */

struct spawn_rec {
    weft_future *f;
    weft_task_fn fn;
    void *arg;
};

static void *spawned_main(void *p)
{
    struct spawn_rec r = *(struct spawn_rec *)p;
    weft__mem_free(p, sizeof(struct spawn_rec));
    void *v = r.fn(r.arg);
    weft_future_set(r.f, v);     /* -EALREADY if cancelled meanwhile */
    weft_future_release(r.f);
    return NULL;
}

int weft_future_spawn(weft_future **out, weft_task_fn fn, void *arg)
{
    if (!out || !fn)
        return -EINVAL;
    weft_future *f;
    int rc = weft_future_new(&f);
    if (rc)
        return rc;
    struct spawn_rec *r = weft__mem_alloc(sizeof(*r));
    if (!r) {
        weft_future_release(f);
        return -ENOMEM;
    }
    *r = (struct spawn_rec){ f, fn, arg };
    atomic_store_explicit(&f->refs, 2, memory_order_relaxed); /* caller + task;
                                * published by the spawn below */
    /* Spawn joinable to learn the handle before the task can finish, then
     * detach; the handle goes in under the lock so cancel sees it whole. */
    weft_task t;
    rc = weft_task_spawn(&t, spawned_main, r, NULL);
    if (rc) {
        weft__mem_free(r, sizeof(*r));
        /* relaxed: the task never started, so nobody else holds @f. */
        atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
        weft_future_release(f);
        return rc;
    }
    weft__spin_lock(&f->lock);
    f->task = t;
    /* relaxed: under f->lock. */
    bool cancelled = atomic_load_explicit(&f->state, memory_order_relaxed) ==
                     WEFT_FUTURE_CANCELLED;
    weft__spin_unlock(&f->lock);
    if (cancelled)
        weft_task_cancel(t);
    weft_task_detach(t);
    *out = f;
    return 0;
}

/* ---- futures for spawned tasks ------------------------------------------ */

_Static_assert(_Alignof(struct weft__join_hook) > WEFT__JOIN_HOOK,
               "a join hook's address must leave the tag bit free");

/* The task behind @hook finished (scheduler context, task.h). */
static void task_finished(struct weft__join_hook *hook, void *result, int error)
{
    weft_future *f = (weft_future *)((char *)hook - offsetof(weft_future, hook));
    if (error)
        complete(f, WEFT_FUTURE_ERROR, NULL, error, true);
    else
        complete(f, WEFT_FUTURE_VALUE, result, 0, true);   /* -EALREADY if
                                * cancelled or completed by hand: dropped */
    weft_future_release(f);      /* the task's reference */
}

int weft_task_future(weft_task t, weft_future **out)
{
    if (!out)
        return -EINVAL;
    weft_future *f;
    int rc = weft_future_new(&f);
    if (rc)
        return rc;
    /* Not shared yet: plain stores. Installing the hook (under the task's
     * lock) publishes them to the worker that finishes the task. */
    f->task = t;
    f->hook.fn = task_finished;
    atomic_store_explicit(&f->refs, 2, memory_order_relaxed); /* caller + task;
                                * relaxed: published by the install below */
    void *result = NULL;
    int error = 0;
    rc = weft__task_join_hook(t, &f->hook, &result, &error);
    if (rc < 0) {
        /* relaxed: the hook was not installed, so nobody else holds @f. */
        atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
        weft_future_release(f);
        return rc;
    }
    if (rc == 1) {               /* already finished: complete it here */
        f->task = (weft_task){ 0 };
        if (error)
            weft_future_fail(f, error);
        else
            weft_future_set(f, result);
        weft_future_release(f);  /* the reference the task would have held */
    }
    *out = f;
    return 0;
}
