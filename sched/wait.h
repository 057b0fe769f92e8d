/*
 * wait.h — the one way anything in weft blocks: a waiter.
 *
 * A waiter is a small record, usually on the waiting task's stack, that a
 * primitive (a join, a future, a channel, a timer) links somewhere so that
 * whoever completes the wait can find it. Three parties may race to end a
 * wait: the completion, the deadline's timer, and a cancellation. Exactly
 * one wins, by claiming the waiter (one CAS on `claimed`); only the winner
 * sets the result and wakes the waiter. So a waiting task is woken exactly
 * once per wait, and a value handed to a waiter is handed only to a waiter
 * that will return it (a channel that fails to claim a waiter moves on to
 * the next one: no item is lost when a receiver times out at that moment).
 *
 * The waiting side works for tasks and for foreign threads alike: a task
 * parks (its worker runs other tasks), a foreign thread spins briefly and
 * then sleeps on a futex.
 *
 * Lifetime rule: after a claim, the winner may touch the waiter only until
 * weft__waiter_signal() returns; the waiter's memory may be gone after. A
 * primitive that keeps waiters in a list must unlink a waiter whose wait
 * ended another way (timeout, cancel) under the primitive's own lock, and
 * must claim under that lock, so the waiter never returns while a waker
 * still holds a pointer to it.
 */
#ifndef WEFT_SCHED_WAIT_H
#define WEFT_SCHED_WAIT_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sched/task.h"
#include "sched/timer.h"
#include "sched/worker.h"

struct weft__waiter {
    _Atomic int claimed;           /* 0 until one party wins the right to wake
                                    * (unless in_task: then the task's word) */
    bool in_task;                  /* the claim lives in task->state (task.h):
                                    * set up by weft__waiter_init_cancellable */
    enum weft__claim claimed_how;  /* what the winning claim left the signal to
                                    * do: wake the task, or (an in_task claim of
                                    * a suspended task) only queue it */
    int result;                    /* written by the winner before the wake */
    struct weft__task *task;       /* the waiting task; NULL: a foreign thread */
    _Atomic uint32_t signalled;    /* foreign threads sleep on this futex word */
    struct weft__timer timer;      /* the deadline, when there is one */
    void *data;                    /* for the primitive's own use */
    /* NULL, or what a cancellation does instead of claiming the waiter
     * (called under the task's lock, from any thread). For waits that must
     * not end before an outside party is done with the waiter's memory
     * (an io_uring operation in flight, io/op.h): the hook asks that party
     * to finish early, and the party then claims the waiter itself. */
    void (*on_cancel)(struct weft__waiter *w);
    struct weft__waiter *next, *prev; /* for the primitive's wait list */
};

/* Prepare @w for a wait by the calling task or thread. Any thread. */
void weft__waiter_init(struct weft__waiter *w);

/*
 * Prepare @w for a cancellable wait (flags 0) that the caller starts right
 * away: every such init must be followed by weft__waiter_wait(@w, ...),
 * whatever happens in between. In a task the claim then lives in the
 * task's state word (task.h), so the wait needs no publishing for
 * weft_task_cancel, which is what makes channel waits cheap. In a foreign
 * thread it is weft__waiter_init. For waits that may be abandoned before
 * they start, that are uncancellable, that use on_cancel, or whose waker
 * may keep a pointer to the waiter after the wait (a reference-counted
 * waiter), use weft__waiter_init. Any thread.
 */
void weft__waiter_init_cancellable(struct weft__waiter *w);

/* Try to win the right to end @w's wait. acq_rel: the winner sees all the
 * waiter's setup (acquire), and losers see that someone won. Any thread. */
static inline bool weft__waiter_claim(struct weft__waiter *w)
{
    if (w->in_task) {
        enum weft__claim c = weft__task_claim(w->task, WEFT__TC_TAKEN);
        if (c == WEFT__CLAIM_LOST)
            return false;
        w->claimed_how = c;                          /* the winner's alone */
        return true;
    }
    int expect = 0;
    return atomic_compare_exchange_strong_explicit(&w->claimed, &expect, 1,
            memory_order_acq_rel, memory_order_acquire);
}

