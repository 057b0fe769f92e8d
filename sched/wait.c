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
    /* atomic stores, not atomic_init: a stale waker of an earlier use of
     * this memory may still CAS `claimed` (it will fail; see wait.h). */
    atomic_store_explicit(&w->claimed, 0, memory_order_relaxed);
    atomic_store_explicit(&w->signalled, 0, memory_order_relaxed);
    w->result = 0;
    w->task = weft__task_current();
    w->timer.heap = NULL;
    w->data = NULL;
    w->on_cancel = NULL;
    w->next = w->prev = NULL;
}

void weft__waiter_signal(struct weft__waiter *w, int result)
{
    struct weft__task *t = w->task;
    w->result = result;
    if (t) {
        weft__task_wake(t);   /* its CAS releases `result` to the task */
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

int weft__waiter_wait(struct weft__waiter *w, int64_t deadline)
{
    struct weft__task *t = w->task;
    if (!t)
        return foreign_wait(w, deadline);

    /* Publish the wait for cancellation (task->lock orders it against
     * weft_task_cancel, which sets the flag and claims under the lock). */
    weft__spin_lock(&t->lock);
    t->waiter = w;
    bool cancelled = atomic_load_explicit(&t->cancelled, memory_order_relaxed);
    weft__spin_unlock(&t->lock);

    bool armed = false;
    if (cancelled) {
        weft__waiter_wake(w, -ECANCELED);
    } else if (deadline != WEFT_NEVER) {
        if (deadline <= weft_now()) {
            weft__waiter_wake(w, -ETIMEDOUT);
        } else {
            w->timer.deadline = deadline;
            w->timer.fire = on_deadline;
            armed = weft__timer_arm(&weft__worker_current()->timers, &w->timer) == 0;
            if (!armed)
                weft__waiter_wake(w, -ENOMEM);
        }
    }
    weft__task_park();
    /* Whoever woke us, the timer must be gone before this frame is. */
    if (armed)
        weft__timer_disarm(&w->timer);
    weft__spin_lock(&t->lock);
    t->waiter = NULL;
    weft__spin_unlock(&t->lock);
    return w->result;
}
