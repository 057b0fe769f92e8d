/*
 * worker.c — the scheduler: one worker thread per core running tasks;
 * switching away from a task (yield, park, exit).
 *
 * Glossary
 *   task    a function with its own stack, suspended and resumed by weft
 *           (task.h). Cheap: a 128-byte control block until it first runs.
 *   worker  an OS thread pinned (optionally) to a core; it owns a deque of
 *           runnable tasks, a LIFO slot, a stack pool, a timer heap and an
 *           io_uring ring.
 *   ring    the worker's io_uring: its IO, its sleep and its doorbell.
 *   tick    one scheduling decision on a worker.
 *
 * Where a runnable task waits, in the order a worker looks:
 *   1. every WEFT__FAIR_TICKS ticks, the global injection queue first, so
 *      tasks from foreign threads and overflow cannot starve;
 *   2. the LIFO slot — the task this worker most recently woke (a message's
 *      receiver runs right after its sender, while the data is in cache);
 *      at most WEFT__LIFO_MAX times in a row, so a ping-pong pair cannot
 *      starve the rest;
 *   3. its own deque (Chase–Lev, deque.h), newest first;
 *   4. its yield FIFO (tasks that called weft_yield run after the others);
 *   5. the injection queue, taking a fair share in one batch;
 *   6. other workers: a searcher steals half of a random victim's deque,
 *      one item at a time (a batch steal is not safe on Chase–Lev), for
 *      WEFT__STEAL_ROUNDS - 1 rounds, then watches the queues for up to
 *      WEFT__SPIN_NS (parking and being woken costs far more), then a last
 *      round that also takes the victims' LIFO slots (earlier, a victim is
 *      about to run that task itself);
 *   7. park in the ring until a wake-up, a timer or IO (park.h has the
 *      protocol that keeps wake-ups from being lost).
 *
 * Switching. A task that yields, parks or exits picks its successor itself
 * (2-4 above, without stealing) and jumps straight to it: one context switch
 * per task switch, not two. Only every WEFT__FAIR_TICKS ticks, or when the
 * local queues are empty, does it go back to the worker's own stack to run
 * the loop (timers, IO, the global queue, stealing, parking).
 * The switching context cannot finish its own bookkeeping — it is still on
 * the stack it is leaving — so it records *why* it left (switch_action) and
 * the context that resumes finishes it (weft__sched_after_switch): mark the
 * old task SUSPENDED only once its registers are saved, or return its stack
 * to the pool once nothing runs on it.
 *
 * Thread-local state: a task can resume on another worker after any switch,
 * so nothing here keeps a worker pointer across weft__ctx_switch(); each
 * resumption re-reads it through the opaque weft__worker_current().
 *
 * Rejected: ucontext (a system call per switch to save the signal mask);
 * a growing deque (needs memory reclamation for old arrays — a full deque
 * moves half its tasks to the global queue instead, as Go and Tokio do);
 * an unstealable LIFO slot (tokio#4941: a task stranded behind a long
 * poll); waking a worker for every new task (a ring round trip costs tens
 * of microseconds; a searching worker finds the task anyway).
 */
#define _GNU_SOURCE
#include "sched/worker.h"
#include "sched/fence.h"
#include "sched/overflow.h"
#include "sched/sanitizer.h"
#include "sched/wait.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* Read by weft__worker_current() (worker.h) in assembly, hence a global
 * symbol; `used` keeps link-time optimisation from renaming it. */
__attribute__((used, visibility("hidden"), tls_model("initial-exec")))
__thread struct weft__worker *weft__tls_worker;

#define STAT_ADD(w, field, n)                                                  \
    atomic_store_explicit(&(w)->stats.field,                                   \
        atomic_load_explicit(&(w)->stats.field, memory_order_relaxed) + (n),   \
        memory_order_relaxed)   /* owner-only writer: no RMW needed */

