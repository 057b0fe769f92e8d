/*
 * generator.c — task-backed generators (async iterators): the body runs in
 * its own task and hands each value over a rendezvous channel, so it runs
 * only as far ahead as the consumer asks (one value in flight). The body's
 * return value is delivered after the last value; closing the generator
 * closes the channel, cancels the body and waits for it to return.
 */
#include "weft.h"
#include "alloc/mem.h"
#include "sched/wait.h"
#include "sync/future.h"

#include <errno.h>

struct weft_gen {
    weft_chan *ch;          /* rendezvous: body -> consumer */
    weft_future *done;      /* set when the body has returned */
    weft_task task;
    weft_gen_fn fn;
    void *arg;
    int rc;                 /* the body's return; written before ch closes */
};

static void *gen_main(void *p)
{
    weft_gen *g = p;
    int rc = g->fn(g, g->arg);
    g->rc = rc;                          /* ordered before close by ch's lock */
    weft_chan_close(g->ch);
    /* A completer must hold a reference (weft.h): weft_future_set still
     * touches the future after an awaiter can see it done, and
     * weft_gen_close frees it (and g) as soon as it sees that. */
    weft_future *done = g->done;
    weft_future_retain(done);
    weft_future_set(done, NULL);         /* last touch of g by the body */
    weft_future_release(done);
    return NULL;
}

int weft_gen_new(weft_gen **out, size_t elem_size, weft_gen_fn fn, void *arg)
{
    if (!out || !fn)
        return -EINVAL;
    weft_gen *g = weft__mem_alloc(sizeof(*g));
    if (!g)
        return -ENOMEM;
    g->fn = fn;
    g->arg = arg;
    int rc = weft_chan_rendezvous(&g->ch, elem_size);
    if (rc == 0 && (rc = weft_future_new(&g->done)) != 0)
        weft_chan_free(g->ch);
    if (rc == 0 && (rc = weft_task_spawn(&g->task, gen_main, g, NULL)) != 0) {
        weft_chan_free(g->ch);
        weft_future_release(g->done);
    }
    if (rc) {
        weft__mem_free(g, sizeof(*g));
        return rc;
    }
    weft_task_detach(g->task);
    *out = g;
    return 0;
}

int weft_gen_yield(weft_gen *g, const void *elem, int64_t deadline)
{
    if (!g)
        return -EINVAL;
    return weft_chan_send(g->ch, elem, deadline);
}

int weft_gen_next(weft_gen *g, void *out, int64_t deadline)
{
    if (!g)
        return -EINVAL;
    int rc = weft_chan_recv(g->ch, out, deadline);
    if (rc == -EPIPE && g->rc)
        return g->rc < 0 ? g->rc : -ECHILD;
    return rc;
}

void weft_gen_close(weft_gen *g)
{
    if (!g)
        return;
    weft_chan_close(g->ch);              /* a pending yield returns -EPIPE */
    weft_task_cancel(g->task);           /* -ESRCH once it is gone: fine */
    weft__future_await(g->done, NULL, WEFT_NEVER, WEFT__WAIT_NOCANCEL);
    weft_chan_free(g->ch);
    weft_future_release(g->done);
    weft__mem_free(g, sizeof(*g));
}
