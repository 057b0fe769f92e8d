/*
 * test_net.c — sockets on loopback: listen/dial over IPv4, IPv6 and Unix
 * sockets, every socket operation, refused and reset connections (no
 * SIGPIPE), timeouts and cancellation of accept/connect/recv, the accept
 * loop's EMFILE back-off, many concurrent connections checked byte by
 * byte, and the buffered helpers.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "weft.h"
#include "tests/helpers.h"
#include "tests/kernel.h"

#define MS 1000000LL

static void run_main(unsigned workers, void *(*fn)(void *), void *arg)
{
    weft_config cfg = { .workers = workers };
    void *r = (void *)1;
    cr_assert_eq(weft_run(&cfg, fn, arg, &r), 0);
    cr_assert_null(r, "main task reported failure %p", r);
}

static int listen_any_port(const char *host, char *addr, size_t len)
{
    char spec[128];
    snprintf(spec, sizeof(spec), "%s:0", host);
    int lfd = weft_net_listen(spec, 0, 0);
    if (lfd < 0)
        return lfd;
    int port = weft_net_local_port(lfd);
    cr_assert_gt(port, 0);
    if (strchr(host, ':'))
        snprintf(addr, len, "[%s]:%d", host, port);
    else
        snprintf(addr, len, "%s:%d", host, port);
    return lfd;
}

/* ---- echo over each address family ------------------------------------------ */

static void echo_conn(int fd, void *arg)
{
    char buf[4096];
    for (;;) {
        ssize_t n = weft_io_recv(fd, buf, sizeof(buf), 0, WEFT_NEVER);
        if (n <= 0)
            break;
        if (weft_write_all(fd, buf, (size_t)n, WEFT_NEVER) < 0)
            break;
    }
    weft_io_close(fd);
}

struct server {
    int lfd;
    weft_task task;
};

static void *serve_task(void *arg)
{
    struct server *s = arg;
    int rc = weft_net_serve(s->lfd, echo_conn, NULL, NULL, WEFT_NEVER);
    return (void *)(intptr_t)rc;
}

static void start_server(struct server *s, int lfd)
{
    s->lfd = lfd;
    cr_assert_eq(weft_task_spawn(&s->task, serve_task, s, NULL), 0);
}

