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
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

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
 *              0 = WEFT_STACK_DEFAULT. WEFT_STACK_MIN to WEFT_STACK_MAX.
 *              The runtime keeps its record of a stack in the stack's top
 *              64 bytes; the task gets the rest.
 * @pin_workers: pin worker i to the (i mod n)-th of the n CPUs the process
 *              may use (more workers than CPUs share them). Best effort: a
 *              pin the kernel refuses leaves that worker unpinned.
 */
typedef struct weft_config {
    unsigned workers;
    size_t   stack_size;
    bool     pin_workers;
} weft_config;

#define WEFT_MAX_WORKERS   1024
#define WEFT_STACK_MIN     (16u * 1024)
#define WEFT_STACK_DEFAULT (128u * 1024)
/* Above this a size is -EINVAL; it exceeds x86-64's user address space,
 * and any size that cannot be mapped ends the task with -ENOMEM when it
 * would first run. */
#define WEFT_STACK_MAX     ((size_t)1 << 48)

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
 *           outside WEFT_STACK_MIN..WEFT_STACK_MAX.
 *  -EBUSY   a runtime is already running in this process.
 *  -ENOMEM  memory or rings could not be had, or the main task got no
 *           stack (see docs/design.md on RLIMIT_MEMLOCK and
 *           kernel.io_uring_disabled).
 *  -EAGAIN  a worker thread could not be started.
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
    uint64_t steals;        /* tasks taken from another worker (deque or LIFO slot) */
    uint64_t steal_rounds;  /* searches that tried to steal */
    uint64_t injected;      /* tasks taken from the global injection queue */
    uint64_t overflowed;    /* tasks moved from a full deque to the global queue */
    uint64_t parks;         /* times a worker slept in its ring */
    uint64_t wakeups;       /* wake-ups sent by workers to parked workers */
    uint64_t stacks_mapped; /* stacks obtained from mmap (pool misses) */
} weft_stats;

/**
 * weft_stats_get - copy the runtime's counters into @out.
 * Returns 0, -EINVAL if @out is NULL, -ESRCH if no runtime is running
 * (from a foreign thread: also once its main task has returned).
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
 * handle for a newer task, nor a handle kept from an earlier weft_run for
 * a task of this one). A zeroed handle names no task.
 */
typedef struct weft_task {
    void *ptr;          /* opaque: the runtime's task control block */
    uint64_t id;
} weft_task;

/** weft_task_fn - a task's body; its return value is the task's result. */
typedef void *(*weft_task_fn)(void *arg);

/**
 * struct weft_task_opts - per-spawn options; NULL means every default.
 * @name:       copied (up to WEFT_TASK_NAME_MAX - 1 bytes); shown in stats
 *              and overflow reports. NULL = no name.
 * @stack_size: 0 = the runtime's default; else WEFT_STACK_MIN to
 *              WEFT_STACK_MAX, rounded up to pages.
 */
typedef struct weft_task_opts {
    const char *name;
    size_t      stack_size;
} weft_task_opts;

#define WEFT_TASK_NAME_MAX 16

/**
 * weft_task_spawn - create a task that runs @fn(@arg) and make it runnable.
 * The task gets its stack only when it first runs, so a spawned task that
 * has not started costs only its control block (128 bytes).
 *
 * @out: receives the handle; the task must later be joined or detached.
 *       NULL spawns the task detached.
 *
 * Returns 0, or:
 *  -EINVAL   @fn is NULL, or @opts->stack_size is outside
 *            WEFT_STACK_MIN..WEFT_STACK_MAX.
 *  -ENOMEM   no memory for the control block.
 *  -ESRCH    no runtime is running, or (from a foreign thread) its main
 *            task has returned and it is shutting down.
 * Spawned by a task during shutdown, a task starts already cancelled.
 * Any thread: from a foreign thread the task goes through the global
 * injection queue, and a parked worker is woken for it unless one is
 * already searching for work.
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
 *  -EINVAL     @t was detached, or another joiner — or a future made by
 *              weft_task_future — is already waiting for it.
 *  -EDEADLK    @t is the calling task.
 *  -ETIMEDOUT  @deadline passed first; @t stays joinable.
 *  -ECANCELED  the calling task was cancelled; @t stays joinable.
 *  -ENOMEM     @t never ran: no stack could be mapped for it (the handle
 *              is released all the same).
 * Any thread.
 */
int weft_task_join(weft_task t, void **result, int64_t deadline);

/**
 * weft_task_detach - let @t release itself when it finishes; afterwards the
 * handle is stale.
 * Returns 0, -ESRCH (no live task), -EINVAL (already detached, or a joiner
 * or a weft_task_future future is waiting). Any thread.
 */
int weft_task_detach(weft_task t);

/**
 * weft_task_cancel - ask @t to stop. Cancellation is cooperative and
 * sticky: @t's current wait, and every blocking call it makes afterwards
 * (any call with a deadline other than 0, even one that could complete at
 * once), returns -ECANCELED, so its code unwinds at its next suspension
 * point. Polls (deadline 0, try_* calls), completions and releases still
 * work, and so does joining a task that has already finished (it does not
 * wait), so a cancelled task can still clean up and collect its children;
 * joining one that is still running returns -ECANCELED and leaves it
 * joinable. A task that has already finished is not affected.
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
 * calling task has been cancelled (it still yields first, so a loop that
 * ignores the result cannot starve the rest of its worker). Outside a task
 * it calls sched_yield() and returns 0. Any thread.
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
 * foreign thread) unless it says otherwise. A NULL future gives -EINVAL
 * (weft_future_state_get: WEFT_FUTURE_INVALID; retain and release: ignored).
 *
 * Cancellation points, for weft_future_await here and for every call in
 * this header that waits in sync/ (channels, select, synchronisation,
 * wait/gather, the blocking pool's run, generators): a call that may wait —
 * one given a deadline other than 0 — is a cancellation point. In a task
 * that has been cancelled (weft_task_cancel) it returns -ECANCELED at once,
 * before it looks at its object, even when it could complete without
 * waiting; it then takes, consumes and changes nothing. A call given
 * deadline 0 is a poll, as the try_* calls are, and ignores cancellation,
 * and so do the calls that never wait (set, fail, cancel, unlock, release,
 * close...). weft_group_wait and weft_gen_close are the exceptions: they
 * exist to wait for tasks to return and do that even in a cancelled task
 * (see there). Foreign threads are never cancelled.
 */
typedef struct weft_future weft_future;

/** The outcome a future holds; see weft_future_state_get(). */
typedef enum weft_future_state {
    WEFT_FUTURE_INVALID = -22, /* -EINVAL: weft_future_state_get(NULL) */
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

/** weft_future_retain - add a reference to @f (NULL is ignored). Any thread. */
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
 * value is then not delivered to anyone), -EINVAL (@f NULL). Never waits
 * and is not a cancellation point. Any thread.
 */
int weft_future_set(weft_future *f, void *value);

