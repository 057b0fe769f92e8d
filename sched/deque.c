/* sched/deque.c - allocation of the work-stealing deque's slot array.
 * The algorithm, its invariants and its memory orders are in sched/deque.h;
 * the hot-path operations are static inline there. */
#include "sched/deque.h"
#include "alloc/mem.h"

int weft__deque_init(struct weft__deque *q, uint32_t capacity)
{
    q->slots = NULL;
    q->mask = 0;
    atomic_init(&q->top, 0);
    atomic_init(&q->bottom, 0);
    if (capacity < 2 || (capacity & (capacity - 1)) != 0)
        return -EINVAL;
    /* Zeroed: a lock-free atomic pointer (asserted in deque.h) is a plain
     * pointer on weft's targets, so every slot starts as NULL. No other thread
     * can see q yet, hence the plain stores and atomic_init above. */
    q->slots = weft__mem_alloc(capacity * sizeof *q->slots);
    if (q->slots == NULL)
        return -ENOMEM;
    q->mask = (int64_t)capacity - 1;
    return 0;
}

void weft__deque_destroy(struct weft__deque *q)
{
    if (q->slots)
        weft__mem_free(q->slots, (size_t)(q->mask + 1) * sizeof *q->slots);
    q->slots = NULL;
    q->mask = 0;
}