#if !WEFT__TLS_ASM
__attribute__((noinline)) struct weft__worker *weft__worker_current(void)
{
    struct weft__worker *w = weft__tls_worker;
    /* Opaque to the optimiser: the value must be re-read after every
     * switch, never reused from before it (the thread may have changed). */
    __asm__ volatile("" : "+r"(w) : : "memory");
    return w;
}
#endif

static uint32_t rng_next(struct weft__worker *w)
{
    /* xorshift64*: victim selection only. */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return (uint32_t)((w->rng * 0x2545F4914F6CDD1Dull) >> 32);
}

/* ---- making tasks runnable ------------------------------------------- */

static void notify(struct weft__runtime *rt, struct weft__worker *from)
{
    int i = weft__idle_pick(&rt->idle);
    if (i < 0)
        return;
    if (from)
        STAT_ADD(from, wakeups, 1);
    weft__ring_wake(&rt->workers[i].ring, from ? &from->ring : NULL);
}

/* The deque is full: move its older half and @t to the injection queue, in
 * FIFO order, with one lock round trip. */
static void overflow(struct weft__worker *w, struct weft__task *t)
{
    struct weft__task *head = NULL, *tail = NULL;
    size_t n = 0;
    for (unsigned i = 0; i < WEFT__DEQUE_CAP / 2; i++) {
        void *x;
        int rc = weft__deque_steal(&w->deque, &x);
        if (rc == -EAGAIN)
            break;
        if (rc)
            continue;       /* lost to a thief: it has that one */
        struct weft__task *s = x;
        s->next = NULL;
        if (tail)
            tail->next = s;
        else
            head = s;
        tail = s;
        n++;
    }
    t->next = NULL;
    if (tail)
        tail->next = t;
    else
        head = t;
    weft__inject_push(&w->rt->inject, head, t, n + 1);
    STAT_ADD(w, overflowed, n + 1);
}

static void push_local(struct weft__worker *w, struct weft__task *t)
{
    if (!weft__deque_push(&w->deque, t))
        overflow(w, t);
}

void weft__sched_ready(struct weft__runtime *rt, struct weft__task *t, bool lifo)
{
    struct weft__worker *w = weft__worker_current();
    if (w && w->rt == rt) {
        if (lifo) {
            if (weft__sched_lifo_put(w, t))
                return;
            if (rt->nworkers > 1) {
                t = atomic_exchange_explicit(&w->lifo, t, memory_order_acq_rel);
                if (!t)
                    return;
            } else {            /* no thief (take_own_lifo): plain swap */
                struct weft__task *old = atomic_load_explicit(&w->lifo, memory_order_relaxed);
                atomic_store_explicit(&w->lifo, t, memory_order_relaxed);
                t = old;
            }
        }
        push_local(w, t);
        if (rt->nworkers > 1)
            notify(rt, w);
        return;
    }
    weft__inject_push(&rt->inject, t, t, 1);
    notify(rt, NULL);
}

void weft__sched_wake_all(struct weft__runtime *rt)
{
    struct weft__worker *self = weft__worker_current();
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (&rt->workers[i] != self)
            weft__ring_wake(&rt->workers[i].ring, self ? &self->ring : NULL);
}

/* ---- picking the next task -------------------------------------------- */

static struct weft__task *take_lifo(struct weft__worker *w)
{
    /* relaxed peek first: the exchange is a locked instruction. acquire on
     * the exchange pairs with the release in weft__sched_ready. */
    if (!atomic_load_explicit(&w->lifo, memory_order_relaxed))
        return NULL;
    return atomic_exchange_explicit(&w->lifo, NULL, memory_order_acquire);
}

/* The owner's take. With one worker there is no thief, so the slot is
 * this thread's alone and plain accesses do (relaxed: nobody else reads
 * it); that spares a locked instruction on every ping-pong switch. */
