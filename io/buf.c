/*
 * buf.c — buffered read-until / read-exactly and write-all (weft.h
 * "Networking"), on top of weft_io_recv/read and weft_io_send/write.
 */
#define _GNU_SOURCE
#include "weft.h"
#include "alloc/mem.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#define READER_DEFAULT (16u * 1024)

int weft_reader_init(weft_reader *r, int fd, size_t cap)
{
    if (!r)
        return -EINVAL;
    r->fd = fd;
    r->cap = cap ? cap : READER_DEFAULT;
    r->start = r->end = 0;
    r->not_socket = false;
    r->buf = weft__mem_alloc(r->cap);
    return r->buf ? 0 : -ENOMEM;
}

void weft_reader_free(weft_reader *r)
{
    if (r && r->buf) {
        weft__mem_free(r->buf, r->cap);
        r->buf = NULL;
    }
}

/* recv on sockets, read on everything else (pipes, files). The first
 * -ENOTSOCK sets *@not_socket, so later calls go straight to read. */
static ssize_t read_some(int fd, bool *not_socket, void *buf, size_t len, int64_t deadline)
{
    if (!*not_socket) {
        ssize_t n = weft_io_recv(fd, buf, len, 0, deadline);
        if (n != -ENOTSOCK)
            return n;
        *not_socket = true;
    }
    return weft_io_read(fd, buf, len, -1, deadline);
}

/* send on sockets (MSG_NOSIGNAL: no SIGPIPE), write on everything else. */
static ssize_t write_some(int fd, bool *not_socket, const void *buf, size_t len,
                          int64_t deadline)
{
    if (!*not_socket) {
        ssize_t n = weft_io_send(fd, buf, len, 0, deadline);
        if (n != -ENOTSOCK)
            return n;
        *not_socket = true;
    }
    return weft_io_write(fd, buf, len, -1, deadline);
}

static ssize_t fill(weft_reader *r, int64_t deadline)
{
    if (r->start == r->end) {
        r->start = r->end = 0;
    } else if (r->end == r->cap && r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap)
        return -ENOBUFS;
    ssize_t n = read_some(r->fd, &r->not_socket, r->buf + r->end, r->cap - r->end, deadline);
    if (n > 0)
        r->end += (size_t)n;
    return n;
}

ssize_t weft_read_until(weft_reader *r, const char *delim, size_t dlen, void *out,
                        size_t max, int64_t deadline)
{
    if (!r || !delim || !dlen || !out)
        return -EINVAL;
    size_t limit = max < r->cap ? max : r->cap;
    size_t scanned = 0;      /* bytes of the buffer known to hold no match */
    for (;;) {
        size_t have = r->end - r->start;
        if (have >= dlen) {
            char *hit = memmem(r->buf + r->start + scanned, have - scanned, delim, dlen);
            if (hit) {
                size_t len = (size_t)(hit - (r->buf + r->start)) + dlen;
                if (len > limit)
                    return -ENOBUFS;
                memcpy(out, r->buf + r->start, len);
                r->start += len;
                return (ssize_t)len;
            }
            scanned = have - (dlen - 1);
        }
        if (have >= limit)
            return -ENOBUFS;
        ssize_t n = fill(r, deadline);
        if (n < 0)
            return n;
        if (n == 0)
            return r->end == r->start ? 0 : -EPIPE;
    }
}

ssize_t weft_read_exact(weft_reader *r, int fd, void *out, size_t len, int64_t deadline)
{
    size_t got = 0;
    bool not_socket = false, *ns = &not_socket;
    if (r) {
        size_t have = r->end - r->start;
        got = have < len ? have : len;
        memcpy(out, r->buf + r->start, got);
        r->start += got;
        fd = r->fd;
        ns = &r->not_socket;
    }
    while (got < len) {
        ssize_t n = read_some(fd, ns, (char *)out + got, len - got, deadline);
        if (n < 0)
            return n;
        if (n == 0)
            return -EPIPE;
        got += (size_t)n;
    }
    return (ssize_t)len;
}

ssize_t weft_write_all(int fd, const void *buf, size_t len, int64_t deadline)
{
    size_t done = 0;
    bool not_socket = false;
    while (done < len) {
        ssize_t n = write_some(fd, &not_socket, (const char *)buf + done, len - done, deadline);
        if (n < 0)
            return n;
        done += (size_t)n;
    }
    return (ssize_t)len;
}
