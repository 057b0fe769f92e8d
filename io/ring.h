/*
 * ring.h — each worker's io_uring: where it sleeps, how it is woken, and
 * (io/ on top of this) where all IO is submitted.
 *
 * One ring per worker, created by that worker's thread. Setup flags are
 * probed once, best first, falling back when the kernel refuses one:
 *   SINGLE_ISSUER|DEFER_TASKRUN (6.1)  ->  SINGLE_ISSUER|COOP_TASKRUN
 *   -> COOP_TASKRUN (5.19)  ->  none,
 * each with TASKRUN_FLAG (5.19) and then without, each of those with
 * SUBMIT_ALL (5.18) and then without (ring.c ring_setup).
 * An idle worker waits in io_uring_enter with its earliest timer deadline as
 * the timeout, so IO completions, timers and wake-ups all end the same wait.
 *
 * Waking a parked worker from another worker: IORING_OP_MSG_RING (5.18)
 * posts a CQE straight into the target's ring. From a foreign thread (which
 * has no ring), or where MSG_RING is missing: a write to the target's
 * eventfd, on which the target always keeps a read pending in its ring.
 *
 * CQE user_data: WEFT__UD_WAKE and WEFT__UD_EVENTFD are the wake-ups above;
 * a failed MSG_RING (target CQ full) comes back tagged WEFT__UD_MSGFAIL and
 * is retried through the eventfd, so no wake-up is lost; any other non-zero
 * value is a struct weft__io_op * (8-byte aligned) whose complete() runs.
 */
#ifndef WEFT_IO_RING_H
#define WEFT_IO_RING_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

#define WEFT__UD_IGNORE  ((uint64_t)0)
#define WEFT__UD_WAKE    ((uint64_t)1)
#define WEFT__UD_EVENTFD ((uint64_t)2)
#define WEFT__UD_MSGFAIL ((uint64_t)4)   /* | target ring: a MSG_RING failed */
#define WEFT__UD_TAGS    ((uint64_t)7)   /* op pointers have these bits clear */

/* An operation in flight: its address is the SQE's user_data.
 * complete() runs on the ring's owner thread for every CQE of the op (a
 * multishot op has several; the last lacks IORING_CQE_F_MORE).
 * cancel() runs on the owner thread when a cancellation request queued with
 * weft__ring_request_cancel() is taken off the ring's list. */
struct weft__io_op {
    void (*complete)(struct weft__io_op *op, int res, unsigned flags);
    void (*cancel)(struct weft__io_op *op);
    struct weft__io_op *cancel_next;     /* link in the ring's cancel list */
};

/* Kernel features found at ring creation (io/ring.c probes them once). */
struct weft__ring_features {
    bool msg_ring;          /* IORING_OP_MSG_RING (5.18) */
    bool multishot_accept;  /* 5.19 */
    bool recv_multishot;    /* 6.0 */
    bool buf_ring;          /* provided-buffer rings (5.19) */
    bool socket_op;         /* IORING_OP_SOCKET (5.19) */
    unsigned char ops[IORING_OP_LAST]; /* per opcode: supported */
};

struct weft__ring {
    struct io_uring uring;
    unsigned setup_flags;     /* the flags the kernel accepted */
    bool fd_registered;       /* with the owner thread (weft__ring_init) */
    bool has_msg_ring;        /* IORING_OP_MSG_RING supported */
    int efd;                  /* eventfd for foreign-thread wakes */
    uint64_t efd_buf;         /* target of the pending eventfd read */
    bool efd_armed;           /* a read on efd is queued or in flight */
    unsigned unsubmitted;     /* SQEs prepared since the last submit */
    unsigned inflight;        /* ops whose last CQE has not been reaped */
    struct weft__ring_features feat;
    /* The provided-buffer ring (io/mrecv.c), set up on first use by the
     * owner: WEFT__BR_COUNT buffers of WEFT__BR_SIZE bytes in group
     * WEFT__BR_GROUP. Only the owner thread adds buffers back. */
    struct io_uring_buf_ring *br;
    char *br_bufs;
    bool br_tried;
    /* Cancellation requests from any thread (a Treiber stack; the owner
     * takes all with one exchange). */
    _Atomic(struct weft__io_op *) cancel_head;
};

/* Create the calling thread's ring: 0, or -errno (-ENOMEM names memlock in
 * the message printed, -ENOSYS/-EPERM when io_uring is unavailable).
 * Where the kernel has it (5.18), the ring's fd is also registered with
 * the calling thread (IORING_REGISTER_RING_FDS), so that its enters skip
 * the fd table look-up and reference count; only that thread may then
 * enter the ring, which SINGLE_ISSUER asks anyway. */
int  weft__ring_init(struct weft__ring *r, unsigned entries);
/* The owner thread, before it exits: drop the registration above. */
void weft__ring_thread_end(struct weft__ring *r);
void weft__ring_destroy(struct weft__ring *r);

/* An SQE to fill; submits first when the SQ is full. Owner thread only. */
struct io_uring_sqe *weft__ring_sqe(struct weft__ring *r);

/* An SQE to fill, or NULL when the SQ is full (never submits, so never
 * reaps: for CQE handlers that hold a lock). Owner thread only. */
struct io_uring_sqe *weft__ring_sqe_try(struct weft__ring *r);

/* Whether completions are waiting to be reaped (posted, or held by the
 * kernel until our next entry where the ring can tell: TASKRUN_FLAG).
 * A hint, without a system call. Owner thread only. */
bool weft__ring_pending(struct weft__ring *r);

/* Make room for @n SQEs that must be queued back to back (an op and its
 * linked timeout): submits first if fewer are free. Owner thread only. */
void weft__ring_reserve(struct weft__ring *r, unsigned n);

#define WEFT__BR_COUNT 256u
#define WEFT__BR_SIZE  4096u
#define WEFT__BR_GROUP 0

/* The ring's provided-buffer ring, set up on the first call (mmap,
 * io_uring_register_buf_ring, io_uring_buf_ring_init/add/advance: liburing
 * 2.3 has no io_uring_setup_buf_ring); false where the kernel refuses.
 * Owner thread only. */
bool weft__ring_bufring(struct weft__ring *r);

/* Hand buffer @bid back to @r's buffer ring. Owner thread only. */
void weft__ring_buf_return(struct weft__ring *r, unsigned bid);

/* Ask @r's owner to run @op->cancel(@op) soon. The caller guarantees @op
 * stays valid until then (io/op.c). Any thread. */
void weft__ring_request_cancel(struct weft__ring *r, struct weft__io_op *op);

/* Run queued cancellation requests, submit what is queued and handle every
 * completion that is ready, without blocking. Enters the kernel only when
 * something was queued or an op is in flight (with DEFER_TASKRUN the
 * kernel posts completions only then). Returns the number of CQEs handled.
 * Owner thread only (the worker loop, never a task). */
unsigned weft__ring_poll(struct weft__ring *r);

/* Run the queued cancels, submit, then sleep until a CQE arrives or
 * @deadline (CLOCK_MONOTONIC ns; INT64_MAX = no timeout) passes; handle the
 * CQEs. No sleep when a cancel ran: it may have woken a task. Owner thread
 * only. */
void weft__ring_wait(struct weft__ring *r, int64_t deadline);

/* Wake the thread that owns @target. @from is the caller's own ring when
 * the caller is a worker (MSG_RING is used), NULL from a foreign thread
 * (the eventfd is written). Any thread. */
void weft__ring_wake(struct weft__ring *target, struct weft__ring *from);

#endif