static struct weft__task *take_own_lifo(struct weft__worker *w)
{
    if (w->rt->nworkers > 1)
        return take_lifo(w);
    struct weft__task *t = atomic_load_explicit(&w->lifo, memory_order_relaxed);
    if (t)
        atomic_store_explicit(&w->lifo, NULL, memory_order_relaxed);
    return t;
}

/* Steps 2-4 of the order above: owner only, never blocks. */
static inline __attribute__((always_inline)) struct weft__task *pick_local(struct weft__worker *w)
{
    struct weft__task *t;
    if (w->lifo_streak < WEFT__LIFO_MAX && (t = take_own_lifo(w))) {
        w->lifo_streak++;
        return t;
    }
    w->lifo_streak = 0;
    if ((t = weft__deque_take(&w->deque)))
        return t;
    if ((t = w->yield_head)) {
        w->yield_head = t->next;
        if (!w->yield_head)
            w->yield_tail = NULL;
        return t;
    }
    return take_own_lifo(w);
}

/* Step 5: a fair share of the injection queue; the first task is returned,
 * the rest go to the local deque. */
static struct weft__task *take_inject(struct weft__worker *w, size_t max)
{
    struct weft__runtime *rt = w->rt;
    size_t len = weft__inject_len(&rt->inject);
    if (!len)
        return NULL;
    size_t n = len / rt->nworkers + 1;
    if (n > max)
        n = max;
    struct weft__task *head;
    n = weft__inject_pop(&rt->inject, n, &head);
    if (!n)
        return NULL;
    STAT_ADD(w, injected, n);
    struct weft__task *first = head, *rest = NULL;
    /* The rest pushed last first, so the newest-first deque gives them
     * back in queue order. */
    for (struct weft__task *t = first->next, *nx; t; t = nx) {
        nx = t->next;
        t->next = rest;
        rest = t;
    }
    for (struct weft__task *t = rest, *nx; t; t = nx) {
        nx = t->next;
        push_local(w, t);
    }
    /* A batch beyond the one we run is stealable now: as for any push,
     * let an idle worker know (a burst from foreign threads spreads). */
    if (n > 1 && rt->nworkers > 1)
        notify(rt, w);
    return first;
}

/* Step 6: steal half of @v's deque (one CAS per task, see deque.h). */
static struct weft__task *steal_from(struct weft__worker *w, struct weft__worker *v,
                                     bool last_round)
{
    int64_t len = weft__deque_len(&v->deque);
    struct weft__task *first = NULL;
    int64_t want = (len + 1) / 2, got = 0;
    for (int64_t tries = 0; got < want && tries < 2 * want; tries++) {
        void *x;
        int rc = weft__deque_steal(&v->deque, &x);
        if (rc == -EAGAIN)
            break;
        if (rc)
            continue;       /* -EBUSY: lost a race, try again */
        got++;
        if (!first)
            first = x;
        else
            push_local(w, x);
    }
    if (got)
        STAT_ADD(w, steals, (uint64_t)got);
    if (!first && last_round && (first = take_lifo(v)))
        STAT_ADD(w, steals, 1);
    return first;
}

static struct weft__task *steal_round(struct weft__worker *w, bool last)
{
    struct weft__runtime *rt = w->rt;
    unsigned n = rt->nworkers, start = rng_next(w) % n;
    for (unsigned i = 0; i < n; i++) {
        struct weft__worker *v = &rt->workers[(start + i) % n];
        if (v == w)
            continue;
        struct weft__task *t = steal_from(w, v, last);
        if (t)
            return t;
    }
    return take_inject(w, WEFT__DEQUE_CAP / 2);
}

/* Any deque or the injection queue non-empty? Plain loads: a hint. */
static bool work_hint(struct weft__runtime *rt)
{
    if (weft__inject_len(&rt->inject))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++)
        if (weft__deque_len(&rt->workers[i].deque) > 0)
            return true;
    return false;
}

