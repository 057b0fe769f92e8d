/*
 * mrecv.c — weft_mrecv (weft.h): one multishot recv per socket, buffers
 * from the owning worker ring's provided-buffer ring.
 *
 * Rules:
 *  - The recv is armed on the ring of the worker the reading task runs on
 *    when it arms it; the CQEs are handled there (mr_complete, owner
 *    thread), which copies the bytes into the receiver's queue and returns
 *    the buffer to that ring's buffer ring at once. Only the owner thread
 *    ever touches a buffer ring, and no task holds a kernel buffer, so the
 *    reading task may migrate freely (no pinning).
 *  - Back-pressure: past HIGH queued bytes the handler cancels the recv;
 *    the reader re-arms it (on whatever ring it is on then) once the queue
 *    is below LOW. A recv that ends by itself (-ENOBUFS: the buffer ring
 *    ran dry) is re-armed the same way.
 *  - The receiver is heap memory, so a task's cancellation or deadline
 *    ends only its wait; weft_mrecv_free cancels the recv through the
 *    owner's cancel list and waits for the final CQE before freeing.
 *  - Direct delivery: a reader that finds nothing queued publishes its
 *    buffer (rbuf, rlen) with its waiter, under the lock. A CQE that finds
 *    both, and nothing queued before it, first claims the waiter (a failed
 *    claim means a deadline or a cancellation ended the wait: the bytes
 *    are queued instead, none is lost), then copies straight into the
 *    reader's buffer and wakes it with the byte count: one copy per read
 *    instead of two (kernel buffer -> queue -> reader), and the reader
 *    takes no lock after its wake. The reader clears rbuf under the lock
 *    before it returns or waits again, so no later waiter (weft__ms_stop's)
 *    is ever paired with a stale buffer.
 */
#define _GNU_SOURCE
#include "weft.h"
#include "alloc/mem.h"
#include "io/multishot.h"
#include "io/op.h"
#include "sched/spinlock.h"
#include "sched/task.h"
#include "sched/wait.h"
#include "sched/worker.h"

#include <errno.h>
#include <string.h>

#define HIGH (256u * 1024)
#define LOW  (64u * 1024)

struct weft_mrecv {
    struct weft__multishot ms;         /* first; its lock guards what follows */
    bool eof;
    int err;
    char *q;                           /* queued bytes: q[head, head + len) */
    size_t cap, head, len;
    char *rbuf;                        /* the waiting reader's buffer (above) */
    size_t rlen;
    int fd;                            /* read-only after creation */
    bool fallback;                     /* no buffer ring: weft_io_recv (reader only) */
};

#define MR(o) ((struct weft_mrecv *)(o))

/* Make room for @n more bytes (lock held). */
static bool room_locked(struct weft_mrecv *m, size_t n)
{
    if (m->head + m->len + n <= m->cap)
        return true;
    if (m->len + n <= m->cap) {
        memmove(m->q, m->q + m->head, m->len);
        m->head = 0;
        return true;
    }
    size_t cap = m->cap ? m->cap : 16384;
    while (cap < m->len + n)
        cap *= 2;
    char *q = weft__mem_alloc(cap);
    if (!q)
        return false;
    if (m->len)
        memcpy(q, m->q + m->head, m->len);
    weft__mem_free(m->q, m->cap);
    m->q = q;
    m->cap = cap;
    m->head = 0;
    return true;
}

