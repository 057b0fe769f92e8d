/*
 * cond.c — a condition variable for weft mutexes. The waiter is queued on
 * the condition before the mutex is released, so a signal sent after the
 * release cannot be missed; the mutex is re-taken uncancellably, so the
 * wait always returns holding it (as pthread_cond_wait does).
 */
#include "sync/mutex.h"
#include "alloc/mem.h"

#include <errno.h>
#include <stdbool.h>

struct weft_cond {
    struct weft__spinlock lock;
    struct weft__waitq q;
};

int weft_cond_new(weft_cond **out)
{
    if (!out)
        return -EINVAL;
    if (!(*out = weft__mem_alloc(sizeof(weft_cond))))
        return -ENOMEM;
    return 0;
}

void weft_cond_free(weft_cond *c)
{
    weft__mem_free(c, sizeof(*c));
}

int weft_cond_wait(weft_cond *c, weft_mutex *m, int64_t deadline)
{
    if (!c || !m)
        return -EINVAL;
    /* A cancellation point (waitq.h), or a deadline already past (a poll,
     * deadline 0, included): return at once, still holding @m, which is
     * neither released nor waited for; no signal is taken. */
    bool cancelled = weft__cancel_point(deadline);
    if (cancelled || (deadline != WEFT_NEVER && deadline <= weft_now())) {
        weft__spin_lock(&m->lock);
        bool held = m->locked;
        weft__spin_unlock(&m->lock);
        return !held ? -EPERM : cancelled ? -ECANCELED : -ETIMEDOUT;
    }
    struct weft__waiter w;
    struct weft__wnode n;
    weft__waiter_init(&w);
    weft__wnode_init(&n, &w, NULL, 0, NULL);
    weft__spin_lock(&c->lock);
    weft__waitq_push(&c->q, &n);
    weft__spin_unlock(&c->lock);
    int rc = weft_mutex_unlock(m);
    if (rc) {                               /* @m was not locked */
        weft__spin_lock(&c->lock);
        bool still_queued = n.linked;
        weft__waitq_remove(&c->q, &n);
        weft__spin_unlock(&c->lock);
        if (!still_queued) {
            /* A signaller claimed us in the meantime and is about to
             * signal @w: wait for it (our frame must outlive its touch,
             * wait.h), then hand the signal on to a real waiter. */
            weft__waiter_wait_flags(&w, WEFT_NEVER, WEFT__WAIT_NOCANCEL);
            weft_cond_signal(c);
        }
        return rc;
    }
    weft__spin_lock(&c->lock);
    rc = weft__waitq_block(&c->lock, &c->q, &n, deadline, 0);
    weft__mutex_lock(m, WEFT_NEVER, WEFT__WAIT_NOCANCEL);
    return rc;
}

int weft_cond_signal(weft_cond *c)
{
    if (!c)
        return -EINVAL;
    weft__spin_lock(&c->lock);
    struct weft__wnode *n = weft__waitq_claim(&c->q);
    weft__spin_unlock(&c->lock);
    if (n)
        weft__waiter_signal(n->w, 0);
    return 0;
}

int weft_cond_broadcast(weft_cond *c)
{
    if (!c)
        return -EINVAL;
    struct weft__wakelist wake = { 0 };
    weft__spin_lock(&c->lock);
    weft__waitq_claim_all(&c->q, &wake);
    weft__spin_unlock(&c->lock);
    weft__wakelist_signal(&wake, 0);
    return 0;
}
