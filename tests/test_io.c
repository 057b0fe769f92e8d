/*
 * test_io.c — the IO layer on real files (in a temporary directory) and
 * pipes: every file operation and its errors, poll, deadlines (with
 * bounds), cancellation with IO in flight (the kernel must write nothing
 * into the cancelled task's buffer afterwards), foreign-thread calls.
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weft.h"
#include "tests/helpers.h"

#define MS 1000000LL

static char tmpdir[64];

static void mk_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/weft-io-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void rm_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    cr_assert_eq(system(cmd), 0);
}

static void run_main(unsigned workers, void *(*fn)(void *), void *arg)
{
    weft_config cfg = { .workers = workers };
    void *r = (void *)1;
    cr_assert_eq(weft_run(&cfg, fn, arg, &r), 0);
    cr_assert_null(r, "main task reported failure %p", r);
}

/* ---- files ---------------------------------------------------------------- */

static void *file_ops(void *arg)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/f", tmpdir);
    int fd = weft_io_openat(AT_FDCWD, path, O_CREAT | O_RDWR | O_TRUNC, 0600, WEFT_NEVER);
    cr_assert_geq(fd, 0, "openat: %d", fd);
    cr_assert_eq(weft_io_write(fd, "hello world", 11, 0, WEFT_NEVER), 11);
    cr_assert_eq(weft_io_write(fd, "HELLO", 5, 100, WEFT_NEVER), 5);
    char buf[128] = { 0 };
    cr_assert_eq(weft_io_read(fd, buf, 5, 6, WEFT_NEVER), 5);
    cr_assert_arr_eq(buf, "world", 5);
    cr_assert_eq(weft_io_read(fd, buf, sizeof(buf), 200, WEFT_NEVER), 0); /* EOF */
    /* current position: write() with -1 appends at the file position */
    cr_assert_eq(weft_io_write(fd, "abc", 3, -1, WEFT_NEVER), 3);
    cr_assert_eq(weft_io_read(fd, buf, 3, 0, WEFT_NEVER), 3);
    cr_assert_arr_eq(buf, "abc", 3);

    char a[4] = "1234", b[6] = "567890";
    struct iovec wv[2] = { { a, 4 }, { b, 6 } };
    cr_assert_eq(weft_io_writev(fd, wv, 2, 20, WEFT_NEVER), 10);
    char c[3], d[7];
    struct iovec rv[2] = { { c, 3 }, { d, 7 } };
    cr_assert_eq(weft_io_readv(fd, rv, 2, 20, WEFT_NEVER), 10);
    cr_assert_arr_eq(c, "123", 3);
    cr_assert_arr_eq(d, "4567890", 7);

    cr_assert_eq(weft_io_fsync(fd, false, WEFT_NEVER), 0);
    cr_assert_eq(weft_io_fsync(fd, true, WEFT_NEVER), 0);
    struct statx st;
    cr_assert_eq(weft_io_statx(AT_FDCWD, path, 0, STATX_SIZE, &st, WEFT_NEVER), 0);
    cr_assert_eq(st.stx_size, 105);
    cr_assert_eq(weft_io_close(fd), 0);
    return NULL;
}

Test(io_file, every_operation, .timeout = 30)
{
    mk_tmpdir();
    run_main(2, file_ops, NULL);
    rm_tmpdir();
}

