/*
 * runtime.c — weft_run: bring the workers up, run the main task, cancel
 * what is left when it returns, tear everything down; plus the clock and
 * the counters.
 */
#define _GNU_SOURCE
#include "sched/overflow.h"
#include "sched/fence.h"
#include "sched/worker.h"
#include "sched/wait.h"
#include "alloc/mem.h"

#include <errno.h>
#include <sched.h>
#include <string.h>
#include <time.h>

/* The runtime running in this process. Foreign threads reach it under
 * g_rt_lock (read), which weft_run and the root task take for writing
 * before they stop or free it. */
static struct weft__runtime *_Atomic g_rt;
/* Writer-preferring: a steady stream of foreign calls must not starve the
 * root task's final check or weft_run's teardown. */
static pthread_rwlock_t g_rt_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
static pthread_mutex_t g_run_lock = PTHREAD_MUTEX_INITIALIZER;

/* How often the shutdown sequence re-walks the TCBs for tasks it missed. */
#define WEFT__SHUTDOWN_RECHECK_NS 10000000

int64_t weft_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t weft_deadline_in(int64_t ns)
{
    int64_t now = weft_now();
    if (ns > 0 && ns >= WEFT_NEVER - now)
        return WEFT_NEVER;
    return now + ns;
}

struct weft__runtime *weft__runtime_get(void)
{
    /* acquire: pairs with the release store in weft_run, so the runtime's
     * fields are initialised when seen. */
    return atomic_load_explicit(&g_rt, memory_order_acquire);
}

/*
 * How many holds of g_rt_lock this (foreign) thread has open. The lock is
 * writer-preferring and not recursive: a second rdlock by a thread that
 * already holds it would block behind a waiting writer, which waits for
 * that very thread — a deadlock. Holds nest (a foreign weft_task_cancel
 * holds the runtime and its cancellation wakes a task, which holds it to
 * queue it; a foreign group cancel holds it around task cancels), so only
 * the outermost hold takes the read lock and only the outermost leave
 * drops it; nested ones just count. Thread-local, and only foreign threads
 * hold the runtime (workers never do), so a task never carries the count
 * from one thread to another.
 */
static _Thread_local unsigned tl_rt_holds;

struct weft__runtime *weft__runtime_hold(void)
{
    if (tl_rt_holds++ == 0)
        pthread_rwlock_rdlock(&g_rt_lock);
    return weft__runtime_get();
}

void weft__runtime_leave(void)
{
    if (--tl_rt_holds == 0)
        pthread_rwlock_unlock(&g_rt_lock);
}

struct weft__runtime *weft__runtime_enter(void)
{
    struct weft__runtime *rt = weft__runtime_hold();
    /* Once main has returned, foreign threads are turned away: otherwise a
     * thread spawning in a loop would keep the shutdown from ever ending. */
    if (rt && !atomic_load_explicit(&rt->shutdown, memory_order_acquire))
        return rt;
    weft__runtime_leave();
    return NULL;
}

int64_t weft__runtime_live(struct weft__runtime *rt)
{
    /* Finished counts first, then spawned counts, all load-acquire (pairs
     * with the release stores in task.c): a finish we count happened after
     * its task's spawn, and after the spawns that task made, so those are
     * counted too. A task's spawn we miss is one that started after we
     * looked; the result is never 0 while a counted task is live. */
    int64_t finished = 0, spawned = 0;
    for (unsigned i = 0; i < rt->nworkers; i++)
        finished += (int64_t)atomic_load_explicit(&rt->workers[i].stats.finished,
                                                  memory_order_acquire);
    for (unsigned i = 0; i < rt->nworkers; i++)
        spawned += (int64_t)atomic_load_explicit(&rt->workers[i].stats.spawned,
                                                 memory_order_acquire);
    spawned += (int64_t)atomic_load_explicit(&rt->foreign_spawned, memory_order_acquire);
    return spawned - finished;
}

/* Sleep @ns in the root task, uncancellably (main may have cancelled it). */
static void root_nap(int64_t ns)
{
    struct weft__waiter w;
    weft__waiter_init(&w);
    weft__waiter_wait_flags(&w, weft_deadline_in(ns), WEFT__WAIT_NOCANCEL);
}

