/*
 * channel.c — MPMC channels of fixed-size elements: unbounded, bounded(n)
 * and rendezvous; blocking and try operations; close. Invariants in chan.h.
 */
#include "sync/chan.h"
#include "alloc/mem.h"

#include <errno.h>
#include <string.h>

#define WEFT__CHAN_ESIZE_MAX (64u * 1024)
#define WEFT__CHAN_FIRST_SLOTS 16

static int chan_new(weft_chan **out, size_t esize, enum weft__chan_kind kind, size_t cap)
{
    if (!out || esize > WEFT__CHAN_ESIZE_MAX)
        return -EINVAL;
    weft_chan *c = weft__mem_alloc(sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->kind = kind;
    c->esize = esize;
    c->cap = cap;
    c->slots = kind == WEFT__CHAN_BOUNDED ? cap :
               kind == WEFT__CHAN_UNBOUNDED ? WEFT__CHAN_FIRST_SLOTS : 0;
    if (c->slots) {
        c->buf = weft__mem_alloc(c->slots * esize + 1);
        if (!c->buf) {
            weft__mem_free(c, sizeof(*c));
            return -ENOMEM;
        }
    }
    *out = c;
    return 0;
}

int weft_chan_unbounded(weft_chan **out, size_t elem_size)
{
    return chan_new(out, elem_size, WEFT__CHAN_UNBOUNDED, 0);
}

int weft_chan_bounded(weft_chan **out, size_t elem_size, size_t capacity)
{
    if (capacity == 0 || capacity > ((size_t)1 << 40) / (elem_size ? elem_size : 1))
        return -EINVAL;
    return chan_new(out, elem_size, WEFT__CHAN_BOUNDED, capacity);
}

int weft_chan_rendezvous(weft_chan **out, size_t elem_size)
{
    return chan_new(out, elem_size, WEFT__CHAN_RENDEZVOUS, 0);
}

void weft_chan_free(weft_chan *c)
{
    if (!c)
        return;
    if (c->buf)
        weft__mem_free(c->buf, c->slots * c->esize + 1);
    weft__mem_free(c, sizeof(*c));
}

/* memcpy, but NULL pointers are fine for 0-byte elements (no UB). The
 * common element sizes (a pointer, an integer) are copied inline rather
 * than through a libc call. */
static inline void copy(void *dst, const void *src, size_t n)
{
    switch (n) {
    case 0:  return;
    case 4:  memcpy(dst, src, 4); return;
    case 8:  memcpy(dst, src, 8); return;
    case 16: memcpy(dst, src, 16); return;
    default: memcpy(dst, src, n); return;
    }
}

static void ring_push(struct weft_chan *c, const void *elem)
{
    size_t i = c->head + c->count;
    if (i >= c->slots)
        i -= c->slots;
    copy(c->buf + i * c->esize, elem, c->esize);
    c->count++;
}

static void ring_pop(struct weft_chan *c, void *out)
{
    copy(out, c->buf + c->head * c->esize, c->esize);
    if (++c->head == c->slots)
        c->head = 0;
    c->count--;
}

static int ring_grow(struct weft_chan *c)
{
    size_t slots = c->slots * 2;
    char *buf = weft__mem_alloc(slots * c->esize + 1);
    if (!buf)
        return -ENOMEM;
    for (size_t k = 0; k < c->count; k++) {
        size_t i = c->head + k;
        if (i >= c->slots)
            i -= c->slots;
        copy(buf + k * c->esize, c->buf + i * c->esize, c->esize);
    }
    weft__mem_free(c->buf, c->slots * c->esize + 1);
    c->buf = buf;
    c->slots = slots;
    c->head = 0;
    return 0;
}

int weft__chan_send_locked(struct weft_chan *c, const void *elem, struct weft__wnode **wake)
{
    if (c->closed)
        return -EPIPE;
    struct weft__wnode *n = weft__waitq_claim(&c->recvq);
    if (n) {
        copy(n->elem, elem, c->esize);   /* the receiver is parked: claimed */
        *wake = n;
        return 1;
    }
    if (c->kind == WEFT__CHAN_RENDEZVOUS)
        return 0;
    if (c->count == c->slots) {
        if (c->kind == WEFT__CHAN_BOUNDED)
            return 0;
        int rc = ring_grow(c);
        if (rc)
            return rc;
    }
    ring_push(c, elem);
    return 1;
}

int weft__chan_recv_locked(struct weft_chan *c, void *out, struct weft__wnode **wake)
{
    if (c->count) {
        ring_pop(c, out);
        /* A slot came free: take one blocked sender's item into it. */
        if (c->kind == WEFT__CHAN_BOUNDED) {
            struct weft__wnode *n = weft__waitq_claim(&c->sendq);
            if (n) {
                ring_push(c, n->elem);
                *wake = n;
            }
        }
        return 1;
    }
    struct weft__wnode *n = weft__waitq_claim(&c->sendq);
    if (n) {
        copy(out, n->elem, c->esize);    /* the sender is parked: claimed */
        *wake = n;
        return 1;
    }
    return c->closed ? -EPIPE : 0;
}

static bool deadline_passed(int64_t deadline)
{
    return deadline != WEFT_NEVER && deadline <= weft_now();
}

/* Shared body of send and try_send; @try_err is what "would block" gives
 * when the deadline has passed. A blocking call (deadline not 0) in a
 * cancelled task returns -ECANCELED before it looks at the channel, even
 * when an item, a slot or a peer is ready (waitq.h, weft__cancel_point). */
static int chan_op(weft_chan *c, void *elem, bool send, int64_t deadline, int try_err)
{
    if (!c || (!elem && c->esize))
        return -EINVAL;
    if (weft__cancel_point(deadline))
        return -ECANCELED;
    struct weft__wnode *wk = NULL;
    weft__spin_lock(&c->lock);
    int rc = send ? weft__chan_send_locked(c, elem, &wk)
                  : weft__chan_recv_locked(c, elem, &wk);
    if (rc || deadline_passed(deadline)) {
        weft__spin_unlock(&c->lock);
        if (wk)
            weft__waiter_signal(wk->w, 0);
        return rc == 1 ? 0 : rc ? rc : try_err;
    }
    struct weft__waiter w;
    struct weft__wnode n;
    weft__waiter_init_cancellable(&w);     /* waited on below, flags 0 */
    weft__wnode_init(&n, &w, elem, 0, NULL);
    struct weft__waitq *q = send ? &c->sendq : &c->recvq;
    weft__waitq_push(q, &n);
    return weft__waitq_block(&c->lock, q, &n, deadline, 0);   /* 0, -EPIPE or aborted */
}

int weft_chan_send(weft_chan *c, const void *elem, int64_t deadline)
{
    return chan_op(c, (void *)elem, true, deadline, -ETIMEDOUT);
}

int weft_chan_recv(weft_chan *c, void *out, int64_t deadline)
{
    return chan_op(c, out, false, deadline, -ETIMEDOUT);
}

int weft_chan_try_send(weft_chan *c, const void *elem)
{
    return chan_op(c, (void *)elem, true, 0, -EAGAIN);
}

int weft_chan_try_recv(weft_chan *c, void *out)
{
    return chan_op(c, out, false, 0, -EAGAIN);
}

int weft_chan_close(weft_chan *c)
{
    if (!c)
        return -EINVAL;
    struct weft__wakelist wake = { 0 };
    weft__spin_lock(&c->lock);
    if (c->closed) {
        weft__spin_unlock(&c->lock);
        return -EALREADY;
    }
    c->closed = true;
    /* Receivers queue only while nothing is buffered (chan.h), so every
     * claimable receiver has reached the end; blocked senders fail. */
    weft__waitq_claim_all(&c->recvq, &wake);
    weft__waitq_claim_all(&c->sendq, &wake);
    weft__spin_unlock(&c->lock);
    weft__wakelist_signal(&wake, -EPIPE);
    return 0;
}

size_t weft_chan_len(weft_chan *c)
{
    if (!c)
        return 0;
    weft__spin_lock(&c->lock);
    size_t n = c->count;
    weft__spin_unlock(&c->lock);
    return n;
}

bool weft_chan_closed(weft_chan *c)
{
    if (!c)
        return false;            /* as a NULL select case: never closes */
    weft__spin_lock(&c->lock);
    bool closed = c->closed;
    weft__spin_unlock(&c->lock);
    return closed;
}
