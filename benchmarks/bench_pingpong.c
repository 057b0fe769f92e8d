/* pingpong: two tasks exchange an integer over a pair of rendezvous
 * channels; n = round trips. */
#include "bench.h"

struct pp { weft_chan *ab, *ba; uint64_t n; };

static void *ponger(void *arg)
{
    struct pp *p = arg;
    uint64_t v;
    for (uint64_t i = 0; i < p->n; i++) {
        if (weft_chan_recv(p->ab, &v, WEFT_NEVER))
            return (void *)1;
        v++;
        if (weft_chan_send(p->ba, &v, WEFT_NEVER))
            return (void *)1;
    }
    return NULL;
}

static int body(const struct bench_opts *o)
{
    struct pp p = { NULL, NULL, o->n };
    if (weft_chan_rendezvous(&p.ab, sizeof(uint64_t)) ||
        weft_chan_rendezvous(&p.ba, sizeof(uint64_t)))
        return 1;
    weft_task t;
    if (weft_task_spawn(&t, ponger, &p, NULL))
        return 1;
    uint64_t v = 0;
    int bad = 0;
    for (uint64_t i = 0; i < o->n && !bad; i++) {
        uint64_t w = v;
        bad = weft_chan_send(p.ab, &w, WEFT_NEVER) || weft_chan_recv(p.ba, &v, WEFT_NEVER) ||
              v != w + 1;
    }
    void *r;
    weft_task_join(t, &r, WEFT_NEVER);
    weft_chan_free(p.ab);
    weft_chan_free(p.ba);
    return bad || r || v != o->n;
}

const struct bench bench_pingpong = {
    .name = "pingpong", .default_n = 1000000, .body = body,
    .help = "two tasks exchange an integer over two rendezvous channels (n round trips)",
};
