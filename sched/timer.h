/*
 * timer.h — per-worker deadlines (sleeps and every wait's timeout).
 *
 * Each worker owns a binary min-heap of timers ordered by deadline. A task
 * arms a timer on the heap of the worker it runs on; the timer may be
 * disarmed from any thread (the task may have moved to another worker by
 * then), so the heap has a spinlock. Expired timers fire on their owner
 * worker, under the heap lock: once weft__timer_disarm() returns, the
 * timer's callback is not running and never will, so the memory holding
 * the timer (usually a waiting task's stack frame) may be reused.
 * The owner worker bounds its ring wait by the earliest deadline.
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
    uint32_t idx;
};

struct weft__timer_heap {
    struct weft__spinlock lock;
    struct weft__timer **v;
    uint32_t len, cap;
    _Atomic int64_t earliest;   /* v[0]->deadline, or INT64_MAX; read unlocked */
};

int  weft__timer_heap_init(struct weft__timer_heap *h);
void weft__timer_heap_destroy(struct weft__timer_heap *h);

/* Arm @t (deadline and fire set by the caller) on @h: 0 or -ENOMEM.
 * Owner worker of @h only. */
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
