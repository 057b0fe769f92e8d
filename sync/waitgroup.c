/*
 * waitgroup.c — Go's sync.WaitGroup: a counter; waiters wait for it to
 * reach zero, and the step to zero wakes them all. All under `lock`.
 */
#include "weft.h"
#include "alloc/mem.h"
#include "sync/waitq.h"

#include <errno.h>

struct weft_waitgroup {
    struct weft__spinlock lock;
    int64_t count;
    struct weft__waitq q;
};

int weft_waitgroup_new(weft_waitgroup **out)
{
    if (!out)
        return -EINVAL;
    if (!(*out = weft__mem_alloc(sizeof(weft_waitgroup))))
        return -ENOMEM;
    return 0;
}

void weft_waitgroup_free(weft_waitgroup *wg)
{
    weft__mem_free(wg, sizeof(*wg));
}

int weft_waitgroup_add(weft_waitgroup *wg, int64_t delta)
{
    if (!wg)
        return -EINVAL;
    struct weft__wakelist wake = { 0 };
    weft__spin_lock(&wg->lock);
    int64_t next;
    if (__builtin_add_overflow(wg->count, delta, &next) || next < 0) {
        weft__spin_unlock(&wg->lock);
        return -EINVAL;
    }
    wg->count = next;
    if (next == 0)
        weft__waitq_claim_all(&wg->q, &wake);
    weft__spin_unlock(&wg->lock);
    weft__wakelist_signal(&wake, 0);
    return 0;
}

int weft_waitgroup_done(weft_waitgroup *wg)
{
    return weft_waitgroup_add(wg, -1);
}

int weft_waitgroup_wait(weft_waitgroup *wg, int64_t deadline)
{
    if (!wg)
        return -EINVAL;
    if (weft__cancel_point(deadline))          /* even at zero (waitq.h) */
        return -ECANCELED;
    weft__spin_lock(&wg->lock);
    if (wg->count == 0) {
        weft__spin_unlock(&wg->lock);
        return 0;
    }
    if (deadline != WEFT_NEVER && deadline <= weft_now()) {
        weft__spin_unlock(&wg->lock);
        return -ETIMEDOUT;
    }
    struct weft__waiter w;
    struct weft__wnode n;
    weft__waiter_init_cancellable(&w);       /* waited on below, flags 0 */
    weft__wnode_init(&n, &w, NULL, 0, NULL);
    weft__waitq_push(&wg->q, &n);
    return weft__waitq_block(&wg->lock, &wg->q, &n, deadline, 0);
}