static void stop_server(struct server *s)
{
    void *r;
    cr_assert_eq(weft_task_cancel(s->task), 0);
    cr_assert_eq(weft_task_join(s->task, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, -ECANCELED, "serve returned %ld", (long)(intptr_t)r);
    weft_io_close(s->lfd);
}

static void roundtrip(const char *addr)
{
    int fd = weft_net_dial(addr, WEFT_NET_NODELAY, weft_deadline_in(5000 * MS));
    cr_assert_geq(fd, 0, "dial %s: %d", addr, fd);
    char msg[] = "hello, weft", back[sizeof(msg)];
    cr_assert_eq(weft_write_all(fd, msg, sizeof(msg), WEFT_NEVER), (ssize_t)sizeof(msg));
    cr_assert_eq(weft_read_exact(NULL, fd, back, sizeof(back), weft_deadline_in(5000 * MS)),
                 (ssize_t)sizeof(back));
    cr_assert_str_eq(back, msg);
    cr_assert_eq(weft_io_shutdown(fd, SHUT_WR), 0);
    cr_assert_eq(weft_io_recv(fd, back, sizeof(back), 0, weft_deadline_in(5000 * MS)), 0);
    cr_assert_eq(weft_io_close(fd), 0);
}

static void *families_main(void *arg)
{
    char addr[128];
    struct server s;
    /* IPv4 */
    start_server(&s, listen_any_port("127.0.0.1", addr, sizeof(addr)));
    roundtrip(addr);
    /* by name, resolved off the worker */
    char named[128];
    snprintf(named, sizeof(named), "localhost:%d", weft_net_local_port(s.lfd));
    struct sockaddr_storage ss[4];
    int n = weft_net_resolve("localhost", "80", ss, 4, weft_deadline_in(5000 * MS));
    cr_assert_gt(n, 0, "resolve localhost: %d", n);
    bool has_v4 = false;
    for (int i = 0; i < n; i++)
        has_v4 |= ss[i].ss_family == AF_INET;
    if (has_v4)
        roundtrip(named);
    stop_server(&s);
    /* IPv6, where the machine has it */
    int lfd = listen_any_port("::1", addr, sizeof(addr));
    if (lfd >= 0) {
        start_server(&s, lfd);
        roundtrip(addr);
        stop_server(&s);
    } else {
        cr_log_warn("no IPv6 loopback (%d): IPv6 part skipped", lfd);
    }
    /* Unix socket */
    char path[64];
    snprintf(path, sizeof(path), "unix:/tmp/weft-net-%d.sock", (int)getpid());
    start_server(&s, weft_net_listen(path, 0, 0));
    cr_assert_geq(s.lfd, 0);
    roundtrip(path);
    stop_server(&s);
    /* The socket file left behind is replaced by the next listener... */
    int again = weft_net_listen(path, 0, 0);
    cr_assert_geq(again, 0, "listen over a stale socket file: %d", again);
    close(again);
    unlink(path + 5);
    /* ...but nothing else at that path is removed. */
    int keep = open(path + 5, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    cr_assert_geq(keep, 0);
    close(keep);
    cr_assert_eq(weft_net_listen(path, 0, 0), -EADDRINUSE);
    struct stat st;
    cr_assert_eq(stat(path + 5, &st), 0, "the regular file was removed");
    cr_assert(S_ISREG(st.st_mode));
    unlink(path + 5);
    /* bad addresses */
    cr_assert_eq(weft_net_listen("nonsense", 0, 0), -EINVAL);
    cr_assert_eq(weft_net_dial("[::1", 0, WEFT_NEVER), -EINVAL);
    cr_assert_eq(weft_net_dial("127.0.0.1:", 0, WEFT_NEVER), -EINVAL);
    return NULL;
}

Test(net, listen_dial_ipv4_ipv6_unix, .timeout = 30)
{
    run_main(4, families_main, NULL);
}

/* Names resolve on the blocking pool: many lookups at once all succeed,
 * and the pool stays within its bound; a lookup whose deadline has passed
 * ends at once, and its job finishes alone. */
static atomic_uint resolve_peak;

static void *resolve_one(void *arg)
{
    struct sockaddr_storage ss[4];
    int n = weft_net_resolve("localhost", "80", ss, 4, weft_deadline_in(10000 * MS));
    unsigned th = weft_blocking_threads(), peak = atomic_load(&resolve_peak);
    while (th > peak && !atomic_compare_exchange_weak(&resolve_peak, &peak, th))
        ;
    return (void *)(intptr_t)n;
}

static atomic_int resolve_hold;   /* 1: hold the pool, 2: held, 0: let go */

static void *hold_pool(void *arg)
{
    atomic_store(&resolve_hold, 2);
    while (atomic_load(&resolve_hold) != 0)
        usleep(1000);
    return NULL;
}

static void *resolve_main(void *arg)
{
    enum { N = 100 };
    static weft_task t[N];
    for (int i = 0; i < N; i++)
        cr_assert_eq(weft_task_spawn(&t[i], resolve_one, NULL, NULL), 0);
    for (int i = 0; i < N; i++) {
        void *r;
        cr_assert_eq(weft_task_join(t[i], &r, WEFT_NEVER), 0);
        cr_assert_gt((intptr_t)r, 0, "lookup %d: %d", i, (int)(intptr_t)r);
    }
    cr_assert_leq(atomic_load(&resolve_peak), 64u, "pool grew to %u threads",
                  atomic_load(&resolve_peak));
    /* A passed deadline: the answer if the job was that quick, else
     * -ETIMEDOUT at once, the job finishing alone. */
    struct sockaddr_storage ss[4];
    for (int i = 0; i < 20; i++) {
        int64_t t0 = weft_now();
        int n = weft_net_resolve("localhost", "80", ss, 4, 0);
        cr_assert(n > 0 || n == -ETIMEDOUT, "resolve with a passed deadline: %d", n);
        cr_assert_lt(weft_now() - t0, 1000 * MS);
    }
    /* With the pool's one thread held by a job, the lookup queues behind
     * it: a passed deadline must time out, at once. */
    cr_assert_eq(weft_blocking_set_max(1), 0);
    atomic_store(&resolve_hold, 1);
    weft_future *hold;
    cr_assert_eq(weft_blocking_spawn(&hold, hold_pool, NULL), 0);
    while (atomic_load(&resolve_hold) != 2)
        weft_yield();
    int64_t t0 = weft_now();
    cr_assert_eq(weft_net_resolve("localhost", "80", ss, 4, 0), -ETIMEDOUT);
    cr_assert_lt(weft_now() - t0, 1000 * MS);
    atomic_store(&resolve_hold, 0);
    cr_assert_eq(weft_future_await(hold, NULL, WEFT_NEVER), 0);
    weft_future_release(hold);
    cr_assert_gt(weft_net_resolve("localhost", "80", ss, 4, weft_deadline_in(10000 * MS)), 0);
    cr_assert_eq(weft_blocking_set_max(64), 0);
    return NULL;
}

Test(net, resolve_on_the_blocking_pool, .timeout = 60)
{
    run_main(4, resolve_main, NULL);
}

/* ---- errors: refused, reset, no SIGPIPE ------------------------------------------ */

static void *refused_main(void *arg)
{
    char addr[64];
    int lfd = listen_any_port("127.0.0.1", addr, sizeof(addr));
    cr_assert_geq(lfd, 0);
    close(lfd);                  /* nobody listens there now */
    cr_assert_eq(weft_net_dial(addr, 0, weft_deadline_in(5000 * MS)), -ECONNREFUSED);
    return NULL;
}

Test(net, refused_connection, .timeout = 30)
{
    run_main(2, refused_main, NULL);
}

static void *foreign_write(void *arg)
{
    char x = 'x';
    return (void *)(intptr_t)weft_io_write(*(int *)arg, &x, 1, -1, WEFT_NEVER);
}

static void *reset_main(void *arg)
{
    /* SIGPIPE keeps its default action here: a send to a dead peer must
     * not kill the process. */
    char addr[64];
    int lfd = listen_any_port("127.0.0.1", addr, sizeof(addr));
    int c = weft_net_dial(addr, 0, WEFT_NEVER);
    cr_assert_geq(c, 0);
    int s = weft_io_accept(lfd, NULL, NULL, 0, weft_deadline_in(5000 * MS));
    cr_assert_geq(s, 0);
    /* A reader blocked in recv sees the reset as an error return. */
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    cr_assert_eq(setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)), 0);
    cr_assert_eq(weft_io_close(s), 0);       /* RST */
    char buf[64];
    cr_assert_eq(weft_io_recv(c, buf, sizeof(buf), 0, weft_deadline_in(5000 * MS)), -ECONNRESET);
    ssize_t n = 0;
    for (int i = 0; i < 4 && n >= 0; i++)
        n = weft_io_send(c, buf, sizeof(buf), 0, WEFT_NEVER);
    cr_assert(n == -EPIPE || n == -ECONNRESET, "send after reset: %zd", n);
    struct msghdr mh = { 0 };
    struct iovec iov = { buf, sizeof(buf) };
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    n = weft_io_sendmsg(c, &mh, 0, WEFT_NEVER);
    cr_assert(n == -EPIPE || n == -ECONNRESET, "sendmsg after reset: %zd", n);
    /* write and writev reach the socket without MSG_NOSIGNAL: the worker
     * threads block SIGPIPE, so they fail the same way. */
    n = weft_io_write(c, buf, sizeof(buf), -1, WEFT_NEVER);
    cr_assert(n == -EPIPE || n == -ECONNRESET, "write after reset: %zd", n);
    n = weft_io_writev(c, &iov, 1, -1, WEFT_NEVER);
    cr_assert(n == -EPIPE || n == -ECONNRESET, "writev after reset: %zd", n);
    /* A pipe whose reader has gone. */
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    close(p[0]);
    cr_assert_eq(weft_io_write(p[1], "x", 1, -1, WEFT_NEVER), -EPIPE);
    close(p[1]);
    /* A foreign thread's write to the dead socket. */
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, foreign_write, &c), 0);
    void *fr;
    cr_assert_eq(pthread_join(th, &fr), 0);
    cr_assert((intptr_t)fr == -EPIPE || (intptr_t)fr == -ECONNRESET, "foreign write: %zd",
              (ssize_t)(intptr_t)fr);
    weft_io_close(c);
    weft_io_close(lfd);
    return NULL;
}

