/*
 * echo_load.c — echo-load: a load client for an echo server.
 *
 *   echo-load [--addr HOST:PORT] [--conns N] [--size BYTES] [--duration S]
 *             [--depth D] [--warmup S] [--workers W] [--server-pid PID]
 *             [--heavy-every K [--marker C]]
 *
 * Each connection is a task: it sends D messages of SIZE bytes (one write),
 * reads the D echoes back and checks every byte (a pattern of connection,
 * sequence and offset), and repeats. A message's latency runs from its
 * batch's send to the moment its last byte arrives. After the warm-up it
 * measures for DURATION seconds and prints one line:
 *   echo conns=N size=B depth=D req_s=R p50_us=X p99_us=Y p999_us=Z
 *        server_cpu_us_per_req=C errors=E
 * server_cpu_us_per_req comes from /proc/PID/stat (utime+stime) of
 * --server-pid, read before and after the measured interval.
 * With --heavy-every K, message number seq of every connection is heavy
 * when seq % K == K - 1 (connections are staggered so that heavy requests
 * are spread out): its first byte is C (default 'B'), and every other
 * message's first byte is anything but C. The line then also reports the
 * light requests' latency and the heavy requests' separately:
 *   ... light_p50_us=X light_p99_us=Y heavy_n=H heavy_p50_us=Z heavy_p99_us=W
 * (the server must frame requests by SIZE and answer each in order; use
 * --depth 1). Every byte is still verified.
 * Exits 1 when a byte differs or a connection fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"

struct opts {
    const char *addr;
    unsigned conns, depth, workers;
    size_t size;
    double duration, warmup;
    int server_pid;
    unsigned heavy_every;
    unsigned char marker;
};

static struct opts o = {
    .addr = "127.0.0.1:9000", .conns = 50, .depth = 1, .workers = 1,
    .size = 1024, .duration = 5, .warmup = 1, .server_pid = 0, .heavy_every = 0, .marker = 'B',
};

static _Atomic int phase;            /* 0 warm-up, 1 measuring, 2 stop */
static _Atomic uint64_t errors;

struct conn {
    unsigned id;
    uint64_t count;                  /* requests completed while measuring */
    uint32_t *lat;                   /* ns, saturated at 4 s */
    size_t nlat, caplat;
    uint32_t *hlat;                  /* heavy requests' latencies (--heavy-every) */
    size_t nhlat, caphlat;
};

static bool is_heavy(const struct conn *c, uint64_t seq)
{
    return o.heavy_every && (seq + c->id) % o.heavy_every == o.heavy_every - 1;
}

static void fill(unsigned char *p, size_t len, unsigned id, uint64_t seq)
{
    uint32_t x = (uint32_t)(id * 2654435761u) ^ (uint32_t)(seq * 40503u) ^ 0x9e3779b9u;
    for (size_t i = 0; i < len; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = (unsigned char)(x >> 24);
    }
}

static void push(uint32_t **v, size_t *n, size_t *cap, int64_t ns)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 4096;
        *v = realloc(*v, *cap * sizeof(**v));
        if (!*v)
            abort();
    }
    (*v)[(*n)++] = ns > 4000000000LL ? 4000000000u : (uint32_t)ns;
}

static void record(struct conn *c, int64_t ns, bool heavy)
{
    if (heavy)
        push(&c->hlat, &c->nhlat, &c->caphlat, ns);
    else
        push(&c->lat, &c->nlat, &c->caplat, ns);
}

