/*
 * inject.h — the global injection queue.
 *
 * Where tasks go that no worker's deque can take: tasks spawned or woken by
 * foreign threads, and the older half of a worker's deque when it overflows.
 * A mutex-protected intrusive FIFO (linked through task->next); workers
 * check it every WEFT__FAIR_TICKS scheduling ticks so it cannot starve, and
 * whenever their own queues are empty. `len` lets them skip the lock when it
 * is empty.
 */
#ifndef WEFT_SCHED_INJECT_H
#define WEFT_SCHED_INJECT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

struct weft__task;

struct weft__inject {
    pthread_mutex_t lock;
    struct weft__task *head, *tail;
    _Atomic size_t len;    /* written under lock; read unlocked as a hint */
};

void weft__inject_init(struct weft__inject *q);
void weft__inject_destroy(struct weft__inject *q);

/* Append the chain @head..@tail of @n tasks (linked by ->next). Any thread. */
void weft__inject_push(struct weft__inject *q, struct weft__task *head,
                       struct weft__task *tail, size_t n);

/* Take up to @max tasks from the front, as a chain returned in *@head;
 * returns how many. Any thread. */
size_t weft__inject_pop(struct weft__inject *q, size_t max, struct weft__task **head);

static inline size_t weft__inject_len(struct weft__inject *q)
{
    /* relaxed: only a hint; a task seen here is taken under the lock. The
     * parking protocol orders this load itself (park.h). */
    return atomic_load_explicit(&q->len, memory_order_relaxed);
}

#endif
