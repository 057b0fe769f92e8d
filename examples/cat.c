/*
 * weft-cat — concatenate files to standard output, reading and writing
 * through the ring: FILE... (or "-" / nothing for standard input).
 * Reads at explicit offsets with two buffers in flight per file: while one
 * chunk is written out, the next is read by a second task.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft.h"

#define CHUNK (256 * 1024)

struct args {
    int argc;
    char **argv;
};

struct reader {
    int fd;
    int64_t off;      /* -1: a stream (stdin, pipe) */
    char *buf;
    ssize_t n;
};

static void *read_chunk(void *arg)
{
    struct reader *r = arg;
    r->n = weft_io_read(r->fd, r->buf, CHUNK, r->off, WEFT_NEVER);
    return NULL;
}

static int copy(int fd, bool seekable)
{
    static char bufs[2][CHUNK];
    struct reader rd = { .fd = fd, .off = seekable ? 0 : -1, .buf = bufs[0] };
    read_chunk(&rd);
    for (int cur = 0;; cur ^= 1) {
        if (rd.n < 0)
            return (int)rd.n;
        if (rd.n == 0)
            return 0;
        ssize_t n = rd.n;
        /* Read the next chunk while this one is written. */
        weft_task next;
        struct reader nx = { .fd = fd, .off = seekable ? rd.off + n : -1, .buf = bufs[cur ^ 1] };
        bool ahead = weft_task_spawn(&next, read_chunk, &nx, NULL) == 0;
        ssize_t w = weft_write_all(1, bufs[cur], (size_t)n, WEFT_NEVER);
        if (ahead)
            weft_task_join(next, NULL, WEFT_NEVER);
        else
            read_chunk(&nx);
        if (w < 0)
            return (int)w;
        rd = nx;
    }
}

static void *cat_main(void *arg)
{
    struct args *a = arg;
    int status = 0;
    int n = a->argc > 1 ? a->argc - 1 : 1;
    for (int i = 0; i < n; i++) {
        const char *path = a->argc > 1 ? a->argv[i + 1] : "-";
        int fd = 0;
        bool seekable = false;
        if (strcmp(path, "-")) {
            fd = weft_io_openat(AT_FDCWD, path, O_RDONLY, 0, WEFT_NEVER);
            if (fd < 0) {
                fprintf(stderr, "weft-cat: %s: %s\n", path, strerror(-fd));
                status = 1;
                continue;
            }
            seekable = true;
        }
        int rc = copy(fd, seekable);
        if (rc < 0) {
            fprintf(stderr, "weft-cat: %s: %s\n", path, strerror(-rc));
            status = 1;
        }
        if (fd != 0)
            weft_io_close(fd);
        if (rc == -EPIPE)
            break;
    }
    return (void *)(intptr_t)status;
}

int main(int argc, char **argv)
{
    struct args a = { argc, argv };
    weft_config cfg = { .workers = 2 };
    void *r = NULL;
    int rc = weft_run(&cfg, cat_main, &a, &r);
    if (rc) {
        fprintf(stderr, "weft-cat: weft_run: %s\n", strerror(-rc));
        return 1;
    }
    return (int)(intptr_t)r;
}
