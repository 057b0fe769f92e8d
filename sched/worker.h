/*
 * worker.h — a worker thread, the runtime that owns the workers, and the
 * scheduling calls between them. The design essay is at the top of
 * worker.c; the long version in docs/design.md.
 */
#ifndef WEFT_SCHED_WORKER_H
#define WEFT_SCHED_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "weft.h"
#include "alloc/objpool.h"
#include "alloc/stack.h"
#include "io/ring.h"
#include "sched/context.h"
#include "sched/deque.h"
#include "sched/inject.h"
#include "sched/park.h"
#include "sched/spinlock.h"
#include "sched/task.h"
#include "sched/timer.h"

/* Tunables (docs/design.md explains each). */
#define WEFT__DEQUE_CAP     256   /* per-worker ring; overflow moves half out */
#define WEFT__FAIR_TICKS    61    /* global queue checked every 61 ticks (Go) */
#define WEFT__LIFO_MAX      3     /* LIFO-slot runs in a row before the deque */
#define WEFT__STEAL_ROUNDS  4     /* passes over random victims per search */
#define WEFT__SPIN_NS       50000 /* a searcher watches this long before parking */
#define WEFT__SPIN_RING_NS  5000  /* ...which pays for a ring completion only if
                                   * it came sooner than this (about a sleep and
                                   * a wake-up in the kernel) */
#define WEFT__SPIN_CREDIT   8     /* watches in a row that may go unpaid */
#define WEFT__SPIN_PROBE    64    /* out of credit: watch once per this many searches */
#define WEFT__STACK_POOL    256   /* free stacks kept per worker */
#define WEFT__RING_ENTRIES  256

/* Counters, written by their worker only (relaxed), read by anyone. */
struct weft__worker_stats {
    _Atomic uint64_t spawned, finished, switches, steals, steal_rounds,
                     injected, overflowed, parks, wakeups;
};

/* Why the previous context switched away: finished by whoever runs next. */
enum weft__switch_action {
    WEFT__SW_NONE = 0,   /* yield: already queued by the yielder */
    WEFT__SW_PARK,       /* mark SUSPENDED, or re-queue if NOTIFIED meanwhile */
    WEFT__SW_PARK_UNLOCK,/* the same, then release switch_unlock (a wait
                          * whose wakers all claim under that lock) */
    WEFT__SW_EXIT,       /* release the stack, complete the join */
};

struct weft__worker {
    /* Hot, owner-only. */
    struct weft__task *current;          /* running task, NULL in the loop */
    struct weft__task *switch_from;      /* see enum weft__switch_action */
    enum weft__switch_action switch_action;
    struct weft__spinlock *switch_unlock;/* for WEFT__SW_PARK_UNLOCK */
    uint32_t fair_left;                  /* switches until the global queue's turn */
    uint32_t lifo_streak;
    struct weft__task *yield_head, *yield_tail;  /* owner-only FIFO */
    struct weft__deque deque;
    /* The LIFO slot: the task most recently woken by this worker runs next
     * (message ping-pong stays on one core). Thieves may take it too, with
     * the same exchange, so a task parked there is never stranded. */
    _Atomic(struct weft__task *) lifo;
    struct weft__ctx sched_ctx;          /* the worker thread's own stack */
    struct weft__runtime *rt;
    unsigned index;
    bool searching;
    uint32_t spin_credit;                /* see search() */
    uint32_t spin_skipped;
    uint64_t rng;
    uint64_t id_seq;
    struct weft__objpool tcbs;           /* this worker's TCBs */
    struct weft__stack_pool stacks;
    struct weft__timer_heap timers;
    struct weft__ring ring;
    struct weft__worker_stats stats;
    pthread_t thread;
    int init_error;
    void *sched_stack_bottom;            /* for ASan's fiber switches */
    size_t sched_stack_size;
    void *sched_fiber;                   /* for TSan's */
    void *sched_asan_fake;
};

struct weft__runtime {
    unsigned nworkers;
    size_t stack_size;
    bool pin;
    struct weft__worker *workers;        /* nworkers of them */
    struct weft__inject inject;
    struct weft__idle idle;
    _Atomic bool shutdown;               /* main returned: cancel everything */
    _Atomic bool stop;                   /* all tasks gone: workers exit */
    _Atomic(struct weft__waiter *) quiesce; /* root waits here for live == 0 */
    _Atomic int quiesce_pairing;         /* weft__storeload's, for quiesce */
    struct weft__spinlock foreign_lock;  /* guards foreign_tcbs */
    struct weft__objpool foreign_tcbs;   /* TCBs spawned by foreign threads */
    _Atomic uint64_t foreign_id_seq;
    uint64_t id_gen;                     /* this run's number << WEFT__ID_GEN_SHIFT */
    _Atomic uint64_t foreign_spawned;
    struct weft__waiter *quiesce_waiter; /* storage for `quiesce` (runtime.c) */
    _Atomic unsigned started;            /* workers that finished setup */
    struct weft__task *root;
    weft_task_fn main_fn;
    void *main_arg;
    void *main_result;
    int main_error;
};

