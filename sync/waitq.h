/*
 * waitq.h — the wait queue every primitive in sync/ keeps its waiters in.
 *
 * A queue entry (struct weft__wnode) lives on the waiting task's (or
 * foreign thread's) stack and points at a struct weft__waiter. Usually one
 * entry per waiter; a select, or a wait for the first of many futures,
 * links one entry per case into several queues, all pointing at the same
 * waiter, so that exactly one of those queues' wakers can win it.
 *
 * Rules (they implement the lifetime rule of sched/wait.h):
 *  1. A queue is guarded by its primitive's lock. Entries are linked,
 *     unlinked and *claimed* only under that lock.
 *  2. A waker unlinks every entry it looks at, whether or not its claim
 *     succeeds (a failed claim means the wait already ended by deadline,
 *     cancellation or another queue of the same select).
 *  3. After a successful claim the waker records which entry won
 *     (*fired = idx), may copy data through `elem`, and signals the waiter,
 *     normally after dropping the lock; it touches neither the entry nor the
 *     waiter after weft__waiter_signal().
 *  4. A waiter whose wait returned anything but a waker's result (its
 *     deadline, a cancellation) takes the lock and unlinks its entries that
 *     are still `linked` before its frame goes. Since the waker unlinks what
 *     it claims, a waiter that got a waker's result may skip that step for
 *     the entry that fired (but not for a select's other entries).
 */
#ifndef WEFT_SYNC_WAITQ_H
#define WEFT_SYNC_WAITQ_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>

#include "sched/wait.h"

struct weft__wnode {
    struct weft__waiter *w;          /* shared by the entries of one select */
    struct weft__wnode *next, *prev;
    void *elem;                      /* the primitive's payload pointer */
    int idx;                         /* case index, reported through *fired */
    int *fired;                      /* where the winning waker writes idx */
    bool linked;
};

struct weft__waitq {
    struct weft__wnode *head, *tail;
};

/*
 * The cancellation point of every blocking call in sync/ (weft.h,
 * weft_task_cancel): true when the calling task has been cancelled and
 * @deadline is not 0, so the call must return -ECANCELED at once, before it
 * looks at its primitive (nothing taken, nothing changed). Deadline 0 makes
 * a call a poll, as the try_* calls are, and a poll is not a cancellation
 * point; neither are the calls that never wait (unlock, release, signal,
 * set, a future's completions). A foreign thread (or the scheduler's own
 * context) has no task: false. The worker's thread-local pointer is read
 * inline (no call), once.
 * relaxed: a live task's `cancelled` only goes false -> true; a cancel that
 * happens-before this call is seen (read-write coherence), and one that
 * races with it either ends the wait the call goes on to start (the wait's
 * own check, and the switch away, sched/task.h) or is ordered after the
 * call, which then completes normally. Any thread.
 */
static inline bool weft__cancel_point(int64_t deadline)
{
    if (deadline == 0)
        return false;
    struct weft__worker *w = weft__worker_current();
    struct weft__task *t = w ? w->current : NULL;
    return t && atomic_load_explicit(&t->cancelled, memory_order_relaxed);
}

/* Whether a wait result came from its deadline or a cancellation, rather
 * than from a waker of the primitive (arming a deadline never fails,
 * sched/timer.h: those are the only two). */
static inline bool weft__wait_aborted(int rc)
{
    return rc == -ETIMEDOUT || rc == -ECANCELED;
}

static inline void weft__wnode_init(struct weft__wnode *n, struct weft__waiter *w,
                                    void *elem, int idx, int *fired)
{
    n->w = w;
    n->next = n->prev = NULL;
    n->elem = elem;
    n->idx = idx;
    n->fired = fired;
    n->linked = false;
}

/* Append @n. Under the primitive's lock. */
static inline void weft__waitq_push(struct weft__waitq *q, struct weft__wnode *n)
{
    n->next = NULL;
    n->prev = q->tail;
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    n->linked = true;
}

/* Unlink @n if it is still linked. Under the primitive's lock. */
static inline void weft__waitq_remove(struct weft__waitq *q, struct weft__wnode *n)
{
    if (!n->linked)
        return;
    if (n->prev)
        n->prev->next = n->next;
    else
        q->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        q->tail = n->prev;
    n->next = n->prev = NULL;
    n->linked = false;
}

/* Unlink entries from the front until one is claimed; return it (claimed,
 * *fired set, not yet signalled) or NULL if the queue ran empty. Entries
 * whose claim fails are dropped (rule 2). Under the primitive's lock. */
static inline struct weft__wnode *weft__waitq_claim(struct weft__waitq *q)
{
    struct weft__wnode *n;
    while ((n = q->head)) {
        weft__waitq_remove(q, n);
        if (weft__waiter_claim(n->w)) {
            if (n->fired)
                *n->fired = n->idx;
            return n;
        }
    }
    return NULL;
}

/*
 * A batch of claimed entries to signal after the lock is dropped (rule 3).
 * Chained through the entries' `next`, which nobody else reads once the
 * entry is unlinked and claimed.
 */
struct weft__wakelist {
    struct weft__wnode *head;
};

static inline void weft__wakelist_add(struct weft__wakelist *l, struct weft__wnode *n)
{
    n->next = l->head;
    l->head = n;
}

/* Signal every entry of @l with @result. Outside the lock. */
static inline void weft__wakelist_signal(struct weft__wakelist *l, int result)
{
    struct weft__wnode *n = l->head;
    while (n) {
        struct weft__wnode *next = n->next;  /* read before the signal frees n */
        weft__waiter_signal(n->w, result);
        n = next;
    }
    l->head = NULL;
}

/* Wake every claimable entry of @q into @l. Under the primitive's lock. */
static inline void weft__waitq_claim_all(struct weft__waitq *q, struct weft__wakelist *l)
{
    struct weft__wnode *n;
    while ((n = weft__waitq_claim(q)))
        weft__wakelist_add(l, n);
}

/*
 * The common blocking step: @n (already pushed under @lock) waits; on an
 * aborted wait it is unlinked under @lock. Returns the wait's result.
 * Called with @lock held; returns with it released — for a task's
 * cancellable wait only once its switch away has completed (rule 1 makes
 * that safe: wakers claim only under @lock; sched/wait.h).
 */
static inline int weft__waitq_block(struct weft__spinlock *lock, struct weft__waitq *q,
                                    struct weft__wnode *n, int64_t deadline,
                                    unsigned flags)
{
    int rc = weft__waiter_wait_unlock(n->w, deadline, flags, lock);
    if (rc != 0 && weft__wait_aborted(rc)) {
        weft__spin_lock(lock);
        weft__waitq_remove(q, n);
        weft__spin_unlock(lock);
    }
    return rc;
}

#endif