/**
 * weft_future_fail - complete @f with the error @error (a negative errno
 * value, asyncio's set_exception); awaiters get @error as their return.
 * Returns 0, -EINVAL (@f NULL, @error >= 0), -EALREADY (already completed
 * or cancelled). Any thread.
 */
int weft_future_fail(weft_future *f, int error);

/**
 * weft_future_cancel - cancel @f: awaiters get -ECANCELED. If @f was made
 * by weft_future_spawn, the task behind it is cancelled too.
 * Returns 0, or -EALREADY if @f was already completed or cancelled,
 * -EINVAL (@f NULL). Any thread.
 */
int weft_future_cancel(weft_future *f);

/**
 * weft_future_await - wait until @f is completed or cancelled, or
 * @deadline. Awaiting a future that is already complete returns at once.
 * Any number of tasks and threads may await the same future.
 *
 * Returns 0 and stores the value in *@value (if not NULL), or:
 *  the error given to weft_future_fail();
 *  -ECANCELED  @f was cancelled, or the calling task was — before the call
 *              (a deadline other than 0: at once, even if @f is done) or
 *              while it waited (tell them apart with
 *              weft_future_state_get() or weft_task_cancelled());
 *  -ETIMEDOUT  @deadline passed first (@f may still complete later);
 *  -EINVAL     @f NULL.
 * A future failed with -ECANCELED or -ETIMEDOUT reads the same; again
 * weft_future_state_get() tells. Any thread (a foreign thread blocks).
 */
int weft_future_await(weft_future *f, void **value, int64_t deadline);

/** weft_future_state_get - @f's outcome so far (never waits), or
 *  WEFT_FUTURE_INVALID (-EINVAL) for a NULL @f. Any thread. */
weft_future_state weft_future_state_get(const weft_future *f);

/**
 * weft_future_result - the outcome of a completed @f without waiting:
 * what weft_future_await would return, or -EAGAIN while it is pending,
 * -EINVAL (@f NULL). Never waits and is not a cancellation point. Any
 * thread.
 */
int weft_future_result(const weft_future *f, void **value);

/** weft_future_done_fn - a done-callback (see weft_future_on_done). */
typedef void (*weft_future_done_fn)(weft_future *f, void *arg);

/**
 * weft_future_on_done - call @fn(@f, @arg) once @f is completed or
 * cancelled (asyncio's add_done_callback). Each registration runs exactly
 * once, even if the same (@fn, @arg) is added twice, unless it is removed
 * first (weft_future_remove_done) or @f is freed before it completes.
 *
 * Order: the callbacks of one future run one at a time, never two at once,
 * in the order they were added — also when they are added from other
 * threads while @f completes, or from inside a callback — where "added"
 * means the instant weft_future_on_done took effect (calls made one after
 * the other by one thread, or ordered by any other synchronisation, are in
 * that order). Who runs them:
 *  - added while @f is pending: the thread that completes it, right after
 *    the awaiters are woken, outside any lock (for a future from
 *    weft_task_future: a short task the runtime spawns for them);
 *  - added once @f is done: the calling thread, before this call returns —
 *    unless @f's callbacks are being run at that moment (by the completing
 *    thread, or by a callback calling this): then the thread running them
 *    runs this one after those added before it, and this call returns
 *    without waiting for it.
 * A callback must not block a worker for long (it may run on one); it may
 * call any non-waiting weft call, including on @f.
 * Returns 0, -EINVAL (@f or @fn NULL), -ENOMEM. Any thread.
 */
int weft_future_on_done(weft_future *f, weft_future_done_fn fn, void *arg);

/**
 * weft_future_remove_done - remove every registration of (@fn, @arg) on @f
 * that has not started running (asyncio's remove_done_callback); each one
 * removed will never run.
 * A callback that has started — or has already run — is neither removed
 * nor counted: the thread running @f's callbacks takes each one off the
 * list, under @f's lock, just before calling it, so a registration is
 * either removed by this call or run, never both and never neither. A
 * return of 0 after @f completed may thus mean the callback is running at
 * that moment on another thread; if @arg must outlive it, let the callback
 * itself release @arg.
 * Returns the number of registrations removed (0 if none), or -EINVAL (@f
 * or @fn NULL). Any thread, inside a callback of @f included.
 */
int weft_future_remove_done(weft_future *f, weft_future_done_fn fn, void *arg);

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

/**
 * weft_task_future - a future for the result of the already spawned task
 * @t (asyncio.ensure_future on a task), so that a plain task can take part
 * in weft_wait, weft_gather, weft_as_completed and done-callbacks. The
 * future takes over @t's join: it is set to @t's return value when @t
 * returns (or failed with -ENOMEM if @t never ran for want of a stack),
 * and the runtime then releases @t itself, as for a detached task.
 *
 * After a successful call, weft_task_join and weft_task_detach on @t return
 * -EINVAL while @t runs (a collector is waiting) and -ESRCH once it has
 * finished; weft_task_cancel and weft_task_name keep working while it runs.
 * If @t has already finished (and was not joined), the future is returned
 * already completed and @t's handle is stale at once. The future is an
 * ordinary one: cancelling it also cancels @t (its outcome is then
 * CANCELLED whatever @t returns, as for weft_future_spawn); completing it by
 * hand (weft_future_set/fail) just drops @t's result. A task may make a
 * future of itself (awaiting it from itself then waits for its deadline).
 * *@out receives one reference, the caller's; the task holds another until
 * it has finished.
 *
 * Returns 0, or:
 *  -EINVAL  @out is NULL; or @t was detached (the runtime's main task
 *           included), or a joiner or another future already waits for it.
 *  -ESRCH   @t names no live task (a zeroed handle, already joined, or
 *           converted and finished), or no runtime is running.
 *  -ENOMEM  no memory for the future (@t is left as it was).
 * Any thread.
 */
int weft_task_future(weft_task t, weft_future **out);

/* ======================================================================== */
/* Channels and select                                                      */
/* ======================================================================== */

/*
 * A channel (asyncio.Queue, a Go channel) carries fixed-size elements,
 * copied in and out, from any number of senders to any number of
 * receivers, in FIFO order. Three kinds, named so they cannot be confused:
 *  - weft_chan_unbounded:  never full; sends never wait (asyncio's
 *                          Queue(maxsize=0), which means "infinite").
 *  - weft_chan_bounded(n): holds up to n >= 1 items; senders wait while full.
 *  - weft_chan_rendezvous: holds nothing; a send waits until a receiver
 *                          takes the item from it (Go's make(chan T) with
 *                          capacity 0).
 * Closing: receivers first drain what is buffered, then get -EPIPE (the end
 * of the channel); senders get -EPIPE at once, and senders that were
 * waiting wake with -EPIPE (their items were not delivered).
 * An item is delivered exactly once, or its send reports failure: a
 * receiver that times out or is cancelled at the moment an item is handed
 * to it either returns that item (0) or does not get it, and then the item
 * goes to another receiver or stays buffered.
 * Every call below may be made from any thread (a task or a foreign thread,
 * which blocks itself while waiting), concurrently with all the others,
 * except weft_chan_free. weft_chan_send, weft_chan_recv and weft_select
 * with a deadline other than 0 are cancellation points (see Futures): in a
 * cancelled task they return -ECANCELED at once, even when an item, a
 * slot or a peer is ready, and nothing is sent or taken; the try_* calls,
 * deadline 0 and weft_chan_close never check.
 */
