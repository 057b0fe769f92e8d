/* ring.c — see ring.h. */
#include "io/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int ring_setup(struct weft__ring *r, unsigned entries)
{
    /* TASKRUN_FLAG (5.19) makes the kernel raise IORING_SQ_TASKRUN in the
     * shared SQ flags while completions wait for a kernel entry, so the
     * scheduler can tell without a system call (weft__ring_pending). */
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    /* Each set first with SUBMIT_ALL (5.18: a bad SQE does not stop the
     * rest of the batch), then without it: a kernel refuses any flag it
     * does not know with -EINVAL, and every flag here is an optimisation. */
    for (size_t i = 0; i < 2 * (sizeof(tries) / sizeof(tries[0])); i++) {
        unsigned flags = tries[i / 2] | (i % 2 ? 0 : IORING_SETUP_SUBMIT_ALL);
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        /* A CQ sixteen times the SQ: every suspended task may have an op in
         * flight (thousands per worker), multishot ops and wake-ups post
         * more CQEs than they take SQEs. Overflow is still handled: the
         * kernel keeps overflowed CQEs (IORING_FEAT_NODROP) and reap()
         * flushes them (reap()). */
        p.flags = flags | IORING_SETUP_CQSIZE;
        p.cq_entries = entries * 16;
        rc = io_uring_queue_init_params(entries, &r->uring, &p);
        if (rc == 0) {
            r->setup_flags = flags;
            return 0;
        }
        if (rc != -EINVAL)
            break;          /* not a flag problem: ENOMEM, EPERM, ENOSYS... */
    }
    return rc;
}

int weft__ring_init(struct weft__ring *r, unsigned entries)
{
    memset(r, 0, sizeof(*r));
    r->efd = -1;
    int rc = ring_setup(r, entries);
    if (rc < 0) {
        if (rc == -ENOMEM)
            fprintf(stderr, "weft: io_uring_setup failed with ENOMEM: on kernels "
                    "before 5.12 rings are charged to RLIMIT_MEMLOCK (ulimit -l); "
                    "raise it or use fewer workers\n");
        else if (rc == -EPERM || rc == -ENOSYS)
            fprintf(stderr, "weft: io_uring is unavailable (%s): check "
                    "kernel.io_uring_disabled and the container's seccomp profile\n",
                    strerror(-rc));
        return rc;
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&r->uring);
    if (probe) {
        for (int op = 0; op < IORING_OP_LAST; op++)
            r->feat.ops[op] = io_uring_opcode_supported(probe, op) ? 1 : 0;
        io_uring_free_probe(probe);
    }
    r->has_msg_ring = r->feat.msg_ring = r->feat.ops[IORING_OP_MSG_RING];
    r->feat.socket_op = r->feat.ops[IORING_OP_SOCKET];
    /* Flags, not opcodes: no probe names them. Kernels that have
     * IORING_OP_SOCKET (5.19) have multishot accept and buffer rings;
     * SEND_ZC came with multishot recv (6.0). A kernel that still refuses
     * one answers -EINVAL, and the caller falls back (io/net.c). */
    r->feat.multishot_accept = r->feat.buf_ring = r->feat.ops[IORING_OP_SOCKET];
    r->feat.recv_multishot = r->feat.ops[IORING_OP_SEND_ZC];
    if (getenv("WEFT_NO_MULTISHOT"))
        r->feat.multishot_accept = r->feat.recv_multishot = false;
    r->efd = eventfd(0, EFD_CLOEXEC);
    if (r->efd < 0) {
        rc = -errno;
        io_uring_queue_exit(&r->uring);
        return rc;
    }
    /* A hint: a kernel without it (-EINVAL) enters through the fd. */
    r->fd_registered = io_uring_register_ring_fd(&r->uring) == 1;
    return 0;
}

void weft__ring_thread_end(struct weft__ring *r)
{
    /* liburing enters through the plain fd again afterwards, so the
     * destroy that another thread runs later does not use an index that
     * was only ever this thread's. */
    if (r->fd_registered)
        (void)io_uring_unregister_ring_fd(&r->uring);
    r->fd_registered = false;
}

