/*
 * future.h — the future's layout and the internal calls other sync/ files
 * build on (wait-for-many, the blocking pool, generators, groups).
 */
#ifndef WEFT_SYNC_FUTURE_H
#define WEFT_SYNC_FUTURE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "weft.h"
#include "sched/spinlock.h"
#include "sched/task.h"
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
 * read them without the lock. `seq` is taken in that same locked section,
 * so a future seen PENDING under its lock completes with a later `seq`
 * than every future already seen done (gather.c relies on it). `waiters`
 * is empty once done.
 *
 * Callbacks: `cbs` is a FIFO of callbacks that have not started. While
 * `cb_running` (under `lock`), one thread — the "runner" — pops them one at
 * a time, under the lock, and runs each outside it; whoever adds a callback
 * meanwhile appends it for the runner. A done future with `cb_running`
 * false has an empty `cbs`. So the callbacks of one future run one at a
 * time, in the order they were added, and a callback is removable exactly
 * until the runner pops it.
 */
struct weft_future {
    struct weft__spinlock lock;
    _Atomic int state;              /* weft_future_state */
    void *value;
    int error;
    bool cb_running;                /* a runner owns `cbs`; under `lock` */
    uint64_t seq;                   /* global completion order, from 1 */
    struct weft__waitq waiters;
    struct weft__future_cb *cbs, *cbs_tail;
    _Atomic unsigned refs;
    weft_task task;                 /* the task a cancel also cancels, or zero */
    struct weft__join_hook hook;    /* weft_task_future: the task's collector */
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