/*
 * Steal for WEFT__STEAL_ROUNDS rounds, then keep watching the queues for
 * up to WEFT__SPIN_NS before giving up: parking and being woken again by
 * another thread costs a ring round trip (tens of microseconds on VMs), far
 * more than a short spin when a producer is about to make more work.
 *
 * The watch is adaptive, because it burns CPU that an IO-bound server is
 * charged for. A watch that ends in work from the queues pays (it saved
 * that round trip), and so does one that ends in a completion on our own
 * ring sooner than WEFT__SPIN_RING_NS (about what sleeping in the kernel
 * and being woken by the completion costs). A later completion would have
 * woken a parked worker just as well: that watch was waste. After
 * WEFT__SPIN_CREDIT such watches in a row a worker stops watching, except
 * once every WEFT__SPIN_PROBE searches, so that it notices when watching
 * pays again. A watch that times out changes nothing: parking then is
 * right either way, and an idle worker that keeps watching is what spares
 * producers the cost of waking it (notify() skips the wake while a worker
 * searches). Measured on the echo server (1 worker, 50 connections): the
 * watch cost 6% of the server's CPU per request, waiting for the next
 * request to arrive on its ring.
 */
static struct weft__task *search(struct weft__worker *w)
{
    struct weft__task *t;
    STAT_ADD(w, steal_rounds, 1);
    for (unsigned round = 0; round < WEFT__STEAL_ROUNDS - 1; round++)
        if ((t = steal_round(w, false)))
            return t;
    if (w->spin_credit == 0 && ++w->spin_skipped % WEFT__SPIN_PROBE != 0)
        return steal_round(w, true);
    int64_t start = weft_now(), until = start + WEFT__SPIN_NS;
    for (unsigned i = 1;; i++) {
        if (work_hint(w->rt) && (t = steal_round(w, false))) {
            w->spin_credit = WEFT__SPIN_CREDIT;
            return t;
        }
        /* Completions on our own ring (or held for our next kernel entry)
         * wake tasks here: go and reap them rather than watch on. */
        if (weft__ring_pending(&w->ring)) {
            if (weft_now() - start < WEFT__SPIN_RING_NS)
                w->spin_credit = WEFT__SPIN_CREDIT;
            else if (w->spin_credit)
                w->spin_credit--;
            return NULL;
        }
        weft__cpu_relax();
        if (i % 32 == 0 && weft_now() >= until)
            break;
    }
    return steal_round(w, true);   /* and the victims' LIFO slots */
}

/* W2 of the parking protocol (park.h): is there anything to run? The
 * loads that pair with a producer's P2 fence are seq_cst (park.h). */
static bool work_visible(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    if (atomic_load_explicit(&rt->inject.len, memory_order_seq_cst) ||
        atomic_load_explicit(&rt->stop, memory_order_acquire))
        return true;
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct weft__deque *q = &rt->workers[i].deque;
        if (atomic_load_explicit(&q->bottom, memory_order_seq_cst) >
            atomic_load_explicit(&q->top, memory_order_seq_cst))
            return true;
    }
    if (atomic_load_explicit(&w->lifo, memory_order_relaxed))
        return true;
    return weft__timer_earliest(&w->timers) <= weft_now();
}

static void park(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    weft__idle_enter(&rt->idle, w->index);                    /* W1 */
    if (!work_visible(w)) {                                   /* W2 */
        STAT_ADD(w, parks, 1);
        weft__ring_wait(&w->ring, weft__timer_earliest(&w->timers));
    }
    if (!weft__idle_leave(&rt->idle, w->index))
        w->searching = true;   /* a waker counted us as a searcher */
}

static void maintain(struct weft__worker *w)
{
    if (weft__timer_earliest(&w->timers) != INT64_MAX)
        weft__timer_run(&w->timers, weft_now());
    weft__ring_poll(&w->ring);
}

