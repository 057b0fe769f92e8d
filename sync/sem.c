/*
 * sem.c — a counting semaphore. Release hands its permit straight to the
 * first waiter it can claim (FIFO), else adds it to `count`; waiters queue
 * only while `count` is 0. All under `lock`.
 */
#include "weft.h"
#include "alloc/mem.h"
#include "sync/waitq.h"

#include <errno.h>

struct weft_sem {
    struct weft__spinlock lock;
    unsigned count;
    struct weft__waitq q;
};

int weft_sem_new(weft_sem **out, unsigned initial)
{
    if (!out)
        return -EINVAL;
    weft_sem *s = weft__mem_alloc(sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->count = initial;
    *out = s;
    return 0;
}

void weft_sem_free(weft_sem *s)
{
    weft__mem_free(s, sizeof(*s));
}

/* Shared body of acquire and try_acquire (deadline 0: not a cancellation
 * point, waitq.h). */
static int acquire(weft_sem *s, int64_t deadline, int try_err)
{
    if (!s)
        return -EINVAL;
    if (weft__cancel_point(deadline))
        return -ECANCELED;
    weft__spin_lock(&s->lock);
    if (s->count) {
        s->count--;
        weft__spin_unlock(&s->lock);
        return 0;
    }
    if (deadline != WEFT_NEVER && deadline <= weft_now()) {
        weft__spin_unlock(&s->lock);
        return try_err;
    }
    struct weft__waiter w;
    struct weft__wnode n;
    weft__waiter_init_cancellable(&w);       /* waited on below, flags 0 */
    weft__wnode_init(&n, &w, NULL, 0, NULL);
    weft__waitq_push(&s->q, &n);
    return weft__waitq_block(&s->lock, &s->q, &n, deadline, 0);
}

int weft_sem_acquire(weft_sem *s, int64_t deadline)
{
    return acquire(s, deadline, -ETIMEDOUT);
}

int weft_sem_try_acquire(weft_sem *s)
{
    return acquire(s, 0, -EAGAIN);
}

int weft_sem_release(weft_sem *s)
{
    if (!s)
        return -EINVAL;
    weft__spin_lock(&s->lock);
    struct weft__wnode *n = weft__waitq_claim(&s->q);
    if (!n) {
        if (s->count == UINT32_MAX) {
            weft__spin_unlock(&s->lock);
            return -EOVERFLOW;
        }
        s->count++;
    }
    weft__spin_unlock(&s->lock);
    if (n)
        weft__waiter_signal(n->w, 0);
    return 0;
}

unsigned weft_sem_value(weft_sem *s)
{
    if (!s)
        return 0;
    weft__spin_lock(&s->lock);
    unsigned v = s->count;
    weft__spin_unlock(&s->lock);
    return v;
}
