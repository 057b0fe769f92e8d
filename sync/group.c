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
 * Cancelling the children, in two halves around the release of g->lock.
 *
 * weft_task_cancel is three steps (sched/task.h): _begin flags the task and
 * ends the wait it has parked in; where it found the task running, queued
 * or still switching away, a heavy fence (a membarrier: up to tens of us)
 * and then _recheck, which claims a wait the task parked in meanwhile.
 * cancel_locked does the _begin of every started child under g->lock (the
 * child list lives there) and writes down the handles that still need the
 * rest; cancel_finish runs the one fence for all of them and the rechecks
 * after the caller has dropped g->lock, so no spinlock is held across the
 * membarrier nor the N task locks of the second pass.
 *
 * Why that is still correct: the protocol only needs each task's _recheck
 * to come after a fence that comes after its _begin, all in one thread's
 * program order — it is what weft_task_cancel does, holding no lock at
 * all. g->lock guarded nothing of it but the list walk, which the copied
 * handles replace: a handle names its task for good (a stale one fails its
 * id check in _recheck, and TCB memory stays valid while the runtime runs:
 * a task caller is in it, a foreign one holds it, below). A child that
 * returns, leaves and frees its record meanwhile waits no more, and a
 * child that registers itself after the first half sees `cancelling` and
 * cancels itself (child_main), which needs no fence. Another canceller
 * running meanwhile only repeats idempotent steps. And after g->lock is
 * dropped the canceller no longer touches the group, as before, so the
 * owner may free it as soon as its wait has returned.
 */
#define GROUP_BATCH_STACK 16

struct cancel_batch {
    weft_task *h;              /* `stack`, or a heap array of `cap` */
    size_t n, cap;
    bool held;                 /* a foreign caller holds the runtime */
    weft_task stack[GROUP_BATCH_STACK];
};

/* An empty batch: cancel_finish(@b) then does nothing. */
static void batch_init(struct cancel_batch *b)
{
    b->h = b->stack;
    b->n = 0;
    b->cap = GROUP_BATCH_STACK;
    b->held = false;
}

/* Room for one more handle in @b; false if no memory. */
static bool batch_grow(struct cancel_batch *b)
{
    if (b->n < b->cap)
        return true;
    weft_task *h = weft__mem_alloc(2 * b->cap * sizeof(*h));
    if (!h)
        return false;
    for (size_t i = 0; i < b->n; i++)
        h[i] = b->h[i];
    if (b->h != b->stack)
        weft__mem_free(b->h, b->cap * sizeof(*h));
    b->h = h;
    b->cap *= 2;
    return true;
}

/* The first half, under g->lock: mark the group cancelling and _begin every
 * started child (the children's task locks nest inside g->lock). Always
 * follow it by cancel_finish(@b) once g->lock is dropped. */
static void cancel_locked(weft_group *g, struct cancel_batch *b)
{
    batch_init(b);
    g->cancelling = true;
    /* A foreign caller holds the runtime while it touches the children's
     * TCBs, as weft_task_cancel does, until cancel_finish is done. */
    b->held = !weft__worker_current();
    if (b->held && !weft__runtime_hold()) {
        weft__runtime_leave();
        b->held = false;
        return;
    }
    bool in_place = false;
    for (struct group_child *c = g->children; c; c = c->next) {
        if (!c->task.ptr || weft__task_cancel_begin(c->task) <= 0)
            continue;
        if (!in_place && batch_grow(b))
            b->h[b->n++] = c->task;
        else
            in_place = true;
    }
    if (in_place) {
        /* No memory to write the handles down: the old way, the fence and
         * the rechecks of every child under g->lock. */
        weft__fence_heavy();
        for (struct group_child *c = g->children; c; c = c->next)
            if (c->task.ptr)
                weft__task_cancel_recheck(c->task);
        b->n = 0;
    }
}

/* The second half, without g->lock (and without touching the group). */
static void cancel_finish(struct cancel_batch *b)
{
    if (b->n) {
        weft__fence_heavy();
        for (size_t i = 0; i < b->n; i++)
            weft__task_cancel_recheck(b->h[i]);
    }
    if (b->h != b->stack)
        weft__mem_free(b->h, b->cap * sizeof(*b->h));
    if (b->held)
        weft__runtime_leave();
}

int weft_group_cancel(weft_group *g)
{
    if (!g)
        return -EINVAL;
    struct cancel_batch b;
    weft__spin_lock(&g->lock);
    g->cancel_reason = -ECANCELED;
    cancel_locked(g, &b);
    weft__spin_unlock(&g->lock);
    cancel_finish(&b);
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
    struct cancel_batch b;
    batch_init(&b);
    weft__spin_lock(&g->lock);
    if (rc != 0 && !g->error && !(g->cancelling && rc == -ECANCELED)) {
        g->error = rc < 0 ? rc : -ECHILD;
        cancel_locked(g, &b);
    }
    child_leave_locked(g, c, &wake);
    weft__spin_unlock(&g->lock);       /* the last touch of g */
    cancel_finish(&b);                 /* the siblings, by handle */
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
            struct cancel_batch b;
            cancel_locked(g, &b);
            weft__spin_unlock(&g->lock);
            cancel_finish(&b);
            weft__spin_lock(&g->lock);
            deadline = WEFT_NEVER;
            flags = WEFT__WAIT_NOCANCEL;
        }
    }
    g->closed = true;
    int rc = g->error ? g->error : reason ? reason : g->cancel_reason;
    weft__spin_unlock(&g->lock);
    return rc;
}