Test(net, reset_is_an_error_not_a_signal, .timeout = 30)
{
    signal(SIGPIPE, SIG_DFL);    /* a SIGPIPE would kill the test */
    run_main(2, reset_main, NULL);
}

/* ---- timeouts and cancellation ---------------------------------------------------- */

static void *timeouts_main(void *arg)
{
    char addr[64];
    int lfd = listen_any_port("127.0.0.1", addr, sizeof(addr));
    /* accept times out */
    int64_t d = weft_deadline_in(20 * MS);
    cr_assert_eq(weft_io_accept(lfd, NULL, NULL, 0, d), -ETIMEDOUT);
    cr_assert_geq(weft_now(), d - MS);
    cr_assert_lt(weft_now() - d, 300 * MS);
    int c = weft_net_dial(addr, 0, WEFT_NEVER);
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    int s = weft_io_accept(lfd, (struct sockaddr *)&peer, &plen, 0, 0);   /* ready: try once */
    cr_assert_geq(s, 0, "accept: %d", s);
    cr_assert_eq(peer.ss_family, AF_INET);
    /* recv times out, and the connection still works afterwards */
    char buf[16];
    d = weft_deadline_in(20 * MS);
    cr_assert_eq(weft_io_recv(s, buf, sizeof(buf), 0, d), -ETIMEDOUT);
    cr_assert_geq(weft_now(), d - MS);
    cr_assert_eq(weft_io_send(c, "ping", 4, 0, WEFT_NEVER), 4);
    cr_assert_eq(weft_io_recv(s, buf, sizeof(buf), 0, weft_deadline_in(5000 * MS)), 4);
    /* recvmsg with a deadline */
    struct iovec iov = { buf, sizeof(buf) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    cr_assert_eq(weft_io_recvmsg(s, &mh, 0, weft_deadline_in(10 * MS)), -ETIMEDOUT);
    weft_io_close(c);
    weft_io_close(s);

    /* connect times out: a listener whose accept queue is full drops the
     * SYNs of further connections, so their connects hang. */
    int full = weft_net_listen("127.0.0.1:0", 1, 0);
    char faddr[64];
    snprintf(faddr, sizeof(faddr), "127.0.0.1:%d", weft_net_local_port(full));
    int hold[8], nh = 0, rc = 0;
    for (; nh < 8; nh++) {
        rc = hold[nh] = weft_net_dial(faddr, 0, weft_deadline_in(200 * MS));
        if (rc < 0)
            break;
    }
    cr_assert_eq(rc, -ETIMEDOUT, "a connect to a full queue: %d", rc);
    for (int i = 0; i < nh; i++)
        close(hold[i]);
    close(full);
    weft_io_close(lfd);
    return NULL;
}

Test(net, timeouts_accept_recv_connect, .timeout = 30)
{
    run_main(2, timeouts_main, NULL);
}

struct blocked {
    int fd;
    _Atomic int started;
    int rc;
};

static void *accept_forever(void *arg)
{
    struct blocked *b = arg;
    atomic_store(&b->started, 1);
    b->rc = weft_io_accept(b->fd, NULL, NULL, 0, WEFT_NEVER);
    return NULL;
}

static void *cancel_accept_main(void *arg)
{
    int lfd = weft_net_listen("127.0.0.1:0", 0, 0);
    cr_assert_geq(lfd, 0);
    struct blocked b = { .fd = lfd };
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, accept_forever, &b, NULL), 0);
    while (!atomic_load(&b.started))
        weft_yield();
    weft_sleep(5 * MS);
    cr_assert_eq(weft_task_cancel(t), 0);
    cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
    cr_assert_eq(b.rc, -ECANCELED);
    /* the connection that comes next waits in the queue, unaccepted */
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", weft_net_local_port(lfd));
    int c = weft_net_dial(addr, 0, WEFT_NEVER);
    cr_assert_geq(c, 0);
    int s = weft_io_accept(lfd, NULL, NULL, 0, weft_deadline_in(5000 * MS));
    cr_assert_geq(s, 0);
    close(s);
    close(c);
    close(lfd);
    return NULL;
}

