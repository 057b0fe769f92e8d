/*
 * weft.h — the one public header of weft, a C11 runtime that runs millions of
 * stackful tasks on one worker thread per core, with io_uring for all IO.
 *
 * Conventions (the same for every call below):
 *  - Calls that can fail return an int: >= 0 on success, a negative errno
 *    value on failure (never -1 with errno: a task may move to another thread
 *    between two calls, and errno is thread-local).
 *  - Time is absolute: every call that can wait takes a deadline, in
 *    nanoseconds of CLOCK_MONOTONIC (see weft_now()), as its last argument.
 *    WEFT_NEVER waits forever; a deadline in the past (0 included) does not
 *    wait at all.
 *  - "From a task" means from code running inside a weft task. "From any
 *    thread" means from a task, or from a plain OS thread that is not part of
 *    the runtime ("a foreign thread"); where such a thread waits, it blocks
 *    itself, not a worker.
 */
#ifndef WEFT_H
#define WEFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* Time                                                                     */
/* ======================================================================== */

/** A deadline that never expires. */
#define WEFT_NEVER INT64_MAX

/**
 * weft_now - the current CLOCK_MONOTONIC time in nanoseconds.
 * Never fails. Any thread.
 */
int64_t weft_now(void);

/**
 * weft_deadline_in - the deadline @ns nanoseconds from now, saturating at
 * WEFT_NEVER (a negative @ns gives a deadline in the past). Any thread.
 */
int64_t weft_deadline_in(int64_t ns);

/* ======================================================================== */
/* Runtime                                                                  */
/* ======================================================================== */

/**
 * struct weft_config - how weft_run() sets the runtime up. A zeroed struct
 * (or a NULL pointer) means every default.
 * @workers:     worker threads; 0 = the number of CPUs the process may use
 *              (sched_getaffinity). At most WEFT_MAX_WORKERS.
 * @stack_size:  default task stack size in bytes, rounded up to pages;
 *              0 = WEFT_STACK_DEFAULT. At least WEFT_STACK_MIN.
 * @pin_workers: pin worker i to the i-th CPU the process may use.
 */
typedef struct weft_config {
    unsigned workers;
    size_t   stack_size;
    bool     pin_workers;
} weft_config;

#define WEFT_MAX_WORKERS   1024
#define WEFT_STACK_MIN     (16u * 1024)
#define WEFT_STACK_DEFAULT (128u * 1024)

/**
 * weft_run - start the runtime, run @main_fn(@arg) as the main task, and
 * return when it has finished and the runtime is torn down.
 *
 * When the main task returns, every task still alive is cancelled (as
 * asyncio.run does): each of its pending and future waits returns
 * -ECANCELED, and weft_run waits until all of them have returned. A task
 * that never waits again (a pure CPU loop) keeps weft_run from returning.
 * The runtime then stops its workers and frees everything it allocated; it
 * may be started again afterwards.
 *
 * @cfg:    NULL or a configuration (see struct weft_config).
 * @result: if not NULL, receives main_fn's return value.
 *
 * Returns 0, or:
 *  -EINVAL  @main_fn is NULL, or @cfg has too many workers or a stack size
 *           below WEFT_STACK_MIN.
 *  -EBUSY   a runtime is already running in this process.
 *  -ENOMEM  memory, threads or rings could not be had (see docs/design.md
 *           on RLIMIT_MEMLOCK and kernel.io_uring_disabled).
 *  -ENOSYS / -EPERM  io_uring is unavailable or forbidden on this system.
 * Call from a foreign thread (never from inside a task).
 */
int weft_run(const weft_config *cfg, void *(*main_fn)(void *), void *arg,
             void **result);

/**
 * struct weft_stats - counters summed over all workers since weft_run began.
 * Read with weft_stats_get(); figures are approximate while tasks run.
 */