/* The root task: the user's main, then the shutdown sequence. */
static void *root_main(void *arg)
{
    struct weft__runtime *rt = arg;
    rt->main_result = rt->main_fn(rt->main_arg);

    /* Cancel every live task and wait until none is left. A task that
     * starts from now on starts cancelled (worker.c, prepare); one spawned
     * during the walk may be missed by it, so the wait is bounded and the
     * walk repeated until nothing is live. */
    atomic_store_explicit(&rt->shutdown, true, memory_order_seq_cst);
    for (;;) {
        weft__runtime_cancel_all(rt);

        struct weft__waiter *q = rt->quiesce_waiter;
        weft__waiter_init(q);
        /* Publish, fence, count: pairs with quiesce_check's fence (task.c)
         * — either we count the last finish, or it sees our waiter. */
        atomic_store_explicit(&rt->quiesce, q, memory_order_release);
        weft__storeload(&rt->quiesce_pairing);
        if (weft__runtime_live(rt) == 0)
            weft__waiter_wake(q, 0);
        /* Uncancellable: the user may have cancelled main (the root task
         * itself); this wait must still wait. */
        weft__waiter_wait_flags(q, weft_deadline_in(WEFT__SHUTDOWN_RECHECK_NS),
                                WEFT__WAIT_NOCANCEL);
        atomic_store_explicit(&rt->quiesce, NULL, memory_order_seq_cst);

        if (weft__runtime_live(rt) != 0)
            continue;
        /* No foreign spawn is half done while we hold the write lock. Wait
         * for it only briefly: a foreign thread may hold the read lock
         * across a join whose task waits in this very worker's queue, and
         * a worker that blocks here would never run it; so after 1 ms, nap
         * (the worker runs that task) and look again. A timed wait rather
         * than a try: while a writer waits, this writer-preferring lock
         * turns new readers away, so foreign threads that keep taking it
         * (a loop of weft_task_name calls) cannot starve the shutdown, as
         * they could a trylock that needs a moment with no reader at all. */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        if (pthread_rwlock_clockwrlock(&g_rt_lock, CLOCK_MONOTONIC, &until) != 0) {
            root_nap(1000000);
            continue;
        }
        bool done = weft__runtime_live(rt) == 0;
        if (done)
            atomic_store_explicit(&rt->stop, true, memory_order_release);
        pthread_rwlock_unlock(&g_rt_lock);
        if (done)
            break;
    }
    weft__sched_wake_all(rt);
    return NULL;
}

static unsigned cpus_allowed(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    return 1;
}

static void workers_free(struct weft__runtime *rt, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct weft__worker *w = &rt->workers[i];
        weft__deque_destroy(&w->deque);
        weft__stack_pool_destroy(&w->stacks);
        weft__timer_heap_destroy(&w->timers);
    }
}

static int workers_init(struct weft__runtime *rt)
{
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct weft__worker *w = &rt->workers[i];
        w->rt = rt;
        w->index = i;
        w->rng = 0x9E3779B97F4A7C15ull * (i + 1);
        w->spin_credit = WEFT__SPIN_CREDIT;
        w->spin_skipped = 0;
        atomic_init(&w->lifo, NULL);
        weft__objpool_init(&w->tcbs, sizeof(struct weft__task), WEFT__TASK_SIDE,
                           weft__tcb_init);
        int rc = weft__deque_init(&w->deque, WEFT__DEQUE_CAP);
        if (rc == 0 && (rc = weft__stack_pool_init(&w->stacks, rt->stack_size,
                                                   WEFT__STACK_POOL)) != 0)
            weft__deque_destroy(&w->deque);
        if (rc == 0 && (rc = weft__timer_heap_init(&w->timers)) != 0) {
            weft__deque_destroy(&w->deque);
            weft__stack_pool_destroy(&w->stacks);
        }
        if (rc) {
            workers_free(rt, i);
            return rc;
        }
    }
    return 0;
}

static void runtime_free(struct weft__runtime *rt)
{
    weft__tcb_free_all(rt);
    workers_free(rt, rt->nworkers);
    weft__idle_destroy(&rt->idle);
    weft__inject_destroy(&rt->inject);
    weft__mem_free(rt->quiesce_waiter, sizeof(*rt->quiesce_waiter));
    weft__mem_free(rt->workers, sizeof(*rt->workers) * rt->nworkers);
    weft__mem_free(rt, sizeof(*rt));
}