static void *conn_task(void *arg)
{
    struct conn *c = arg;
    int fd = weft_net_dial(o.addr, WEFT_NET_NODELAY, weft_deadline_in(5000000000LL));
    if (fd < 0) {
        fprintf(stderr, "echo-load: dial %s: %s\n", o.addr, strerror(-fd));
        atomic_fetch_add(&errors, 1);
        return NULL;
    }
    size_t batch = o.size * o.depth;
    unsigned char *out = malloc(batch), *in = malloc(batch);
    uint64_t seq = 0;
    while (atomic_load_explicit(&phase, memory_order_relaxed) < 2) {
        for (unsigned d = 0; d < o.depth; d++) {
            unsigned char *m = out + d * o.size;
            fill(m, o.size, c->id, seq + d);
            if (o.heavy_every)
                m[0] = is_heavy(c, seq + d) ? o.marker : (m[0] == o.marker ? m[0] ^ 1 : m[0]);
        }
        int64_t t0 = weft_now();
        if (weft_write_all(fd, out, batch, WEFT_NEVER) < 0)
            goto fail;
        size_t got = 0;
        unsigned done = 0;
        while (got < batch) {
            ssize_t n = weft_io_recv(fd, in + got, batch - got, 0, WEFT_NEVER);
            if (n <= 0)
                goto fail;
            got += (size_t)n;
            int64_t now = weft_now();
            bool measuring = atomic_load_explicit(&phase, memory_order_relaxed) == 1;
            for (; done < o.depth && got >= (done + 1) * o.size; done++) {
                if (memcmp(in + done * o.size, out + done * o.size, o.size)) {
                    fprintf(stderr, "echo-load: conn %u: bytes differ in message %llu\n",
                            c->id, (unsigned long long)(seq + done));
                    atomic_fetch_add(&errors, 1);
                    goto out;
                }
                if (measuring) {
                    record(c, now - t0, is_heavy(c, seq + done));
                    c->count++;
                }
            }
        }
        seq += o.depth;
    }
    goto out;
fail:
    if (atomic_load(&phase) < 2) {
        fprintf(stderr, "echo-load: conn %u: connection failed\n", c->id);
        atomic_fetch_add(&errors, 1);
    }
out:
    weft_io_close(fd);
    free(out);
    free(in);
    return NULL;
}