bool weft__ring_bufring(struct weft__ring *r)
{
    if (r->br || r->br_tried)
        return r->br != NULL;
    r->br_tried = true;
    if (!r->feat.buf_ring || !r->feat.recv_multishot)
        return false;
    size_t ring_sz = WEFT__BR_COUNT * sizeof(struct io_uring_buf);
    size_t total = ring_sz + (size_t)WEFT__BR_COUNT * WEFT__BR_SIZE;
    void *mem = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return false;
    struct io_uring_buf_ring *br = mem;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (unsigned long)br;
    reg.ring_entries = WEFT__BR_COUNT;
    reg.bgid = WEFT__BR_GROUP;
    if (io_uring_register_buf_ring(&r->uring, &reg, 0) < 0) {
        munmap(mem, total);
        return false;
    }
    io_uring_buf_ring_init(br);
    r->br = br;
    r->br_bufs = (char *)mem + ring_sz;
    int mask = io_uring_buf_ring_mask(WEFT__BR_COUNT);
    for (unsigned i = 0; i < WEFT__BR_COUNT; i++)
        io_uring_buf_ring_add(br, r->br_bufs + (size_t)i * WEFT__BR_SIZE, WEFT__BR_SIZE,
                              (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(br, WEFT__BR_COUNT);
    return true;
}

void weft__ring_buf_return(struct weft__ring *r, unsigned bid)
{
    io_uring_buf_ring_add(r->br, r->br_bufs + (size_t)bid * WEFT__BR_SIZE, WEFT__BR_SIZE,
                          (unsigned short)bid, io_uring_buf_ring_mask(WEFT__BR_COUNT), 0);
    io_uring_buf_ring_advance(r->br, 1);
}

void weft__ring_destroy(struct weft__ring *r)
{
    io_uring_queue_exit(&r->uring);
    if (r->br)
        munmap(r->br, WEFT__BR_COUNT * sizeof(struct io_uring_buf) +
                      (size_t)WEFT__BR_COUNT * WEFT__BR_SIZE);
    r->br = NULL;
    if (r->efd >= 0)
        close(r->efd);
    r->efd = -1;
}

static unsigned reap(struct weft__ring *r);
static void submit(struct weft__ring *r, bool getevents);

struct io_uring_sqe *weft__ring_sqe(struct weft__ring *r)
{
    struct io_uring_sqe *sqe;
    /* SQ full: submit to make room (submit() reaps on -EBUSY). It must not
     * run cancellation requests: an op being prepared now is not queued
     * yet, and its cancel would miss it. */
    while (!(sqe = io_uring_get_sqe(&r->uring)))
        submit(r, false);
    r->unsubmitted++;
    return sqe;
}

struct io_uring_sqe *weft__ring_sqe_try(struct weft__ring *r)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->uring);
    if (sqe)
        r->unsubmitted++;
    return sqe;
}

void weft__ring_reserve(struct weft__ring *r, unsigned n)
{
    while (io_uring_sq_space_left(&r->uring) < n)
        submit(r, false);
}

void weft__ring_request_cancel(struct weft__ring *r, struct weft__io_op *op)
{
    /* release: publishes op's fields to the owner's acquire exchange. */
    struct weft__io_op *head = atomic_load_explicit(&r->cancel_head, memory_order_relaxed);
    do
        op->cancel_next = head;
    while (!atomic_compare_exchange_weak_explicit(&r->cancel_head, &head, op,
                                                  memory_order_release,
                                                  memory_order_relaxed));
}

/* Owner thread: run every queued cancellation request. */
/* Whether there was anything to run: a cancel may end its op at once and
 * wake the op's task. */
static bool run_cancels(struct weft__ring *r)
{
    /* relaxed peek: the exchange below acquires. */
    if (!atomic_load_explicit(&r->cancel_head, memory_order_relaxed))
        return false;
    /* acquire: pairs with the release CAS in weft__ring_request_cancel. */
    struct weft__io_op *op = atomic_exchange_explicit(&r->cancel_head, NULL,
                                                      memory_order_acquire);
    while (op) {
        struct weft__io_op *next = op->cancel_next;
        op->cancel(op);          /* may end op's life: read next first */
        op = next;
    }
    return true;
}

static void arm_eventfd(struct weft__ring *r)
{
    if (r->efd_armed)
        return;
    struct io_uring_sqe *sqe = weft__ring_sqe(r);
    io_uring_prep_read(sqe, r->efd, &r->efd_buf, sizeof(r->efd_buf), 0);
    io_uring_sqe_set_data64(sqe, WEFT__UD_EVENTFD);
    r->efd_armed = true;
}

static void wake_eventfd(struct weft__ring *target)
{
    uint64_t one = 1;
    ssize_t n;
    do
        n = write(target->efd, &one, sizeof(one));
    while (n < 0 && errno == EINTR);
}

static unsigned reap_once(struct weft__ring *r)
{
    struct io_uring_cqe *cqe;
    unsigned n = 0;
    /* One CQE at a time, consumed before it is handled: complete() may
     * submit, and submit() may reap (-EBUSY); no CQE may be seen twice. */
    while (__io_uring_peek_cqe(&r->uring, &cqe, NULL) == 0 && cqe) {
        uint64_t ud = cqe->user_data;
        int res = cqe->res;
        unsigned flags = cqe->flags;
        io_uring_cq_advance(&r->uring, 1);
        n++;
        if (ud == WEFT__UD_EVENTFD) {
            r->efd_armed = false;
        } else if ((ud & WEFT__UD_TAGS) == WEFT__UD_MSGFAIL) {
            wake_eventfd((struct weft__ring *)(uintptr_t)(ud & ~WEFT__UD_TAGS));
        } else if (ud && !(ud & WEFT__UD_TAGS)) {
            struct weft__io_op *op = (struct weft__io_op *)(uintptr_t)ud;
            if (!(flags & IORING_CQE_F_MORE))
                r->inflight--;
            op->complete(op, res, flags);
        }
        /* WEFT__UD_WAKE: its only job was to end the wait. WEFT__UD_IGNORE:
         * linked timeouts and cancel requests, whose op reports for them. */
    }
    return n;
}