static void *file_errors(void *arg)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/missing/x", tmpdir);
    cr_assert_eq(weft_io_openat(AT_FDCWD, path, O_RDONLY, 0, WEFT_NEVER), -ENOENT);
    struct statx st;
    cr_assert_eq(weft_io_statx(AT_FDCWD, path, 0, STATX_SIZE, &st, WEFT_NEVER), -ENOENT);
    char buf[8];
    cr_assert_eq(weft_io_read(-1, buf, sizeof(buf), 0, WEFT_NEVER), -EBADF);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(weft_io_close(p[0]), 0);
    cr_assert_eq(weft_io_close(p[0]), -EBADF);           /* closed fd */
    cr_assert_eq(weft_io_read(p[0], buf, sizeof(buf), -1, WEFT_NEVER), -EBADF);
    /* The reader is gone: a write to the pipe fails, and SIGPIPE (ignored
     * here only for the pipe case, see weft.h) does not kill us. */
    signal(SIGPIPE, SIG_IGN);
    cr_assert_eq(weft_io_write(p[1], "x", 1, -1, WEFT_NEVER), -EPIPE);
    cr_assert_eq(weft_io_close(p[1]), 0);
    snprintf(path, sizeof(path), "%s", tmpdir);
    int dfd = weft_io_openat(AT_FDCWD, path, O_RDONLY | O_DIRECTORY, 0, WEFT_NEVER);
    cr_assert_geq(dfd, 0);
    cr_assert_eq(weft_io_write(dfd, "x", 1, 0, WEFT_NEVER), -EBADF);
    cr_assert_eq(weft_io_close(dfd), 0);
    return NULL;
}

Test(io_file, errors_are_negative_errno, .timeout = 30)
{
    mk_tmpdir();
    run_main(2, file_errors, NULL);
    rm_tmpdir();
}

/* Copy a file of a few MiB through the ring in odd-sized chunks. */
static void *copy_file(void *arg)
{
    size_t size = test_scale(4u << 20) + 12345;
    char src[128], dst[128];
    snprintf(src, sizeof(src), "%s/src", tmpdir);
    snprintf(dst, sizeof(dst), "%s/dst", tmpdir);
    unsigned char *data = malloc(size), *back = malloc(size);
    for (size_t i = 0; i < size; i++)
        data[i] = (unsigned char)(i * 131 + (i >> 9));
    int in = weft_io_openat(AT_FDCWD, src, O_CREAT | O_RDWR | O_TRUNC, 0600, WEFT_NEVER);
    cr_assert_geq(in, 0);
    cr_assert_eq(weft_io_write(in, data, size, 0, WEFT_NEVER), (ssize_t)size);
    int out = weft_io_openat(AT_FDCWD, dst, O_CREAT | O_RDWR | O_TRUNC, 0600, WEFT_NEVER);
    cr_assert_geq(out, 0);
    char buf[40000];
    int64_t off = 0;
    for (;;) {
        ssize_t n = weft_io_read(in, buf, sizeof(buf), off, WEFT_NEVER);
        cr_assert_geq(n, 0);
        if (n == 0)
            break;
        cr_assert_eq(weft_io_write(out, buf, (size_t)n, off, WEFT_NEVER), n);
        off += n;
    }
    cr_assert_eq((size_t)off, size);
    cr_assert_eq(weft_io_read(out, back, size, 0, WEFT_NEVER), (ssize_t)size);
    cr_assert_arr_eq(back, data, size);
    weft_io_close(in);
    weft_io_close(out);
    free(data);
    free(back);
    return NULL;
}

Test(io_file, copy_is_byte_exact, .timeout = 60)
{
    mk_tmpdir();
    run_main(2, copy_file, NULL);
    rm_tmpdir();
}

/* ---- poll and deadlines --------------------------------------------------- */

struct pipe_pair {
    int p[2];
    int64_t delay;
};

static void *write_later(void *arg)
{
    struct pipe_pair *pp = arg;
    weft_sleep(pp->delay);
    cr_assert_eq(weft_io_write(pp->p[1], "z", 1, -1, WEFT_NEVER), 1);
    return NULL;
}