typedef struct weft_stats {
    unsigned workers;
    uint64_t spawned;       /* tasks created */
    uint64_t finished;      /* tasks that returned */
    uint64_t switches;      /* context switches into tasks */
    uint64_t steals;        /* tasks taken from another worker's deque */
    uint64_t steal_rounds;  /* searches that tried to steal */
    uint64_t injected;      /* tasks taken from the global injection queue */
    uint64_t overflowed;    /* tasks moved from a full deque to the global queue */
    uint64_t parks;         /* times a worker slept in its ring */
    uint64_t wakeups;       /* wake messages sent to parked workers */
    uint64_t stacks_mapped; /* stacks obtained from mmap (pool misses) */
} weft_stats;

/**
 * weft_stats_get - copy the runtime's counters into @out.
 * Returns 0, -EINVAL if @out is NULL, -ESRCH if no runtime is running.
 * Any thread.
 */
int weft_stats_get(weft_stats *out);

/* ======================================================================== */
/* Tasks                                                                    */
/* ======================================================================== */

/**
 * weft_task - a handle to a task, passed by value. It names one task for
 * that task's whole life: once the task is joined or detached and gone,
 * calls on the handle return -ESRCH (the runtime never mistakes a stale
 * handle for a newer task). A zeroed handle names no task.
 */
typedef struct weft_task {
    struct weft__task *ptr;
    uint64_t id;
} weft_task;

/** weft_task_fn - a task's body; its return value is the task's result. */
typedef void *(*weft_task_fn)(void *arg);

/**
 * struct weft_task_opts - per-spawn options; NULL means every default.
 * @name:       copied (up to WEFT_TASK_NAME_MAX - 1 bytes); shown in stats
 *              and overflow reports. NULL = no name.
 * @stack_size: 0 = the runtime's default; else at least WEFT_STACK_MIN.
 */
typedef struct weft_task_opts {
    const char *name;
    size_t      stack_size;
} weft_task_opts;

#define WEFT_TASK_NAME_MAX 24

/**
 * weft_task_spawn - create a task that runs @fn(@arg) and make it runnable.
 * The task gets its stack only when it first runs, so a spawned task that
 * has not started costs only its control block (about 200 bytes).
 *
 * @out: receives the handle; the task must later be joined or detached.
 *       NULL spawns the task detached.
 *
 * Returns 0, or:
 *  -EINVAL   @fn is NULL, or @opts->stack_size is below WEFT_STACK_MIN.
 *  -ENOMEM   no memory for the control block.
 *  -ESRCH    no runtime is running.
 * Spawned during shutdown, a task starts already cancelled.
 * Any thread: from a foreign thread the task goes through the global
 * injection queue and a parked worker is woken for it.
 */
int weft_task_spawn(weft_task *out, weft_task_fn fn, void *arg,
                    const weft_task_opts *opts);

/**
 * weft_task_join - wait until @t has finished, store its result in @result
 * (if not NULL) and release it: afterwards the handle is stale.
 * One joiner per task, as with pthread_join; to let many tasks wait for one
 * result, use a future.
 *
 * Returns 0, or:
 *  -ESRCH      @t names no live task (already joined, or detached and gone).
 *  -EINVAL     @t was detached, or another joiner is already waiting.
 *  -EDEADLK    @t is the calling task.
 *  -ETIMEDOUT  @deadline passed first; @t stays joinable.
 *  -ECANCELED  the calling task was cancelled; @t stays joinable.
 * Any thread.
 */
int weft_task_join(weft_task t, void **result, int64_t deadline);

/**
 * weft_task_detach - let @t release itself when it finishes; afterwards the
 * handle is stale.
 * Returns 0, -ESRCH (no live task), -EINVAL (already detached, or a joiner
 * is waiting). Any thread.
 */
int weft_task_detach(weft_task t);

/**
 * weft_task_cancel - ask @t to stop. Cancellation is cooperative and
 * sticky: @t's current wait, and every wait it starts afterwards, returns
 * -ECANCELED, so its code unwinds at its next suspension point. A task that
 * has already finished is not affected.
 * Returns 0, or -ESRCH (no live task). Any thread.
 */
