/* timer.c — see timer.h. */
#include "sched/timer.h"
#include "alloc/mem.h"

#include <errno.h>
#include <string.h>

static void set_earliest(struct weft__timer_heap *h)
{
    /* relaxed: a hint for the owner's ring wait; the owner re-reads it under
     * the lock in weft__timer_run before trusting it. */
    atomic_store_explicit(&h->earliest, h->len ? h->v[0]->deadline : INT64_MAX,
                          memory_order_relaxed);
}

static void place(struct weft__timer_heap *h, uint32_t i, struct weft__timer *t)
{
    h->v[i] = t;
    t->idx = i;
}

static void sift_up(struct weft__timer_heap *h, uint32_t i)
{
    struct weft__timer *t = h->v[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (h->v[parent]->deadline <= t->deadline)
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(struct weft__timer_heap *h, uint32_t i)
{
    struct weft__timer *t = h->v[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->len)
            break;
        if (c + 1 < h->len && h->v[c + 1]->deadline < h->v[c]->deadline)
            c++;
        if (t->deadline <= h->v[c]->deadline)
            break;
        place(h, i, h->v[c]);
        i = c;
    }
    place(h, i, t);
}

static void remove_at(struct weft__timer_heap *h, uint32_t i)
{
    struct weft__timer *last = h->v[--h->len];
    if (i < h->len) {
        place(h, i, last);
        sift_down(h, i);
        sift_up(h, last->idx);
    }
}

int weft__timer_heap_init(struct weft__timer_heap *h)
{
    memset(h, 0, sizeof(*h));
    h->cap = 64;
    h->v = weft__mem_alloc(sizeof(*h->v) * h->cap);
    atomic_init(&h->earliest, INT64_MAX);
    return h->v ? 0 : -ENOMEM;
}

void weft__timer_heap_destroy(struct weft__timer_heap *h)
{
    weft__mem_free(h->v, sizeof(*h->v) * h->cap);
    h->v = NULL;
}

int weft__timer_arm(struct weft__timer_heap *h, struct weft__timer *t)
{
    weft__spin_lock(&h->lock);
    if (h->len == h->cap) {
        struct weft__timer **v = weft__mem_alloc(sizeof(*v) * h->cap * 2);
        if (!v) {
            weft__spin_unlock(&h->lock);
            return -ENOMEM;
        }
        memcpy(v, h->v, sizeof(*v) * h->len);
        weft__mem_free(h->v, sizeof(*v) * h->cap);
        h->v = v;
        h->cap *= 2;
    }
    __atomic_store_n(&t->heap, h, __ATOMIC_RELAXED); /* the lock publishes it */
    place(h, h->len++, t);
    sift_up(h, t->idx);
    set_earliest(h);
    weft__spin_unlock(&h->lock);
    return 0;
}

bool weft__timer_disarm(struct weft__timer *t)
{
    /* t->heap is set by arm (the arming task itself) and cleared under the
     * heap lock, by disarm or *after* the callback returned in
     * weft__timer_run. So an unlocked read sees NULL only once any callback
     * is over (load-acquire, pairs with the release store in run), or the
     * heap to lock and re-check. */
    struct weft__timer_heap *h = __atomic_load_n(&t->heap, __ATOMIC_ACQUIRE);
    if (!h)
        return false;
    weft__spin_lock(&h->lock);
    bool pending = __atomic_load_n(&t->heap, __ATOMIC_RELAXED) == h;
    if (pending) {
        remove_at(h, t->idx);
        __atomic_store_n(&t->heap, NULL, __ATOMIC_RELAXED); /* under the lock */
        set_earliest(h);
    }
    weft__spin_unlock(&h->lock);
    return pending;
}

void weft__timer_run(struct weft__timer_heap *h, int64_t now)
{
    /* Expired timers are taken in deadline order, a batch at a time, and
     * fired in reverse: a wake-up goes to the worker's LIFO slot, pushing
     * the previous one down its (LIFO) deque, so firing the latest first
     * makes the woken tasks run in deadline order. */
    struct weft__timer *batch[64];
    if (weft__timer_earliest(h) > now)
        return;
    weft__spin_lock(&h->lock);
    for (;;) {
        unsigned n = 0;
        while (n < 64 && h->len && h->v[0]->deadline <= now) {
            batch[n++] = h->v[0];
            remove_at(h, 0);
        }
        if (!n)
            break;
        while (n--) {
            struct weft__timer *t = batch[n];
            t->fire(t);        /* under the lock: see timer.h */
            /* store-release: pairs with disarm's unlocked load-acquire;
             * after it the callback is over and @t may be reused. */
            __atomic_store_n(&t->heap, NULL, __ATOMIC_RELEASE);
        }
    }
    set_earliest(h);
    weft__spin_unlock(&h->lock);
}
