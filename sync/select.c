/*
 * select.c — Go's select over several channel operations.
 *
 * 1. Lock every distinct channel of the cases, in address order (the only
 *    place that holds two channel locks, so the order cannot deadlock).
 * 2. Poll the cases in a fresh random order (fairness among ready cases);
 *    the first that can complete does, and select returns its index.
 * 3. Otherwise queue one entry per case, all sharing one waiter, on the
 *    channels' queues, unlock, and wait. Whichever waker claims the shared
 *    waiter first completes its case (copying under its channel's lock) and
 *    records the case's index; the others fail their claims and drop their
 *    entries (waitq.h).
 * 4. Relock and unlink every entry still queued before returning.
 * A select with a deadline other than 0 is a cancellation point: in a
 * cancelled task it returns -ECANCELED before step 1.
 */
#include "sync/chan.h"

#include <errno.h>
#include <stdint.h>

/* Per-thread xorshift for the poll order. noinline, so that its thread-local
 * address is computed afresh on each call: inlined (LTO) into a caller's
 * loop around weft_select, the compiler could keep the address of the
 * first thread's t_rng across the switch inside a wait (docs/design.md §8). */
static __thread uint64_t t_rng;

static __attribute__((noinline)) uint32_t rng_next(void)
{
    uint64_t x = t_rng;
    if (!x)
        x = (uint64_t)(uintptr_t)&t_rng ^ (uint64_t)weft_now() ^ 0x9E3779B97F4A7C15ull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t_rng = x;
    return (uint32_t)(x >> 32);
}

static void lock_all(weft_chan **locks, size_t nl)
{
    for (size_t i = 0; i < nl; i++)
        weft__spin_lock(&locks[i]->lock);
}

static void unlock_all(weft_chan **locks, size_t nl)
{
    for (size_t i = nl; i-- > 0;)
        weft__spin_unlock(&locks[i]->lock);
}

int weft_select(weft_select_case *cases, size_t n, int64_t deadline)
{
    if ((!cases && n) || n > WEFT_SELECT_MAX)
        return -EINVAL;
    weft_chan *locks[WEFT_SELECT_MAX];
    uint8_t order[WEFT_SELECT_MAX];
    size_t nl = 0, no = 0;
    for (size_t i = 0; i < n; i++) {
        weft_chan *c = cases[i].chan;
        if (!c)
            continue;                      /* a nil case: never ready */
        if (cases[i].op != WEFT_SELECT_SEND && cases[i].op != WEFT_SELECT_RECV)
            return -EINVAL;
        if (!cases[i].elem && c->esize)
            return -EINVAL;
        /* Fisher-Yates, inside out: a uniformly random poll order. */
        size_t j = rng_next() % (no + 1);
        order[no] = order[j];
        order[j] = (uint8_t)i;
        no++;
        /* insertion into the sorted, distinct lock list */
        size_t k = nl;
        while (k > 0 && (uintptr_t)locks[k - 1] > (uintptr_t)c)
            k--;
        if (k > 0 && locks[k - 1] == c)
            continue;
        for (size_t m = nl; m > k; m--)
            locks[m] = locks[m - 1];
        locks[k] = c;
        nl++;
    }

    /* A blocking select in a cancelled task: -ECANCELED before any case
     * is polled, even a ready one (waitq.h). */
    if (weft__cancel_point(deadline))
        return -ECANCELED;

    lock_all(locks, nl);
    for (size_t o = 0; o < no; o++) {
        weft_select_case *sc = &cases[order[o]];
        struct weft__wnode *wk = NULL;
        int rc = sc->op == WEFT_SELECT_SEND
                     ? weft__chan_send_locked(sc->chan, sc->elem, &wk)
                     : weft__chan_recv_locked(sc->chan, sc->elem, &wk);
        if (rc) {
            unlock_all(locks, nl);
            if (wk)
                weft__waiter_signal(wk->w, 0);
            if (rc == -ENOMEM)
                return rc;
            sc->result = rc == 1 ? 0 : rc;
            return order[o];
        }
    }
    if (deadline != WEFT_NEVER && deadline <= weft_now()) {
        unlock_all(locks, nl);
        return -ETIMEDOUT;
    }

    struct weft__waiter w;
    struct weft__wnode nodes[WEFT_SELECT_MAX];
    int fired = -1;
    weft__waiter_init_cancellable(&w);     /* waited on below, flags 0 */
    for (size_t o = 0; o < no; o++) {
        weft_select_case *sc = &cases[order[o]];
        weft__wnode_init(&nodes[o], &w, sc->elem, order[o], &fired);
        weft__waitq_push(sc->op == WEFT_SELECT_SEND ? &sc->chan->sendq : &sc->chan->recvq,
                         &nodes[o]);
    }
    unlock_all(locks, nl);
    int rc = weft__waiter_wait(&w, deadline);
    lock_all(locks, nl);
    for (size_t o = 0; o < no; o++) {
        weft_select_case *sc = &cases[order[o]];
        weft__waitq_remove(sc->op == WEFT_SELECT_SEND ? &sc->chan->sendq : &sc->chan->recvq,
                           &nodes[o]);
    }
    unlock_all(locks, nl);
    if (weft__wait_aborted(rc))
        return rc;
    cases[fired].result = rc;              /* 0, or -EPIPE: closed */
    return fired;
}