/* After a successful claim: store @result and wake the waiter. Any thread. */
void weft__waiter_signal_slow(struct weft__waiter *w, int result);

static inline void weft__waiter_signal(struct weft__waiter *w, int result)
{
    /* The hand-off's common case, inline: an in-task claim that made a
     * suspended task RUNNABLE, signalled on a worker whose LIFO slot is
     * free: the task runs next here. Read what we need before the slot's
     * release store publishes the task (and `result`): it may run and its
     * waiter vanish at once. */
    struct weft__task *t = w->task;
    struct weft__worker *me;
    if (t && w->claimed_how == WEFT__CLAIM_READY && (me = weft__worker_current())) {
        w->result = result;
        if (weft__sched_lifo_put(me, t))
            return;
        weft__task_claimed(t, WEFT__CLAIM_READY);
        return;
    }
    weft__waiter_signal_slow(w, result);
}

/* Claim and signal in one; false if another party had already claimed. */
static inline bool weft__waiter_wake(struct weft__waiter *w, int result)
{
    if (!weft__waiter_claim(w))
        return false;
    weft__waiter_signal(w, result);
    return true;
}

/*
 * Block until @w is signalled, or @deadline passes (result -ETIMEDOUT), or
 * the calling task is cancelled (result -ECANCELED; a task already
 * cancelled does not wait at all). Returns the result the winner stored.
 * The caller must have made @w findable by its wakers before calling.
 * Called by the thread that initialised @w.
 */
int weft__waiter_wait(struct weft__waiter *w, int64_t deadline);

/* Flags for weft__waiter_wait_flags. */
#define WEFT__WAIT_NOCANCEL 1u  /* not ended by cancellation: the wait is not
                                 * published to weft_task_cancel and the
                                 * sticky flag is ignored. For waits that must
                                 * finish even in a cancelled task (a task
                                 * group's exit waiting for its children to
                                 * acknowledge, a condition variable's
                                 * re-lock). Deadlines still apply. */

int weft__waiter_wait_slow(struct weft__waiter *w, int64_t deadline, unsigned flags,
                           struct weft__spinlock *lock);

/*
 * weft__waiter_wait with @flags (WEFT__WAIT_*), called with @lock held
 * (NULL: none): the lock under which every waker of @w claims it. Returns
 * with it released. A task's cancellable wait keeps it until the switch
 * away has completed (weft__task_park_unlock: no waker then sees the task
 * RUNNING, and the switch needs no locked instruction); any other wait
 * releases it before waiting.
 */
static inline int weft__waiter_wait_unlock(struct weft__waiter *w, int64_t deadline,
                                           unsigned flags, struct weft__spinlock *lock)
{
    /* The channel's common case, inline: a task's cancellable wait with no
     * deadline, not cancelled (relaxed: a hint, as in the slow path; a
     * cancel it misses is caught by the switch away, task.h). */
    struct weft__task *t = w->task;
    if (w->in_task && deadline == WEFT_NEVER &&
        !atomic_load_explicit(&t->cancelled, memory_order_relaxed)) {
        if (lock)
            weft__task_park_unlock(lock);
        else
            weft__task_park();
        /* relaxed: our own word; the wake that resumed us was ordered
         * after the claim that set these bits. */
        uint32_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
        return (s & WEFT__TC_MASK) == WEFT__TC_CANCELLED ? -ECANCELED : w->result;
    }
    return weft__waiter_wait_slow(w, deadline, flags, lock);
}

/* weft__waiter_wait with @flags (WEFT__WAIT_*); 0 is weft__waiter_wait. */
static inline int weft__waiter_wait_flags(struct weft__waiter *w, int64_t deadline,
                                          unsigned flags)
{
    return weft__waiter_wait_unlock(w, deadline, flags, NULL);
}

#endif
