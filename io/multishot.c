/* multishot.c — the part every multishot operation shares; see multishot.h. */
#include "io/multishot.h"
#include "sched/worker.h"

void weft__ms_init(struct weft__multishot *ms,
                   void (*complete)(struct weft__io_op *, int, unsigned),
                   void (*cancel)(struct weft__io_op *))
{
    ms->op.complete = complete;
    ms->op.cancel = cancel;
    ms->op.cancel_next = NULL;
    atomic_init(&ms->lock.locked, 0);
    ms->ring = NULL;
    ms->waiter = NULL;
    ms->armed = ms->stopping = ms->cancel_queued = false;
}

void weft__ms_armed(struct weft__multishot *ms, struct weft__ring *r)
{
    r->inflight++;
    weft__spin_lock(&ms->lock);
    ms->ring = r;
    ms->armed = true;
    ms->stopping = false;
    weft__spin_unlock(&ms->lock);
}

void weft__ms_wake_unlock(struct weft__multishot *ms)
{
    struct weft__waiter *w = ms->waiter;
    if (w && weft__waiter_claim(w))
        ms->waiter = NULL;
    else
        w = NULL;
    weft__spin_unlock(&ms->lock);
    if (w)
        weft__waiter_signal(w, 0);
}

void weft__ms_cancel_run(struct weft__io_op *op)
{
    struct weft__multishot *ms = (struct weft__multishot *)op;
    weft__spin_lock(&ms->lock);
    struct weft__ring *r = ms->armed && !ms->stopping ? ms->ring : NULL;
    if (r)
        ms->stopping = true;
    weft__spin_unlock(&ms->lock);
    if (r) {
        struct io_uring_sqe *sqe = weft__ring_sqe(r);
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&ms->op, 0);
        io_uring_sqe_set_data64(sqe, WEFT__UD_IGNORE);
    }
    weft__spin_lock(&ms->lock);
    ms->cancel_queued = false;
    weft__ms_wake_unlock(ms);
}

int weft__ms_wait_locked(struct weft__multishot *ms, int64_t deadline, unsigned flags)
{
    struct weft__waiter w;
    if (flags)
        weft__waiter_init(&w);               /* uncancellable: not a task-word wait */
    else
        weft__waiter_init_cancellable(&w);
    ms->waiter = &w;
    int rc = weft__waiter_wait_unlock(&w, deadline, flags, &ms->lock);
    /* A waker took the waiter out when it claimed it; a wait that ended
     * otherwise takes itself out (multishot.h). */
    if (rc < 0) {
        weft__spin_lock(&ms->lock);
        if (ms->waiter == &w)
            ms->waiter = NULL;
        weft__spin_unlock(&ms->lock);
    }
    return rc;
}

int weft__ms_wait(struct weft__multishot *ms, bool (*ready)(struct weft__multishot *),
                  int64_t deadline, unsigned flags)
{
    weft__spin_lock(&ms->lock);
    if (ready(ms)) {
        weft__spin_unlock(&ms->lock);
        return 1;
    }
    return weft__ms_wait_locked(ms, deadline, flags);
}

static bool quiet(struct weft__multishot *ms)
{
    return !ms->armed && !ms->cancel_queued;
}

void weft__ms_stop(struct weft__multishot *ms)
{
    weft__spin_lock(&ms->lock);
    struct weft__ring *r = ms->armed ? ms->ring : NULL;
    if (r)
        ms->cancel_queued = true;
    weft__spin_unlock(&ms->lock);
    if (r) {
        weft__ring_request_cancel(r, &ms->op);
        struct weft__worker *me = weft__worker_current();
        if (!me || &me->ring != r)
            weft__ring_wake(r, me ? &me->ring : NULL);
    }
    while (weft__ms_wait(ms, quiet, WEFT_NEVER, WEFT__WAIT_NOCANCEL) != 1)
        ;                      /* every wake-up rechecks */
}
