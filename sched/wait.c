/* wait.c — see wait.h. */
#define _GNU_SOURCE
#include "sched/wait.h"
#include "sched/task.h"
#include "sched/worker.h"

#include <errno.h>
#include <linux/futex.h>
#include <stddef.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long a foreign thread spins before it sleeps in the kernel: a futex
 * round trip costs 30-70 us on our VMs, and most handoffs answer sooner. */
#define WEFT__FOREIGN_SPIN_NS 20000

void weft__waiter_init(struct weft__waiter *w)
{
    w->in_task = false;
    w->claimed_how = WEFT__CLAIM_WAKE;
    w->result = 0;
    w->task = weft__task_current();
    w->timer.heap = NULL;
    w->data = NULL;
    w->on_cancel = NULL;
    w->next = w->prev = NULL;
    atomic_store_explicit(&w->signalled, 0, memory_order_relaxed);
    /* Last, with release: a stale waker of an earlier use of this memory
     * (the root's reused quiesce waiter) whose claim CAS reads this 0 also
     * sees the fields above (the CAS is acq_rel). atomic_init would race. */
    atomic_store_explicit(&w->claimed, 0, memory_order_release);
}

void weft__waiter_init_cancellable(struct weft__waiter *w)
{
    struct weft__task *t = weft__task_current();
    if (!t) {
        weft__waiter_init(w);
        return;
    }
    /* Only what an in-task wait reads: its claim is the task's word, a
     * foreign thread's fields (claimed, signalled), the wait list links,
     * data and on_cancel belong to the other kinds of wait, and the
     * timer is set up by arm_deadline when there is a deadline. */
    w->in_task = true;
    w->claimed_how = WEFT__CLAIM_WAKE;
    w->result = 0;
    w->task = t;
    /* Open the claim. release: a claimer's CAS that reads TC_OPEN sees the
     * waiter's fields. A plain store is enough: while the task runs and no
     * wait of it is open, nobody else writes its state word (task.h). */
    uint32_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
    atomic_store_explicit(&t->state, (s & ~WEFT__TC_MASK) | WEFT__TC_OPEN,
                          memory_order_release);
}

void weft__waiter_signal_slow(struct weft__waiter *w, int result)
{
    struct weft__task *t = w->task;
    w->result = result;
    if (t) {
        /* A claim that made the task RUNNABLE already (in_task waits) leaves
         * only the queueing; `result` is released to the task by the queue
         * push (or by the wake's CAS). Read before the task can run. */
        enum weft__claim c = w->claimed_how;
        if (weft__worker_current()) {
            weft__task_claimed(t, c);
            return;
        }
        /* A foreign thread waking a task: once the wake's CAS is done the
         * task may run, finish and let weft_run free the runtime while we
         * are still queueing it or waking a worker (rt->idle, rings). Hold
         * the runtime (read lock; also during shutdown) until the wake has
         * returned: weft_run frees it only under the write lock. */
        weft__runtime_hold();
        weft__task_claimed(t, c);
        weft__runtime_leave();
        return;
    }
    /* release: pairs with the acquire load in foreign_wait. After this
     * store the waiter may return and its memory vanish; FUTEX_WAKE on a
     * dead address is harmless (it names no live waiter). */
    atomic_store_explicit(&w->signalled, 1, memory_order_release);
    syscall(SYS_futex, &w->signalled, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void on_deadline(struct weft__timer *tm)
{
    struct weft__waiter *w = (struct weft__waiter *)((char *)tm -
                                                     offsetof(struct weft__waiter, timer));
    weft__waiter_wake(w, -ETIMEDOUT);
}

static int foreign_wait(struct weft__waiter *w, int64_t deadline)
{
    int64_t spin_until = weft_now() + WEFT__FOREIGN_SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&w->signalled, memory_order_acquire))
            return w->result;
        weft__cpu_relax();
        if (i % 64 == 0 && weft_now() >= spin_until)
            break;
    }
    for (;;) {
        if (atomic_load_explicit(&w->signalled, memory_order_acquire))
            return w->result;
        struct timespec ts, *tsp = NULL;
        if (deadline != WEFT_NEVER) {
            if (deadline <= weft_now()) {
                if (weft__waiter_claim(w))
                    return w->result = -ETIMEDOUT;
                deadline = WEFT_NEVER;   /* the winner is about to signal */
                continue;
            }
            ts.tv_sec = deadline / 1000000000;
            ts.tv_nsec = deadline % 1000000000;
            tsp = &ts;
        }
        /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout. */
        syscall(SYS_futex, &w->signalled, FUTEX_WAIT_BITSET_PRIVATE, 0, tsp, NULL,
                FUTEX_BITSET_MATCH_ANY);
    }
}

