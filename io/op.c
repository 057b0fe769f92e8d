/* op.c — see op.h. */
#define _GNU_SOURCE
#include "io/op.h"
#include "sched/task.h"
#include "sched/worker.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>

#define REQ_OF_OP(o) ((struct weft__io_req *)(o))
#define REQ_OF_W(wp) ((struct weft__io_req *)((char *)(wp) - offsetof(struct weft__io_req, w)))

/* Owner thread, for the op's CQE. */
static void req_complete(struct weft__io_op *op, int res, unsigned flags)
{
    struct weft__io_req *q = REQ_OF_OP(op);
    q->res = res;
    q->cflags = flags;
    /* acq_rel: releases res to whoever wakes the task (us, or the cancel
     * run that sees DONE); acquires that run's CONSUMED. */
    unsigned old = atomic_fetch_or_explicit(&q->st, WEFT__IO_DONE, memory_order_acq_rel);
    if (!(old & WEFT__IO_QUEUED) || (old & WEFT__IO_CONSUMED))
        weft__waiter_wake(&q->w, 0);
}

/* Owner thread: submit the cancel for the op on the ring it is queued on. */
static void queue_cancel(struct weft__io_req *q)
{
    struct io_uring_sqe *sqe = weft__ring_sqe(q->ring);
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&q->op, 0);
    io_uring_sqe_set_data64(sqe, WEFT__UD_IGNORE);
}

/* Owner thread, from the ring's cancel list. */
static void req_cancel_run(struct weft__io_op *op)
{
    struct weft__io_req *q = REQ_OF_OP(op);
    /* acq_rel: pairs with req_complete's fetch_or (its res). */
    unsigned old = atomic_fetch_or_explicit(&q->st, WEFT__IO_CONSUMED, memory_order_acq_rel);
    if (old & WEFT__IO_DONE)
        weft__waiter_wake(&q->w, 0);   /* the CQE came first and left it to us */
    else
        queue_cancel(q);               /* its CQE (-ECANCELED) wakes the task */
}

/* Any thread, under the task's lock (sched/task.c cancel_locked). */
static void req_on_cancel(struct weft__waiter *w)
{
    struct weft__io_req *q = REQ_OF_W(w);
    /* acq_rel: pairs with the completion's fetch_or of DONE; exactly one of
     * us sees the other's bit. */
    unsigned old = atomic_fetch_or_explicit(&q->st, WEFT__IO_QUEUED, memory_order_acq_rel);
    if (old & (WEFT__IO_DONE | WEFT__IO_QUEUED))
        return;              /* finished already, or already asked */
    weft__ring_request_cancel(q->ring, &q->op);
    /* The owner runs its cancel list on every pass of its loop and before
     * it sleeps; wake it unless we are it (then it gets there anyway). */
    struct weft__worker *me = weft__worker_current();
    if (!me || &me->ring != q->ring)
        weft__ring_wake(q->ring, me ? &me->ring : NULL);
}

int weft__io_begin(struct weft__io_req *q, int64_t deadline)
{
    struct weft__worker *me = weft__worker_current();
    struct weft__task *t = me ? me->current : NULL;
    if (!t)
        return 1;
    /* relaxed: a hint; the locked re-check in the wait is what counts. */
    if (atomic_load_explicit(&t->cancelled, memory_order_relaxed))
        return -ECANCELED;
    q->ring = &me->ring;
    q->deadline = deadline;
    /* relaxed: the op is not yet visible to any other thread. */
    atomic_store_explicit(&q->st, 0, memory_order_relaxed);
    q->res = 0;
    q->cflags = 0;
    q->op.complete = req_complete;
    q->op.cancel = req_cancel_run;
    q->op.cancel_next = NULL;
    if (deadline != WEFT_NEVER)
        weft__ring_reserve(q->ring, 2);   /* op + linked timeout, adjacent */
    q->sqe = weft__ring_sqe(q->ring);
    return 0;
}

int weft__io_finish(struct weft__io_req *q)
{
    struct weft__ring *r = q->ring;
    io_uring_sqe_set_data(q->sqe, &q->op);
    if (q->deadline != WEFT_NEVER) {
        int64_t d = q->deadline < 0 ? 0 : q->deadline;
        q->ts.tv_sec = d / 1000000000;
        q->ts.tv_nsec = d % 1000000000;
        q->sqe->flags |= IOSQE_IO_LINK;
        struct io_uring_sqe *ts = weft__ring_sqe(r);   /* reserved: no submit */
        io_uring_prep_link_timeout(ts, &q->ts, IORING_TIMEOUT_ABS);
        io_uring_sqe_set_data64(ts, WEFT__UD_IGNORE);
    }
    r->inflight++;

    weft__waiter_init(&q->w);
    q->w.on_cancel = req_on_cancel;
    struct weft__task *t = q->w.task;
    /* Publish the wait for weft_task_cancel (task->lock orders us against
     * cancel_locked, which sets the flag, then calls the hook, under it). */
    weft__spin_lock(&t->lock);
    t->waiter = &q->w;
    /* relaxed: under t->lock, which weft_task_cancel holds. */
    bool cancelled = atomic_load_explicit(&t->cancelled, memory_order_relaxed);
    weft__spin_unlock(&t->lock);
    if (cancelled) {
        /* Cancelled between begin and here, before the hook could see us:
         * we are on the owner thread, so cancel directly. */
        unsigned old = atomic_fetch_or_explicit(&q->st, WEFT__IO_QUEUED | WEFT__IO_CONSUMED,
                                                memory_order_acq_rel);
        if (!(old & (WEFT__IO_QUEUED | WEFT__IO_DONE)))
            queue_cancel(q);
    }

    weft__task_park();          /* until the CQE (see op.h) */

    weft__spin_lock(&t->lock);
    t->waiter = NULL;
    weft__spin_unlock(&t->lock);

    int res = q->res;
    if (res == -ECANCELED || res == -EINTR) {
        /* relaxed: the op is complete; its bits were set before the
         * CQE that woke us (program order on the owner thread). */
        unsigned st = atomic_load_explicit(&q->st, memory_order_relaxed);
        if (st & WEFT__IO_QUEUED)
            res = -ECANCELED;
        else if (q->deadline != WEFT_NEVER && (res == -ECANCELED || weft_now() >= q->deadline))
            res = -ETIMEDOUT;
    }
    return res;
}

bool weft__task_current_is_task(void)
{
    return weft__task_current() != NULL;
}

int weft__io_foreign_ready(int fd, short events, int64_t deadline)
{
    if (deadline == WEFT_NEVER)
        return 0;
    for (;;) {
        int64_t left = deadline - weft_now();
        int ms = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
        if (left > (int64_t)1000 * 1000000000)
            ms = 1000 * 1000;
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n == 0 && weft_now() >= deadline)
            return -ETIMEDOUT;
    }
}