static void *poll_main(void *arg)
{
    struct pipe_pair pp = { .delay = 20 * MS };
    cr_assert_eq(pipe2(pp.p, O_CLOEXEC), 0);
    /* Not ready: times out (a past deadline: at once). */
    cr_assert_eq(weft_io_poll(pp.p[0], POLLIN, 0), -ETIMEDOUT);
    int64_t t0 = weft_now();
    cr_assert_eq(weft_io_poll(pp.p[0], POLLIN, t0 + 30 * MS), -ETIMEDOUT);
    int64_t el = weft_now() - t0;
    cr_assert_geq(el, 30 * MS - MS, "returned early: %lld ns", (long long)el);
    cr_assert_lt(el, 30 * MS + 500 * MS, "returned late: %lld ns", (long long)el);
    /* Writable right away. */
    cr_assert_eq(weft_io_poll(pp.p[1], POLLOUT, WEFT_NEVER) & POLLOUT, POLLOUT);
    /* Readable once another task writes. */
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, write_later, &pp, NULL), 0);
    int rev = weft_io_poll(pp.p[0], POLLIN, WEFT_NEVER);
    cr_assert_eq(rev & POLLIN, POLLIN);
    cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
    /* Hang-up is reported too. */
    char c;
    cr_assert_eq(weft_io_read(pp.p[0], &c, 1, -1, WEFT_NEVER), 1);
    close(pp.p[1]);
    cr_assert(weft_io_poll(pp.p[0], POLLIN, WEFT_NEVER) & POLLHUP);
    close(pp.p[0]);
    return NULL;
}

Test(io_poll, readiness_timeout_and_hangup, .timeout = 30)
{
    run_main(4, poll_main, NULL);
}

static void *deadline_main(void *arg)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    char buf[16];
    /* Try-once semantics of a past deadline: nothing there -> -ETIMEDOUT;
     * data there -> the data. */
    cr_assert_eq(weft_io_read(p[0], buf, sizeof(buf), -1, 0), -ETIMEDOUT);
    cr_assert_eq(write(p[1], "ab", 2), 2);
    cr_assert_eq(weft_io_read(p[0], buf, sizeof(buf), -1, 0), 2);
    /* Deadlines fire within bounds, again and again. */
    for (int i = 0; i < 5; i++) {
        int64_t d = weft_deadline_in((10 + 5 * i) * MS), t0 = weft_now();
        cr_assert_eq(weft_io_read(p[0], buf, sizeof(buf), -1, d), -ETIMEDOUT);
        int64_t now = weft_now();
        cr_assert_geq(now, d - MS, "early by %lld ns", (long long)(d - now));
        cr_assert_lt(now - d, 300 * MS, "late by %lld ns", (long long)(now - d));
        (void)t0;
    }
    /* A deadline that does not fire leaves the result alone. */
    cr_assert_eq(write(p[1], "cd", 2), 2);
    cr_assert_eq(weft_io_read(p[0], buf, sizeof(buf), -1, weft_deadline_in(1000 * MS)), 2);
    cr_assert_arr_eq(buf, "cd", 2);
    close(p[0]);
    close(p[1]);
    return NULL;
}

Test(io_deadline, fires_within_bounds, .timeout = 30)
{
    run_main(2, deadline_main, NULL);
}

/* ---- cancellation with IO in flight ---------------------------------------- */

#define SENTINEL 0x5a
static unsigned char victim_buf[4096];

struct victim {
    int fd;
    _Atomic int started;
    ssize_t result;
    int64_t deadline;
};

static void *victim_read(void *arg)
{
    struct victim *v = arg;
    atomic_store(&v->started, 1);
    v->result = weft_io_recv(v->fd, victim_buf, sizeof(victim_buf), 0, v->deadline);
    return NULL;
}

/* Wait until the victim has surely submitted its recv and parked: its
 * start flag is set, then give its worker a few passes. */
static void let_it_block(struct victim *v)
{
    while (!atomic_load(&v->started))
        weft_yield();
    weft_sleep(5 * MS);
}

static void check_untouched(int peer, int fd)
{
    /* Data sent now must stay in the socket: the cancelled recv is gone
     * and the kernel writes nothing into the old buffer. */
    char msg[64];
    memset(msg, 0x11, sizeof(msg));
    cr_assert_eq(weft_io_send(peer, msg, sizeof(msg), 0, WEFT_NEVER), (ssize_t)sizeof(msg));
    weft_sleep(5 * MS);
    for (size_t i = 0; i < sizeof(victim_buf); i++)
        cr_assert_eq(victim_buf[i], SENTINEL, "byte %zu written after cancel", i);
    char got[64];
    cr_assert_eq(weft_io_recv(fd, got, sizeof(got), 0, WEFT_NEVER), (ssize_t)sizeof(got));
    cr_assert_arr_eq(got, msg, sizeof(msg));
}

