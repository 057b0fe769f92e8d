/*
 * op.h — one IO operation of one task: submit on the current worker's
 * ring, suspend, resume on the completion. Every call in io/ is built on it.
 *
 * The request (struct weft__io_req) lives on the calling task's stack; its
 * address is the SQE's user_data. The lifetime rule that everything here
 * serves: the task does not resume for good, and so its frame (the request,
 * the caller's buffer, the iovec, the sockaddr) does not go away, until the
 * kernel has posted the op's last CQE. Neither a deadline nor a
 * cancellation ends the wait by itself; both make the kernel end the op
 * early, and the CQE ends the wait:
 *
 *  - Deadline: the op is linked (IOSQE_IO_LINK) to an IORING_OP_LINK_TIMEOUT
 *    with the absolute deadline; when it fires the kernel completes the op
 *    with -ECANCELED, reported as -ETIMEDOUT. A deadline already past means
 *    "try once": an op that can complete at once (data is there) does,
 *    else it times out straight away.
 *  - Cancellation (weft_task_cancel, any thread): the task's waiter has an
 *    on_cancel hook (sched/wait.h) that queues the request on the owning
 *    ring's cancel list and wakes that ring. The owner thread (the only one
 *    allowed to submit: SINGLE_ISSUER) submits IORING_OP_ASYNC_CANCEL for
 *    the op; the op completes with -ECANCELED (or with its result, if it
 *    finished first), and that CQE wakes the task.
 *
 * Who wakes the task is settled by `st` (one fetch_or each, any order):
 *   complete (owner):  DONE.      Wakes unless QUEUED && !CONSUMED.
 *   on_cancel (any):   QUEUED.    Queues the request unless DONE|QUEUED.
 *   cancel run (owner): CONSUMED. Wakes if DONE, else submits the cancel.
 * So exactly one party wakes the task, and the cancel list never holds a
 * request whose frame is gone (the task waits for CONSUMED too).
 *
 * Results: the kernel's (bytes or -errno); -ECANCELED when the task was
 * cancelled and the op did not finish first; -ETIMEDOUT for the deadline.
 * An op that finished anyway keeps its result (no byte read is lost); the
 * task's next wait sees the (sticky) cancellation.
 */
#ifndef WEFT_IO_OP_H
#define WEFT_IO_OP_H

#include <stdatomic.h>
#include <stdint.h>

#include "io/ring.h"
#include "sched/wait.h"

#define WEFT__IO_DONE     1u
#define WEFT__IO_QUEUED   2u
#define WEFT__IO_CONSUMED 4u

struct weft__io_req {
    struct weft__io_op op;         /* first: &op is the user_data */
    struct weft__waiter w;
    struct weft__ring *ring;       /* the ring the op was queued on */
    struct io_uring_sqe *sqe;      /* for the caller to fill (prep) */
    _Atomic unsigned st;           /* WEFT__IO_* above */
    int res;                       /* the CQE's */
    unsigned cflags;
    int64_t deadline;
    struct __kernel_timespec ts;   /* the linked timeout's, read at submit */
};

/*
 * Begin an op on the calling task's worker ring with @deadline.
 * Returns 0: fill q->sqe with an io_uring_prep_* call, then call
 *            weft__io_finish();
 *         1: the caller is not a task (a foreign thread, or no runtime):
 *            do the plain system call instead;
 *   -ECANCELED: the task is already cancelled; nothing was queued.
 */
int weft__io_begin(struct weft__io_req *q, int64_t deadline);

/* Queue the prepared SQE (and its linked timeout), suspend until its CQE,
 * return the result (see above). Task only, right after weft__io_begin. */
int weft__io_finish(struct weft__io_req *q);

/* Whether the caller is a task (else a foreign thread). */
bool weft__task_current_is_task(void);

/* For foreign threads: wait until @fd is ready for @events or @deadline
 * passes (-ETIMEDOUT). 0 when ready; WEFT_NEVER returns 0 at once (the
 * blocking system call does the waiting). */
int weft__io_foreign_ready(int fd, short events, int64_t deadline);

#endif
