/*
 * group.c — task groups (asyncio.TaskGroup; structured concurrency).
 *
 * A group owns the records of its running children (a list under `lock`).
 * A child registers its own task handle when it starts, so cancelling the
 * group reaches every child that has started, and a child that starts
 * after the group began cancelling cancels itself at once. A child's
 * first non-zero return (other than -ECANCELED from a child cancelled by
 * the group) is the group's error and cancels its siblings. Leaving the
 * group (weft_group_wait) waits until `live` is 0: children acknowledge
 * cancellation by returning. That wait can end early only by its deadline
 * or the caller's cancellation; both cancel the children and the wait
 * continues, uncancellably, until they have all returned.
 *
 * Lifetime: a child touches the group only under `lock`, and its last
 * touch is the decrement of `live` (which may release the waiter); it
 * signals the waiter after dropping the lock and frees only its own
 * record, so the parent may free the group as soon as its wait returns.
 */
#include "weft.h"
#include "alloc/mem.h"
#include "sched/fence.h"
#include "sched/worker.h"
#include "sync/waitq.h"

#include <errno.h>

struct group_child {
    struct group_child *next, *prev;
    struct weft_group *g;
    weft_group_fn fn;
    void *arg;
    weft_task task;            /* zero until the child has started */
};

struct weft_group {
    struct weft__spinlock lock;
    struct group_child *children;
    size_t live;               /* spawned, not yet returned */
    int error;                 /* the first failure, or 0 */
    bool cancelling;
    int cancel_reason;         /* -ECANCELED after weft_group_cancel */
    bool closed;               /* weft_group_wait has returned */
    struct weft__waitq q;      /* waiters for live == 0 */
};

int weft_group_new(weft_group **out)
{
    if (!out)
        return -EINVAL;
    if (!(*out = weft__mem_alloc(sizeof(weft_group))))
        return -ENOMEM;
    return 0;
}

void weft_group_free(weft_group *g)
{
    weft__mem_free(g, sizeof(*g));
}

/*
 * Cancelling the children, in two halves around a release of g->lock.
 *
 * weft_task_cancel is three steps (sched/task.h): _begin flags the task and
 * ends the wait it has parked in; where it found the task running, queued
 * or still switching away, a heavy fence (a membarrier: up to tens of us)
 * and then _recheck, which claims a wait the task parked in meanwhile.
 * cancel_begin_locked does the _begin of every started child under g->lock
 * (the child list lives there); cancel_finish runs the one fence for all of
 * them with g->lock dropped, then retakes it for the rechecks. So no
 * spinlock is held across the membarrier.
 *
 * Why that is still correct: the protocol only needs each task's _recheck
 * to come after a fence that comes after its _begin, in one thread's
 * program order, which is what weft_task_cancel does holding no lock at
 * all. A child that returned and left meanwhile waits no more (and is off
 * the list), and one that registered after the first half sees
 * `cancelling` and cancels itself (child_main), which needs no fence.
 * Another canceller running meanwhile only repeats idempotent steps. The
 * group is alive throughout: its owner frees it only after its wait, which
 * waits for every child, and a child calls cancel_finish before it leaves.
 * A foreign caller holds the runtime while it touches the children's TCBs,
 * as weft_task_cancel does (holds nest: runtime.c).
 */

/* Under g->lock: mark the group cancelling and _begin every started child
 * (the children's task locks nest inside g->lock). True: call
 * cancel_finish(g) once g->lock is dropped. */
static bool cancel_begin_locked(weft_group *g)
{
    g->cancelling = true;
    bool foreign = !weft__worker_current(), recheck = false;
    if (!foreign || weft__runtime_hold())
        for (struct group_child *c = g->children; c; c = c->next)
            if (c->task.ptr)
                recheck |= weft__task_cancel_begin(c->task) > 0;
    if (foreign)
        weft__runtime_leave();
    return recheck;
}

/* The second half, called without g->lock: the heavy fence, then the
 * rechecks under g->lock again. */
static void cancel_finish(weft_group *g)
{
    weft__fence_heavy();
    bool foreign = !weft__worker_current();
    if (!foreign || weft__runtime_hold()) {
        weft__spin_lock(&g->lock);
        for (struct group_child *c = g->children; c; c = c->next)
            if (c->task.ptr)
                weft__task_cancel_recheck(c->task);
        weft__spin_unlock(&g->lock);
    }
    if (foreign)
        weft__runtime_leave();
}