static void *cancel_main(void *arg)
{
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    for (int round = 0; round < 20; round++) {
        memset(victim_buf, SENTINEL, sizeof(victim_buf));
        struct victim v = { .fd = sp[0], .deadline = WEFT_NEVER };
        weft_task t;
        cr_assert_eq(weft_task_spawn(&t, victim_read, &v, NULL), 0);
        let_it_block(&v);
        cr_assert_eq(weft_task_cancel(t), 0);
        cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
        cr_assert_eq(v.result, -ECANCELED);
        check_untouched(sp[1], sp[0]);
    }
    close(sp[0]);
    close(sp[1]);
    return NULL;
}

Test(io_cancel, in_flight_recv_leaves_buffer_alone, .timeout = 60)
{
    run_main(4, cancel_main, NULL);
}

/* The same, cancelled from a foreign thread. */
struct foreign_cancel {
    weft_task t;
    _Atomic int go;
};

static void *foreign_canceller(void *arg)
{
    struct foreign_cancel *fc = arg;
    while (!atomic_load(&fc->go))
        ;
    cr_assert_eq(weft_task_cancel(fc->t), 0);
    return NULL;
}

static void *foreign_cancel_main(void *arg)
{
    int sp[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    memset(victim_buf, SENTINEL, sizeof(victim_buf));
    struct victim v = { .fd = sp[0], .deadline = WEFT_NEVER };
    struct foreign_cancel fc = { 0 };
    cr_assert_eq(weft_task_spawn(&fc.t, victim_read, &v, NULL), 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, foreign_canceller, &fc), 0);
    let_it_block(&v);
    atomic_store(&fc.go, 1);
    cr_assert_eq(weft_task_join(fc.t, NULL, WEFT_NEVER), 0);
    pthread_join(th, NULL);
    cr_assert_eq(v.result, -ECANCELED);
    check_untouched(sp[1], sp[0]);
    close(sp[0]);
    close(sp[1]);
    return NULL;
}

Test(io_cancel, from_foreign_thread, .timeout = 30)
{
    run_main(4, foreign_cancel_main, NULL);
}

/* Cancel racing completion: many tasks, data arriving as the cancel does.
 * Each recv returns either its data or -ECANCELED — never both, never a
 * hang — and every byte is accounted for. */
struct race {
    int sp[2];
    _Atomic int started;
    ssize_t got;
    char buf[8];
};

static void *race_reader(void *arg)
{
    struct race *r = arg;
    atomic_store(&r->started, 1);
    r->got = weft_io_recv(r->sp[0], r->buf, sizeof(r->buf), 0, WEFT_NEVER);
    return NULL;
}

static void *race_main(void *arg)
{
    unsigned n = (unsigned)test_scale(400);
    struct race *rs = calloc(n, sizeof(*rs));
    weft_task *ts = calloc(n, sizeof(*ts));
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rs[i].sp), 0);
        cr_assert_eq(weft_task_spawn(&ts[i], race_reader, &rs[i], NULL), 0);
    }
    for (unsigned i = 0; i < n; i++) {
        while (!atomic_load(&rs[i].started))
            weft_yield();
        cr_assert_eq(send(rs[i].sp[1], "12345678", 8, MSG_NOSIGNAL), 8);
        weft_task_cancel(ts[i]);
    }
    unsigned data = 0, cancelled = 0;
    for (unsigned i = 0; i < n; i++) {
        cr_assert_eq(weft_task_join(ts[i], NULL, WEFT_NEVER), 0);
        if (rs[i].got == -ECANCELED) {
            cancelled++;
            char b[8];     /* the data is still in the socket */
            cr_assert_eq(recv(rs[i].sp[0], b, 8, MSG_DONTWAIT), 8);
        } else {
            cr_assert_gt(rs[i].got, 0, "got %zd", rs[i].got);
            data++;
        }
        close(rs[i].sp[0]);
        close(rs[i].sp[1]);
    }
    cr_log_info("cancel race: %u got data, %u cancelled", data, cancelled);
    free(rs);
    free(ts);
    return NULL;
}