/* Arm @w's deadline on this worker's timers (arming never fails: the
 * heap is intrusive, sched/timer.h, so no timed wait can end in -ENOMEM);
 * false if the deadline has passed already: the wait then ends at once
 * with -ETIMEDOUT. */
static bool arm_deadline(struct weft__waiter *w, int64_t deadline)
{
    if (deadline <= weft_now()) {
        weft__waiter_wake(w, -ETIMEDOUT);
        return false;
    }
    w->timer.deadline = deadline;
    w->timer.fire = on_deadline;
    weft__timer_arm(&weft__worker_current()->timers, &w->timer);
    return true;
}

/* A cancellable wait whose claim is in the task's state word (task.h):
 * nothing to publish; a cancellation claims the word itself, or the
 * switch away sees the flag. */
static int task_word_wait(struct weft__waiter *w, struct weft__task *t, int64_t deadline,
                          struct weft__spinlock *lock)
{
    bool armed = false;
    /* relaxed: a hint; a cancel it misses is caught by the protocol. */
    if (atomic_load_explicit(&t->cancelled, memory_order_relaxed)) {
        enum weft__claim c = weft__task_claim(t, WEFT__TC_CANCELLED);
        if (c)
            weft__task_claimed(t, c);    /* running: consumed by the park below */
    } else if (deadline != WEFT_NEVER) {
        armed = arm_deadline(w, deadline);
    }
    if (lock)
        weft__task_park_unlock(lock);
    else
        weft__task_park();
    if (armed)
        weft__timer_disarm(&w->timer);
    /* relaxed: our own word; the wake that resumed us was ordered after
     * the claim that set these bits. */
    uint32_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
    return (s & WEFT__TC_MASK) == WEFT__TC_CANCELLED ? -ECANCELED : w->result;
}

int weft__waiter_wait(struct weft__waiter *w, int64_t deadline)
{
    return weft__waiter_wait_flags(w, deadline, 0);
}

int weft__waiter_wait_slow(struct weft__waiter *w, int64_t deadline, unsigned flags,
                           struct weft__spinlock *lock)
{
    struct weft__task *t = w->task;
    if (w->in_task)            /* cancellable by construction: @flags is 0 */
        return task_word_wait(w, t, deadline, lock);
    if (lock)
        weft__spin_unlock(lock);
    if (!t)
        return foreign_wait(w, deadline);

    /* Publish the wait for cancellation (task->lock orders it against
     * weft_task_cancel, which sets the flag and claims under the lock).
     * An uncancellable wait is not published, so no cancel can claim it. */
    bool nocancel = flags & WEFT__WAIT_NOCANCEL;
    bool cancelled = false;
    if (!nocancel) {
        weft__spin_lock(&t->lock);
        t->waiter = w;
        cancelled = atomic_load_explicit(&t->cancelled, memory_order_relaxed);
        weft__spin_unlock(&t->lock);
    }

    bool armed = false;
    if (cancelled)
        weft__waiter_wake(w, -ECANCELED);
    else if (deadline != WEFT_NEVER)
        armed = arm_deadline(w, deadline);
    weft__task_park();
    /* Whoever woke us, the timer must be gone before this frame is. */
    if (armed)
        weft__timer_disarm(&w->timer);
    if (!nocancel) {
        weft__spin_lock(&t->lock);
        t->waiter = NULL;
        weft__spin_unlock(&t->lock);
    }
    return w->result;
}
