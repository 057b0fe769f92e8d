/*
 * timer.h — per-worker deadlines (sleeps and every wait's timeout).
 *
 * Each worker owns a min-heap of timers ordered by deadline: an intrusive
 * pairing heap, so the nodes live in the timers themselves (usually in a
 * waiting task's frame) and arming never allocates, and so never fails.
 * A task arms a timer on the heap of the worker it runs on; the timer may
 * be disarmed from any thread (the task may have moved to another worker
 * by then), so the heap has a spinlock. Expired timers fire on their owner
 * worker, under the heap lock: once weft__timer_disarm() returns, the
 * timer's callback is not running and never will, so the memory holding
 * the timer may be reused.
 * The owner worker bounds its ring wait by the earliest deadline.
 *
 * The heap (Fredman, Sedgewick, Sleator, Tarjan 1986): every node's
 * deadline is <= its children's. A node's children form a list through
 * `next`; `prev` points to the left sibling, or to the parent for the
 * first child, so any node can be cut out in O(1). Insert melds the node
 * with the root, O(1); removing the root or any node melds its children
 * in two passes (pairs left to right, then the results right to left),
 * O(log n) amortised. Both passes are loops: disarm runs on task stacks,
 * which must not recurse to a depth the heap's shape decides.
 */
#ifndef WEFT_SCHED_TIMER_H
#define WEFT_SCHED_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include "sched/spinlock.h"

struct weft__timer_heap;

struct weft__timer {
    int64_t deadline;
    void  (*fire)(struct weft__timer *t);   /* called under the heap lock */
    struct weft__timer_heap *heap;          /* NULL when not armed */
    struct weft__timer *child, *next, *prev; /* heap links (above), under its lock */
};

struct weft__timer_heap {
    struct weft__spinlock lock;
    struct weft__timer *root;
    _Atomic int64_t earliest;   /* root->deadline, or INT64_MAX; read unlocked */
};

/* Both never fail (nothing is allocated); init returns 0. */
int  weft__timer_heap_init(struct weft__timer_heap *h);
void weft__timer_heap_destroy(struct weft__timer_heap *h);

/* Arm @t (deadline and fire set by the caller) on @h. Never fails (returns
 * 0). Owner worker of @h only. */
int  weft__timer_arm(struct weft__timer_heap *h, struct weft__timer *t);
/* Disarm @t if armed; true if it was still pending (its callback will never
 * run), false if it already fired or was never armed. Any thread. */
bool weft__timer_disarm(struct weft__timer *t);
/* Fire every timer whose deadline is <= @now. Owner worker only. */
void weft__timer_run(struct weft__timer_heap *h, int64_t now);

/* The earliest armed deadline, INT64_MAX if none. Any thread (a hint). */
static inline int64_t weft__timer_earliest(struct weft__timer_heap *h)
{
    return atomic_load_explicit(&h->earliest, memory_order_relaxed);
}

#endif