int weft_group_cancel(weft_group *g)
{
    if (!g)
        return -EINVAL;
    weft__spin_lock(&g->lock);
    g->cancel_reason = -ECANCELED;
    bool recheck = cancel_begin_locked(g);
    weft__spin_unlock(&g->lock);
    if (recheck)
        cancel_finish(g);
    return 0;
}

/* Unlink @c from @g; when it was the last child, claim the group's
 * waiters into @wake (signalled after the lock is dropped). Under g->lock. */
static void child_leave_locked(weft_group *g, struct group_child *c,
                               struct weft__wakelist *wake)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        g->children = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (--g->live == 0)
        weft__waitq_claim_all(&g->q, wake);
}

static void *child_main(void *p)
{
    struct group_child *c = p;
    weft_group *g = c->g;
    weft_task self = weft_task_self();
    weft__spin_lock(&g->lock);
    c->task = self;
    bool cancel = g->cancelling;
    weft__spin_unlock(&g->lock);
    if (cancel)
        weft_task_cancel(self);

    int rc = c->fn(c->arg);

    struct weft__wakelist wake = { 0 };
    weft__spin_lock(&g->lock);
    if (rc != 0 && !g->error && !(g->cancelling && rc == -ECANCELED)) {
        g->error = rc < 0 ? rc : -ECHILD;
        if (cancel_begin_locked(g)) {
            weft__spin_unlock(&g->lock);
            cancel_finish(g);          /* before we leave: g is alive */
            weft__spin_lock(&g->lock);
        }
    }
    child_leave_locked(g, c, &wake);
    weft__spin_unlock(&g->lock);       /* the last touch of g */
    weft__wakelist_signal(&wake, 0);
    weft__mem_free(c, sizeof(*c));
    return NULL;
}

int weft_group_spawn(weft_group *g, weft_group_fn fn, void *arg)
{
    if (!g || !fn)
        return -EINVAL;
    struct group_child *c = weft__mem_alloc(sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->g = g;
    c->fn = fn;
    c->arg = arg;
    weft__spin_lock(&g->lock);
    int rc = g->closed ? -EINVAL : g->cancelling ? -ECANCELED : 0;
    if (rc == 0) {
        c->next = g->children;
        if (g->children)
            g->children->prev = c;
        g->children = c;
        g->live++;
    }
    weft__spin_unlock(&g->lock);
    if (rc) {
        weft__mem_free(c, sizeof(*c));
        return rc;
    }
    rc = weft_task_spawn(NULL, child_main, c, NULL);
    if (rc) {
        struct weft__wakelist wake = { 0 };
        weft__spin_lock(&g->lock);
        child_leave_locked(g, c, &wake);
        weft__spin_unlock(&g->lock);
        weft__wakelist_signal(&wake, 0);
        weft__mem_free(c, sizeof(*c));
    }
    return rc;
}

int weft_group_wait(weft_group *g, int64_t deadline)
{
    if (!g)
        return -EINVAL;
    int reason = 0;
    unsigned flags = 0;
    weft__spin_lock(&g->lock);
    if (g->closed) {
        weft__spin_unlock(&g->lock);
        return -EINVAL;
    }
    while (g->live) {
        struct weft__waiter w;
        struct weft__wnode n;
        weft__waiter_init(&w);
        weft__wnode_init(&n, &w, NULL, 0, NULL);
        weft__waitq_push(&g->q, &n);
        int rc = weft__waitq_block(&g->lock, &g->q, &n, deadline, flags);
        weft__spin_lock(&g->lock);
        if (weft__wait_aborted(rc)) {
            /* Deadline or our own cancellation: cancel the children and
             * wait, uncancellably, for each to acknowledge by returning. */
            if (!reason)
                reason = rc;
            if (cancel_begin_locked(g)) {
                weft__spin_unlock(&g->lock);
                cancel_finish(g);
                weft__spin_lock(&g->lock);
            }
            deadline = WEFT_NEVER;
            flags = WEFT__WAIT_NOCANCEL;
        }
    }
    g->closed = true;
    int rc = g->error ? g->error : reason ? reason : g->cancel_reason;
    weft__spin_unlock(&g->lock);
    return rc;
}