/*
 * The worker this thread is, or NULL on a foreign thread. Opaque to the
 * compiler on purpose: a task may resume on another thread after any
 * switch, so the thread-local must be re-read, never cached (task.h) — and
 * an optimiser that sees a thread-local's address may compute it once per
 * function. On x86-64 it is one volatile load through %fs (initial-exec
 * TLS, which the linker turns into local-exec in an executable; a shared
 * library holding weft needs static TLS space, as any initial-exec user); the
 * "memory" clobber keeps it from moving across a switch. Elsewhere it is a
 * call the compiler cannot see into.
 */
extern __thread struct weft__worker *weft__tls_worker
    __attribute__((tls_model("initial-exec")));

#if defined(__x86_64__) && defined(__LP64__) && defined(__GNUC__)
#define WEFT__TLS_ASM 1
static inline struct weft__worker *weft__worker_current(void)
{
    struct weft__worker *w;
    __asm__ volatile("movq weft__tls_worker@gottpoff(%%rip), %0\n\t"
                     "movq %%fs:(%0), %0" : "=r"(w) : : "memory");
    return w;
}
#else
#define WEFT__TLS_ASM 0
struct weft__worker *weft__worker_current(void);
#endif

/* The runtime running in this process, or NULL. */
struct weft__runtime *weft__runtime_get(void);

/* For foreign threads: the running runtime, held alive (a read lock) until
 * weft__runtime_leave(); NULL (nothing held) when none runs or it is
 * shutting down. */
struct weft__runtime *weft__runtime_enter(void);
/* Like enter, but holds the lock even while shutting down (or with no
 * runtime: returns NULL, still holding it). Always pair with leave. */
struct weft__runtime *weft__runtime_hold(void);
void weft__runtime_leave(void);

/* Make @t runnable from the calling context: the LIFO slot when @lifo and
 * the caller is a worker of @rt, else the caller's deque, else (foreign
 * thread) the injection queue; wakes a parked worker when useful. */
void weft__sched_ready(struct weft__runtime *rt, struct weft__task *t, bool lifo);

/* Put @t in worker @w's empty LIFO slot, to run next there; false (nothing
 * done) if the slot is taken. @w must be the calling thread's worker.
 * Only the owner puts; thieves only take (exchange with NULL). So an empty
 * slot can be filled with a plain store-release (it publishes @t, and what
 * its waker wrote for it, to a thief's acquiring exchange), saving a locked
 * instruction on every ping-pong wake; a full slot needs the exchange of
 * weft__sched_ready, as a thief may be taking the old occupant. No other
 * worker needs waking: this one runs @t next. */
static inline bool weft__sched_lifo_put(struct weft__worker *w, struct weft__task *t)
{
    if (atomic_load_explicit(&w->lifo, memory_order_relaxed))
        return false;
    atomic_store_explicit(&w->lifo, t, memory_order_release);
    return true;
}

/* Switch from the running task to the next runnable one (or the worker's
 * loop), recording @action for the next context to finish. Task only. */
void weft__sched_switch(struct weft__worker *w, enum weft__switch_action action);

/* Finish the previous context's switch (see enum weft__switch_action).
 * Every context calls it right after it resumes. */
void weft__sched_after_switch(struct weft__worker *w);

/* The worker thread's body. */
void *weft__worker_main(void *worker);

/* Wake every parked worker (shutdown). Any thread. */
void weft__sched_wake_all(struct weft__runtime *rt);

/* TCB allocation (task.c). */
struct weft__task *weft__tcb_alloc(struct weft__runtime *rt, struct weft__worker *w);
void weft__tcb_free(struct weft__runtime *rt, struct weft__task *t);
void weft__tcb_free_all(struct weft__runtime *rt);

/* Tasks spawned and not yet finished (the root task excluded), from the
 * per-worker counters. Exact when no task spawns or finishes meanwhile;
 * never 0 while a task is live. Any thread. */
int64_t weft__runtime_live(struct weft__runtime *rt);

/* Cancel every live task (shutdown; task.c). Any thread. */
void weft__runtime_cancel_all(struct weft__runtime *rt);
/* The objpool initialiser of TCBs (task.c). */
void weft__tcb_init(void *obj);

#endif