Test(net, cancel_blocked_accept, .timeout = 30)
{
    run_main(4, cancel_accept_main, NULL);
}

/* ---- EMFILE: the accept loop backs off ------------------------------------------------ */

static _Atomic int emfile_handled;

static void hold_until_eof(int fd, void *arg)
{
    char b[16];
    while (weft_io_recv(fd, b, sizeof(b), 0, WEFT_NEVER) > 0)
        ;
    atomic_fetch_add(&emfile_handled, 1);
    weft_io_close(fd);
}

struct emfile_srv {
    int lfd;
};

static void *emfile_serve(void *arg)
{
    struct emfile_srv *s = arg;
    return (void *)(intptr_t)weft_net_serve(s->lfd, hold_until_eof, NULL, NULL, WEFT_NEVER);
}

static int64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *emfile_main(void *arg)
{
    enum { N = 6 };
    struct emfile_srv s = { .lfd = weft_net_listen("127.0.0.1:0", 64, 0) };
    cr_assert_geq(s.lfd, 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", weft_net_local_port(s.lfd));
    int c[N];
    for (int i = 0; i < N; i++)
        cr_assert_geq(c[i] = weft_net_dial(addr, 0, WEFT_NEVER), 0);
    /* Room for two more fds, then EMFILE. */
    int probe = dup(0);
    int top = probe;
    for (int fd = probe + 1; fd < probe + 64; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            top = fd;
    close(probe);
    struct rlimit old, lim;
    getrlimit(RLIMIT_NOFILE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)top + 3;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
    weft_task srv;
    cr_assert_eq(weft_task_spawn(&srv, emfile_serve, &s, NULL), 0);
    weft_sleep(20 * MS);
    /* Out of fds: the loop must sleep, not spin. */
    int64_t c0 = cpu_ns(), w0 = weft_now();
    weft_sleep(200 * MS);
    int64_t cpu = cpu_ns() - c0, wall = weft_now() - w0;
    cr_assert_lt(cpu, wall / 4, "accept loop spun: %lld ns CPU in %lld ns",
                 (long long)cpu, (long long)wall);
    cr_assert_eq(atomic_load(&emfile_handled), 0);
    /* Free fds: each closed client lets its handler finish and close, and
     * the loop accepts the next. */
    for (int i = 0; i < N; i++)
        close(c[i]);
    int64_t until = weft_deadline_in(10000 * MS);
    while (atomic_load(&emfile_handled) < N && weft_now() < until)
        weft_sleep(2 * MS);
    cr_assert_eq(atomic_load(&emfile_handled), N);
    setrlimit(RLIMIT_NOFILE, &old);
    void *r;
    weft_task_cancel(srv);
    cr_assert_eq(weft_task_join(srv, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, -ECANCELED);
    close(s.lfd);
    return NULL;
}

Test(net, emfile_accept_loop_backs_off, .timeout = 30)
{
    run_main(4, emfile_main, NULL);
}

Test(net, emfile_accept_loop_backs_off_single_shot, .timeout = 30)
{
    atomic_store(&emfile_handled, 0);
    setenv("WEFT_NO_MULTISHOT", "1", 1);
    run_main(4, emfile_main, NULL);
    unsetenv("WEFT_NO_MULTISHOT");
}

/* ---- many connections, byte-exact ----------------------------------------------------- */

struct client {
    const char *addr;
    unsigned id;
    _Atomic unsigned *done;
};

static void *client_task(void *arg)
{
    struct client *c = arg;
    int fd = weft_net_dial(c->addr, WEFT_NET_NODELAY, weft_deadline_in(10000 * MS));
    cr_assert_geq(fd, 0, "dial: %d", fd);
    unsigned rounds = (unsigned)test_scale(40);
    unsigned char out[9000], in[9000];
    uint32_t x = c->id * 2654435761u + 1;
    for (unsigned r = 0; r < rounds; r++) {
        size_t len = 1 + (x >> 7) % sizeof(out);
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            out[i] = (unsigned char)(x >> 16);
        }
        cr_assert_eq(weft_write_all(fd, out, len, WEFT_NEVER), (ssize_t)len);
        cr_assert_eq(weft_read_exact(NULL, fd, in, len, weft_deadline_in(10000 * MS)),
                     (ssize_t)len);
        cr_assert_arr_eq(in, out, len, "client %u round %u: bytes differ", c->id, r);
    }
    weft_io_close(fd);
    atomic_fetch_add(c->done, 1);
    return NULL;
}

static void *many_main(void *arg)
{
    unsigned n = (unsigned)test_scale(500);
    char addr[64];
    struct server s;
    start_server(&s, listen_any_port("127.0.0.1", addr, sizeof(addr)));
    struct client *cs = calloc(n, sizeof(*cs));
    weft_task *ts = calloc(n, sizeof(*ts));
    _Atomic unsigned done = 0;
    for (unsigned i = 0; i < n; i++) {
        cs[i] = (struct client){ .addr = addr, .id = i, .done = &done };
        cr_assert_eq(weft_task_spawn(&ts[i], client_task, &cs[i], NULL), 0);
    }
    for (unsigned i = 0; i < n; i++)
        cr_assert_eq(weft_task_join(ts[i], NULL, WEFT_NEVER), 0);
    cr_assert_eq(atomic_load(&done), n);
    stop_server(&s);
    free(cs);
    free(ts);
    return NULL;
}

Test(net, many_connections_byte_exact, .timeout = 60)
{
    run_main(8, many_main, NULL);
}

/* ---- the accept loop: a burst of connections, cancel, deadline -------------------------- */

/* 200 clients dial at once, so one multishot accept posts many CQEs in a
 * row; each echoes a few KiB byte-exact. Then the serve task is cancelled
 * while its accept is armed (it must wait for the final CQE), and a serve
 * with a deadline ends with -ETIMEDOUT. Run with multishot accept and with
 * WEFT_NO_MULTISHOT=1 (the single-shot loop). */
static void *burst_client(void *arg)
{
    struct client *c = arg;
    int fd = weft_net_dial(c->addr, WEFT_NET_NODELAY, weft_deadline_in(10000 * MS));
    cr_assert_geq(fd, 0, "dial: %d", fd);
    unsigned char out[3000], in[3000];
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (unsigned char)(c->id * 31 + i * 7);
    for (int r = 0; r < 3; r++) {
        cr_assert_eq(weft_write_all(fd, out, sizeof(out), WEFT_NEVER), (ssize_t)sizeof(out));
        cr_assert_eq(weft_read_exact(NULL, fd, in, sizeof(in), weft_deadline_in(10000 * MS)),
                     (ssize_t)sizeof(in));
        cr_assert_arr_eq(in, out, sizeof(out), "client %u: bytes differ", c->id);
    }
    weft_io_close(fd);
    atomic_fetch_add(c->done, 1);
    return NULL;
}

static void *deadline_serve(void *arg)
{
    int lfd = *(int *)arg;
    return (void *)(intptr_t)weft_net_serve(lfd, echo_conn, NULL, NULL,
                                            weft_deadline_in(30 * MS));
}

static void *burst_main(void *arg)
{
    enum { N = 200 };
    char addr[64];
    struct server s;
    start_server(&s, listen_any_port("127.0.0.1", addr, sizeof(addr)));
    static struct client cs[N];
    static weft_task ts[N];
    _Atomic unsigned done = 0;
    for (unsigned i = 0; i < N; i++) {
        cs[i] = (struct client){ .addr = addr, .id = i, .done = &done };
        cr_assert_eq(weft_task_spawn(&ts[i], burst_client, &cs[i], NULL), 0);
    }
    for (unsigned i = 0; i < N; i++)
        cr_assert_eq(weft_task_join(ts[i], NULL, WEFT_NEVER), 0);
    cr_assert_eq(atomic_load(&done), N);
    stop_server(&s);                      /* cancel: -ECANCELED */
    /* Cancel at once, before the loop got to wait. */
    start_server(&s, listen_any_port("127.0.0.1", addr, sizeof(addr)));
    stop_server(&s);
    /* Deadline. */
    int lfd = weft_net_listen("127.0.0.1:0", 0, 0);
    cr_assert_geq(lfd, 0);
    weft_task t;
    void *r;
    cr_assert_eq(weft_task_spawn(&t, deadline_serve, &lfd, NULL), 0);
    cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, -ETIMEDOUT);
    weft_io_close(lfd);
    return NULL;
}

Test(net, serve_burst_cancel_deadline, .timeout = 30)
{
    if (!test_kernel_has_multishot_accept())
        cr_skip_test("kernel lacks multishot accept (5.19): the _single_shot test covers the fallback");
    run_main(4, burst_main, NULL);
}

Test(net, serve_burst_cancel_deadline_single_shot, .timeout = 30)
{
    setenv("WEFT_NO_MULTISHOT", "1", 1);
    run_main(4, burst_main, NULL);
    unsetenv("WEFT_NO_MULTISHOT");
}

/* ---- weft_mrecv: multishot recv with provided buffers ------------------------------------ */

/* A 4 MiB stream (past the receiver's high-water mark while the reader
 * sleeps, so the recv is cancelled and re-armed) read through weft_mrecv
 * byte-exact, from a reader that migrates between workers; then a reader
 * blocked in weft_mrecv_recv is cancelled and frees its receiver while the
 * recv is armed; a deadline; end of stream. With and without multishot. */
struct mr_writer {
    int fd;
    size_t total;
};

static unsigned char mr_byte(size_t i)
{
    return (unsigned char)(i * 131 + (i >> 9));
}

static void *mr_write(void *arg)
{
    struct mr_writer *w = arg;
    unsigned char chunk[7000];
    for (size_t off = 0; off < w->total;) {
        size_t n = w->total - off < sizeof(chunk) ? w->total - off : sizeof(chunk);
        for (size_t i = 0; i < n; i++)
            chunk[i] = mr_byte(off + i);
        cr_assert_eq(weft_write_all(w->fd, chunk, n, WEFT_NEVER), (ssize_t)n);
        off += n;
    }
    weft_io_shutdown(w->fd, SHUT_WR);
    return NULL;
}

static void *mr_blocked(void *arg)
{
    int fd = *(int *)arg;
    weft_mrecv *m = weft_mrecv_new(fd);
    cr_assert_not_null(m);
    char buf[64];
    ssize_t n = weft_mrecv_recv(m, buf, sizeof(buf), WEFT_NEVER);
    weft_mrecv_free(m);          /* armed: waits for the final CQE */
    return (void *)(intptr_t)n;
}

static void *mrecv_main(void *arg)
{
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    struct mr_writer w = { .fd = sp[1], .total = 4u << 20 };
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, mr_write, &w, NULL), 0);
    weft_mrecv *m = weft_mrecv_new(sp[0]);
    cr_assert_not_null(m);
    static unsigned char buf[10000];
    size_t got = 0;
    /* A short deadline with nothing to read yet is fine either way. */
    for (unsigned k = 0;; k++) {
        if (k == 3)
            weft_sleep(50 * MS);        /* the queue fills past HIGH */
        if (k % 16 == 0)
            weft_yield();               /* may move to another worker */
        ssize_t n = weft_mrecv_recv(m, buf, 1 + k % sizeof(buf), weft_deadline_in(10000 * MS));
        cr_assert_geq(n, 0, "mrecv: %zd", n);
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq(buf[i], mr_byte(got + (size_t)i), "byte %zu differs", got + (size_t)i);
        got += (size_t)n;
    }
    cr_assert_eq(got, w.total);
    cr_assert_eq(weft_mrecv_recv(m, buf, 10, WEFT_NEVER), 0);   /* stays at EOF */
    cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
    weft_mrecv_free(m);
    close(sp[0]);
    close(sp[1]);

    /* Deadline, then cancel a blocked reader. */
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    m = weft_mrecv_new(sp[0]);
    cr_assert_eq(weft_mrecv_recv(m, buf, 10, weft_deadline_in(20 * MS)), -ETIMEDOUT);
    weft_mrecv_free(m);
    cr_assert_eq(weft_task_spawn(&t, mr_blocked, &sp[0], NULL), 0);
    weft_sleep(20 * MS);
    cr_assert_eq(weft_task_cancel(t), 0);
    void *r;
    cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, -ECANCELED);
    /* Data sent after the receiver is gone is still there for the next. */
    cr_assert_eq(write(sp[1], "xyz", 3), 3);
    m = weft_mrecv_new(sp[0]);
    cr_assert_eq(weft_mrecv_recv(m, buf, 10, weft_deadline_in(5000 * MS)), 3);
    cr_assert_arr_eq(buf, "xyz", 3);
    weft_mrecv_free(m);
    close(sp[0]);
    close(sp[1]);
    return NULL;
}

