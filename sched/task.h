/*
 * task.h — the task control block and the task's run-state protocol.
 *
 * Life of a task (docs/design.md has the long version):
 *   spawn:   a control block (TCB) is taken from the spawning worker's
 *            pool and pushed on its deque (or the global injection queue
 *            when spawned from a foreign thread). No stack yet.
 *   run:     a worker takes it, gives it a stack from its pool on first run,
 *            and switches to it. state = RUNNING.
 *   suspend: the task waits (weft__task_park). The switch away completes,
 *            then the *next* context marks it SUSPENDED (never before: a
 *            waker on another worker must not resume a half-saved context).
 *   wake:    exactly one wake per park (waiters are claimed once, wait.h):
 *            SUSPENDED -> RUNNABLE and the task is queued; or, if the task
 *            has not finished switching away yet, RUNNING -> NOTIFIED and
 *            the switch-away code re-queues it.
 *   exit:    the body returns; the next context returns the stack to the
 *            pool and completes the join protocol. The TCB is recycled once
 *            joined or detached.
 *
 * TCB memory is type-stable while the runtime runs (recycled through free
 * lists, freed only at teardown) and each task has a unique 64-bit id, so a
 * stale weft_task handle is detected by comparing ids.
 */
#ifndef WEFT_SCHED_TASK_H
#define WEFT_SCHED_TASK_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "weft.h"
#include "alloc/objpool.h"
#include "alloc/stack.h"
#include "sched/context.h"
#include "sched/spinlock.h"

struct weft__waiter;

/*
 * task->state holds two things in one word, so that one atomic operation
 * can look at both:
 *   bits 0-1  the run state (WEFT__TS_*, mask WEFT__TS_MASK);
 *   bits 2-3  the claim of the task's current *cancellable* wait
 *             (WEFT__TC_*, mask WEFT__TC_MASK), for waits set up with
 *             weft__waiter_init_cancellable (wait.h). Other waits keep
 *             their claim in the waiter and leave these bits alone.
 * Why one word: a cancellable wait is claimed by its waker or by
 * weft_task_cancel with a CAS from TC_OPEN, and the switch away from the
 * waiting task does a seq_cst CAS on the same word (RUNNING -> SUSPENDED)
 * before it checks the cancel flag. Two seq_cst operations on one
 * location are totally ordered, so either the canceller's CAS sees
 * TC_OPEN and claims the wait, or the switch's later load sees the flag
 * (worker.c, weft__sched_after_switch): no lost cancellation, and no lock
 * to publish and unpublish each wait (two locked instructions per wait).
 * The claim bits live in the TCB, which is type-stable, so a canceller
 * never touches a waiter on a stack that may be gone.
 * Held waits (weft__task_park_unlock) go one step further where the heavy
 * fence exists (fence.h): their wakers claim only under the wait's lock,
 * which is released after the switch, so the switch marks the task
 * SUSPENDED with a plain store. Then nobody may write the word of a task
 * RUNNING with an open wait but the task itself, and so cancellations
 * (and the switch's own late cancel check) claim only SUSPENDED waits
 * (weft__task_claim_parked); a canceller that finds the task elsewhere
 * runs the heavy fence and looks again (task.c cancel_locked).
 */
enum weft__task_state {
    WEFT__TS_RUNNABLE  = 0,  /* queued somewhere, or not started */
    WEFT__TS_RUNNING   = 1,  /* on a worker (possibly still switching away) */
    WEFT__TS_SUSPENDED = 2,  /* context saved, waiting for its one wake */
    WEFT__TS_NOTIFIED  = 3,  /* woken while still RUNNING */
};
#define WEFT__TS_MASK      3u
#define WEFT__TC_NONE      0u   /* no cancellable wait set up */
#define WEFT__TC_OPEN      4u   /* a cancellable wait: claimable */
#define WEFT__TC_TAKEN     8u   /* claimed by a waker (result in the waiter) */
#define WEFT__TC_CANCELLED 12u  /* claimed by a cancellation: -ECANCELED */
#define WEFT__TC_MASK      12u

/* task->join, guarded by task->lock: 0 (joinable, nobody waiting),
 * JOIN_DETACHED, JOIN_FINISHED, the joiner's struct weft__waiter *, or a
 * struct weft__join_hook * tagged with JOIN_HOOK (both are 8-aligned, so
 * a tagged pointer is odd and above JOIN_FINISHED). */
#define WEFT__JOIN_DETACHED ((uintptr_t)1)
#define WEFT__JOIN_FINISHED ((uintptr_t)2)
#define WEFT__JOIN_HOOK     ((uintptr_t)1)
#define WEFT__JOIN_IS_HOOK(j) ((j) > WEFT__JOIN_FINISHED && ((j) & WEFT__JOIN_HOOK))

