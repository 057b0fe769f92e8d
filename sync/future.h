/*
 * future.h — the future's layout and the internal calls other sync/ files
 * build on (wait-for-many, the blocking pool, generators, groups).
 */
#ifndef WEFT_SYNC_FUTURE_H
#define WEFT_SYNC_FUTURE_H

#include <stdatomic.h>
#include <stdint.h>

#include "weft.h"
#include "sched/spinlock.h"
#include "sync/waitq.h"

struct weft__future_cb {
    struct weft__future_cb *next;
    weft_future_done_fn fn;
    void *arg;
};

/*
 * Invariants: `state` leaves PENDING once, under `lock`, with a release
 * store after `value`/`error`/`seq` are written; after that those fields
 * never change, so a reader that loads a non-PENDING state with acquire may
 * read them without the lock. `waiters` and `cbs` are empty once done.
 */
struct weft_future {
    struct weft__spinlock lock;
    _Atomic int state;              /* weft_future_state */
    void *value;
    int error;
    uint64_t seq;                   /* global completion order, from 1 */
    struct weft__waitq waiters;
    struct weft__future_cb *cbs, *cbs_tail;
    _Atomic unsigned refs;
    weft_task task;                 /* weft_future_spawn's task, or zero */
};

/* weft_future_await with wait flags (WEFT__WAIT_NOCANCEL). */
int weft__future_await(weft_future *f, void **value, int64_t deadline, unsigned flags);

/* Link @n into @f's waiters unless @f is done; false if done (not linked).
 * Unlink with weft__future_unlink (idempotent). Any thread. */
bool weft__future_link(weft_future *f, struct weft__wnode *n);
void weft__future_unlink(weft_future *f, struct weft__wnode *n);

/* The outcome as weft_future_await returns it; @f must be done. */
int weft__future_outcome(const weft_future *f, void **value);

#endif