typedef struct weft_chan weft_chan;

/**
 * weft_chan_unbounded - create an unbounded channel of @elem_size-byte
 * elements (0 allowed: a channel of signals).
 * Returns 0 and the channel in *@out, or -EINVAL (@out NULL, @elem_size
 * over 64 KiB), -ENOMEM. Any thread.
 */
int weft_chan_unbounded(weft_chan **out, size_t elem_size);

/**
 * weft_chan_bounded - create a channel buffering up to @capacity elements.
 * Returns 0, or -EINVAL (@out NULL, @capacity 0 — use
 * weft_chan_rendezvous — or too large, @elem_size over 64 KiB), -ENOMEM.
 * Any thread.
 */
int weft_chan_bounded(weft_chan **out, size_t elem_size, size_t capacity);

/**
 * weft_chan_rendezvous - create an unbuffered channel: each send waits for
 * the receiver that takes its item.
 * Returns 0, -EINVAL, -ENOMEM. Any thread.
 */
int weft_chan_rendezvous(weft_chan **out, size_t elem_size);

/**
 * weft_chan_free - free @c and any items still buffered. No task or thread
 * may be using @c or use it afterwards (close it and let its users finish
 * first). NULL is ignored. Any thread.
 */
void weft_chan_free(weft_chan *c);

/**
 * weft_chan_send - copy the element at @elem into @c: hand it to a waiting
 * receiver, or buffer it, or wait (bounded and full, or rendezvous) until a
 * receiver takes it or @deadline.
 * Returns 0 once the item is delivered or buffered, or:
 *  -EPIPE      @c is closed (or was closed while waiting: not delivered);
 *  -ETIMEDOUT  @deadline passed (not delivered);
 *  -ECANCELED  the calling task was cancelled, before the call (deadline
 *              not 0) or while it waited (not delivered);
 *  -ENOMEM     an unbounded channel could not grow;
 *  -EINVAL     @c NULL, or @elem NULL with a non-zero element size.
 * Any thread.
 */
int weft_chan_send(weft_chan *c, const void *elem, int64_t deadline);

/**
 * weft_chan_recv - take the next element of @c into @out (@elem_size
 * bytes), waiting until one comes, @c is closed and drained, or @deadline.
 * Returns 0, or -EPIPE (closed and drained: the end of the channel),
 * -ETIMEDOUT, -ECANCELED (cancelled before the call, deadline not 0, or
 * while waiting) — nothing was taken in these cases — or -EINVAL (@c NULL,
 * @out NULL with a non-zero element size). Any thread.
 */
int weft_chan_recv(weft_chan *c, void *out, int64_t deadline);

/**
 * weft_chan_try_send - weft_chan_send that never waits: -EAGAIN where the
 * send would have to wait (full, or no receiver waiting on a rendezvous
 * channel). Other returns as weft_chan_send. Any thread.
 */
int weft_chan_try_send(weft_chan *c, const void *elem);

/**
 * weft_chan_try_recv - weft_chan_recv that never waits: -EAGAIN when
 * nothing is buffered and no sender is waiting. Any thread.
 */
int weft_chan_try_recv(weft_chan *c, void *out);

/**
 * weft_chan_close - close @c (see above) and wake every waiting sender and
 * receiver. Returns 0, -EALREADY (already closed), -EINVAL (@c NULL).
 * Any thread.
 */
int weft_chan_close(weft_chan *c);

/** weft_chan_len - the number of buffered elements (a snapshot; 0 for a
 *  NULL @c and for rendezvous channels). Any thread. */
size_t weft_chan_len(weft_chan *c);

/** weft_chan_closed - whether @c has been closed (a snapshot). false for a
 *  NULL @c, which weft_select treats as a channel that never becomes
 *  ready, closed included. Any thread. */
bool weft_chan_closed(weft_chan *c);

/** The most cases one weft_select() takes. */
#define WEFT_SELECT_MAX 32

/** Operations of a select case. */
enum { WEFT_SELECT_SEND = 1, WEFT_SELECT_RECV = 2 };

/**
 * struct weft_select_case - one channel operation of a weft_select().
 * @chan:   the channel; NULL disables the case (never ready, as Go's nil
 *          channel).
 * @op:     WEFT_SELECT_SEND or WEFT_SELECT_RECV.
 * @elem:   SEND: the element to send; RECV: where the element goes.
 * @result: set for the case that completed: 0, or -EPIPE if it completed
 *          because its channel is closed (a RECV: closed and drained).
 */
typedef struct weft_select_case {
    weft_chan *chan;
    int op;
    void *elem;
    int result;
} weft_select_case;

/**
 * weft_select - complete exactly one of @n channel operations (Go's
 * select): if some are ready, one of them chosen uniformly at random;
 * otherwise wait until one can complete, or @deadline. A case on a closed
 * channel is ready (it completes with result -EPIPE). The same channel may
 * appear in several cases.
 * Returns the index of the case that completed (its @result says how), or
 * -ETIMEDOUT (nothing happened; a past deadline is a non-blocking select),
 * -ECANCELED (the calling task was cancelled: with a deadline other than
 * 0, at once, before any case is tried, ready or not; or while waiting),
 * -ENOMEM (an unbounded channel could not grow), -EINVAL (@cases NULL
 * with @n > 0, @n > WEFT_SELECT_MAX, a bad @op, a NULL @elem with a
 * non-zero element size). Any thread.
 */
int weft_select(weft_select_case *cases, size_t n, int64_t deadline);

/* ======================================================================== */
/* Synchronisation                                                          */
/* ======================================================================== */

/*
 * Task-aware synchronisation (asyncio.Lock, Condition, Semaphore, Event;
 * Go's sync.WaitGroup). Waiting blocks the calling task, never its worker;
 * a foreign thread blocks itself. Every call may be made from any thread,
 * and every object may be shared between tasks and foreign threads. Each
 * object is created with *_new (0, -EINVAL for a NULL @out, -ENOMEM) and
 * freed with *_free once nobody uses it (NULL is ignored). Waiters are
 * served in FIFO order. Passing NULL for an object gives -EINVAL where an
 * int is returned, 0 or false from the getters. The waiting calls (lock,
 * acquire, wait) given a deadline other than 0 are cancellation points (see
 * Futures): in a cancelled task they return -ECANCELED at once, even when
 * the mutex, a permit, the event or a zero count is there, and take
 * nothing; trylock, try_acquire, deadline 0 and the calls that never wait
 * (unlock, signal, broadcast, release, set, clear, add, done) never check.
 */