/* The worker loop's search for the next task; NULL when the runtime stops. */
static struct weft__task *find_runnable(struct weft__worker *w)
{
    struct weft__runtime *rt = w->rt;
    for (;;) {
        maintain(w);
        struct weft__task *t = NULL;
        if (w->fair_left == 0) {                                 /* step 1 */
            w->fair_left = WEFT__FAIR_TICKS;
            t = take_inject(w, 1);
        }
        if (!t)
            t = pick_local(w);                                   /* 2-4 */
        if (!t)
            t = take_inject(w, WEFT__DEQUE_CAP / 2);             /* 5 */
        if (!t) {                                                /* 6 */
            /* With one worker there is nobody to steal from, but the
             * watch still pays: a foreign thread's wake-up lands in the
             * injection queue, and spinning for it beats a ring round
             * trip (the handoff benchmark). */
            if (!w->searching)
                w->searching = weft__idle_search_begin(&rt->idle);
            if (w->searching)
                t = search(w);
        }
        if (w->searching) {
            w->searching = false;
            /* The last searcher to find work wakes another: tasks come in
             * bursts, and nobody else is looking now. */
            if (weft__idle_search_end(&rt->idle) && t)
                notify(rt, w);
        }
        if (t)
            return t;
        if (atomic_load_explicit(&rt->stop, memory_order_acquire))
            return NULL;
        if (weft__ring_pending(&w->ring))
            continue;          /* the search saw completions: reap first */
        park(w);                                                 /* 7 */
    }
}

/* ---- switching --------------------------------------------------------- */

/* First run of @t: give it a stack. A task that could not get one ends at
 * once with -ENOMEM (returns false). */
static __attribute__((noinline)) bool prepare_first_run(struct weft__worker *w,
                                                        struct weft__task *t)
{
    size_t size = t->stack & ~(uintptr_t)1;
    struct weft__stack *s = weft__stack_get(&w->stacks, size ? size : w->stacks.size);
    if (!s) {
        t->stack = 0;
        weft__spin_lock(&t->lock);     /* weft_task_name reads flags under it */
        t->flags |= WEFT__TF_NOSTACK;
        weft__spin_unlock(&t->lock);
        t->result = NULL;
        weft__task_exit_finish(t);
        return false;
    }
    t->stack = (uintptr_t)s;
    weft__ctx_make(&t->ctx, s->base, weft__stack_usable(s), weft__task_entry, t,
                   (void *)t->fn);   /* fn and ctx share a field */
    /* Starting during shutdown: start cancelled (runtime.c, root_main). */
    if (atomic_load_explicit(&w->rt->shutdown, memory_order_relaxed))
        atomic_store_explicit(&t->cancelled, true, memory_order_relaxed);
#ifdef WEFT_TSAN
    WEFT__TSAN_NAME(s->tsan_fiber, (t->flags & WEFT__TF_NAMED) ? weft__task_name(t)
                                                               : "weft task");
#endif
    return true;
}

/* Whether @t can be switched to (it has a stack, or just got one). */
static inline bool prepare(struct weft__worker *w, struct weft__task *t)
{
    return !(t->stack & 1) || prepare_first_run(w, t);
}

static void jump(struct weft__worker *w, struct weft__ctx *from, void **fake_save,
                 struct weft__task *next)
{
    w->current = next;
    /* relaxed: no waker acts on a task that has not parked, and no claim
     * can change a queued task's claim bits (none is open: task.h), so a
     * plain read-modify-write loses nothing. */
    uint32_t st = atomic_load_explicit(&next->state, memory_order_relaxed);
    atomic_store_explicit(&next->state, (st & WEFT__TC_MASK) | WEFT__TS_RUNNING,
                          memory_order_relaxed);
    STAT_ADD(w, switches, 1);
#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
    struct weft__stack *s = weft__task_stack(next);
#endif
    WEFT__ASAN_START(fake_save, s->base, weft__stack_usable(s));
#ifdef WEFT_TSAN
    WEFT__TSAN_SWITCH(s->tsan_fiber);
#endif
    weft__ctx_switch(from, &next->ctx);
}

