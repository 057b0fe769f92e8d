/* timer.c — see timer.h. */
#include "sched/timer.h"

#include <string.h>

static void set_earliest(struct weft__timer_heap *h)
{
    /* relaxed: a hint for the owner's ring wait; the owner re-reads it under
     * the lock in weft__timer_run before trusting it. */
    atomic_store_explicit(&h->earliest, h->root ? h->root->deadline : INT64_MAX,
                          memory_order_relaxed);
}

/* Meld two heaps whose roots @a and @b have no siblings: the later root
 * becomes the earlier one's first child. */
static struct weft__timer *meld(struct weft__timer *a, struct weft__timer *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (b->deadline < a->deadline) {
        struct weft__timer *t = a;
        a = b;
        b = t;
    }
    b->next = a->child;
    if (a->child)
        a->child->prev = b;
    b->prev = a;
    a->child = b;
    return a;
}

/* One heap from the sibling list starting at @first (a removed node's
 * children), in the two passes of timer.h, without recursion. */
static struct weft__timer *merge_pairs(struct weft__timer *first)
{
    struct weft__timer *done = NULL;   /* pass 1's results, rightmost on top */
    while (first) {
        struct weft__timer *a = first, *b = a->next;
        first = b ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b)
            b->next = b->prev = NULL;
        struct weft__timer *m = meld(a, b);
        m->next = done;
        done = m;
    }
    struct weft__timer *root = NULL;
    while (done) {
        struct weft__timer *n = done->next;
        done->next = NULL;
        root = meld(root, done);
        done = n;
    }
    return root;
}

/* Take @t out of @h (under the lock). */
static void cut(struct weft__timer_heap *h, struct weft__timer *t)
{
    struct weft__timer *kids = t->child;
    t->child = NULL;
    if (t == h->root) {
        h->root = merge_pairs(kids);
        return;
    }
    if (t->prev->child == t)           /* first child: prev is the parent */
        t->prev->child = t->next;
    else
        t->prev->next = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->next = t->prev = NULL;
    h->root = meld(h->root, merge_pairs(kids));
}

int weft__timer_heap_init(struct weft__timer_heap *h)
{
    memset(h, 0, sizeof(*h));
    atomic_init(&h->earliest, INT64_MAX);
    return 0;
}

void weft__timer_heap_destroy(struct weft__timer_heap *h)
{
    h->root = NULL;           /* the timers are their owners' memory */
}

int weft__timer_arm(struct weft__timer_heap *h, struct weft__timer *t)
{
    t->child = t->next = t->prev = NULL;
    weft__spin_lock(&h->lock);
    __atomic_store_n(&t->heap, h, __ATOMIC_RELAXED); /* the lock publishes it */
    h->root = meld(h->root, t);
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
        cut(h, t);
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
        while (n < 64 && h->root && h->root->deadline <= now) {
            batch[n] = h->root;
            cut(h, batch[n++]);
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