typedef struct weft_mutex weft_mutex;
typedef struct weft_cond weft_cond;
typedef struct weft_sem weft_sem;
typedef struct weft_event weft_event;
typedef struct weft_waitgroup weft_waitgroup;

/** weft_mutex_new - create an unlocked mutex. 0, -EINVAL, -ENOMEM. Any thread. */
int weft_mutex_new(weft_mutex **out);
/** weft_mutex_free - free @m; it must be unlocked and unused. Any thread. */
void weft_mutex_free(weft_mutex *m);
/**
 * weft_mutex_lock - take @m, waiting until it is free or @deadline.
 * Unlocking hands @m to the longest waiter, so waiters cannot starve.
 * Returns 0 (the caller owns @m), -ETIMEDOUT, -ECANCELED (the calling
 * task was cancelled: before the call, deadline not 0, or while waiting),
 * -EINVAL. @m is not taken on any error. The mutex is not recursive:
 * locking it again deadlocks until @deadline. Any thread.
 */
int weft_mutex_lock(weft_mutex *m, int64_t deadline);
/** weft_mutex_trylock - take @m if free: 0, or -EBUSY, -EINVAL. Any thread. */
int weft_mutex_trylock(weft_mutex *m);
/**
 * weft_mutex_unlock - release @m (or hand it to the first waiter).
 * Ownership is not tracked per task: any task or thread may unlock a
 * locked mutex. Returns 0, -EPERM (@m is not locked), -EINVAL. Any thread.
 */
int weft_mutex_unlock(weft_mutex *m);

/** weft_cond_new - create a condition variable. 0, -EINVAL, -ENOMEM. */
int weft_cond_new(weft_cond **out);
/** weft_cond_free - free @c; nobody may be waiting on it. Any thread. */
void weft_cond_free(weft_cond *c);
/**
 * weft_cond_wait - atomically release @m (which the caller holds) and wait
 * for weft_cond_signal/broadcast, @deadline or cancellation; then re-take
 * @m — always, even after a timeout or cancellation (that re-lock itself
 * cannot be cancelled), so the caller holds @m on every return but -EPERM.
 * Wake-ups may be spurious in the usual sense: re-check the predicate.
 * In a task already cancelled (deadline not 0) it returns -ECANCELED at
 * once, and with a deadline already past (0 included) -ETIMEDOUT at once,
 * in both cases without releasing @m (or -EPERM if @m is not locked).
 * Returns 0, -ETIMEDOUT, -ECANCELED, -EPERM (@m was not locked; nothing
 * waited), -EINVAL. Any thread.
 */
int weft_cond_wait(weft_cond *c, weft_mutex *m, int64_t deadline);
/** weft_cond_signal - wake one waiter, if any. 0 or -EINVAL. Any thread. */
int weft_cond_signal(weft_cond *c);
/** weft_cond_broadcast - wake every waiter. 0 or -EINVAL. Any thread. */
int weft_cond_broadcast(weft_cond *c);

/** weft_sem_new - create a semaphore holding @initial permits. 0, -EINVAL, -ENOMEM. */
int weft_sem_new(weft_sem **out, unsigned initial);
/** weft_sem_free - free @s; nobody may be waiting on it. Any thread. */
void weft_sem_free(weft_sem *s);
/**
 * weft_sem_acquire - take one permit, waiting until one is released or
 * @deadline. Returns 0, -ETIMEDOUT, -ECANCELED (before the call, deadline
 * not 0, or while waiting), -EINVAL; no permit is taken on any error.
 * Any thread.
 */
int weft_sem_acquire(weft_sem *s, int64_t deadline);
/** weft_sem_try_acquire - take a permit if one is free: 0, -EAGAIN, -EINVAL. */
int weft_sem_try_acquire(weft_sem *s);
/**
 * weft_sem_release - return one permit (to the first waiter, if any).
 * Returns 0, -EOVERFLOW (UINT32_MAX permits already), -EINVAL. Any thread.
 */
int weft_sem_release(weft_sem *s);
/** weft_sem_value - the free permits now (a snapshot; 0 for a NULL @s).
 *  Any thread. */
unsigned weft_sem_value(weft_sem *s);

/** weft_event_new - create a clear event. 0, -EINVAL, -ENOMEM. */
int weft_event_new(weft_event **out);
/** weft_event_free - free @e; nobody may be waiting on it. Any thread. */
void weft_event_free(weft_event *e);
/** weft_event_set - set @e and wake every waiter. 0 or -EINVAL. Any thread. */
int weft_event_set(weft_event *e);
/** weft_event_clear - clear @e. 0 or -EINVAL. Any thread. */
int weft_event_clear(weft_event *e);
/** weft_event_is_set - whether @e is set now (false for a NULL @e).
 *  Any thread. */
bool weft_event_is_set(weft_event *e);
/**
 * weft_event_wait - return once @e is set (at once if it is), or at
 * @deadline. Returns 0, -ETIMEDOUT, -ECANCELED (before the call, deadline
 * not 0 — even if @e is set — or while waiting), -EINVAL. Any thread.
 */
int weft_event_wait(weft_event *e, int64_t deadline);

/** weft_waitgroup_new - create a wait group with counter 0. 0, -EINVAL, -ENOMEM. */
int weft_waitgroup_new(weft_waitgroup **out);
/** weft_waitgroup_free - free @wg; nobody may be waiting on it. Any thread. */
void weft_waitgroup_free(weft_waitgroup *wg);
/**
 * weft_waitgroup_add - add @delta (may be negative) to the counter; when
 * it reaches 0 every waiter wakes. Returns 0, or -EINVAL (@wg NULL, or
 * the counter would go below 0 or overflow: then nothing changes).
 * Any thread.
 */
int weft_waitgroup_add(weft_waitgroup *wg, int64_t delta);
/** weft_waitgroup_done - weft_waitgroup_add(@wg, -1). */
int weft_waitgroup_done(weft_waitgroup *wg);
/**
 * weft_waitgroup_wait - wait until the counter is 0 (at once if it is), or
 * @deadline. Returns 0, -ETIMEDOUT, -ECANCELED (before the call, deadline
 * not 0 — even if the counter is 0 — or while waiting), -EINVAL. Any
 * thread.
 */
int weft_waitgroup_wait(weft_waitgroup *wg, int64_t deadline);

/* ======================================================================== */
/* Waiting on many: wait, gather, as_completed                              */
/* ======================================================================== */