Test(io_cancel, races_completion_without_loss, .timeout = 60)
{
    run_main(4, race_main, NULL);
}

static void *cancelled_first(void *arg)
{
    int *fd = arg;
    weft_task_cancel(weft_task_self());
    char b;
    /* Already cancelled: nothing is submitted. */
    cr_assert_eq(weft_io_read(*fd, &b, 1, -1, WEFT_NEVER), -ECANCELED);
    /* Cleanup still works. */
    cr_assert_eq(weft_io_close(dup(*fd)), 0);
    return NULL;
}

static void *cancelled_first_main(void *arg)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, cancelled_first, &p[0], NULL), 0);
    cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
    close(p[0]);
    close(p[1]);
    return NULL;
}

Test(io_cancel, already_cancelled_submits_nothing, .timeout = 30)
{
    run_main(2, cancelled_first_main, NULL);
}

/* Main returns while tasks are blocked in IO: shutdown cancels them and
 * weft_run returns (each waits for its CQE first). */
static int shutdown_pipe[2];

static void *blocked_forever(void *arg)
{
    char b[16];
    ssize_t n = weft_io_read(shutdown_pipe[0], b, sizeof(b), -1, WEFT_NEVER);
    cr_assert_eq(n, -ECANCELED);
    return NULL;
}

static void *shutdown_main(void *arg)
{
    for (int i = 0; i < 64; i++)
        cr_assert_eq(weft_task_spawn(NULL, blocked_forever, NULL, NULL), 0);
    weft_sleep(10 * MS);
    return NULL;
}

Test(io_cancel, shutdown_cancels_blocked_io, .timeout = 30)
{
    cr_assert_eq(pipe2(shutdown_pipe, O_CLOEXEC), 0);
    run_main(4, shutdown_main, NULL);
    close(shutdown_pipe[0]);
    close(shutdown_pipe[1]);
}

/* ---- the ring under load --------------------------------------------------- */

/* More ops in one scheduler pass than the SQ holds (256 SQEs per ring),
 * and more completions at once than the CQ holds (4096): 6000 tasks on
 * one worker each wait in a poll op with a deadline (two SQEs each) on
 * one pipe; a write makes them all complete together. Every task must get
 * its POLLIN: the SQ fills and is submitted mid-pass (weft__ring_reserve),
 * and however the kernel posts 6000 completions into 4096 slots (6.18
 * runs the deferred completions in steps; older kernels overflow, and
 * reap() flushes the overflow in), none is lost. */
enum { RING_TASKS = 6000 };
static int ring_pipe[2];
static atomic_int ring_waiting;

static void *ring_poller(void *arg)
{
    atomic_fetch_add(&ring_waiting, 1);
    /* Far enough for a TSan build on a busy machine, where starting the
     * 6000 pollers alone takes seconds (the first to start wait longest). */
    return (void *)(intptr_t)weft_io_poll(ring_pipe[0], POLLIN, weft_deadline_in(50000 * MS));
}

static void *ring_load_main(void *arg)
{
    cr_assert_eq(pipe2(ring_pipe, O_CLOEXEC), 0);
    static weft_task t[RING_TASKS];
    for (int i = 0; i < RING_TASKS; i++)
        cr_assert_eq(weft_task_spawn(&t[i], ring_poller, NULL, NULL), 0);
    while (atomic_load(&ring_waiting) < RING_TASKS)
        weft_yield();
    /* Our sleep parks the worker, and parking submits every queued SQE:
     * all the polls are armed before the write. */
    weft_sleep(20 * MS);
    cr_assert_eq(write(ring_pipe[1], "x", 1), 1);
    for (int i = 0; i < RING_TASKS; i++) {
        void *r;
        cr_assert_eq(weft_task_join(t[i], &r, WEFT_NEVER), 0);
        cr_assert((intptr_t)r > 0 && ((intptr_t)r & POLLIN), "task %d: poll gave %d", i,
                  (int)(intptr_t)r);
    }
    close(ring_pipe[0]);
    close(ring_pipe[1]);
    return NULL;
}

Test(io_ring, full_sq_and_cq_overflow, .timeout = 60)
{
    run_main(1, ring_load_main, NULL);
}

