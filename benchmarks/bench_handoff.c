/* handoff: a foreign (non-runtime) thread completes a future a task
 * awaits; the task answers through another future the thread awaits;
 * n = round trips. Measures the cross-thread wake in both directions. */
#include "bench.h"

#include <pthread.h>
#include <stdlib.h>

struct ho { weft_future **req, **rep; uint64_t n; int bad; };

static void *foreign(void *arg)
{
    struct ho *h = arg;
    for (uint64_t i = 0; i < h->n; i++) {
        void *v;
        weft_future_set(h->req[i], (void *)(uintptr_t)i);
        if (weft_future_await(h->rep[i], &v, WEFT_NEVER) || (uintptr_t)v != i + 1)
            h->bad = 1;
    }
    return NULL;
}

static int body(const struct bench_opts *o)
{
    struct ho h = { calloc(o->n, sizeof(void *)), calloc(o->n, sizeof(void *)), o->n, 0 };
    for (uint64_t i = 0; i < o->n; i++)
        if (weft_future_new(&h.req[i]) || weft_future_new(&h.rep[i]))
            return 1;
    pthread_t th;
    if (pthread_create(&th, NULL, foreign, &h))
        return 1;
    int bad = 0;
    for (uint64_t i = 0; i < o->n && !bad; i++) {
        void *v;
        bad = weft_future_await(h.req[i], &v, WEFT_NEVER) || (uintptr_t)v != i;
        weft_future_set(h.rep[i], (void *)(uintptr_t)(i + 1));
    }
    pthread_join(th, NULL);
    for (uint64_t i = 0; i < o->n; i++) {
        weft_future_release(h.req[i]);
        weft_future_release(h.rep[i]);
    }
    free(h.req);
    free(h.rep);
    return bad || h.bad;
}

const struct bench bench_handoff = {
    .name = "handoff", .default_n = 100000, .body = body,
    .help = "a foreign thread and a task answer each other through futures (n round trips)",
};