/*
 * Waiting on many futures (asyncio.wait, gather, as_completed, wait_for).
 * Tasks take part through task-backed futures: weft_future_spawn, or
 * weft_task_future for a task spawned with weft_task_spawn. The caller must
 * hold a reference to every future passed in until the call (or the
 * iterator) is done with it. Any thread may call these; a foreign thread
 * blocks itself. Each call below given a deadline other than 0 is a
 * cancellation point (see Futures): in a cancelled task it returns
 * -ECANCELED at once, even if the futures are done (weft_wait_for then
 * spawns nothing, an iterator loses nothing).
 *
 * Completion order: every future's completion (set, fail or cancel) takes
 * effect at one instant inside the call that completes it, and those
 * instants are totally ordered across all futures and threads. "Completed
 * first" below means first in that order; it agrees with every order a
 * program can observe: a completion that happens before another (the same
 * thread, or any synchronisation between the two completers) is earlier.
 */

/** Modes of weft_wait(). */
enum { WEFT_WAIT_ALL = 0, WEFT_WAIT_FIRST = 1 };

/**
 * weft_wait - wait until all (WEFT_WAIT_ALL) or the first (WEFT_WAIT_FIRST)
 * of the @n futures @fs are done (completed in any way or cancelled), or
 * @deadline. Nothing is cancelled on a timeout (as asyncio.wait).
 * Returns, for WEFT_WAIT_ALL, 0; for WEFT_WAIT_FIRST, the index of the
 * future of @fs that completed first (see above); or
 * -ETIMEDOUT, -ECANCELED (the caller was cancelled), -ENOMEM, -EINVAL
 * (@fs NULL with @n > 0, a NULL future, a bad @mode, WEFT_WAIT_FIRST with
 * @n == 0). Any thread.
 */
int weft_wait(weft_future *const *fs, size_t n, int mode, int64_t deadline);

/**
 * weft_gather - wait until every future of @fs has a value and store them
 * in @values[i] (if @values is not NULL); return at the first failure (as
 * asyncio.gather without return_exceptions): the error of the future that
 * failed or was cancelled first, in completion order (see above;
 * -ECANCELED for a cancelled one); the other futures are left running.
 * @values of every future that completed before that failure are filled
 * in (others may be too).
 * Returns 0, that error, -ETIMEDOUT, -ECANCELED, -ENOMEM, -EINVAL.
 * Any thread.
 */
int weft_gather(weft_future *const *fs, size_t n, void **values, int64_t deadline);

/** An iterator over futures in the order they complete. */
typedef struct weft_as_completed weft_as_completed;

/**
 * weft_as_completed_new - start iterating over @fs (the array is copied;
 * the futures are not retained). Returns 0, -EINVAL, -ENOMEM. Any thread.
 */
int weft_as_completed_new(weft_as_completed **out, weft_future *const *fs, size_t n);

/**
 * weft_as_completed_next - wait for the next future to complete and return
 * its index in the original array: each index once, in completion order —
 * exactly: the index returned is that of the future, among those not yet
 * returned, that completed first, and any of them still pending completes
 * later than it (so futures completed at once on different workers come
 * out in the order of their completions, above).
 * Returns the index, or -EPIPE once every future has been returned,
 * -ETIMEDOUT, -ECANCELED, -ENOMEM, -EINVAL. One thread or task at a time
 * per iterator; any thread.
 */
int weft_as_completed_next(weft_as_completed *it, int64_t deadline);

/** weft_as_completed_free - free @it (NULL is ignored). Any thread. */
void weft_as_completed_free(weft_as_completed *it);

/**
 * weft_wait_for - run @fn(@arg) in a new task and wait for its result
 * until @deadline (asyncio.wait_for). On a timeout, or if the caller is
 * cancelled, the task is cancelled and weft_wait_for waits — uncancellably
 * — until it has returned, then reports the timeout; its result is
 * dropped.
 * Returns 0 (fn's return value in *@result if not NULL), -ETIMEDOUT,
 * -ECANCELED, -EINVAL (@fn NULL), -ENOMEM, -ESRCH (no runtime). Any thread.
 */
int weft_wait_for(weft_task_fn fn, void *arg, void **result, int64_t deadline);

/* ======================================================================== */
/* Task groups                                                              */
/* ======================================================================== */

/*
 * A task group (asyncio.TaskGroup, structured concurrency): children are
 * spawned into the group, and leaving it — weft_group_wait — waits until
 * every child has returned. A child reports failure by returning non-zero
 * (a negative errno; a positive value is reported as -ECHILD). The first
 * failure cancels the other children and is what weft_group_wait
 * returns. Cancellation is cooperative: a cancelled child's pending wait
 * returns -ECANCELED, and so does every later call of it that may wait —
 * at once, even one that could complete without waiting, such as a receive
 * from a channel that always has an item (a cancellation point: see
 * Futures) — and the group waits until each child has acknowledged by
 * returning. If the task waiting in weft_group_wait is cancelled, or its
 * deadline passes, the group cancels its children and keeps waiting for
 * them (that wait cannot itself be cancelled), so no child outlives its
 * group. Groups nest: cancelling a child that waits on its own group
 * cancels that group in turn.
 */
typedef struct weft_group weft_group;

/** weft_group_fn - a group child's body: 0 for success, else a failure. */
typedef int (*weft_group_fn)(void *arg);

/** weft_group_new - create an empty group. 0, -EINVAL, -ENOMEM. Any thread. */
int weft_group_new(weft_group **out);

/**
 * weft_group_free - free @g once weft_group_wait has returned (or if no
 * child was ever spawned). Any thread.
 */
void weft_group_free(weft_group *g);

/**
 * weft_group_spawn - start a child task running @fn(@arg) in @g.
 * Returns 0, or -ECANCELED (the group is cancelling: a child failed, or
 * weft_group_cancel was called, or its waiter was cancelled), -EINVAL (@g
 * or @fn NULL, or weft_group_wait has already returned), -ENOMEM, -ESRCH
 * (no runtime). Any thread, children of @g included.
 */
int weft_group_spawn(weft_group *g, weft_group_fn fn, void *arg);

/**
 * weft_group_cancel - cancel every child of @g; later spawns into @g fail
 * with -ECANCELED. weft_group_wait then returns -ECANCELED unless a child
 * failed. Returns 0 or -EINVAL. Any thread.
 */
int weft_group_cancel(weft_group *g);

/**
 * weft_group_wait - leave the group: wait until every child has returned.
 * At @deadline, or if the caller is cancelled, the children are cancelled
 * and the wait goes on until they have returned.
 * Returns 0 (every child succeeded), else the first child failure, else
 * -ETIMEDOUT or -ECANCELED (why the children were cancelled); -EINVAL (@g
 * NULL, or called a second time). Call once, from the group's owner; any
 * thread.
 */
int weft_group_wait(weft_group *g, int64_t deadline);

/* ======================================================================== */
/* Blocking pool                                                            */
/* ======================================================================== */

/*
 * The blocking pool (asyncio's loop.run_in_executor, Tokio's
 * spawn_blocking): run a function that blocks (a synchronous library
 * call, a CPU-heavy step) on a separate pool of plain threads and await its
 * result from a task; the worker runs other tasks meanwhile. The pool is
 * per process and started lazily: it grows by one thread whenever a job
 * finds no idle thread (up to weft_blocking_set_max, default 64; beyond
 * that jobs queue in FIFO order), and a thread idle for 10 s exits, so an
 * unused pool holds no threads. It does not depend on weft_run: jobs may be
 * submitted with or without a runtime, and weft_run does not wait for
 * them. A job cannot be cancelled once submitted: an awaiter that gives up
 * leaves it to run to completion, and its result is then dropped.
 */