/*
 * A collector that takes a task's join over (weft_task_future): when the
 * task finishes, fn(hook, result, error) is called once — error is the
 * task's start error (-ENOMEM: it never ran) or 0 — by the worker that
 * finishes it, after the TCB is recycled, from the scheduler's after-switch
 * code (not from a task of its own: fn must only wake and queue, never
 * wait or run user code).
 */
struct weft__join_hook {
    void (*fn)(struct weft__join_hook *hook, void *result, int error);
};

/*
 * Install @hook as @h's one collector. Returns 0 (installed: @h's join and
 * detach now fail with -EINVAL, and -ESRCH once it has finished), 1 (@h had
 * already finished: its result and start error are in *@result / *@error,
 * the TCB is recycled, @hook is neither installed nor called), -ESRCH (no
 * live task, or no runtime), -EINVAL (detached, the root task, or a joiner
 * or collector already waiting). Any thread.
 */
int weft__task_join_hook(weft_task h, struct weft__join_hook *hook, void **result,
                         int *error);

/* Task ids: the run's generation in bits 48-63 (weft_run numbers its runs,
 * so a handle kept from an earlier run is refused by its id alone, before
 * its pointer, into memory that run freed, is touched); below it
 * (sequence << 11) | (worker index + 1), or (sequence << 11) for tasks
 * spawned by foreign threads, sequences starting at 1. 0 marks a free TCB;
 * low bits 1 are the root task (the runtime's main wrapper). */
#define WEFT__ID_GEN_SHIFT 48
#define WEFT__ID_LOW_MASK  (((uint64_t)1 << WEFT__ID_GEN_SHIFT) - 1)
#define WEFT__ROOT_ID      ((uint64_t)1)   /* the low bits */

/* Bits of task->flags. Written before the task is published (ROOT,
 * NAMED) or, under the task's lock, by the worker of its first run
 * (NOSTACK); read under the lock or after the join protocol. A byte of
 * its own, so no race with the atomics beside it. */
#define WEFT__TF_ROOT    1u   /* the runtime's main wrapper task */
#define WEFT__TF_NAMED   2u   /* has a name in its side bytes (weft__task_name) */
#define WEFT__TF_NOSTACK 4u   /* ended before it ran: no stack (-ENOMEM) */

/* One cache line in normal builds, so a million unstarted tasks take
 * 64 MB: fields used in different phases of a task's life share words
 * (fn/ctx, arg/result, wanted stack size/stack), and the name lives
 * outside the line, in the pool's side bytes (alloc/objpool.h), touched
 * only by tasks that have one. */
struct weft__task {
    union {
        weft_task_fn fn;           /* the body, until the first run */
        struct weft__ctx ctx;      /* from then on: saved stack pointer
                                    * while not running */
    };
    _Atomic uint32_t state;        /* run state | wait claim (above) */
    struct weft__spinlock lock;    /* guards join, waiter, cancelled */
    _Atomic bool cancelled;        /* sticky; read unlocked as a hint */
    uint8_t flags;                 /* WEFT__TF_* */
    struct weft__task *next;       /* link in one queue: inject, yield, free list */
    union {
        void *arg;                 /* until the body starts */
        void *result;              /* once it has returned */
    };
    /* Until the first run: the wanted stack size (0 = the runtime's
     * default; a page multiple) | 1. Then the struct weft__stack * of its
     * stack (even), and 0 once it is returned. weft__task_stack(). */
    uintptr_t stack;
    _Atomic uint64_t id;           /* unique; 0 while the TCB is free */
    uintptr_t join;
    struct weft__waiter *waiter;   /* the wait in progress, for cancellation */
#ifdef WEFT_ASAN
    void *asan_fake_stack;
#endif
};

/* Bytes of a task's side record: its name (NUL-terminated). */
#define WEFT__TASK_SIDE WEFT_TASK_NAME_MAX

/* The stack @t runs on, or NULL before its first run and after its exit. */
static inline struct weft__stack *weft__task_stack(const struct weft__task *t)
{
    return (t->stack & 1) ? NULL : (struct weft__stack *)t->stack;
}

/* @t's name, "" if it has none; stable while the task lives. Under @t's
 * lock, or on the worker running @t. */
static inline const char *weft__task_name(const struct weft__task *t)
{
    return (t->flags & WEFT__TF_NAMED) ? (const char *)weft__objpool_side(t) : "";
}

/* What weft_task_join reports of a task that never ran: -ENOMEM, or 0. */
static inline int weft__task_start_error(const struct weft__task *t)
{
    return (t->flags & WEFT__TF_NOSTACK) ? -ENOMEM : 0;
}

/* The task running on this thread, or NULL. Any thread. */
struct weft__task *weft__task_current(void);

