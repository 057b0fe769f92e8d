/* inject.c — see inject.h. */
#include "sched/inject.h"
#include "sched/task.h"

void weft__inject_init(struct weft__inject *q)
{
    pthread_mutex_init(&q->lock, NULL);
    q->head = q->tail = NULL;
    atomic_init(&q->len, 0);
}

void weft__inject_destroy(struct weft__inject *q)
{
    pthread_mutex_destroy(&q->lock);
}

void weft__inject_push(struct weft__inject *q, struct weft__task *head,
                       struct weft__task *tail, size_t n)
{
    tail->next = NULL;
    pthread_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->next = head;
    else
        q->head = head;
    q->tail = tail;
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) + n,
                          memory_order_relaxed);   /* under the lock */
    pthread_mutex_unlock(&q->lock);
}

size_t weft__inject_pop(struct weft__inject *q, size_t max, struct weft__task **head)
{
    *head = NULL;
    if (!weft__inject_len(q) || !max)
        return 0;
    pthread_mutex_lock(&q->lock);
    size_t n = 0;
    struct weft__task *first = q->head, *last = NULL;
    while (q->head && n < max) {
        last = q->head;
        q->head = last->next;
        n++;
    }
    if (!q->head)
        q->tail = NULL;
    if (last)
        last->next = NULL;
    atomic_store_explicit(&q->len, atomic_load_explicit(&q->len, memory_order_relaxed) - n,
                          memory_order_relaxed);   /* under the lock */
    pthread_mutex_unlock(&q->lock);
    *head = n ? first : NULL;
    return n;
}
