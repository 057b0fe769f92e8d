/* oneshot: a request over a channel, the reply through a fresh future
 * each time; n = round trips. */
#include "bench.h"

struct req { uint64_t x; weft_future *reply; };

static void *server(void *arg)
{
    weft_chan *c = arg;
    struct req r;
    while (weft_chan_recv(c, &r, WEFT_NEVER) == 0) {
        weft_future_set(r.reply, (void *)(uintptr_t)(r.x + 1));
        weft_future_release(r.reply);
    }
    return NULL;
}

static int body(const struct bench_opts *o)
{
    weft_chan *c;
    if (weft_chan_rendezvous(&c, sizeof(struct req)))
        return 1;
    weft_task t;
    if (weft_task_spawn(&t, server, c, NULL))
        return 1;
    int bad = 0;
    for (uint64_t i = 0; i < o->n && !bad; i++) {
        struct req r = { i, NULL };
        if (weft_future_new(&r.reply))
            return 1;
        weft_future_retain(r.reply);            /* the server's reference */
        void *v = NULL;
        bad = weft_chan_send(c, &r, WEFT_NEVER) ||
              weft_future_await(r.reply, &v, WEFT_NEVER) || (uintptr_t)v != i + 1;
        weft_future_release(r.reply);
    }
    weft_chan_close(c);
    weft_task_join(t, NULL, WEFT_NEVER);
    weft_chan_free(c);
    return bad;
}

const struct bench bench_oneshot = {
    .name = "oneshot", .default_n = 1000000, .body = body,
    .help = "request over a channel, reply through a fresh future (n round trips)",
};