static double server_cpu_s(void)
{
    if (!o.server_pid)
        return 0;
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", o.server_pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');   /* after the command name */
    if (!p)
        return 0;
    unsigned long utime = 0, stime = 0;
    /* fields after ')': state(3) ... utime is field 14, stime 15 */
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14)
            utime = strtoul(tok, NULL, 10);
        else if (field == 15) {
            stime = strtoul(tok, NULL, 10);
            break;
        }
    }
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void *load_main(void *arg)
{
    struct conn *cs = calloc(o.conns, sizeof(*cs));
    weft_task *ts = calloc(o.conns, sizeof(*ts));
    for (unsigned i = 0; i < o.conns; i++) {
        cs[i].id = i;
        weft_task_spawn(&ts[i], conn_task, &cs[i], NULL);
    }
    weft_sleep((int64_t)(o.warmup * 1e9));
    double cpu0 = server_cpu_s();
    int64_t t0 = weft_now();
    atomic_store(&phase, 1);
    weft_sleep((int64_t)(o.duration * 1e9));
    atomic_store(&phase, 2);
    int64_t t1 = weft_now();
    double cpu1 = server_cpu_s();
    for (unsigned i = 0; i < o.conns; i++)
        weft_task_join(ts[i], NULL, WEFT_NEVER);
    /* all = every request; light/heavy split with --heavy-every */
    size_t nlight = 0, nheavy = 0;
    for (unsigned i = 0; i < o.conns; i++) {
        nlight += cs[i].nlat;
        nheavy += cs[i].nhlat;
    }
    size_t total = nlight + nheavy;
    uint32_t *all = malloc((total ? total : 1) * sizeof(*all));
    uint32_t *light = malloc((nlight ? nlight : 1) * sizeof(*all));
    uint32_t *heavy = malloc((nheavy ? nheavy : 1) * sizeof(*all));
    size_t k = 0, kl = 0, kh = 0;
    for (unsigned i = 0; i < o.conns; i++) {
        memcpy(all + k, cs[i].lat, cs[i].nlat * sizeof(*all));
        k += cs[i].nlat;
        memcpy(all + k, cs[i].hlat, cs[i].nhlat * sizeof(*all));
        k += cs[i].nhlat;
        memcpy(light + kl, cs[i].lat, cs[i].nlat * sizeof(*all));
        kl += cs[i].nlat;
        memcpy(heavy + kh, cs[i].hlat, cs[i].nhlat * sizeof(*all));
        kh += cs[i].nhlat;
        free(cs[i].lat);
        free(cs[i].hlat);
    }
    qsort(all, total, sizeof(*all), cmp_u32);
    qsort(light, nlight, sizeof(*all), cmp_u32);
    qsort(heavy, nheavy, sizeof(*all), cmp_u32);
    double secs = (double)(t1 - t0) / 1e9;
    double p50 = total ? all[total / 2] / 1e3 : 0;
    double p99 = total ? all[(size_t)((double)total * 0.99)] / 1e3 : 0;
    double p999 = total ? all[(size_t)((double)total * 0.999)] / 1e3 : 0;
    double cpu_per_req = o.server_pid && total ? (cpu1 - cpu0) * 1e6 / (double)total : 0;
    printf("echo conns=%u size=%zu depth=%u req_s=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f "
           "server_cpu_us_per_req=%.2f errors=%llu\n",
           o.conns, o.size, o.depth, (double)total / secs, p50, p99, p999, cpu_per_req,
           (unsigned long long)atomic_load(&errors));
    if (o.heavy_every) {
        /* a second line: the light and the heavy requests apart */
        printf("mixed heavy_every=%u light_n=%zu light_p50_us=%.1f light_p99_us=%.1f "
               "heavy_n=%zu heavy_p50_us=%.1f heavy_p99_us=%.1f\n",
               o.heavy_every, nlight,
               nlight ? light[nlight / 2] / 1e3 : 0,
               nlight ? light[(size_t)((double)nlight * 0.99)] / 1e3 : 0,
               nheavy,
               nheavy ? heavy[nheavy / 2] / 1e3 : 0,
               nheavy ? heavy[(size_t)((double)nheavy * 0.99)] / 1e3 : 0);
    }
    free(light);
    free(heavy);
    free(all);
    free(cs);
    free(ts);
    return NULL;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            goto usage;
        if (!strcmp(a, "--addr"))
            o.addr = v;
        else if (!strcmp(a, "--conns"))
            o.conns = (unsigned)atoi(v);
        else if (!strcmp(a, "--size"))
            o.size = (size_t)atol(v);
        else if (!strcmp(a, "--duration"))
            o.duration = atof(v);
        else if (!strcmp(a, "--warmup"))
            o.warmup = atof(v);
        else if (!strcmp(a, "--depth"))
            o.depth = (unsigned)atoi(v);
        else if (!strcmp(a, "--workers"))
            o.workers = (unsigned)atoi(v);
        else if (!strcmp(a, "--server-pid"))
            o.server_pid = atoi(v);
        else if (!strcmp(a, "--heavy-every"))
            o.heavy_every = (unsigned)atoi(v);
        else if (!strcmp(a, "--marker"))
            o.marker = (unsigned char)v[0];
        else
            goto usage;
        i++;
    }
    if (!o.conns || !o.size || !o.depth || (o.heavy_every && o.depth != 1))
        goto usage;
    weft_config cfg = { .workers = o.workers };
    int rc = weft_run(&cfg, load_main, NULL, NULL);
    if (rc) {
        fprintf(stderr, "echo-load: weft_run: %s\n", strerror(-rc));
        return 1;
    }
    return atomic_load(&errors) ? 1 : 0;
usage:
    fprintf(stderr, "usage: %s [--addr HOST:PORT] [--conns N] [--size B] [--duration S] "
            "[--depth D] [--warmup S] [--workers W] [--server-pid PID] "
            "[--heavy-every K [--marker C]]\n", argv[0]);
    return 2;
}