static unsigned reap(struct weft__ring *r)
{
    unsigned n = reap_once(r);
    /* The kernel kept CQEs that did not fit (IORING_SQ_CQ_OVERFLOW): now
     * that there is room, have them flushed in and take them too. */
    while (io_uring_cq_has_overflow(&r->uring)) {
        io_uring_get_events(&r->uring);
        unsigned m = reap_once(r);
        n += m;
        if (!m)
            break;
    }
    return n;
}

static void submit(struct weft__ring *r, bool getevents)
{
    for (;;) {
        int rc = getevents ? io_uring_submit_and_get_events(&r->uring)
                           : io_uring_submit(&r->uring);
        if (rc >= 0 || (rc != -EINTR && rc != -EAGAIN && rc != -EBUSY))
            break;
        if (rc == -EBUSY || rc == -EAGAIN)
            reap(r);   /* make room in the CQ, then retry */
    }
    /* What the kernel has not taken yet (an enter that failed, or one that
     * stopped at a bad SQE on a ring without SUBMIT_ALL) is still queued:
     * the next poll or wait submits it. */
    r->unsubmitted = io_uring_sq_ready(&r->uring);
}

/* Whether the kernel holds completions back until our next entry
 * (IORING_SQ_TASKRUN, raised only on rings set up with TASKRUN_FLAG). */
static bool taskrun_pending(struct weft__ring *r)
{
    /* acquire: the kernel sets the flag after queueing the work. */
    return __atomic_load_n(r->uring.sq.kflags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN;
}

unsigned weft__ring_poll(struct weft__ring *r)
{
    run_cancels(r);
    /* Completions need an enter with GETEVENTS while ops are in flight:
     * with DEFER_TASKRUN the kernel posts them only then, and with
     * COOP_TASKRUN their task work runs only on a kernel entry. Nothing in
     * flight and nothing queued: no system call at all. With TASKRUN_FLAG
     * the kernel says when such work is waiting (for any CQE, the eventfd
     * read's and MSG_RING wake-ups' included), so with nothing to submit
     * and the flag clear there is nothing to enter for. Without it, the
     * eventfd read is not counted: it only ends waits, and weft__ring_wait
     * arms it. */
    bool flagged = r->setup_flags & IORING_SETUP_TASKRUN_FLAG;
    bool getevents = flagged ? taskrun_pending(r) : r->inflight > 0;
    if (r->unsubmitted || getevents)
        submit(r, getevents || r->inflight > 0);
    return reap(r);
}

bool weft__ring_pending(struct weft__ring *r)
{
    if (io_uring_cq_ready(&r->uring))
        return true;
    return (r->setup_flags & IORING_SETUP_TASKRUN_FLAG) && taskrun_pending(r);
}

void weft__ring_wait(struct weft__ring *r, int64_t deadline)
{
    /* A task the cancels woke must not wait for our next wake-up: submit
     * and reap, but do not sleep. */
    if (run_cancels(r))
        deadline = 0;
    arm_eventfd(r);
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts, *tsp = NULL;
    if (deadline != INT64_MAX) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t left = deadline - ((int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
        if (left < 0)
            left = 0;
        ts.tv_sec = left / 1000000000;
        ts.tv_nsec = left % 1000000000;
        tsp = &ts;
    }
    /* A cancellation request queued after run_cancels() above comes with a
     * ring wake, which ends this wait. */
    int rc = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, tsp, NULL);
    (void)rc;   /* -ETIME, -EINTR, -EBUSY: reap, back to the scheduler */
    r->unsubmitted = io_uring_sq_ready(&r->uring);
    reap(r);
}

void weft__ring_wake(struct weft__ring *target, struct weft__ring *from)
{
    if (from && from->has_msg_ring) {
        struct io_uring_sqe *sqe = weft__ring_sqe(from);
        io_uring_prep_msg_ring(sqe, target->uring.ring_fd, 0, WEFT__UD_WAKE, 0);
        /* No CQE on our own ring when it worked; a failure comes back
         * tagged with the target, and reap() falls back to the eventfd. */
        io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)target | WEFT__UD_MSGFAIL);
        io_uring_sqe_set_flags(sqe, IOSQE_CQE_SKIP_SUCCESS);
        submit(from, false);
        return;
    }
    wake_eventfd(target);
}
