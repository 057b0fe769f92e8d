/*
 * event.c — asyncio.Event: a flag that waiters wait to see set. Setting
 * wakes every waiter; waiters queue only while the flag is clear. All
 * under `lock`.
 */
#include "weft.h"
#include "alloc/mem.h"
#include "sync/waitq.h"

#include <errno.h>

struct weft_event {
    struct weft__spinlock lock;
    bool set;
    struct weft__waitq q;
};

int weft_event_new(weft_event **out)
{
    if (!out)
        return -EINVAL;
    if (!(*out = weft__mem_alloc(sizeof(weft_event))))
        return -ENOMEM;
    return 0;
}

void weft_event_free(weft_event *e)
{
    weft__mem_free(e, sizeof(*e));
}

int weft_event_set(weft_event *e)
{
    if (!e)
        return -EINVAL;
    struct weft__wakelist wake = { 0 };
    weft__spin_lock(&e->lock);
    e->set = true;
    weft__waitq_claim_all(&e->q, &wake);
    weft__spin_unlock(&e->lock);
    weft__wakelist_signal(&wake, 0);
    return 0;
}

int weft_event_clear(weft_event *e)
{
    if (!e)
        return -EINVAL;
    weft__spin_lock(&e->lock);
    e->set = false;
    weft__spin_unlock(&e->lock);
    return 0;
}

bool weft_event_is_set(weft_event *e)
{
    if (!e)
        return false;
    weft__spin_lock(&e->lock);
    bool set = e->set;
    weft__spin_unlock(&e->lock);
    return set;
}

int weft_event_wait(weft_event *e, int64_t deadline)
{
    if (!e)
        return -EINVAL;
    if (weft__cancel_point(deadline))          /* even if set (waitq.h) */
        return -ECANCELED;
    weft__spin_lock(&e->lock);
    if (e->set) {
        weft__spin_unlock(&e->lock);
        return 0;
    }
    if (deadline != WEFT_NEVER && deadline <= weft_now()) {
        weft__spin_unlock(&e->lock);
        return -ETIMEDOUT;
    }
    struct weft__waiter w;
    struct weft__wnode n;
    weft__waiter_init_cancellable(&w);       /* waited on below, flags 0 */
    weft__wnode_init(&n, &w, NULL, 0, NULL);
    weft__waitq_push(&e->q, &n);
    return weft__waitq_block(&e->lock, &e->q, &n, deadline, 0);
}