/* The end of a held park (WEFT__SW_PARK_UNLOCK) where the heavy fence
 * exists, if the word @s read from @prev allows it: mark @prev SUSPENDED
 * without a locked instruction. Nobody else writes the word now: every
 * waker claims under the lock still held, and a canceller claims only
 * SUSPENDED words (task.c). So a plain store-release publishes the saved
 * context. The cancel flag is then read against the canceller's heavy
 * fence (fence.h): either its second look at the word sees SUSPENDED and
 * it claims, or we see its flag here. False (nothing done): take the
 * general path (the task woke itself before it left, or no fence). */
static inline bool park_held(struct weft__task *prev, uint32_t s)
{
    if (!weft__fence_asym || s != (WEFT__TS_RUNNING | WEFT__TC_OPEN))
        return false;
    atomic_store_explicit(&prev->state, WEFT__TS_SUSPENDED | WEFT__TC_OPEN,
                          memory_order_release);
    weft__fence_light();
    enum weft__claim c;
    if (atomic_load_explicit(&prev->cancelled, memory_order_relaxed) &&
        (c = weft__task_claim_parked(prev, WEFT__TC_CANCELLED)))
        weft__task_claimed(prev, c);
    return true;
}

/* weft__sched_after_switch with its most frequent case inline: the end of
 * a held park (a channel hand-off). */
static inline __attribute__((always_inline)) void after_switch(struct weft__worker *w)
{
    struct weft__task *prev = w->switch_from;
    if (!prev)
        return;
    /* relaxed: park_held proceeds only on RUNNING, which no other thread
     * wrote; the general path reads the word again with acquire. */
    if (w->switch_action == WEFT__SW_PARK_UNLOCK &&
        park_held(prev, atomic_load_explicit(&prev->state, memory_order_relaxed))) {
        w->switch_from = NULL;
        weft__spin_unlock(w->switch_unlock);
        return;
    }
    weft__sched_after_switch(w);
}

/* The body of every switch away from the running task. Inlined into its
 * three callers (yield, park, and the rest) so that a yield or a park costs
 * one call frame, not two: on the ping-pong and yield paths the frame's
 * register saves are a good part of the switch. */
static inline __attribute__((always_inline)) void
switch_away(struct weft__worker *w, enum weft__switch_action action)
{
    struct weft__task *prev = w->current, *next = NULL;
    if (--w->fair_left != 0) {   /* at 0 the loop takes the global queue's turn */
        while ((next = pick_local(w)) && next != prev) {
            if (!(next->stack & 1))     /* has its stack */
                break;
            /* A first run may end the new task at once (no stack), and its
             * join may run code that takes any lock: not with one held. */
            if (action == WEFT__SW_PARK_UNLOCK) {
                weft__spin_unlock(w->switch_unlock);
                action = WEFT__SW_PARK;
            }
            if (prepare_first_run(w, next))
                break;
        }
    }
    if (next == prev) {
        if (action == WEFT__SW_PARK_UNLOCK)     /* not reached: a parking */
            weft__spin_unlock(w->switch_unlock); /* task is in no queue */
        return;                  /* a yield with nothing else to run */
    }
    /* A yield leaves nothing for the next context to finish (the task is
     * already in this worker's private yield FIFO). */
    w->switch_from = action == WEFT__SW_NONE ? NULL : prev;
    w->switch_action = action;
#ifdef WEFT_ASAN
    void **fake = action == WEFT__SW_EXIT ? NULL : &prev->asan_fake_stack;
#else
    void **fake = NULL;
#endif
    if (next) {
        jump(w, &prev->ctx, fake, next);
    } else {
        w->current = NULL;
        WEFT__ASAN_START(fake, w->sched_stack_bottom, w->sched_stack_size);
        WEFT__TSAN_SWITCH(w->sched_fiber);
        weft__ctx_switch(&prev->ctx, &w->sched_ctx);
    }
    (void)fake;
    /* Resumed — possibly on another thread: re-read the worker. */
    w = weft__worker_current();
    WEFT__ASAN_FINISH(prev->asan_fake_stack);
    after_switch(w);
}