/** weft_blocking_fn - a blocking job; its return value is the result. */
typedef void *(*weft_blocking_fn)(void *arg);

/**
 * weft_blocking_spawn - submit @fn(@arg) to the pool; *@out receives a
 * future (one reference, the caller's) that is set to fn's return value.
 * Never waits for the pool: the pool's mutex is held only for a few
 * updates, never across creating a thread; when no idle thread is there
 * and the bound allows, one thread is created on the calling thread
 * (pthread_create, tens of us) after that mutex is dropped.
 * Returns 0, -EINVAL (@out or @fn NULL), -ENOMEM, -EAGAIN (no pool thread
 * could be started and none is left to run the job: it was not queued). A
 * job accepted while another call's thread was being created, whose thread
 * then could not be, fails with -EAGAIN through its future. Any thread.
 */
int weft_blocking_spawn(weft_future **out, weft_blocking_fn fn, void *arg);

/**
 * weft_blocking_run - run @fn(@arg) on the pool and wait for its result
 * (stored in *@result if not NULL) until @deadline. On -ETIMEDOUT or
 * -ECANCELED the job still runs to completion; its result is dropped. A
 * cancelled task's call with a deadline other than 0 returns -ECANCELED at
 * once and submits nothing (a cancellation point: see Futures).
 * Returns 0, -ETIMEDOUT, -ECANCELED, or weft_blocking_spawn's errors.
 * Any thread (from a task, the worker stays free; a foreign thread blocks).
 */
int weft_blocking_run(weft_blocking_fn fn, void *arg, void **result, int64_t deadline);

/**
 * weft_blocking_threads - the pool's current thread count: the threads
 * that may still take a job (a thread that has decided to leave no longer
 * counts, though it may be finishing its last job's completion). Any
 * thread.
 */
unsigned weft_blocking_threads(void);

/**
 * weft_blocking_set_max - bound the pool to @max threads (1..1024; the
 * default is 64). Takes effect at once, both ways:
 *  - lowering it: the threads above @max that are not inside a job's
 *    function — the idle ones, and one just completing its last job's
 *    future — exit before this call returns (it wakes them and waits the
 *    moment they take; done-callbacks running on such a thread lengthen
 *    it); a thread inside a job's function exits as soon as the function
 *    returns — before that job's future is completed — and takes no other
 *    job. So when the call returns, weft_blocking_threads() <= @max + the
 *    number of job functions running, and no job starts while the pool has
 *    more than @max threads;
 *  - raising it: jobs waiting in the queue get idle threads, then a new
 *    thread each, at once, up to the new bound (created on the calling
 *    thread, as in weft_blocking_spawn).
 * What it may block: lowering waits for the leaving threads (microseconds,
 * plus done-callbacks still running on such a thread). From a task that
 * wait parks the task, and its worker runs other tasks meanwhile; a foreign
 * thread blocks. The wait has no deadline and is not cancellable; the
 * bound itself is set at once.
 * Returns 0 or -EINVAL (@max 0 or above 1024). Any thread, a pool job or
 * a done-callback running on a pool thread included (the caller's own
 * thread is not waited for).
 */
int weft_blocking_set_max(unsigned max);

/* ======================================================================== */
/* Generators                                                               */
/* ======================================================================== */

/*
 * A generator (an async iterator; Python's async generator): a body
 * running in its own task yields values one at a time to a consumer that
 * pulls them with weft_gen_next. The body runs only as far ahead as the
 * consumer asks: each weft_gen_yield waits until the value is taken. When
 * the body returns, the consumer gets -EPIPE (the end) after the last
 * value, or the body's failure (its negative return; a positive one reads
 * -ECHILD). Example, a ticker:
 *
 *     static int ticker(weft_gen *g, void *arg) {
 *         int64_t period = *(int64_t *)arg, next = weft_now();
 *         for (;;) {
 *             next += period;
 *             int rc = weft_sleep_until(next);
 *             if (rc == 0) rc = weft_gen_yield(g, &next, WEFT_NEVER);
 *             if (rc) return rc == -EPIPE || rc == -ECANCELED ? 0 : rc;
 *         }
 *     }
 *     weft_gen *g; int64_t tick, period = 1000000;
 *     weft_gen_new(&g, sizeof(int64_t), ticker, &period);
 *     for (int i = 0; i < 10 && weft_gen_next(g, &tick, WEFT_NEVER) == 0; i++)
 *         ...;
 *     weft_gen_close(g);
 */
typedef struct weft_gen weft_gen;

/** weft_gen_fn - a generator's body; 0 for a normal end, else a failure. */
typedef int (*weft_gen_fn)(weft_gen *g, void *arg);

/**
 * weft_gen_new - start a generator of @elem_size-byte values whose body
 * @fn(g, @arg) runs in a new task.
 * Returns 0, -EINVAL (@out or @fn NULL, @elem_size over 64 KiB), -ENOMEM,
 * -ESRCH (no runtime). Any thread.
 */
int weft_gen_new(weft_gen **out, size_t elem_size, weft_gen_fn fn, void *arg);

/**
 * weft_gen_yield - from the body: hand the value at @elem to the consumer,
 * waiting until it takes it or @deadline.
 * Returns 0, or -EPIPE (the consumer closed the generator), -ECANCELED
 * (likewise: the body is cancelled by weft_gen_close; once cancelled,
 * every yield with a deadline other than 0 returns it at once), -ETIMEDOUT,
 * -EINVAL (@g NULL). On
 * -EPIPE or -ECANCELED the body should return. The body's task only.
 */
int weft_gen_yield(weft_gen *g, const void *elem, int64_t deadline);

/**
 * weft_gen_next - take the next value into @out, waiting for the body to
 * yield it, or @deadline.
 * Returns 0, -EPIPE (the body returned 0: no more values), the body's
 * failure, -ETIMEDOUT, -ECANCELED (a cancelled task's call with a deadline
 * other than 0 returns it at once, even if a value is ready, and the value
 * stays for the next call), -EINVAL. One consumer at a time; any thread.
 */
int weft_gen_next(weft_gen *g, void *out, int64_t deadline);

/**
 * weft_gen_close - stop the generator: cancel its body, wait (uncancellably)
 * until the body has returned, and free @g. NULL is ignored. Call once, by
 * the consumer; any thread.
 */
void weft_gen_close(weft_gen *g);

/* ======================================================================== */
/* IO                                                                       */
/* ======================================================================== */