/* Owner thread: a CQE of the multishot recv. */
static void mr_complete(struct weft__io_op *op, int res, unsigned flags)
{
    struct weft_mrecv *m = MR(op);
    struct weft__waiter *fed = NULL;   /* a reader given its bytes directly */
    size_t given = 0;
    weft__spin_lock(&m->ms.lock);
    struct weft__ring *r = m->ms.ring;
    if (flags & IORING_CQE_F_BUFFER) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        const char *src = r->br_bufs + (size_t)bid * WEFT__BR_SIZE;
        size_t n = res > 0 ? (size_t)res : 0;
        struct weft__waiter *w = m->ms.waiter;
        if (n && w && m->rbuf && !m->len && weft__waiter_claim(w)) {
            given = n < m->rlen ? n : m->rlen;
            memcpy(m->rbuf, src, given);
            m->ms.waiter = NULL;
            fed = w;
            src += given;
            n -= given;
        }
        if (n) {
            if (room_locked(m, n)) {
                memcpy(m->q + m->head + m->len, src, n);
                m->len += n;
            } else {
                m->err = -ENOMEM;
            }
        }
        weft__ring_buf_return(r, bid);
    }
    bool more = flags & IORING_CQE_F_MORE;
    if (!more) {
        m->ms.armed = false;
        m->ms.stopping = false;
        if (res == 0)
            m->eof = true;
        else if (res < 0 && res != -ENOBUFS && res != -ECANCELED && !m->err)
            m->err = res;
    } else if ((m->len > HIGH || m->err) && !m->ms.stopping) {
        /* Never a submit from here (it could reap this op's final CQE
         * under our lock): with the SQ full, the next CQE tries again. */
        struct io_uring_sqe *sqe = weft__ring_sqe_try(r);
        if (sqe) {
            io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)&m->ms.op, 0);
            io_uring_sqe_set_data64(sqe, WEFT__UD_IGNORE);
            m->ms.stopping = true;
        }
    }
    if (fed) {
        weft__spin_unlock(&m->ms.lock);
        weft__waiter_signal(fed, (int)given);   /* given <= WEFT__BR_SIZE */
        return;
    }
    weft__ms_wake_unlock(&m->ms);
}

weft_mrecv *weft_mrecv_new(int fd)
{
    struct weft_mrecv *m = weft__mem_alloc(sizeof(*m));
    if (!m)
        return NULL;
    memset(m, 0, sizeof(*m));
    weft__ms_init(&m->ms, mr_complete, weft__ms_cancel_run);
    m->fd = fd;
    return m;
}

/* Arm on the calling task's worker ring; false: no buffer ring here. */
static bool arm(struct weft_mrecv *m)
{
    struct weft__worker *me = weft__worker_current();
    if (!me || !weft__ring_bufring(&me->ring))
        return false;
    struct io_uring_sqe *sqe = weft__ring_sqe(&me->ring);
    io_uring_prep_recv_multishot(sqe, m->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = WEFT__BR_GROUP;
    io_uring_sqe_set_data(sqe, &m->ms.op);
    weft__ms_armed(&m->ms, &me->ring);
    return true;
}

ssize_t weft_mrecv_recv(weft_mrecv *m, void *buf, size_t len, int64_t deadline)
{
    if (!weft__task_current())
        return -EPERM;
    if (m->fallback)
        return weft_io_recv(m->fd, buf, len, 0, deadline);
    if (weft_task_cancelled())
        return -ECANCELED;
    for (;;) {
        weft__spin_lock(&m->ms.lock);
        m->rbuf = NULL;                /* an earlier wait of ours has ended */
        if (m->len && len) {
            size_t n = m->len < len ? m->len : len;
            memcpy(buf, m->q + m->head, n);
            m->head += n;
            m->len -= n;
            if (!m->len)
                m->head = 0;
            bool rearm = !m->ms.armed && !m->eof && !m->err && m->len < LOW;
            weft__spin_unlock(&m->ms.lock);
            if (rearm)
                arm(m);
            return (ssize_t)n;
        }
        if (m->err || m->eof || !len || !m->ms.armed) {
            int err = m->err;
            bool eof = m->eof;
            weft__spin_unlock(&m->ms.lock);
            if (err)
                return err;
            if (eof || !len)
                return 0;
            if (!arm(m)) {             /* no buffer ring on this worker */
                m->fallback = true;
                return weft_io_recv(m->fd, buf, len, 0, deadline);
            }
            continue;
        }
        /* Nothing queued, the recv armed: wait with our buffer published,
         * so that the next CQE's bytes come straight into it. */
        m->rbuf = buf;
        m->rlen = len;
        int rc = weft__ms_wait_locked(&m->ms, deadline, 0);
        if (rc > 0)
            return rc;                 /* delivered into buf (mr_complete) */
        if (rc < 0) {
            weft__spin_lock(&m->ms.lock);
            m->rbuf = NULL;
            weft__spin_unlock(&m->ms.lock);
            return rc;
        }
    }
}

void weft_mrecv_free(weft_mrecv *m)
{
    if (!m)
        return;
    weft__ms_stop(&m->ms);
    weft__mem_free(m->q, m->cap);
    weft__mem_free(m, sizeof(*m));
}