int weft_task_cancel(weft_task t);

/**
 * weft_task_self - the calling task's handle, or a zeroed handle when called
 * outside a task. Any thread.
 */
weft_task weft_task_self(void);

/**
 * weft_task_cancelled - whether the calling task has been cancelled
 * (false outside a task). Any thread.
 */
bool weft_task_cancelled(void);

/**
 * weft_task_name - copy @t's name (empty if it has none) into @buf of @len
 * bytes, truncating and always NUL-terminating.
 * Returns the name's length, or -ESRCH (no live task), -EINVAL (@buf NULL
 * or @len 0). Any thread.
 */
int weft_task_name(weft_task t, char *buf, size_t len);

/**
 * weft_yield - let every other runnable task on this worker run before the
 * caller continues (asyncio.sleep(0)). Returns 0, or -ECANCELED if the
 * calling task has been cancelled. Outside a task it calls sched_yield()
 * and returns 0. Any thread.
 */
int weft_yield(void);

/**
 * weft_sleep_until - suspend the calling task until @deadline
 * (CLOCK_MONOTONIC ns). Returns 0 when the deadline is reached, or
 * -ECANCELED if the task is cancelled first. Outside a task it blocks the
 * calling thread (clock_nanosleep) and returns 0. Any thread.
 */
int weft_sleep_until(int64_t deadline);

/**
 * weft_sleep - weft_sleep_until(weft_deadline_in(@ns)). Same returns.
 */
int weft_sleep(int64_t ns);

/* ======================================================================== */
/* Futures                                                                  */
/* ======================================================================== */

/*
 * A future (asyncio.Future) is a slot for one outcome that tasks and
 * threads can wait for: a value (void *), an error (a negative errno), or
 * cancellation. Exactly one of weft_future_set, weft_future_fail and
 * weft_future_cancel takes effect — one atomic transition out of PENDING;
 * the others return -EALREADY. Every awaiter, before or after that moment,
 * sees the same outcome, and each is woken exactly once.
 *
 * Futures are reference-counted: weft_future_new gives the caller one
 * reference; weft_future_retain/weft_future_release add and drop one, and
 * the last release frees the future (done-callbacks that never ran are
 * dropped then). Whoever may still call a weft_future_* function on a
 * future must hold a reference, for example the foreign thread that will
 * complete it. Every call below may be made from any thread (a task or a
 * foreign thread) unless it says otherwise.
 */
typedef struct weft_future weft_future;

/** The outcome a future holds; see weft_future_state(). */
typedef enum weft_future_state {
    WEFT_FUTURE_PENDING = 0,   /* not completed yet */
    WEFT_FUTURE_VALUE,         /* weft_future_set() won */
    WEFT_FUTURE_ERROR,         /* weft_future_fail() won */
    WEFT_FUTURE_CANCELLED,     /* weft_future_cancel() won */
} weft_future_state;

/**
 * weft_future_new - create a pending future with one reference, owned by
 * the caller.
 * Returns 0 and stores the future in *@out, or -EINVAL (@out NULL),
 * -ENOMEM. Any thread (no runtime needed).
 */
int weft_future_new(weft_future **out);

/** weft_future_retain - add a reference to @f. Any thread. */
void weft_future_retain(weft_future *f);

/**
 * weft_future_release - drop a reference; the last one frees @f. The
 * caller must not be awaiting @f in another task on the strength of this
 * reference. NULL is ignored. Any thread.
 */
void weft_future_release(weft_future *f);

/**
 * weft_future_set - complete @f with @value and wake every awaiter; then
 * run the done-callbacks on the calling thread.
 * Returns 0, or -EALREADY if @f was already completed or cancelled (the
 * value is then not delivered to anyone). Any thread.
 */
int weft_future_set(weft_future *f, void *value);

