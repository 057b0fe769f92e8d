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

/* (declarations of this section go here) */

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
 *  socket whose reader is gone gives -EPIPE; SIGPIPE is never raised for
 *  sockets (see weft_io_send; pipes: weft ignores SIGPIPE only if you do). */
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
 *  SPLICE_F_*. Returns bytes moved (0 at end of input) or -errno. */
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

/* ======================================================================== */
/* Networking                                                               */
/* ======================================================================== */

/*
 * Addresses are strings: "host:port" ("127.0.0.1:8080", "localhost:80",
 * "[::1]:8080", ":8080" or "*:8080" for every IPv4 and IPv6 address) or
 * "unix:/path/to/socket". Names are resolved with getaddrinfo on a helper
 * thread, never on a worker; numeric addresses are parsed in place.
 */

/** Flags for weft_net_listen / weft_net_dial. */
#define WEFT_NET_REUSEPORT 0x1u  /* SO_REUSEPORT: one listener per worker */
#define WEFT_NET_NODELAY   0x2u  /* TCP_NODELAY on the dialled socket */
#define WEFT_NET_NONBLOCK  0x4u  /* O_NONBLOCK on the returned socket */

/** weft_net_listen - a listening socket bound to @addr (SO_REUSEADDR on;
 *  an existing Unix socket file is replaced), with @backlog (0 = SOMAXCONN).
 *  Returns the fd or -errno (-EADDRINUSE, -EINVAL for a malformed address,
 *  -ENOENT when a name does not resolve). Any thread. */
int weft_net_listen(const char *addr, int backlog, unsigned flags);

/** weft_net_dial - resolve @addr and connect to the first address that
 *  accepts, all before @deadline. Returns the connected fd or -errno (the
 *  last address's: -ECONNREFUSED, -ETIMEDOUT, -ENOENT...). Any thread. */
int weft_net_dial(const char *addr, unsigned flags, int64_t deadline);

/** weft_net_resolve - resolve @host and @port (numeric or service name)
 *  for TCP into up to @max addresses in @out. Returns how many, or -errno
 *  (-ENOENT: no such name; -EAI failures map to -EIO). The lookup runs on a
 *  helper thread; if the deadline passes or the task is cancelled first,
 *  the lookup finishes in the background and is discarded. Any thread. */
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
