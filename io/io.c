/*
 * io.c — the public IO calls (weft.h "IO"): one io_uring operation each,
 * through io/op.h; from a foreign thread, the plain system call.
 */
#define _GNU_SOURCE
#include "weft.h"
#include "io/op.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

/* The kernel caps one read or write at MAX_RW_COUNT; the SQE's length is
 * 32 bits. */
#define RW_MAX ((size_t)0x7ffff000)

static inline unsigned clamp_len(size_t len)
{
    return (unsigned)(len > RW_MAX ? RW_MAX : len);
}

static inline ssize_t sys_result(ssize_t n)
{
    return n < 0 ? -errno : n;
}

ssize_t weft_io_read(int fd, void *buf, size_t len, int64_t off, int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_read(q.sqe, fd, buf, clamp_len(len), (uint64_t)off);
        return weft__io_finish(&q);
    }
    if (rc < 0 || (rc = weft__io_foreign_ready(fd, POLLIN, deadline)))
        return rc;
    return sys_result(off < 0 ? read(fd, buf, len) : pread(fd, buf, len, off));
}

ssize_t weft_io_write(int fd, const void *buf, size_t len, int64_t off, int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_write(q.sqe, fd, buf, clamp_len(len), (uint64_t)off);
        return weft__io_finish(&q);
    }
    if (rc < 0 || (rc = weft__io_foreign_ready(fd, POLLOUT, deadline)))
        return rc;
    if (off < 0) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);   /* a socket: no SIGPIPE */
        if (n >= 0 || errno != ENOTSOCK)
            return sys_result(n);
        return sys_result(write(fd, buf, len));
    }
    return sys_result(pwrite(fd, buf, len, off));
}

ssize_t weft_io_readv(int fd, const struct iovec *iov, int iovcnt, int64_t off,
                      int64_t deadline)
{
    if (iovcnt < 0)
        return -EINVAL;
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_readv(q.sqe, fd, iov, (unsigned)iovcnt, (uint64_t)off);
        return weft__io_finish(&q);
    }
    if (rc < 0 || (rc = weft__io_foreign_ready(fd, POLLIN, deadline)))
        return rc;
    return sys_result(off < 0 ? readv(fd, iov, iovcnt) : preadv(fd, iov, iovcnt, off));
}

ssize_t weft_io_writev(int fd, const struct iovec *iov, int iovcnt, int64_t off,
                       int64_t deadline)
{
    if (iovcnt < 0)
        return -EINVAL;
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_writev(q.sqe, fd, iov, (unsigned)iovcnt, (uint64_t)off);
        return weft__io_finish(&q);
    }
    if (rc < 0 || (rc = weft__io_foreign_ready(fd, POLLOUT, deadline)))
        return rc;
    if (off < 0) {
        struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
        ssize_t n = sendmsg(fd, &m, MSG_NOSIGNAL);      /* a socket: no SIGPIPE */
        if (n >= 0 || errno != ENOTSOCK)
            return sys_result(n);
        return sys_result(writev(fd, iov, iovcnt));
    }
    return sys_result(pwritev(fd, iov, iovcnt, off));
}

int weft_io_openat(int dirfd, const char *path, int flags, unsigned mode, int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_openat(q.sqe, dirfd, path, flags | O_CLOEXEC, mode);
        rc = weft__io_finish(&q);
        /* Opened, but the task was cancelled or timed out meanwhile: the
         * kernel still returned an fd (rc >= 0 is kept). */
        return rc;
    }
    if (rc < 0)
        return rc;
    return (int)sys_result(openat(dirfd, path, flags | O_CLOEXEC, mode));
}

int weft_io_close(int fd)
{
    struct weft__io_req q;
    /* A cancelled task must still be able to clean up: it closes with the
     * system call (close(2) does not wait for a peer). */
    if (weft__io_begin(&q, WEFT_NEVER) == 0) {
        io_uring_prep_close(q.sqe, fd);
        int rc = weft__io_finish(&q);
        /* An async cancel does not stop a close; a cancel that raced it
         * reports the close's own result, which is what we want. */
        return rc;
    }
    return close(fd) < 0 ? -errno : 0;
}

int weft_io_fsync(int fd, bool datasync, int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_fsync(q.sqe, fd, datasync ? IORING_FSYNC_DATASYNC : 0);
        return weft__io_finish(&q);
    }
    if (rc < 0)
        return rc;
    return (datasync ? fdatasync(fd) : fsync(fd)) < 0 ? -errno : 0;
}