void weft__sched_switch(struct weft__worker *w, enum weft__switch_action action)
{
    switch_away(w, action);
}

/* ---- suspending the running task (task.h, weft.h) ---------------------- */

/* Woken before we even left (the wake came between the wait's setup and
 * the park): take the wake and keep running. acquire: pairs with the
 * waker's release, so its writes (the wait's result) are visible. */
static inline bool take_early_wake(struct weft__task *t)
{
    uint32_t s = atomic_load_explicit(&t->state, memory_order_relaxed);
    return (s & WEFT__TS_MASK) == WEFT__TS_NOTIFIED &&
           atomic_compare_exchange_strong_explicit(&t->state, &s,
                                                   (s & WEFT__TC_MASK) | WEFT__TS_RUNNING,
                                                   memory_order_acquire, memory_order_relaxed);
}

void weft__task_park(void)
{
    struct weft__worker *w = weft__worker_current();
    if (take_early_wake(w->current))
        return;
    switch_away(w, WEFT__SW_PARK);
}

void weft__task_park_unlock(struct weft__spinlock *lock)
{
    struct weft__worker *w = weft__worker_current();
    /* An early wake can only be our own here: the deadline had passed, or
     * we were cancelled, before the wait began. */
    if (take_early_wake(w->current)) {
        weft__spin_unlock(lock);
        return;
    }
    w->switch_unlock = lock;
    switch_away(w, WEFT__SW_PARK_UNLOCK);
}

int weft_yield(void)
{
    struct weft__worker *w = weft__worker_current();
    struct weft__task *t = w ? w->current : NULL;
    if (!t) {
        sched_yield();
        return 0;
    }
    /* A cancelled task still yields (then reports -ECANCELED): a loop
     * that ignores the result must not keep the rest of this worker, or
     * the shutdown waiting for it, from running. */
    int rc = atomic_load_explicit(&t->cancelled, memory_order_relaxed) ? -ECANCELED : 0;
    /* The yield FIFO is this worker's alone, and only this thread pops it
     * after the switch below completes, so queueing before the switch is
     * safe (unlike a stealable queue). */
    t->next = NULL;
    if (w->yield_tail)
        w->yield_tail->next = t;
    else
        w->yield_head = t;
    w->yield_tail = t;
    switch_away(w, WEFT__SW_NONE);
    return rc;
}

/* Finish the park of @prev, whose context is now saved: mark it SUSPENDED,
 * or queue it again if it was woken meanwhile. @held: the wait's lock is
 * still held (WEFT__SW_PARK_UNLOCK), so no waker can have claimed it. */
static inline void finish_park(struct weft__worker *w, struct weft__task *prev, bool held)
{
    /* acquire, here and on a failed CAS: a NOTIFIED read pairs with the
     * waker's release, so its writes (the wait's result) are visible when
     * the task runs again. */
    uint32_t s = atomic_load_explicit(&prev->state, memory_order_acquire);
    enum weft__claim c;
    if (held && park_held(prev, s))
        return;
    for (;;) {
        if ((s & WEFT__TS_MASK) == WEFT__TS_NOTIFIED) {
            /* A wake came first: run the task again. relaxed store:
             * nobody else writes the word until it parks again. */
            atomic_store_explicit(&prev->state, (s & WEFT__TC_MASK) | WEFT__TS_RUNNABLE,
                                  memory_order_relaxed);
            push_local(w, prev);
            if (w->rt->nworkers > 1)
                notify(w->rt, w);
            return;
        }
        /* seq_cst (so release): the saved context happens-before any
         * waker that sees SUSPENDED (its acquire CAS in weft__task_wake);
         * and this CAS is in the total order the cancellation protocol
         * relies on (task.h). It fails when a claim or a wake changed the
         * word meanwhile: look again. */
        if (atomic_compare_exchange_weak_explicit(&prev->state, &s,
                (s & WEFT__TC_MASK) | WEFT__TS_SUSPENDED,
                memory_order_seq_cst, memory_order_acquire)) {
            /* A cancellable wait, still open: a cancel that came before
             * the wait opened set the flag first. Claim only the parked
             * wait: if we are slow, the task may have been woken, run on
             * and opened another wait, whose word a plain store may be
             * about to write (a held wait); that wait sees the flag itself. */
            if ((s & WEFT__TC_MASK) == WEFT__TC_OPEN &&
                atomic_load_explicit(&prev->cancelled, memory_order_seq_cst) &&
                (c = weft__task_claim_parked(prev, WEFT__TC_CANCELLED)))
                weft__task_claimed(prev, c);
            return;
        }
    }
}

