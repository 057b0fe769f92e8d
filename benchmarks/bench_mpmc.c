/* mpmc: 4 producers and 4 consumers on one bounded(1024) channel;
 * n = items. */
#include "bench.h"

#include <stdatomic.h>

struct mp { weft_chan *c; uint64_t per; _Atomic int producers; _Atomic uint64_t sum, count; };

static void *producer(void *arg)
{
    struct mp *m = arg;
    for (uint64_t i = 1; i <= m->per; i++)
        if (weft_chan_send(m->c, &i, WEFT_NEVER))
            return (void *)1;
    if (atomic_fetch_sub(&m->producers, 1) == 1)
        weft_chan_close(m->c);
    return NULL;
}

static void *consumer(void *arg)
{
    struct mp *m = arg;
    uint64_t v, sum = 0, count = 0;
    while (weft_chan_recv(m->c, &v, WEFT_NEVER) == 0) {
        sum += v;
        count++;
    }
    atomic_fetch_add(&m->sum, sum);
    atomic_fetch_add(&m->count, count);
    return NULL;
}

static int body(const struct bench_opts *o)
{
    struct mp m = { NULL, o->n / 4, 4, 0, 0 };
    if (weft_chan_bounded(&m.c, sizeof(uint64_t), 1024))
        return 1;
    weft_task t[8];
    for (int i = 0; i < 4; i++)
        if (weft_task_spawn(&t[i], consumer, &m, NULL))
            return 1;
    for (int i = 4; i < 8; i++)
        if (weft_task_spawn(&t[i], producer, &m, NULL))
            return 1;
    int bad = 0;
    for (int i = 0; i < 8; i++) {
        void *r;
        weft_task_join(t[i], &r, WEFT_NEVER);
        bad |= r != NULL;
    }
    weft_chan_free(m.c);
    return bad || m.count != 4 * m.per || m.sum != 4 * (m.per * (m.per + 1) / 2);
}

const struct bench bench_mpmc = {
    .name = "mpmc", .default_n = 10000000, .body = body,
    .help = "4 producers, 4 consumers, one bounded(1024) channel (n items)",
};
