/*
 * mutex.c — a task-aware mutex: waiting blocks the task (or the foreign
 * thread), never the worker. Ownership is handed over in FIFO order.
 */
#include "sync/mutex.h"
#include "alloc/mem.h"

#include <errno.h>

int weft_mutex_new(weft_mutex **out)
{
    if (!out)
        return -EINVAL;
    if (!(*out = weft__mem_alloc(sizeof(weft_mutex))))
        return -ENOMEM;
    return 0;
}

void weft_mutex_free(weft_mutex *m)
{
    weft__mem_free(m, sizeof(*m));
}

int weft__mutex_lock(weft_mutex *m, int64_t deadline, unsigned flags)
{
    /* A cancellation point (waitq.h), but not the uncancellable re-lock
     * of a condition wait (flags WEFT__WAIT_NOCANCEL). */
    if (!flags && weft__cancel_point(deadline))
        return -ECANCELED;
    weft__spin_lock(&m->lock);
    if (!m->locked) {
        m->locked = true;
        weft__spin_unlock(&m->lock);
        return 0;
    }
    if (deadline != WEFT_NEVER && deadline <= weft_now()) {
        weft__spin_unlock(&m->lock);
        return -ETIMEDOUT;
    }
    struct weft__waiter w;
    struct weft__wnode n;
    if (flags)
        weft__waiter_init(&w);
    else
        weft__waiter_init_cancellable(&w);   /* waited on below, flags 0 */
    weft__wnode_init(&n, &w, NULL, 0, NULL);
    weft__waitq_push(&m->q, &n);
    return weft__waitq_block(&m->lock, &m->q, &n, deadline, flags); /* 0: handed over */
}

int weft_mutex_lock(weft_mutex *m, int64_t deadline)
{
    if (!m)
        return -EINVAL;
    return weft__mutex_lock(m, deadline, 0);
}

int weft_mutex_trylock(weft_mutex *m)
{
    if (!m)
        return -EINVAL;
    weft__spin_lock(&m->lock);
    bool was = m->locked;
    m->locked = true;
    weft__spin_unlock(&m->lock);
    return was ? -EBUSY : 0;
}

int weft_mutex_unlock(weft_mutex *m)
{
    if (!m)
        return -EINVAL;
    weft__spin_lock(&m->lock);
    if (!m->locked) {
        weft__spin_unlock(&m->lock);
        return -EPERM;
    }
    struct weft__wnode *n = weft__waitq_claim(&m->q);
    if (!n)
        m->locked = false;        /* else ownership passes to n */
    weft__spin_unlock(&m->lock);
    if (n)
        weft__waiter_signal(n->w, 0);
    return 0;
}