Test(net, mrecv_stream_cancel_deadline, .timeout = 30)
{
    if (!test_kernel_has_multishot_recv())
        cr_skip_test("kernel lacks multishot recv (6.0): the _fallback test covers weft_io_recv");
    run_main(4, mrecv_main, NULL);
}

Test(net, mrecv_stream_cancel_deadline_fallback, .timeout = 30)
{
    setenv("WEFT_NO_MULTISHOT", "1", 1);
    run_main(4, mrecv_main, NULL);
    unsetenv("WEFT_NO_MULTISHOT");
}

/* Deadlines and cancellations racing the hand-off of bytes to a waiting
 * reader (mrecv.c's direct delivery claims the reader before it copies):
 * a writer streams chunks of random sizes with short pauses; readers take
 * turns on one receiver, each reading with very short deadlines, or none,
 * until the main task cancels it at a random moment, possibly while bytes
 * are being handed to it. The stream must come out byte-exact across all
 * the readers: no byte lost to a wait that ended, none seen twice. */
struct mr_race {
    weft_mrecv *m;
    size_t got;
    unsigned seed;              /* the reader's; one reader at a time */
};

static void *mr_race_write(void *arg)
{
    struct mr_writer *w = arg;
    unsigned seed = 7;
    static unsigned char chunk[5000];
    for (size_t off = 0; off < w->total;) {
        size_t n = 1 + (size_t)rand_r(&seed) % sizeof(chunk);
        if (n > w->total - off)
            n = w->total - off;
        for (size_t i = 0; i < n; i++)
            chunk[i] = mr_byte(off + i);
        cr_assert_eq(weft_write_all(w->fd, chunk, n, WEFT_NEVER), (ssize_t)n);
        off += n;
        if (rand_r(&seed) % 4 == 0)
            weft_sleep((int64_t)(rand_r(&seed) % 50) * 1000);
    }
    weft_io_shutdown(w->fd, SHUT_WR);
    return NULL;
}