/* ---- cancelling each kind of wait -------------------------------------------- */

/* A task blocked in each kind of operation, cancelled from another task:
 * each returns -ECANCELED promptly (the op's CQE first, op.h). */
enum { W_POLL, W_READ, W_RECV, W_SEND, W_ACCEPT, W_CONNECT, W_KINDS };
struct blocked {
    int kind;
    int fd;
    const struct sockaddr_storage *to;
    socklen_t tolen;
    atomic_int started;
};

static void *blocked_op(void *arg)
{
    struct blocked *b = arg;
    static char buf[65536];
    atomic_store(&b->started, 1);
    switch (b->kind) {
    case W_POLL:    return (void *)(intptr_t)weft_io_poll(b->fd, POLLIN, WEFT_NEVER);
    case W_READ:    return (void *)(intptr_t)weft_io_read(b->fd, buf, 16, -1, WEFT_NEVER);
    case W_RECV:    return (void *)(intptr_t)weft_io_recv(b->fd, buf, 16, 0, WEFT_NEVER);
    case W_SEND:    return (void *)(intptr_t)weft_io_send(b->fd, buf, sizeof(buf), 0, WEFT_NEVER);
    case W_ACCEPT:  return (void *)(intptr_t)weft_io_accept(b->fd, NULL, NULL, 0, WEFT_NEVER);
    default:
        return (void *)(intptr_t)weft_io_connect(b->fd, (const struct sockaddr *)b->to,
                                                 b->tolen, WEFT_NEVER);
    }
}

static void *cancel_kinds_main(void *arg)
{
    int p[2], sp[2], quiet[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, quiet), 0);
    /* sp[1]'s send buffer full: a further send blocks. */
    int fl = fcntl(sp[1], F_GETFL);
    fcntl(sp[1], F_SETFL, fl | O_NONBLOCK);
    static char fill[65536];
    while (write(sp[1], fill, sizeof(fill)) > 0)
        ;
    fcntl(sp[1], F_SETFL, fl);
    int lfd = weft_net_listen("127.0.0.1:0", 0, 0);
    cr_assert_geq(lfd, 0);
    /* A listener with a full accept queue: a connect to it hangs. */
    int full = weft_net_listen("127.0.0.1:0", 1, 0);
    struct sockaddr_storage fa;
    socklen_t falen = sizeof(fa);
    cr_assert_eq(getsockname(full, (struct sockaddr *)&fa, &falen), 0);
    int filler[4];
    for (int i = 0; i < 4; i++) {
        filler[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(filler[i], (struct sockaddr *)&fa, falen);
    }
    weft_sleep(20 * MS);
    int cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct blocked b[W_KINDS] = {
        [W_POLL] = { .kind = W_POLL, .fd = p[0] },
        [W_READ] = { .kind = W_READ, .fd = p[0] },
        [W_RECV] = { .kind = W_RECV, .fd = quiet[0] },
        [W_SEND] = { .kind = W_SEND, .fd = sp[1] },
        [W_ACCEPT] = { .kind = W_ACCEPT, .fd = lfd },
        [W_CONNECT] = { .kind = W_CONNECT, .fd = cfd, .to = &fa, .tolen = falen },
    };
    weft_task t[W_KINDS];
    for (int k = 0; k < W_KINDS; k++)
        cr_assert_eq(weft_task_spawn(&t[k], blocked_op, &b[k], NULL), 0);
    for (int k = 0; k < W_KINDS; k++)
        while (!atomic_load(&b[k].started))
            weft_yield();
    weft_sleep(30 * MS);             /* in the kernel by now, or soon */
    for (int k = 0; k < W_KINDS; k++) {
        int64_t t0 = weft_now();
        cr_assert_eq(weft_task_cancel(t[k]), 0);
        void *r;
        cr_assert_eq(weft_task_join(t[k], &r, WEFT_NEVER), 0);
        cr_assert_eq((intptr_t)r, -ECANCELED, "kind %d: %d", k, (int)(intptr_t)r);
        cr_assert_lt(weft_now() - t0, 2000 * MS, "kind %d took too long", k);
    }
    for (int i = 0; i < 4; i++)
        close(filler[i]);
    close(cfd);
    close(full);
    close(lfd);
    close(p[0]);
    close(p[1]);
    close(sp[0]);
    close(sp[1]);
    close(quiet[0]);
    close(quiet[1]);
    return NULL;
}

