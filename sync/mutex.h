/*
 * mutex.h — internal mutex calls shared with cond.c.
 */
#ifndef WEFT_SYNC_MUTEX_H
#define WEFT_SYNC_MUTEX_H

#include "weft.h"
#include "sched/spinlock.h"
#include "sync/waitq.h"

/*
 * `locked` is true while someone owns the mutex. Unlock hands ownership
 * straight to the first waiter it can claim (FIFO, no barging), so a woken
 * waiter returns owning it; only when no waiter can be claimed does
 * `locked` go false. All under `lock`.
 */
struct weft_mutex {
    struct weft__spinlock lock;
    bool locked;
    struct weft__waitq q;
};

/* weft_mutex_lock with wait flags (cond.c re-locks with NOCANCEL). */
int weft__mutex_lock(weft_mutex *m, int64_t deadline, unsigned flags);

#endif