static void *mr_race_read(void *arg)
{
    struct mr_race *x = arg;
    static unsigned char buf[4096];
    for (;;) {
        unsigned r = (unsigned)rand_r(&x->seed);
        int64_t deadline = r % 3 ? weft_deadline_in((int64_t)(r >> 8) % 100 * 1000) : WEFT_NEVER;
        ssize_t n = weft_mrecv_recv(x->m, buf, 1 + (r >> 4) % sizeof(buf), deadline);
        if (n == -ETIMEDOUT)
            continue;
        if (n == -ECANCELED)
            return NULL;
        cr_assert_geq(n, 0, "mrecv: %zd", n);
        if (n == 0)
            return (void *)1;          /* end of stream */
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq(buf[i], mr_byte(x->got + (size_t)i), "byte %zu differs",
                         x->got + (size_t)i);
        x->got += (size_t)n;
    }
}

static void *mrecv_race_main(void *arg)
{
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    struct mr_writer w = { .fd = sp[1], .total = test_scale(4u << 20) };
    weft_task wt;
    cr_assert_eq(weft_task_spawn(&wt, mr_race_write, &w, NULL), 0);
    struct mr_race x = { .m = weft_mrecv_new(sp[0]), .got = 0, .seed = 11 };
    cr_assert_not_null(x.m);
    unsigned seed = 3, readers = 0;
    for (void *eof = NULL; !eof; readers++) {
        weft_task rt;
        cr_assert_eq(weft_task_spawn(&rt, mr_race_read, &x, NULL), 0);
        weft_sleep((int64_t)(rand_r(&seed) % 300) * 1000);
        int rc = weft_task_cancel(rt);
        cr_assert(rc == 0 || rc == -ESRCH, "cancel: %d", rc);
        cr_assert_eq(weft_task_join(rt, &eof, WEFT_NEVER), 0);
    }
    cr_assert_eq(x.got, w.total, "%zu of %zu bytes after %u readers", x.got, w.total, readers);
    /* Several readers were cancelled mid-stream (sanitizer builds stream a
     * tenth as much, more slowly, and may finish within a few readers). */
    cr_log_info("%u readers", readers);
    if (!TEST_SANITIZED)
        cr_assert_gt(readers, 3);
    cr_assert_eq(weft_task_join(wt, NULL, WEFT_NEVER), 0);
    weft_mrecv_free(x.m);
    close(sp[0]);
    close(sp[1]);
    return NULL;
}