int weft_io_statx(int dirfd, const char *path, int flags, unsigned mask,
                  struct statx *out, int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_statx(q.sqe, dirfd, path, flags, mask, out);
        return weft__io_finish(&q);
    }
    if (rc < 0)
        return rc;
    return statx(dirfd, path, flags, mask, out) < 0 ? -errno : 0;
}

int weft_io_poll(int fd, short events, int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_poll_add(q.sqe, fd, (unsigned)(unsigned short)events);
        return weft__io_finish(&q);
    }
    if (rc < 0)
        return rc;
    for (;;) {
        int64_t left = deadline - weft_now();
        int ms = deadline == WEFT_NEVER ? -1
               : left <= 0 ? 0
               : left > (int64_t)1000000 * 1000000 ? 1000000000
               : (int)((left + 999999) / 1000000);
        struct pollfd p = { .fd = fd, .events = events };
        int n = poll(&p, 1, ms);
        if (n > 0)
            return p.revents;
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n == 0 && weft_now() >= deadline)
            return -ETIMEDOUT;
    }
}

/* Splice always runs on an io-wq thread, and a splice blocked there is
 * ended neither by a linked timeout nor by an async cancel (seen on 6.18,
 * both ways: a TCP or Unix socket with no data to read, and one whose send
 * buffer is full): the op would hold its task, and weft_run's shutdown,
 * forever. Sockets take their blocking mode from the file (O_NONBLOCK),
 * not from SPLICE_F_NONBLOCK, which only pipes honour. So no splice is
 * issued that can block:
 *  - input that can block is first awaited with a poll op (which can be
 *    timed out and cancelled); a socket then gives what it holds;
 *  - a blocking socket as output is first awaited for POLLOUT, and each
 *    splice is clamped to the room its send buffer shows (SO_SNDBUF less
 *    SIOCOUTQ, halved for the kernel's per-buffer overhead);
 *  - pipes get SPLICE_F_NONBLOCK, and a full output pipe is awaited with a
 *    poll op too.
 * A caller's SPLICE_F_NONBLOCK makes each of those waits "try once". */
static ssize_t splice_once(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
                           size_t len, unsigned flags, int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc)
        return rc;
    io_uring_prep_splice(q.sqe, fd_in, off_in, fd_out, off_out, clamp_len(len), flags);
    return weft__io_finish(&q);
}

static bool may_block(int fd)
{
    struct stat st;
    return fstat(fd, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode));
}

static bool blocking_socket(int fd)
{
    struct stat st;
    int fl;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
           (fl = fcntl(fd, F_GETFL)) >= 0 && !(fl & O_NONBLOCK);
}

/* Bytes a send into socket @fd should take now without waiting for room:
 * at least 1 once POLLOUT has been seen (the kernel then has room for
 * some), at most what SO_SNDBUF less the queued bytes leaves, halved. */
static size_t send_room(int fd)
{
    int sndbuf = 0, queued = 0;
    socklen_t sl = sizeof(sndbuf);
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl) < 0 ||
        ioctl(fd, SIOCOUTQ, &queued) < 0 || sndbuf <= queued)
        return 1;
    size_t room = (size_t)(sndbuf - queued) / 2;
    return room ? room : 1;
}

/* A poll for the splice's readiness waits: -EAGAIN when a caller who
 * asked not to block would have had to. */
static int splice_wait(int fd, short events, bool nonblock, int64_t deadline)
{
    int rc = weft_io_poll(fd, events, nonblock ? 0 : deadline);
    return rc == -ETIMEDOUT && nonblock ? -EAGAIN : rc < 0 ? rc : 0;
}