/* Suspend the calling task until its one matching weft__task_wake().
 * Task only (not the scheduler context). */
void weft__task_park(void);

/* weft__task_park for a cancellable wait (TC_OPEN, wait.h) whose wakers
 * all claim it under @lock, which the caller holds: the lock is released
 * only once the switch away has completed (Go's park with an unlock
 * function), so no waker sees the task RUNNING in this wait, and the
 * switch marks it SUSPENDED without a locked instruction where the heavy
 * fence exists (fence.h, worker.c finish_park). Task only. */
void weft__task_park_unlock(struct weft__spinlock *lock);

/* Make @t, which has parked or is about to, runnable again. Exactly one
 * wake per park. Any thread. */
void weft__task_wake(struct weft__task *t);

/* What weft__task_claim did. */
enum weft__claim {
    WEFT__CLAIM_LOST = 0,   /* not open (not set up, or claimed already) */
    WEFT__CLAIM_WAKE,       /* claimed while the task runs: wake it later
                             * (weft__task_wake) */
    WEFT__CLAIM_READY,      /* claimed a SUSPENDED task and made it RUNNABLE
                             * in the same CAS: queue it later
                             * (weft__sched_ready), nobody else will */
};

/* Claim @t's open cancellable wait for @to (WEFT__TC_TAKEN or
 * WEFT__TC_CANCELLED). A task already suspended is made RUNNABLE by the
 * same CAS, which spares the wake's own CAS (a fifth of a channel round
 * trip); the claimer queues it once its hand-off is written. seq_cst: the
 * cancellation protocol above needs these CASes in the single total order;
 * it also acquires the waiter's setup (released by
 * weft__waiter_init_cancellable) and the saved context (released by the
 * switch away's CAS to SUSPENDED), as weft__task_wake does. Any thread. */
static inline enum weft__claim weft__task_claim(struct weft__task *t, uint32_t to)
{
    uint32_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
    while ((s & WEFT__TC_MASK) == WEFT__TC_OPEN) {
        bool parked = (s & WEFT__TS_MASK) == WEFT__TS_SUSPENDED;
        uint32_t run = parked ? WEFT__TS_RUNNABLE : (s & WEFT__TS_MASK);
        if (atomic_compare_exchange_weak_explicit(&t->state, &s, run | to,
                                                  memory_order_seq_cst, memory_order_relaxed))
            return parked ? WEFT__CLAIM_READY : WEFT__CLAIM_WAKE;
    }
    return WEFT__CLAIM_LOST;
}

/* weft__task_claim, but only of a wait whose task has SUSPENDED (so the
 * result is WEFT__CLAIM_READY or WEFT__CLAIM_LOST): what a cancellation
 * does where switches away from held waits are plain stores (task.c
 * cancel_locked, sched/fence.h). seq_cst load and CAS, as in
 * weft__task_claim: the CAS acquires the saved context (released by the
 * switch's store) and the waiter's setup. Any thread. */
static inline enum weft__claim weft__task_claim_parked(struct weft__task *t, uint32_t to)
{
    uint32_t s = atomic_load_explicit(&t->state, memory_order_seq_cst);
    while (s == (WEFT__TS_SUSPENDED | WEFT__TC_OPEN)) {
        if (atomic_compare_exchange_weak_explicit(&t->state, &s, WEFT__TS_RUNNABLE | to,
                                                  memory_order_seq_cst, memory_order_relaxed))
            return WEFT__CLAIM_READY;
    }
    return WEFT__CLAIM_LOST;
}

/* Cancel @h in two steps, so that a caller cancelling many tasks pays for
 * one heavy fence (sched/fence.h) in all: _begin flags the task and ends
 * the wait it has parked in; it returns -ESRCH (no such task), 0 (done) or
 * 1: call weft__fence_heavy(), then _recheck(@h). weft_task_cancel is
 * the three. Any thread. */
int  weft__task_cancel_begin(weft_task h);
void weft__task_cancel_recheck(weft_task h);

/* Finish a successful weft__task_claim: queue the task or wake it. Any
 * thread (a foreign thread must hold the runtime, as for weft__task_wake). */
void weft__task_claimed(struct weft__task *t, enum weft__claim c);

/* Give a TCB from the pool its fields for a new task (all but the id,
 * which the caller publishes last). */
void weft__task_setup(struct weft__task *t, weft_task_fn fn, void *arg, const char *name,
                      size_t stack_size, uintptr_t join);

/* Called by the worker after a task's last switch away (see worker.c). */
void weft__task_exit_finish(struct weft__task *t);

/* Entry point of every task's stack: runs @fn (the task's weft_task_fn,
 * handed over in the first frame) on @task. */
void weft__task_entry(void *task, void *fn);

#endif