int weft_run(const weft_config *cfg, weft_task_fn main_fn, void *arg, void **result)
{
    weft_config c = cfg ? *cfg : (weft_config){ 0 };
    if (!main_fn || c.workers > WEFT_MAX_WORKERS ||
        (c.stack_size && (c.stack_size < WEFT_STACK_MIN || c.stack_size > WEFT_STACK_MAX)))
        return -EINVAL;
    if (weft__worker_current() || pthread_mutex_trylock(&g_run_lock) != 0)
        return -EBUSY;

    weft__fence_init();      /* before any worker or foreign caller reads it */
    int rc = -ENOMEM;
    struct weft__runtime *rt = weft__mem_alloc(sizeof(*rt));
    if (!rt)
        goto out_unlock;
    rt->nworkers = c.workers ? c.workers : cpus_allowed();
    rt->stack_size = weft__stack_round(c.stack_size ? c.stack_size : WEFT_STACK_DEFAULT);
    /* Under g_run_lock: runs are numbered one after another (task.h). */
    static uint16_t run_number;
    rt->id_gen = (uint64_t)++run_number << WEFT__ID_GEN_SHIFT;
    rt->pin = c.pin_workers;
    rt->main_fn = main_fn;
    rt->main_arg = arg;
    rt->workers = weft__mem_alloc(sizeof(*rt->workers) * rt->nworkers);
    rt->quiesce_waiter = weft__mem_alloc(sizeof(*rt->quiesce_waiter));
    if (!rt->workers || !rt->quiesce_waiter ||
        weft__idle_init(&rt->idle, rt->nworkers) != 0) {
        weft__mem_free(rt->workers, sizeof(*rt->workers) * rt->nworkers);
        weft__mem_free(rt->quiesce_waiter, sizeof(*rt->quiesce_waiter));
        weft__mem_free(rt, sizeof(*rt));
        goto out_unlock;
    }
    weft__inject_init(&rt->inject);
    weft__objpool_init(&rt->foreign_tcbs, sizeof(struct weft__task), WEFT__TASK_SIDE,
                       weft__tcb_init);
    if ((rc = workers_init(rt)) != 0) {
        weft__idle_destroy(&rt->idle);
        weft__inject_destroy(&rt->inject);
        weft__mem_free(rt->workers, sizeof(*rt->workers) * rt->nworkers);
        weft__mem_free(rt->quiesce_waiter, sizeof(*rt->quiesce_waiter));
        weft__mem_free(rt, sizeof(*rt));
        goto out_unlock;
    }

    weft__overflow_install();
    unsigned started = 0;
    for (; started < rt->nworkers; started++) {
        if (pthread_create(&rt->workers[started].thread, NULL, weft__worker_main,
                           &rt->workers[started]) != 0)
            break;
    }
    /* Wait for every started worker's ring, then let them go (or stop). */
    while (atomic_load_explicit(&rt->started, memory_order_acquire) < started)
        sched_yield();
    rc = started < rt->nworkers ? -EAGAIN : 0;
    for (unsigned i = 0; i < started && rc == 0; i++)
        rc = rt->workers[i].init_error;
    if (rc)
        atomic_store_explicit(&rt->stop, true, memory_order_release);

    if (rc == 0) {
        struct weft__task *root = weft__tcb_alloc(rt, NULL);
        if (!root) {
            rc = -ENOMEM;
            atomic_store_explicit(&rt->stop, true, memory_order_release);
        } else {
            weft__task_setup(root, root_main, rt, "weft-main", 0, WEFT__JOIN_DETACHED);
            root->flags |= WEFT__TF_ROOT;
            atomic_store_explicit(&root->id, rt->id_gen | WEFT__ROOT_ID, memory_order_relaxed);
            rt->root = root;
            /* release: publishes every field above (pairs with
             * weft__runtime_get's acquire). */
            pthread_rwlock_wrlock(&g_rt_lock);
            atomic_store_explicit(&g_rt, rt, memory_order_release);
            pthread_rwlock_unlock(&g_rt_lock);
        }
    }
    /* The extra count releases the workers from their start barrier. */
    atomic_fetch_add_explicit(&rt->started, rt->nworkers + 1 - started, memory_order_acq_rel);
    if (rc == 0)
        weft__sched_ready(rt, rt->root, false);

    for (unsigned i = 0; i < started; i++)
        pthread_join(rt->workers[i].thread, NULL);
    weft__overflow_uninstall();
    /* The write lock waits out foreign threads still inside a wake-up
     * (wait.c) or a spawn; after it nobody can reach the runtime. */
    pthread_rwlock_wrlock(&g_rt_lock);
    atomic_store_explicit(&g_rt, NULL, memory_order_release);
    pthread_rwlock_unlock(&g_rt_lock);
    /* Rings go only now: until every worker has stopped and every foreign
     * waker has left, any of them may post a wake-up into a ring or its
     * eventfd. */
    for (unsigned i = 0; i < started; i++)
        if (!rt->workers[i].init_error)
            weft__ring_destroy(&rt->workers[i].ring);
    if (rc == 0)
        rc = rt->main_error;
    if (rc == 0 && result)
        *result = rt->main_result;
    runtime_free(rt);
out_unlock:
    pthread_mutex_unlock(&g_run_lock);
    return rc;
}

int weft_stats_get(weft_stats *out)
{
    if (!out)
        return -EINVAL;
    struct weft__worker *self = weft__worker_current();
    struct weft__runtime *rt = self ? self->rt : weft__runtime_enter();
    if (!rt)
        return -ESRCH;
    memset(out, 0, sizeof(*out));
    out->workers = rt->nworkers;
    out->spawned = atomic_load_explicit(&rt->foreign_spawned, memory_order_relaxed);
    for (unsigned i = 0; i < rt->nworkers; i++) {
        struct weft__worker_stats *s = &rt->workers[i].stats;
#define SUM(f) out->f += atomic_load_explicit(&s->f, memory_order_relaxed)
        SUM(spawned); SUM(finished); SUM(switches); SUM(steals); SUM(steal_rounds);
        SUM(injected); SUM(overflowed); SUM(parks); SUM(wakeups);
#undef SUM
        /* Written by its owner without atomics; a torn read of a counter
         * is impossible on 64-bit, and the figure is a hint. */
        out->stacks_mapped += __atomic_load_n(&rt->workers[i].stacks.mapped, __ATOMIC_RELAXED);
    }
    if (!self)
        weft__runtime_leave();
    return 0;
}