Test(io_cancel, every_kind_of_wait, .timeout = 30)
{
    run_main(2, cancel_kinds_main, NULL);
}

/* Closing an fd while another task's op on it is in flight: the op holds
 * the file, so it goes on waiting (as a blocking call in another thread
 * would) and ends by its deadline, or with -EBADF if the close came before
 * the op reached the kernel. Nothing crashes or hangs. */
static void *recv_with_deadline(void *arg)
{
    char b[8];
    return (void *)(intptr_t)weft_io_recv(*(int *)arg, b, sizeof(b), 0,
                                          weft_deadline_in(200 * MS));
}

static void *close_under_op_main(void *arg)
{
    for (int round = 0; round < 4; round++) {
        int sp[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        weft_task t;
        cr_assert_eq(weft_task_spawn(&t, recv_with_deadline, &sp[0], NULL), 0);
        if (round % 2)
            weft_sleep(10 * MS);
        int64_t t0 = weft_now();
        cr_assert_eq(weft_io_close(sp[0]), 0);
        void *r;
        cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
        int rc = (int)(intptr_t)r;
        cr_assert(rc == -ETIMEDOUT || rc == -EBADF, "recv on a closed fd: %d", rc);
        cr_assert_lt(weft_now() - t0, 2000 * MS);
        close(sp[1]);
    }
    return NULL;
}

Test(io_close, fd_closed_under_an_op_in_flight, .timeout = 30)
{
    run_main(2, close_under_op_main, NULL);
}

/* ---- foreign threads -------------------------------------------------------- */

Test(io_foreign, plain_system_calls, .timeout = 30)
{
    /* No runtime at all: the calls are the blocking system calls. */
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    char b[4];
    cr_assert_eq(weft_io_read(p[0], b, sizeof(b), -1, weft_deadline_in(10 * MS)), -ETIMEDOUT);
    cr_assert_eq(weft_io_write(p[1], "ok", 2, -1, WEFT_NEVER), 2);
    cr_assert_eq(weft_io_poll(p[0], POLLIN, WEFT_NEVER) & POLLIN, POLLIN);
    cr_assert_eq(weft_io_read(p[0], b, sizeof(b), -1, WEFT_NEVER), 2);
    cr_assert_eq(weft_io_poll(p[0], POLLIN, 0), -ETIMEDOUT);
    cr_assert_eq(weft_io_close(p[0]), 0);
    cr_assert_eq(weft_io_close(p[1]), 0);
}

/* ---- many tasks, pipes, byte-exact --------------------------------------------- */

struct chain {
    int in, out;
    unsigned rounds;
};

static void *relay(void *arg)
{
    struct chain *c = arg;
    unsigned char buf[256];
    for (unsigned r = 0; r < c->rounds; r++) {
        size_t have = 0;
        while (have < sizeof(buf)) {
            ssize_t n = weft_io_read(c->in, buf + have, sizeof(buf) - have, -1, WEFT_NEVER);
            cr_assert_gt(n, 0, "read %zd", n);
            have += (size_t)n;
        }
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i]++;
        cr_assert_eq(weft_io_write(c->out, buf, sizeof(buf), -1, WEFT_NEVER), (ssize_t)sizeof(buf));
    }
    return NULL;
}

