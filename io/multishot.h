/*
 * multishot.h — what every multishot operation shares: one SQE that keeps
 * posting CQEs on the ring it was armed on, consumed by one task that waits
 * for "news" (weft_net_serve's multishot accept in net.c, weft_mrecv in
 * mrecv.c).
 *
 * Rules:
 *  - The op is armed by a task on its current worker's ring (the owner:
 *    SINGLE_ISSUER); its CQEs and its cancellation run on that ring's owner
 *    thread. `ring` remembers which ring that is; the consuming task may
 *    have migrated since.
 *  - Everything below `lock` is guarded by it. The CQE handler updates the
 *    state under the lock and wakes the waiting task, if any, with
 *    weft__ms_wake_unlock() (claim under the lock, signal after it: a
 *    claimed waiter cannot return before its signal).
 *  - Stopping (weft__ms_stop) queues the op on the owner ring's cancel list
 *    (cancel_queued) and waits until the final CQE has been reaped
 *    (!armed) and the owner is done with the request (!cancel_queued), so
 *    the memory can go.
 *  - The waiter is published in `waiter` only while the task waits; a wait
 *    that ends by deadline or cancellation takes itself out under the lock.
 */
#ifndef WEFT_IO_MULTISHOT_H
#define WEFT_IO_MULTISHOT_H

#include <stdbool.h>
#include <stdint.h>

#include "io/ring.h"
#include "sched/spinlock.h"
#include "sched/wait.h"

struct weft__multishot {
    struct weft__io_op op;            /* first: &op is the user_data */
    struct weft__spinlock lock;       /* guards everything below */
    struct weft__ring *ring;          /* the ring of the armed op */
    struct weft__waiter *waiter;      /* the consuming task, while it waits */
    bool armed;                       /* final CQE not reaped yet */
    bool stopping;                    /* an async cancel was submitted */
    bool cancel_queued;               /* on ring's cancel list */
};

/* Set up @ms with the two handlers (the cancel handler is usually
 * weft__ms_cancel_run). */
void weft__ms_init(struct weft__multishot *ms,
                   void (*complete)(struct weft__io_op *, int, unsigned),
                   void (*cancel)(struct weft__io_op *));

/* After the caller submitted the op's SQE on @r (owner thread): record it
 * as armed there. Takes and drops the lock. */
void weft__ms_armed(struct weft__multishot *ms, struct weft__ring *r);

/* With the lock held: claim the waiting task, unlock, then signal it. */
void weft__ms_wake_unlock(struct weft__multishot *ms);

/* Owner thread, from the ring's cancel list: submit an async cancel for
 * the op unless one was submitted already, then wake the waiting task
 * (weft__ms_stop waits for that). The lock is not held while an SQE is
 * taken (a full SQ submits, and a submit may reap this op's CQEs). */
void weft__ms_cancel_run(struct weft__io_op *op);

/* 1 if @ready(ms) holds (checked under the lock); else wait for a wake-up
 * (0: recheck), the deadline or, unless @flags has WEFT__WAIT_NOCANCEL, a
 * cancellation (their -errno). Task or foreign thread. */
int weft__ms_wait(struct weft__multishot *ms, bool (*ready)(struct weft__multishot *),
                  int64_t deadline, unsigned flags);

/* The wait of weft__ms_wait, for a caller that holds the lock and has
 * checked for itself that there is nothing to take: publish the waiter
 * and wait; returns with the lock released. Returns what the waker passed
 * to weft__waiter_signal (0 from weft__ms_wake_unlock), or -ETIMEDOUT /
 * -ECANCELED / -ENOMEM, the waiter then taken out again. A task's
 * cancellable wait (@flags 0) keeps the lock until its switch away has
 * completed (sched/wait.h: every waker claims under it). */
int weft__ms_wait_locked(struct weft__multishot *ms, int64_t deadline, unsigned flags);

/* End the armed op, if any, and wait (uncancellably) until its final CQE
 * has been reaped and the owner is done with the cancel request. */
void weft__ms_stop(struct weft__multishot *ms);

#endif
