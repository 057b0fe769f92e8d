/*
 * uring_echo.c — uring-echo: a hand-written single-threaded liburing echo
 * server, the floor weft's examples/echo_server is measured against.
 *
 *   uring-echo [--port N] [--addr HOST] [--workers 1] [--entries E]
 *              [--buf BYTES] [--poll-first] [--no-multishot]
 *
 * Listens on HOST:N (default 127.0.0.1:9000; --workers is accepted for the
 * same command line as echo_server and must be 1). One ring, one thread,
 * no tasks: a connection is a struct with its buffer; per connection one
 * recv is in flight, and when it completes with n bytes one send of those n
 * bytes (the rest again after a short send), then the next recv. End of
 * stream or an error closes the connection. Accept is multishot where the
 * kernel takes it (plain accept, re-armed per connection, otherwise).
 *
 * The loop is what a careful liburing user writes: SQEs accumulate while
 * the CQ is drained and one io_uring_submit_and_wait() submits them all and
 * sleeps for the next completion; the ring is SINGLE_ISSUER|DEFER_TASKRUN
 * where the kernel has it (COOP_TASKRUN otherwise); sends carry
 * MSG_NOSIGNAL; accepted sockets get TCP_NODELAY as in every other server
 * of the comparison. --poll-first sets IORING_RECVSEND_POLL_FIRST on recvs
 * (in a ping-pong the answer is never there yet when the recv is queued).
 *
 * Builds against liburing 2.3 (Debian 12): no provided-buffer helpers used.
 * Exit: runs until killed; 1 when setup fails, 2 on bad arguments.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

enum { OP_ACCEPT = 1, OP_RECV = 2, OP_SEND = 3 };   /* low bits of user_data */

struct conn {
    int fd;
    unsigned len, off;        /* bytes received, bytes already sent back */
    unsigned char buf[];
};

static struct io_uring ring;
static size_t buf_size = 16384;
static int listen_fd;
static int poll_first;
static int multishot = 1;

static uint64_t tag(void *p, int op)
{
    return (uint64_t)(uintptr_t)p | (uint64_t)op;
}

/* An SQE; when the SQ is full, submit what is queued and take one then. */
static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&ring))) {
        int rc = io_uring_submit(&ring);
        if (rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR) {
            fprintf(stderr, "uring-echo: submit: %s\n", strerror(-rc));
            exit(1);
        }
    }
    return sqe;
}

static void queue_accept(void)
{
    struct io_uring_sqe *sqe = get_sqe();
    if (multishot)
        io_uring_prep_multishot_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    else
        io_uring_prep_accept(sqe, listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, OP_ACCEPT);
}

static void queue_recv(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_recv(sqe, c->fd, c->buf, buf_size, 0);
    if (poll_first)
        sqe->ioprio |= IORING_RECVSEND_POLL_FIRST;
    io_uring_sqe_set_data64(sqe, tag(c, OP_RECV));
}

static void queue_send(struct conn *c)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_send(sqe, c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, tag(c, OP_SEND));
}

static void conn_close(struct conn *c)
{
    close(c->fd);
    free(c);
}

static void on_accept(const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        /* A multishot accept the kernel refuses outright: plain accepts. */
        if (multishot && cqe->res == -EINVAL) {
            fprintf(stderr, "uring-echo: multishot accept refused, using plain accept\n");
            multishot = 0;
        }
        queue_accept();
    }
    if (cqe->res < 0) {
        if (cqe->res != -EINVAL && cqe->res != -ECONNABORTED && cqe->res != -EINTR)
            fprintf(stderr, "uring-echo: accept: %s\n", strerror(-cqe->res));
        return;
    }
    int fd = cqe->res, one = 1;
    struct conn *c = malloc(sizeof(*c) + buf_size);
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->len = c->off = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    queue_recv(c);
}

static void on_recv(struct conn *c, int res)
{
    if (res <= 0) {               /* end of stream, reset, or another error */
        conn_close(c);
        return;
    }
    c->len = (unsigned)res;
    c->off = 0;
    queue_send(c);
}

static void on_send(struct conn *c, int res)
{
    if (res < 0) {
        conn_close(c);
        return;
    }
    c->off += (unsigned)res;
    if (c->off < c->len)
        queue_send(c);            /* short send: the rest */
    else
        queue_recv(c);
}

static int setup_ring(unsigned entries)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        struct io_uring_params p = { 0 };
        /* CQ 4x the SQ: every connection has one op in flight. */
        p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = entries * 4;
        rc = io_uring_queue_init_params(entries, &ring, &p);
        if (rc == 0) {
            fprintf(stderr, "uring-echo: ring flags 0x%x\n", p.flags);
            return 0;
        }
        if (rc != -EINVAL)
            break;
    }
    fprintf(stderr, "uring-echo: io_uring_queue_init: %s\n", strerror(-rc));
    return rc;
}

static int listen_on(const char *host, int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "uring-echo: --addr wants an IPv4 address, got '%s'\n", host);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4096)) {
        fprintf(stderr, "uring-echo: listen %s:%d: %s\n", host, port, strerror(errno));
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 9000;
    unsigned entries = 256;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--poll-first"))
            poll_first = 1;
        else if (!strcmp(a, "--no-multishot"))
            multishot = 0;
        else if (v && !strcmp(a, "--port"))
            port = atoi(argv[++i]);
        else if (v && !strcmp(a, "--addr"))
            host = argv[++i];
        else if (v && !strcmp(a, "--workers")) {
            if (atoi(argv[++i]) != 1)
                goto usage;
        } else if (v && !strcmp(a, "--entries"))
            entries = (unsigned)atoi(argv[++i]);
        else if (v && !strcmp(a, "--buf"))
            buf_size = (size_t)atol(argv[++i]);
        else
            goto usage;
    }
    if (port <= 0 || port > 65535 || entries < 2 || buf_size < 1 || buf_size > (1u << 30))
        goto usage;
    signal(SIGPIPE, SIG_IGN);     /* belt and braces: every send has MSG_NOSIGNAL */
    listen_fd = listen_on(host, port);
    if (listen_fd < 0 || setup_ring(entries))
        return 1;
    fprintf(stderr, "uring-echo: listening on %s:%d\n", host, port);
    queue_accept();
    for (;;) {
        int rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
            fprintf(stderr, "uring-echo: submit_and_wait: %s\n", strerror(-rc));
            return 1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            struct conn *c = (struct conn *)(uintptr_t)(ud & ~(uint64_t)7);
            switch ((int)(ud & 7)) {
            case OP_ACCEPT: on_accept(cqe); break;
            case OP_RECV: on_recv(c, cqe->res); break;
            case OP_SEND: on_send(c, cqe->res); break;
            }
            seen++;
        }
        io_uring_cq_advance(&ring, seen);
    }
usage:
    fprintf(stderr, "usage: %s [--port N] [--addr HOST] [--workers 1] [--entries E] "
            "[--buf BYTES] [--poll-first] [--no-multishot]\n", argv[0]);
    return 2;
}