Test(net, mrecv_handoff_races_deadline_and_cancel, .timeout = 60)
{
    if (!test_kernel_has_multishot_recv())
        cr_skip_test("kernel lacks multishot recv (6.0): nothing is handed off");
    run_main(4, mrecv_race_main, NULL);
    run_main(1, mrecv_race_main, NULL);
}

/* ---- buffered helpers, msg calls, splice ------------------------------------------------- */

struct feeder {
    int fd;
    const char *data;
    size_t len, chunk;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    for (size_t off = 0; off < f->len; off += f->chunk) {
        size_t n = f->len - off < f->chunk ? f->len - off : f->chunk;
        cr_assert_eq(weft_write_all(f->fd, f->data + off, n, WEFT_NEVER), (ssize_t)n);
        weft_sleep(1 * MS);
    }
    weft_io_shutdown(f->fd, SHUT_WR);
    return NULL;
}

static void *buffered_main(void *arg)
{
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    static const char text[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\nBODY12345partial";
    struct feeder f = { .fd = sp[1], .data = text, .len = sizeof(text) - 1, .chunk = 3 };
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, feed, &f, NULL), 0);
    weft_reader r;
    cr_assert_eq(weft_reader_init(&r, sp[0], 64), 0);
    char line[128];
    cr_assert_eq(weft_read_until(&r, "\r\n", 2, line, sizeof(line), WEFT_NEVER), 16);
    cr_assert_arr_eq(line, "GET / HTTP/1.1\r\n", 16);
    cr_assert_eq(weft_read_until(&r, "\r\n\r\n", 4, line, sizeof(line), WEFT_NEVER), 11);
    cr_assert_arr_eq(line, "Host: x\r\n\r\n", 11);
    cr_assert_eq(weft_read_exact(&r, -1, line, 9, WEFT_NEVER), 9);
    cr_assert_arr_eq(line, "BODY12345", 9);
    /* the stream ends in mid-line */
    cr_assert_eq(weft_read_until(&r, "\n", 1, line, sizeof(line), WEFT_NEVER), -EPIPE);
    cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
    weft_reader_free(&r);
    close(sp[0]);
    close(sp[1]);

    /* no delimiter within the buffer: -ENOBUFS; read_exact past the end: -EPIPE */
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    char big[100];
    memset(big, 'a', sizeof(big));
    cr_assert_eq(weft_write_all(sp[1], big, sizeof(big), WEFT_NEVER), 100);
    cr_assert_eq(weft_reader_init(&r, sp[0], 32), 0);
    cr_assert_eq(weft_read_until(&r, "\n", 1, line, sizeof(line), WEFT_NEVER), -ENOBUFS);
    weft_io_shutdown(sp[1], SHUT_WR);
    cr_assert_eq(weft_read_exact(&r, -1, line, 128, WEFT_NEVER), -EPIPE);
    cr_assert_eq(weft_read_until(&r, "\n", 1, line, sizeof(line), weft_deadline_in(MS)), 0);
    weft_reader_free(&r);
    close(sp[0]);
    close(sp[1]);
    return NULL;
}

Test(net, buffered_read_until_exact_write_all, .timeout = 30)
{
    run_main(2, buffered_main, NULL);
}

static void *msg_splice_main(void *arg)
{
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    char a[] = "abc", b[] = "defgh";
    struct iovec wv[2] = { { a, 3 }, { b, 5 } };
    struct msghdr wm = { .msg_iov = wv, .msg_iovlen = 2 };
    cr_assert_eq(weft_io_sendmsg(sp[0], &wm, 0, WEFT_NEVER), 8);
    char x[4], y[4];
    struct iovec rv[2] = { { x, 4 }, { y, 4 } };
    struct msghdr rm = { .msg_iov = rv, .msg_iovlen = 2 };
    cr_assert_eq(weft_io_recvmsg(sp[1], &rm, 0, WEFT_NEVER), 8);
    cr_assert_arr_eq(x, "abcd", 4);
    cr_assert_arr_eq(y, "efgh", 4);
    /* splice: socket -> pipe -> socket */
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert_eq(weft_io_send(sp[0], "spliced!", 8, 0, WEFT_NEVER), 8);
    cr_assert_eq(weft_io_splice(sp[1], -1, p[1], -1, 8, 0, WEFT_NEVER), 8);
    cr_assert_eq(weft_io_splice(p[0], -1, sp[1], -1, 8, 0, WEFT_NEVER), 8);
    char back[8];
    cr_assert_eq(weft_read_exact(NULL, sp[0], back, 8, WEFT_NEVER), 8);
    cr_assert_arr_eq(back, "spliced!", 8);
    /* splice with nothing to read: deadline */
    cr_assert_eq(weft_io_splice(sp[1], -1, p[1], -1, 8, 0, weft_deadline_in(10 * MS)), -ETIMEDOUT);
    close(p[0]);
    close(p[1]);
    close(sp[0]);
    close(sp[1]);
    return NULL;
}

