/*
 * http_hello — a minimal HTTP/1.1 keep-alive server: every request gets
 * 200 with a fixed body ("Hello, world!\n"); GET / and anything else alike,
 * HEAD without the body. Enough for wrk and curl; not a real HTTP parser
 * (request bodies are not read: requests with Content-Length get 400 and
 * the connection closed). An HTTP/1.0 client that asks for keep-alive gets
 * "Connection: keep-alive" back, as HTTP/1.0 wants (ab -k).
 *
 *   http_hello [--port N] [--addr HOST] [--workers N]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "weft.h"

static const char body[] = "Hello, world!\n";

static void conn(int fd, void *arg)
{
    weft_reader rd;
    if (weft_reader_init(&rd, fd, 8192) < 0) {
        weft_io_close(fd);
        return;
    }
    weft_net_nodelay(fd, true);
    char head[8192], out[16384];
    size_t outlen = 0;
    for (;;) {
        ssize_t n = weft_read_until(&rd, "\r\n\r\n", 4, head, sizeof(head) - 1, WEFT_NEVER);
        if (n <= 0)
            break;
        head[n] = 0;
        bool is_head = !strncmp(head, "HEAD ", 5);
        bool http10 = strstr(head, " HTTP/1.0\r\n") != NULL;
        bool close_conn = strcasestr(head, "\r\nConnection: close") != NULL ||
                          (http10 && !strcasestr(head, "\r\nConnection: keep-alive"));
        if (strcasestr(head, "\r\nContent-Length:") || strcasestr(head, "\r\nTransfer-Encoding:")) {
            static const char bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                      "Connection: close\r\n\r\n";
            weft_write_all(fd, bad, sizeof(bad) - 1, WEFT_NEVER);
            break;
        }
        outlen += (size_t)snprintf(out + outlen, sizeof(out) - outlen,
                                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                   "Content-Length: %zu\r\n%s\r\n%s",
                                   sizeof(body) - 1,
                                   close_conn ? "Connection: close\r\n"
                                   : http10 ? "Connection: keep-alive\r\n" : "",
                                   is_head ? "" : body);
        /* Pipelined requests already buffered: answer them in one send. */
        bool more = rd.end > rd.start && memmem(rd.buf + rd.start, rd.end - rd.start,
                                                "\r\n\r\n", 4);
        if (!more || close_conn || outlen > sizeof(out) - 512) {
            if (weft_write_all(fd, out, outlen, WEFT_NEVER) < 0)
                break;
            outlen = 0;
        }
        if (close_conn)
            break;
    }
    weft_reader_free(&rd);
    weft_io_close(fd);
}

static char addr[300] = "127.0.0.1:8080";

static void *serve(void *arg)
{
    int lfd = weft_net_listen(addr, 4096, 0);
    if (lfd < 0) {
        fprintf(stderr, "http_hello: listen %s: %s\n", addr, strerror(-lfd));
        return (void *)1;
    }
    fprintf(stderr, "http_hello: listening on http://%s/\n", addr);
    weft_net_serve(lfd, conn, NULL, NULL, WEFT_NEVER);
    weft_io_close(lfd);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 8080;
    weft_config cfg = { 0 };
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--port") && i + 1 < argc)
            port = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--addr") && i + 1 < argc)
            host = argv[++i];
        else if (!strcmp(argv[i], "--workers") && i + 1 < argc)
            cfg.workers = (unsigned)atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--port N] [--addr HOST] [--workers N]\n", argv[0]);
            return 2;
        }
    }
    snprintf(addr, sizeof(addr), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    void *r = NULL;
    int rc = weft_run(&cfg, serve, NULL, &r);
    if (rc) {
        fprintf(stderr, "http_hello: weft_run: %s\n", strerror(-rc));
        return 1;
    }
    return r ? 1 : 0;
}