/*
 * Every call here is one io_uring operation on the calling task's worker
 * ring: the task suspends, its worker runs other tasks, and the completion
 * resumes it (docs/io.md). Submissions are batched: a worker enters the
 * kernel once per pass of its loop, not once per call.
 *
 * Common to every call below:
 *  - Returns the kernel's result: >= 0 (bytes, an fd, ...) or -errno.
 *  - @deadline: absolute CLOCK_MONOTONIC ns, last argument. WEFT_NEVER
 *    waits as long as the operation takes; a deadline in the past (0)
 *    means "try once": an operation that can complete at once does, else
 *    -ETIMEDOUT. When the deadline passes first: -ETIMEDOUT.
 *  - Cancellation: if the calling task is cancelled (weft_task_cancel)
 *    while the operation is in flight, the operation is cancelled in the
 *    kernel and the call returns -ECANCELED — but only after the kernel has
 *    let go of the call's buffers, so they may be freed as soon as it
 *    returns. An operation that completed before the cancel took effect
 *    returns its result (no data is lost); the task's next call returns
 *    -ECANCELED at once without doing anything.
 *  - Any thread: from a foreign thread (or with no runtime running), the
 *    call is the plain blocking system call, with the deadline honoured
 *    through poll(2) for calls that wait for readiness.
 *  - @off: a file offset, or -1 for the file's current position (and for
 *    pipes and sockets).
 */

/** weft_io_read - read up to @len bytes from @fd into @buf (pread/read).
 *  Returns bytes read (0 at end of file) or -errno. */
ssize_t weft_io_read(int fd, void *buf, size_t len, int64_t off, int64_t deadline);

/** weft_io_write - write up to @len bytes of @buf to @fd (pwrite/write).
 *  Returns bytes written (possibly fewer than @len) or -errno. A pipe or
 *  socket whose reader is gone gives -EPIPE (or -ECONNRESET). In a task
 *  SIGPIPE is never raised (worker threads block it, so it stays pending
 *  there); from a foreign thread, a socket at the current position is
 *  written with send(MSG_NOSIGNAL), anything else with write(2), which
 *  raises SIGPIPE as usual. weft_io_writev alike. */
ssize_t weft_io_write(int fd, const void *buf, size_t len, int64_t off, int64_t deadline);

/** weft_io_readv / weft_io_writev - vectored read and write (preadv/pwritev).
 *  @iov must stay valid until the call returns. Returns bytes or -errno. */
ssize_t weft_io_readv(int fd, const struct iovec *iov, int iovcnt, int64_t off,
                      int64_t deadline);
ssize_t weft_io_writev(int fd, const struct iovec *iov, int iovcnt, int64_t off,
                       int64_t deadline);

/** weft_io_openat - openat(2): open @path relative to @dirfd (AT_FDCWD for
 *  the working directory) with @flags (O_CLOEXEC is always added) and @mode.
 *  Returns the new fd or -errno. */
int weft_io_openat(int dirfd, const char *path, int flags, unsigned mode,
                   int64_t deadline);

/** weft_io_close - close @fd. Returns 0 or -errno (-EBADF). Not
 *  cancellable and takes no deadline: close does not wait for a peer.
 *  Operations still in flight on @fd in other tasks are not cancelled. */
int weft_io_close(int fd);

/** weft_io_fsync - flush @fd to storage; @datasync: fdatasync semantics.
 *  Returns 0 or -errno. */
int weft_io_fsync(int fd, bool datasync, int64_t deadline);

struct statx;
/** weft_io_statx - statx(2) of @path relative to @dirfd with @flags
 *  (AT_*) and @mask (STATX_*), into @out. Returns 0 or -errno. */
int weft_io_statx(int dirfd, const char *path, int flags, unsigned mask,
                  struct statx *out, int64_t deadline);

/** weft_io_poll - wait until @fd is ready for any of @events (POLLIN,
 *  POLLOUT, ...): the way to drive a non-blocking third-party library
 *  (hiredis, libpq, libcurl) from a task. Returns the ready events mask
 *  (> 0; POLLERR/POLLHUP included as the kernel reports them), or -errno
 *  (-ETIMEDOUT, -ECANCELED). */
int weft_io_poll(int fd, short events, int64_t deadline);

/** weft_io_splice - move up to @len bytes from @fd_in to @fd_out, one of
 *  which must be a pipe, without copying through user space (splice(2)).
 *  @off_in / @off_out: -1 for pipes and the current position. @flags:
 *  SPLICE_F_*. Returns bytes moved (0 at end of input; possibly fewer than
 *  @len: into a blocking socket each call moves at most what its send
 *  buffer has room for) or -errno. The deadline and cancellation always
 *  end it: input that can block and a blocking output socket are awaited
 *  with poll ops first, since a splice blocked inside the kernel ignores
 *  both (docs/io.md). SPLICE_F_NONBLOCK: -EAGAIN instead of any wait. */
ssize_t weft_io_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
                       size_t len, unsigned flags, int64_t deadline);

/* ---- sockets ----
 * Sockets are used as the kernel made them (blocking or not: io_uring
 * waits for readiness either way). Sends always carry MSG_NOSIGNAL: a peer
 * that has gone gives -EPIPE (or -ECONNRESET) on that connection, never
 * SIGPIPE. */

struct sockaddr;
struct msghdr;

/** weft_io_accept - accept a connection on the listening socket @fd. @addr
 *  and @addrlen may be NULL. @flags: SOCK_NONBLOCK (SOCK_CLOEXEC is always
 *  added). Returns the new fd or -errno (-EMFILE/-ENFILE when out of fds:
 *  back off, see weft_net_serve). */
int weft_io_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
                   int64_t deadline);

/** weft_io_connect - connect @fd to @addr. Returns 0 or -errno
 *  (-ECONNREFUSED, -ETIMEDOUT, -ENETUNREACH, ...). After -ETIMEDOUT or
 *  -ECANCELED the socket's state is unspecified: close it. */
int weft_io_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
                    int64_t deadline);

/** weft_io_recv - receive up to @len bytes. Returns bytes (0: the peer shut
 *  its side down) or -errno (-ECONNRESET for a reset peer). */
ssize_t weft_io_recv(int fd, void *buf, size_t len, int flags, int64_t deadline);

/** weft_io_send - send up to @len bytes (MSG_NOSIGNAL added). Returns bytes
 *  sent (possibly fewer) or -errno (-EPIPE, -ECONNRESET). */
ssize_t weft_io_send(int fd, const void *buf, size_t len, int flags, int64_t deadline);

/** weft_io_recvmsg / weft_io_sendmsg - recvmsg(2) / sendmsg(2) (sendmsg
 *  adds MSG_NOSIGNAL). @msg and what it points to must stay valid until the
 *  call returns. Returns bytes or -errno. */
ssize_t weft_io_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline);
ssize_t weft_io_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline);

/** weft_io_shutdown - shutdown(2) with @how = SHUT_RD/SHUT_WR/SHUT_RDWR.
 *  Returns 0 or -errno. Does not wait; no deadline. */
int weft_io_shutdown(int fd, int how);