static void *ring_of_pipes(void *arg)
{
    enum { N = 64 };
    unsigned rounds = (unsigned)test_scale(200);
    int p[N][2];
    for (int i = 0; i < N; i++)
        cr_assert_eq(pipe2(p[i], O_CLOEXEC), 0);
    struct chain c[N];
    weft_task t[N];
    for (int i = 0; i < N - 1; i++) {
        c[i] = (struct chain){ .in = p[i][0], .out = p[i + 1][1], .rounds = rounds };
        cr_assert_eq(weft_task_spawn(&t[i], relay, &c[i], NULL), 0);
    }
    unsigned char buf[256];
    for (unsigned r = 0; r < rounds; r++) {
        for (size_t i = 0; i < sizeof(buf); i++)
            buf[i] = (unsigned char)(i + r);
        cr_assert_eq(weft_io_write(p[0][1], buf, sizeof(buf), -1, WEFT_NEVER), (ssize_t)sizeof(buf));
        size_t have = 0;
        while (have < sizeof(buf)) {
            ssize_t n = weft_io_read(p[N - 1][0], buf + have, sizeof(buf) - have, -1, WEFT_NEVER);
            cr_assert_gt(n, 0);
            have += (size_t)n;
        }
        for (size_t i = 0; i < sizeof(buf); i++)
            cr_assert_eq(buf[i], (unsigned char)(i + r + N - 1));
    }
    for (int i = 0; i < N - 1; i++)
        cr_assert_eq(weft_task_join(t[i], NULL, WEFT_NEVER), 0);
    for (int i = 0; i < N; i++) {
        close(p[i][0]);
        close(p[i][1]);
    }
    return NULL;
}

Test(io_many, pipe_ring_byte_exact, .timeout = 60)
{
    run_main(8, ring_of_pipes, NULL);
}

/* ---- buffered helpers on a pipe (read(2)/write(2) after one -ENOTSOCK) --- */

#define PIPE_LINES 2000
#define PIPE_BULK  (300 * 1024)      /* several times a pipe's 64 KiB */

static void *pipe_writer(void *arg)
{
    int fd = *(int *)arg;
    char line[32];
    for (int i = 0; i < PIPE_LINES; i++) {
        int len = snprintf(line, sizeof(line), "line %d\n", i);
        if (weft_write_all(fd, line, (size_t)len, WEFT_NEVER) != len)
            return (void *)1;
    }
    unsigned char *bulk = malloc(PIPE_BULK);
    for (size_t i = 0; i < PIPE_BULK; i++)
        bulk[i] = (unsigned char)(i * 7 + 3);
    ssize_t n = weft_write_all(fd, bulk, PIPE_BULK, WEFT_NEVER);
    free(bulk);
    weft_io_close(fd);
    return n == PIPE_BULK ? NULL : (void *)2;
}

static void *buffered_pipe(void *arg)
{
    (void)arg;
    int p[2];
    cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, pipe_writer, &p[1], NULL), 0);
    weft_reader r;
    cr_assert_eq(weft_reader_init(&r, p[0], 4096), 0);
    char line[64], want[32];
    for (int i = 0; i < PIPE_LINES; i++) {
        int len = snprintf(want, sizeof(want), "line %d\n", i);
        ssize_t n = weft_read_until(&r, "\n", 1, line, sizeof(line), weft_deadline_in(10000 * MS));
        cr_assert_eq(n, len, "line %d: %zd", i, n);
        cr_assert_eq(memcmp(line, want, (size_t)len), 0);
    }
    cr_assert(r.not_socket, "the reader should have switched to read(2)");
    unsigned char *bulk = malloc(PIPE_BULK);
    cr_assert_eq(weft_read_exact(&r, -1, bulk, PIPE_BULK, weft_deadline_in(10000 * MS)),
                 PIPE_BULK);
    for (size_t i = 0; i < PIPE_BULK; i++)
        cr_assert_eq(bulk[i], (unsigned char)(i * 7 + 3), "byte %zu", i);
    free(bulk);
    /* The writer closed its end: the stream is over. */
    cr_assert_eq(weft_read_until(&r, "\n", 1, line, sizeof(line), WEFT_NEVER), 0);
    void *res;
    cr_assert_eq(weft_task_join(t, &res, WEFT_NEVER), 0);
    cr_assert_null(res);
    weft_reader_free(&r);
    close(p[0]);
    return NULL;
}

Test(io_buffered, pipe_lines_and_bulk_byte_exact, .timeout = 60)
{
    run_main(2, buffered_pipe, NULL);
    run_main(4, buffered_pipe, NULL);
}
