/*
 * echo_server — a task per connection: receive, then send it all back.
 *
 *   echo_server [--port N] [--addr HOST] [--workers N] [--mrecv]
 *
 * Listens on HOST:N (default 127.0.0.1:9000); --workers 0 = one per CPU.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

static int use_mrecv;   /* --mrecv: read through weft_mrecv (multishot recv) */

static void echo(int fd, void *arg)
{
    char buf[16384];
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
        else {
            fprintf(stderr, "usage: %s [--port N] [--addr HOST] [--workers N] [--mrecv]\n", argv[0]);
            return 2;
        }
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
