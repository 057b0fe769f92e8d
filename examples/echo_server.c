/*
 * echo_server — a task per connection: receive, then send it all back.
 *
 *   echo_server [--port N] [--addr HOST] [--workers N] [--recv | --mrecv]
 *               [--burn-marker C --size B [--burn-us U]]
 *
 * Listens on HOST:N (default 127.0.0.1:9000); --workers 0 = one per CPU.
 * Reads through weft_mrecv (one multishot recv per connection with the
 * ring's provided buffers: no submission per read), the default since it
 * measured 3-4% less server CPU per request than a recv per read
 * (docs/io.md); --recv reads with weft_io_recv instead, --mrecv is the
 * default's old switch.
 *
 * --burn-marker: the mixed workload of benchmarks/compare. Requests are
 * B bytes each (--size); a request whose first byte is C makes the
 * connection's task burn U microseconds of CPU (default 1000, measured
 * with the thread's CPU clock) before it echoes the request. The burn is
 * plain CPU work in the task: it does not yield, so it holds its worker
 * while the other workers keep serving the other connections.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft.h"

static int use_mrecv = 1;   /* read through weft_mrecv; --recv: weft_io_recv */
static int burn_marker = -1;
static size_t msg_size;
static long burn_us = 1000;

static int64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Spend @us microseconds of this thread's CPU time. */
static void burn_cpu(long us)
{
    int64_t end = thread_cpu_ns() + us * 1000LL;
    while (thread_cpu_ns() < end)
        ;
}

static void echo_mixed(int fd)
{
    unsigned char *buf = malloc(msg_size);
    weft_net_nodelay(fd, true);
    while (buf) {
        if (weft_read_exact(NULL, fd, buf, msg_size, WEFT_NEVER) != (ssize_t)msg_size)
            break;
        if (buf[0] == (unsigned char)burn_marker)
            burn_cpu(burn_us);
        if (weft_write_all(fd, buf, msg_size, WEFT_NEVER) < 0)
            break;
    }
    free(buf);
    weft_io_close(fd);
}

static void echo(int fd, void *arg)
{
    char buf[16384];
    if (burn_marker >= 0) {
        echo_mixed(fd);
        return;
    }
    weft_net_nodelay(fd, true);
    weft_mrecv *m = use_mrecv ? weft_mrecv_new(fd) : NULL;
    for (;;) {
        ssize_t n = m ? weft_mrecv_recv(m, buf, sizeof(buf), WEFT_NEVER)
                      : weft_io_recv(fd, buf, sizeof(buf), 0, WEFT_NEVER);
        if (n <= 0)
            break;                 /* peer done, reset, or we were cancelled */
        if (weft_write_all(fd, buf, (size_t)n, WEFT_NEVER) < 0)
            break;
    }
    weft_mrecv_free(m);
    weft_io_close(fd);
}

static const char *addr = "127.0.0.1:9000";

static void *serve(void *arg)
{
    int lfd = weft_net_listen(addr, 4096, 0);
    if (lfd < 0) {
        fprintf(stderr, "echo_server: listen %s: %s\n", addr, strerror(-lfd));
        return (void *)1;
    }
    fprintf(stderr, "echo_server: listening on %s\n", addr);
    int rc = weft_net_serve(lfd, echo, NULL, NULL, WEFT_NEVER);
    fprintf(stderr, "echo_server: accept loop ended: %s\n", strerror(-rc));
    weft_io_close(lfd);
    return NULL;
}

int main(int argc, char **argv)
{
    static char buf[300];
    const char *host = "127.0.0.1";
    int port = 9000;
    weft_config cfg = { 0 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--addr") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            cfg.workers = (unsigned)atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mrecv"))
            use_mrecv = 1;
        else if (!strcmp(argv[i], "--recv"))
            use_mrecv = 0;
        else if (!strcmp(argv[i], "--burn-marker") && i + 1 < argc)
            burn_marker = (unsigned char)argv[++i][0];
        else if (!strcmp(argv[i], "--size") && i + 1 < argc)
            msg_size = (size_t)atol(argv[++i]);
        else if (!strcmp(argv[i], "--burn-us") && i + 1 < argc)
            burn_us = atol(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--port N] [--addr HOST] [--workers N] [--recv | --mrecv] "
                    "[--burn-marker C --size B [--burn-us U]]\n", argv[0]);
            return 2;
        }
    }
    if (burn_marker >= 0 && !msg_size) {
        fprintf(stderr, "echo_server: --burn-marker needs --size\n");
        return 2;
    }
    snprintf(buf, sizeof(buf), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    addr = buf;
    void *r = NULL;
    int rc = weft_run(&cfg, serve, NULL, &r);
    if (rc) {
        fprintf(stderr, "echo_server: weft_run: %s\n", strerror(-rc));
        return 1;
    }
    return r ? 1 : 0;
}