/**
 * weft_future_fail - complete @f with the error @error (a negative errno
 * value, asyncio's set_exception); awaiters get @error as their return.
 * Returns 0, -EINVAL (@error >= 0), -EALREADY (already completed or
 * cancelled). Any thread.
 */
int weft_future_fail(weft_future *f, int error);

/**
 * weft_future_cancel - cancel @f: awaiters get -ECANCELED. If @f was made
 * by weft_future_spawn, the task behind it is cancelled too.
 * Returns 0, or -EALREADY if @f was already completed or cancelled.
 * Any thread.
 */
int weft_future_cancel(weft_future *f);

/**
 * weft_future_await - wait until @f is completed or cancelled, or
 * @deadline. Awaiting a future that is already complete returns at once.
 * Any number of tasks and threads may await the same future.
 *
 * Returns 0 and stores the value in *@value (if not NULL), or:
 *  the error given to weft_future_fail();
 *  -ECANCELED  @f was cancelled, or the calling task was (tell them apart
 *              with weft_future_state() or weft_task_cancelled());
 *  -ETIMEDOUT  @deadline passed first (@f may still complete later).
 * A future failed with -ECANCELED or -ETIMEDOUT reads the same; again
 * weft_future_state() tells. Any thread (a foreign thread blocks).
 */
int weft_future_await(weft_future *f, void **value, int64_t deadline);

/** weft_future_state - @f's outcome so far (never waits). Any thread. */
weft_future_state weft_future_state_get(const weft_future *f);

/**
 * weft_future_result - the outcome of a completed @f without waiting:
 * what weft_future_await would return, or -EAGAIN while it is pending.
 * Any thread.
 */
int weft_future_result(const weft_future *f, void **value);

/** weft_future_done_fn - a done-callback (see weft_future_on_done). */
typedef void (*weft_future_done_fn)(weft_future *f, void *arg);

/**
 * weft_future_on_done - call @fn(@f, @arg) once @f is completed or
 * cancelled: on the thread that completes it, right after the awaiters are
 * woken and outside any lock; at once, on the calling thread, if @f is
 * already done. Callbacks run in the order they were added. A callback must
 * not block a worker for long (it may run on one); it may call any
 * non-waiting weft call, including on @f.
 * Returns 0, -EINVAL (@fn NULL), -ENOMEM. Any thread.
 */
int weft_future_on_done(weft_future *f, weft_future_done_fn fn, void *arg);

/**
 * weft_future_spawn - spawn a task running @fn(@arg) and return a future
 * for its result (asyncio.create_task): the future is set to fn's return
 * value when the task returns. Cancelling the future cancels the task (its
 * pending and later waits return -ECANCELED); the future's outcome is then
 * CANCELLED whatever the task returns.
 * The task is detached. *@out receives one reference for the caller.
 * Returns 0, -EINVAL, -ENOMEM, -ESRCH (no runtime). Any thread.
 */
int weft_future_spawn(weft_future **out, weft_task_fn fn, void *arg);

/* ======================================================================== */
/* Channels and select                                                      */
/* ======================================================================== */

/* (declarations of this section go here) */

/* ======================================================================== */
/* Synchronisation                                                          */
/* ======================================================================== */

/* (declarations of this section go here) */

/* ======================================================================== */
/* Waiting on many: wait, gather, as_completed                              */
/* ======================================================================== */

/* (declarations of this section go here) */

/* ======================================================================== */
/* Task groups                                                              */
/* ======================================================================== */

/* (declarations of this section go here) */

/* ======================================================================== */
/* Blocking pool                                                            */
/* ======================================================================== */

/* (declarations of this section go here) */

/* ======================================================================== */
/* Generators                                                               */
/* ======================================================================== */

/* (declarations of this section go here) */

/* ======================================================================== */
/* IO                                                                       */
/* ======================================================================== */

/* (declarations of this section go here) */

/* ======================================================================== */
/* Networking                                                               */
/* ======================================================================== */

/* (declarations of this section go here) */

#ifdef __cplusplus
}
#endif
#endif /* WEFT_H */