/** weft_io_socket - socket(2) with SOCK_CLOEXEC added. Returns the fd or
 *  -errno. Does not wait; no deadline. */
int weft_io_socket(int domain, int type, int protocol);

/**
 * weft_mrecv - a socket receiver built on one multishot recv with the
 * worker ring's provided-buffer ring (kernel 6.0; elsewhere it falls back
 * to weft_io_recv per call, same results). The kernel keeps the recv armed
 * and picks buffers itself, so a steady stream costs no submission and no
 * poll re-arm per read. Received bytes are copied out of the kernel's
 * buffer into the receiver's own queue on the worker that owns the ring,
 * which returns the buffer at once: the reading task is not pinned to a
 * worker. One task at a time may use a receiver. Call weft_mrecv_free
 * before closing the fd.
 */
typedef struct weft_mrecv weft_mrecv;

/** weft_mrecv_new - a receiver for socket @fd. Returns NULL on -ENOMEM. */
weft_mrecv *weft_mrecv_new(int fd);

/** weft_mrecv_recv - like weft_io_recv: up to @len queued bytes, waiting
 *  for some until @deadline. 0 at end of stream, -errno after an error
 *  (sticky), -ETIMEDOUT, -ECANCELED. Task only (-EPERM otherwise). */
ssize_t weft_mrecv_recv(weft_mrecv *m, void *buf, size_t len, int64_t deadline);

/** weft_mrecv_free - stop the recv (waits for its last completion, even in
 *  a cancelled task) and free @m. Not the fd. */
void weft_mrecv_free(weft_mrecv *m);

/* ======================================================================== */
/* Networking                                                               */
/* ======================================================================== */

/*
 * Addresses are strings: "host:port" ("127.0.0.1:8080", "localhost:80",
 * "[::1]:8080", ":8080" or "*:8080" for every IPv4 and IPv6 address) or
 * "unix:/path/to/socket". Names are resolved with getaddrinfo on the
 * blocking pool (weft_blocking_spawn), never on a worker; numeric addresses
 * are parsed in place.
 */

/** Flags for weft_net_listen / weft_net_dial. */
#define WEFT_NET_REUSEPORT 0x1u  /* SO_REUSEPORT: several listeners, one port */
#define WEFT_NET_NODELAY   0x2u  /* TCP_NODELAY on the dialled socket */
#define WEFT_NET_NONBLOCK  0x4u  /* O_NONBLOCK on the returned socket */

/** weft_net_listen - a listening socket bound to @addr (SO_REUSEADDR on;
 *  a Unix socket file left at the path is replaced, anything else there is
 *  left alone and gives -EADDRINUSE), with @backlog (0 = SOMAXCONN).
 *  Returns the fd or -errno (-EADDRINUSE, -EINVAL for a malformed address,
 *  -ENOENT when a name does not resolve). Any thread. */
int weft_net_listen(const char *addr, int backlog, unsigned flags);

/** weft_net_dial - resolve @addr and connect to the first address that
 *  accepts, all before @deadline. Returns the connected fd or -errno (the
 *  last address's: -ECONNREFUSED, -ETIMEDOUT, -ENOENT...). Any thread. */
int weft_net_dial(const char *addr, unsigned flags, int64_t deadline);

/** weft_net_resolve - resolve @host and @port (numeric or service name)
 *  for TCP into up to @max addresses in @out. Returns how many, or -errno
 *  (-ENOENT: no such name; -EAI failures map to -EIO; -ENOMEM, or
 *  -EAGAIN when the blocking pool can start no thread). In a task the
 *  lookup is a blocking-pool job (so concurrent lookups are bounded by
 *  weft_blocking_set_max); if the deadline passes or the task is cancelled
 *  first, it finishes there and is discarded. A foreign thread looks up
 *  itself. Any thread. */
struct sockaddr_storage;
int weft_net_resolve(const char *host, const char *port, struct sockaddr_storage *out,
                     int max, int64_t deadline);

/** weft_net_nodelay - set TCP_NODELAY on @fd. Returns 0 or -errno. */
int weft_net_nodelay(int fd, bool on);

/** weft_net_local_port - the local port @fd is bound to, or -errno. */
int weft_net_local_port(int fd);

/** weft_net_conn_fn - the body of a connection's task: it owns @fd and
 *  must close it. */
typedef void (*weft_net_conn_fn)(int fd, void *arg);

/** weft_net_serve - accept connections on @lfd until @deadline, an error
 *  or cancellation, spawning one detached task per connection that runs
 *  @fn(fd, @arg). Uses multishot accept where the kernel has it. Out of
 *  file descriptors (EMFILE/ENFILE), it backs off (1 ms doubling to
 *  100 ms) instead of spinning. Returns -ETIMEDOUT, -ECANCELED, or the
 *  accept error that stopped it (-EBADF, -EINVAL...). Task only (-EPERM
 *  from a foreign thread). */
int weft_net_serve(int lfd, weft_net_conn_fn fn, void *arg, const weft_task_opts *opts,
                   int64_t deadline);

/**
 * weft_reader - a buffered reader over a socket or file descriptor, for
 * protocols with delimiters (lines, HTTP headers). Not thread-safe: one
 * task at a time.
 */
typedef struct weft_reader {
    int fd;
    char *buf;
    size_t cap, start, end;   /* buffered bytes are buf[start, end) */
    bool not_socket;          /* learned from the first -ENOTSOCK: read(2) from then on */
} weft_reader;

/** weft_reader_init - a reader of @fd with a @cap-byte buffer (0 = 16 KiB).
 *  Returns 0 or -ENOMEM. weft_reader_free releases the buffer (not the fd). */
int weft_reader_init(weft_reader *r, int fd, size_t cap);
void weft_reader_free(weft_reader *r);

/** weft_read_until - read up to and including the first @delim (of
 *  @dlen bytes) and copy it into @out (at most @max bytes). Returns the
 *  line's length including the delimiter; 0 at end of stream with nothing
 *  buffered; -EPIPE when the stream ends in mid-line; -ENOBUFS when no
 *  delimiter comes within min(@max, the buffer size) bytes; or an IO error.
 *  Bytes after the delimiter stay buffered. */
ssize_t weft_read_until(weft_reader *r, const char *delim, size_t dlen, void *out,
                        size_t max, int64_t deadline);

/** weft_read_exact - read exactly @len bytes into @out (buffered bytes
 *  first). Returns @len, or -EPIPE when the stream ends first (what was
 *  read is lost), or an IO error. @r may be NULL to read @fd unbuffered. */
ssize_t weft_read_exact(weft_reader *r, int fd, void *out, size_t len, int64_t deadline);

/** weft_write_all - send all @len bytes of @buf to @fd, retrying short
 *  writes. Returns @len or -errno (how much was sent is then unknown). */
ssize_t weft_write_all(int fd, const void *buf, size_t len, int64_t deadline);

#ifdef __cplusplus
}
#endif
#endif /* WEFT_H */