void weft__sched_after_switch(struct weft__worker *w)
{
    struct weft__task *prev = w->switch_from;
    if (!prev)
        return;
    w->switch_from = NULL;
    switch (w->switch_action) {
    case WEFT__SW_NONE:
        break;
    case WEFT__SW_PARK:
        finish_park(w, prev, false);
        break;
    case WEFT__SW_PARK_UNLOCK:
        finish_park(w, prev, true);
        /* release: wakers that take the lock now see SUSPENDED (or the
         * task queued again). */
        weft__spin_unlock(w->switch_unlock);
        break;
    case WEFT__SW_EXIT:
        weft__stack_put(&w->stacks, weft__task_stack(prev));
        prev->stack = 0;
        weft__task_exit_finish(prev);
        break;
    }
}

/* ---- the worker thread ------------------------------------------------ */

static void pin(struct weft__worker *w)
{
    cpu_set_t allowed, one;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0)
        return;
    int nth = (int)(w->index % (unsigned)CPU_COUNT(&allowed));
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
        if (CPU_ISSET(cpu, &allowed) && nth-- == 0) {
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
            return;
        }
    }
}

static void record_thread_stack(struct weft__worker *w)
{
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &w->sched_stack_bottom, &w->sched_stack_size);
        pthread_attr_destroy(&attr);
    }
    w->sched_fiber = WEFT__TSAN_CURRENT();
}

void *weft__worker_main(void *arg)
{
    struct weft__worker *w = arg;
    struct weft__runtime *rt = w->rt;
    weft__tls_worker = w;
    /* A write to a pipe or socket whose reader has gone raises SIGPIPE in
     * the thread that issued it, and io_uring issues most writes inline
     * on this thread (io-wq threads block every signal). Blocked here, it
     * stays pending, harmlessly, and the write returns -EPIPE: no task's
     * write can kill the process (weft.h, IO). */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
    void *altstack = weft__overflow_thread_begin();
    if (rt->pin)
        pin(w);
    record_thread_stack(w);
    /* The ring must be created by the thread that submits to it
     * (IORING_SETUP_SINGLE_ISSUER). */
    w->init_error = weft__ring_init(&w->ring, WEFT__RING_ENTRIES);
    atomic_fetch_add_explicit(&rt->started, 1, memory_order_acq_rel);
    /* Wait until every worker has its ring (another worker may wake us
     * through it as soon as the root task is queued). */
    while (atomic_load_explicit(&rt->started, memory_order_acquire) < rt->nworkers + 1)
        sched_yield();
    if (!atomic_load_explicit(&rt->stop, memory_order_acquire)) {
        struct weft__task *t;
        while ((t = find_runnable(w))) {
            if (!prepare(w, t))
                continue;
            jump(w, &w->sched_ctx, &w->sched_asan_fake, t);
            WEFT__ASAN_FINISH(w->sched_asan_fake);
            weft__sched_after_switch(w);
        }
    }
    if (!w->init_error)
        weft__ring_thread_end(&w->ring);
    weft__overflow_thread_end(altstack);
    weft__tls_worker = NULL;
    return NULL;
}