Test(net, recvmsg_sendmsg_splice, .timeout = 30)
{
    run_main(2, msg_splice_main, NULL);
}

/* A splice blocked in the kernel's io-wq ignores deadlines and cancels,
 * so weft_io_splice never issues one that can block (io.c): into a
 * blocking socket whose send buffer is full it times out like any op,
 * with room it moves what fits, and no byte is lost or doubled; from an
 * empty blocking socket, SPLICE_F_NONBLOCK is -EAGAIN at once. TCP and
 * Unix sockets. */
struct splice_drain {
    int fd;
    size_t want;
};

static void *splice_drain(void *arg)
{
    struct splice_drain *d = arg;
    static char buf[65536];
    size_t got = 0;
    while (got < d->want) {
        ssize_t n = weft_io_recv(d->fd, buf, sizeof(buf), 0, weft_deadline_in(10000 * MS));
        cr_assert_gt(n, 0, "drain: %zd", n);
        for (ssize_t i = 0; i < n; i++)
            cr_assert_eq((unsigned char)buf[i], (unsigned char)((got + (size_t)i) % 251));
        got += (size_t)n;
    }
    return NULL;
}

static void splice_into_full_socket(int tx, int rx)
{
    /* Fill tx's send path (nobody reads rx yet), counting the bytes. */
    static char pat[65536];
    size_t sent = 0;
    int fl = fcntl(tx, F_GETFL);
    cr_assert_eq(fcntl(tx, F_SETFL, fl | O_NONBLOCK), 0);
    for (;;) {
        for (size_t i = 0; i < sizeof(pat); i++)
            pat[i] = (char)((sent + i) % 251);
        ssize_t n = write(tx, pat, sizeof(pat));
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    cr_assert_eq(fcntl(tx, F_SETFL, fl), 0);     /* blocking again */
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    size_t piped = 60000;
    for (size_t i = 0; i < piped; i++)
        pat[i] = (char)((sent + i) % 251);
    cr_assert_eq(write(p[1], pat, piped), (ssize_t)piped);
    int64_t d = weft_deadline_in(50 * MS);
    cr_assert_eq(weft_io_splice(p[0], -1, tx, -1, piped, 0, d), -ETIMEDOUT);
    cr_assert_lt(weft_now() - d, 1000 * MS);
    cr_assert_eq(weft_io_splice(p[0], -1, tx, -1, piped, SPLICE_F_NONBLOCK, WEFT_NEVER), -EAGAIN);
    /* A reader makes room: the pipe's bytes all get through, in order. */
    struct splice_drain dr = { rx, sent + piped };
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, splice_drain, &dr, NULL), 0);
    for (size_t moved = 0; moved < piped;) {
        ssize_t n = weft_io_splice(p[0], -1, tx, -1, piped - moved, 0,
                                   weft_deadline_in(10000 * MS));
        cr_assert_gt(n, 0, "splice: %zd", n);
        moved += (size_t)n;
    }
    cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
    /* Nothing to read from a blocking socket: a non-blocking splice. */
    int64_t t0 = weft_now();
    cr_assert_eq(weft_io_splice(rx, -1, p[1], -1, 100, SPLICE_F_NONBLOCK, WEFT_NEVER), -EAGAIN);
    cr_assert_lt(weft_now() - t0, 1000 * MS);
    close(p[0]);
    close(p[1]);
}

static void *splice_full_main(void *arg)
{
    char addr[64];
    int lfd = listen_any_port("127.0.0.1", addr, sizeof(addr));
    int c = weft_net_dial(addr, 0, WEFT_NEVER);
    int s = weft_io_accept(lfd, NULL, NULL, 0, weft_deadline_in(5000 * MS));
    cr_assert(c >= 0 && s >= 0);
    splice_into_full_socket(c, s);
    close(c);
    close(s);
    close(lfd);
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    splice_into_full_socket(sp[0], sp[1]);
    close(sp[0]);
    close(sp[1]);
    return NULL;
}

Test(net, splice_never_blocks_in_the_kernel, .timeout = 30)
{
    run_main(2, splice_full_main, NULL);
}

Test(net, foreign_thread_dial_and_echo, .timeout = 30)
{
    /* No runtime: listen, dial and the IO calls are plain system calls. */
    int lfd = weft_net_listen("127.0.0.1:0", 0, 0);
    cr_assert_geq(lfd, 0);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", weft_net_local_port(lfd));
    int c = weft_net_dial(addr, WEFT_NET_NODELAY, weft_deadline_in(5000 * MS));
    cr_assert_geq(c, 0);
    int s = weft_io_accept(lfd, NULL, NULL, 0, weft_deadline_in(5000 * MS));
    cr_assert_geq(s, 0);
    cr_assert_eq(weft_write_all(c, "xyz", 3, WEFT_NEVER), 3);
    char b[3];
    cr_assert_eq(weft_read_exact(NULL, s, b, 3, weft_deadline_in(5000 * MS)), 3);
    cr_assert_eq(weft_io_recv(s, b, 3, 0, weft_deadline_in(10 * MS)), -ETIMEDOUT);
    close(c);
    close(s);
    close(lfd);
}