ssize_t weft_io_splice(int fd_in, int64_t off_in, int fd_out, int64_t off_out,
                       size_t len, unsigned flags, int64_t deadline)
{
    if (weft__task_current_is_task()) {
        bool nonblock = flags & SPLICE_F_NONBLOCK;
        bool in_blocks = may_block(fd_in), out_sock = blocking_socket(fd_out);
        for (;;) {
            int rc;
            if (in_blocks && (rc = splice_wait(fd_in, POLLIN, nonblock, deadline)))
                return rc;
            size_t n = len;
            if (out_sock) {
                if ((rc = splice_wait(fd_out, POLLOUT, nonblock, deadline)))
                    return rc;
                size_t room = send_room(fd_out);
                n = room < len ? room : len;
            }
            ssize_t moved = splice_once(fd_in, off_in, fd_out, off_out, n,
                                        flags | SPLICE_F_NONBLOCK, deadline);
            if (moved != -EAGAIN || nonblock)
                return moved;
            /* Input was ready (or cannot block): the output pipe is full,
             * or the socket's room went to another writer meanwhile. */
            if ((rc = splice_wait(fd_out, POLLOUT, false, deadline)))
                return rc;
        }
    }
    int rc = weft__io_foreign_ready(fd_in, POLLIN, deadline);
    if (rc)
        return rc;
    loff_t oi = off_in, oo = off_out;
    return sys_result(splice(fd_in, off_in < 0 ? NULL : &oi, fd_out,
                             off_out < 0 ? NULL : &oo, len, flags));
}

/* ---- sockets ------------------------------------------------------------ */

int weft_io_socket(int domain, int type, int protocol)
{
    int fd = socket(domain, type | SOCK_CLOEXEC, protocol);
    return fd < 0 ? -errno : fd;
}

int weft_io_accept(int fd, struct sockaddr *addr, socklen_t *addrlen, int flags,
                   int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_accept(q.sqe, fd, addr, addrlen, flags | SOCK_CLOEXEC);
        return weft__io_finish(&q);
    }
    if (rc < 0 || (rc = weft__io_foreign_ready(fd, POLLIN, deadline)))
        return rc;
    return (int)sys_result(accept4(fd, addr, addrlen, flags | SOCK_CLOEXEC));
}

static int foreign_connect(int fd, const struct sockaddr *addr, socklen_t len,
                           int64_t deadline)
{
    if (deadline == WEFT_NEVER)
        return connect(fd, addr, len) < 0 ? -errno : 0;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    if (!(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int rc = connect(fd, addr, len) < 0 ? -errno : 0;
    if (rc == -EINPROGRESS) {
        rc = weft__io_foreign_ready(fd, POLLOUT, deadline);
        if (rc == 0) {
            int err = 0;
            socklen_t el = sizeof(err);
            rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 ? -errno : -err;
        }
    }
    if (!(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl);
    return rc;
}

int weft_io_connect(int fd, const struct sockaddr *addr, socklen_t addrlen,
                    int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_connect(q.sqe, fd, addr, addrlen);
        return weft__io_finish(&q);
    }
    if (rc < 0)
        return rc;
    return foreign_connect(fd, addr, addrlen, deadline);
}

ssize_t weft_io_recv(int fd, void *buf, size_t len, int flags, int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_recv(q.sqe, fd, buf, clamp_len(len), flags);
        return weft__io_finish(&q);
    }
    if (rc < 0 || (rc = weft__io_foreign_ready(fd, POLLIN, deadline)))
        return rc;
    return sys_result(recv(fd, buf, len, flags));
}

ssize_t weft_io_send(int fd, const void *buf, size_t len, int flags, int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_send(q.sqe, fd, buf, clamp_len(len), flags | MSG_NOSIGNAL);
        return weft__io_finish(&q);
    }
    if (rc < 0 || (rc = weft__io_foreign_ready(fd, POLLOUT, deadline)))
        return rc;
    return sys_result(send(fd, buf, len, flags | MSG_NOSIGNAL));
}

ssize_t weft_io_recvmsg(int fd, struct msghdr *msg, int flags, int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_recvmsg(q.sqe, fd, msg, (unsigned)flags);
        return weft__io_finish(&q);
    }
    if (rc < 0 || (rc = weft__io_foreign_ready(fd, POLLIN, deadline)))
        return rc;
    return sys_result(recvmsg(fd, msg, flags));
}

ssize_t weft_io_sendmsg(int fd, const struct msghdr *msg, int flags, int64_t deadline)
{
    struct weft__io_req q;
    int rc = weft__io_begin(&q, deadline);
    if (rc == 0) {
        io_uring_prep_sendmsg(q.sqe, fd, msg, (unsigned)(flags | MSG_NOSIGNAL));
        return weft__io_finish(&q);
    }
    if (rc < 0 || (rc = weft__io_foreign_ready(fd, POLLOUT, deadline)))
        return rc;
    return sys_result(sendmsg(fd, msg, flags | MSG_NOSIGNAL));
}

int weft_io_shutdown(int fd, int how)
{
    return shutdown(fd, how) < 0 ? -errno : 0;
}
