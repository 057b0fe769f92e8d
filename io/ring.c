/* ring.c — see ring.h. */
#include "io/ring.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static int ring_setup(struct weft__ring *r, unsigned entries)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        /* A CQ four times the SQ: completions of multishot operations and
         * wake-ups can outnumber submissions; overflow is still handled
         * (liburing flushes it on the next enter). */
        p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = entries * 4;
        rc = io_uring_queue_init_params(entries, &r->uring, &p);
        if (rc == 0) {
            r->setup_flags = tries[i];
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
        r->has_msg_ring = io_uring_opcode_supported(probe, IORING_OP_MSG_RING);
        io_uring_free_probe(probe);
    }
    r->efd = eventfd(0, EFD_CLOEXEC);
    if (r->efd < 0) {
        rc = -errno;
        io_uring_queue_exit(&r->uring);
        return rc;
    }
    return 0;
}

void weft__ring_destroy(struct weft__ring *r)
{
    io_uring_queue_exit(&r->uring);
    if (r->efd >= 0)
        close(r->efd);
    r->efd = -1;
}

struct io_uring_sqe *weft__ring_sqe(struct weft__ring *r)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&r->uring))) {
        /* SQ full: submit to make room. -EBUSY means the CQ is backed up:
         * reap completions, then try again. */
        int rc = io_uring_submit(&r->uring);
        if (rc == -EBUSY || rc == -EAGAIN)
            weft__ring_poll(r);
        r->unsubmitted = 0;
    }
    r->unsubmitted++;
    return sqe;
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

static unsigned reap(struct weft__ring *r)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&r->uring, head, cqe) {
        uint64_t ud = cqe->user_data;
        n++;
        if (ud == WEFT__UD_EVENTFD) {
            r->efd_armed = false;
        } else if ((ud & WEFT__UD_TAGS) == WEFT__UD_MSGFAIL) {
            wake_eventfd((struct weft__ring *)(uintptr_t)(ud & ~WEFT__UD_TAGS));
        } else if (ud && !(ud & WEFT__UD_TAGS)) {
            struct weft__io_op *op = (struct weft__io_op *)(uintptr_t)ud;
            op->complete(op, cqe->res, cqe->flags);
        }
        /* WEFT__UD_WAKE: its only job was to end the wait. */
    }
    io_uring_cq_advance(&r->uring, n);
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
    r->unsubmitted = 0;
}

unsigned weft__ring_poll(struct weft__ring *r)
{
    /* No system call unless there is something to submit or an operation
     * whose completion may be waiting: with DEFER_TASKRUN, completions are
     * only posted when the owner enters the kernel (GETEVENTS). Wake-ups
     * need no poll: they only matter to a parked worker, which waits in
     * the ring anyway. */
    bool defer = r->setup_flags & IORING_SETUP_DEFER_TASKRUN;
    if (r->unsubmitted || (defer && r->inflight))
        submit(r, defer);
    return io_uring_cq_ready(&r->uring) ? reap(r) : 0;
}

void weft__ring_wait(struct weft__ring *r, int64_t deadline)
{
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
    int rc = io_uring_submit_and_wait_timeout(&r->uring, &cqe, 1, tsp, NULL);
    (void)rc;   /* -ETIME, -EINTR: just return to the scheduler */
    r->unsubmitted = 0;
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
