/* park.c — see park.h for the protocol. */
#include "sched/park.h"
#include "alloc/mem.h"

#include <errno.h>

int weft__idle_init(struct weft__idle *idle, unsigned nworkers)
{
    atomic_init(&idle->nr_searching, 0);
    atomic_init(&idle->nr_idle, 0);
    atomic_init(&idle->lock.locked, 0);
    idle->count = 0;
    idle->nworkers = nworkers;
    idle->set = weft__mem_alloc(sizeof(*idle->set) * nworkers);
    idle->is_idle = weft__mem_alloc(sizeof(*idle->is_idle) * nworkers);
    if (!idle->set || !idle->is_idle) {
        weft__idle_destroy(idle);
        return -ENOMEM;
    }
    return 0;
}

void weft__idle_destroy(struct weft__idle *idle)
{
    weft__mem_free(idle->set, sizeof(*idle->set) * idle->nworkers);
    weft__mem_free(idle->is_idle, sizeof(*idle->is_idle) * idle->nworkers);
    idle->set = NULL;
    idle->is_idle = NULL;
}

bool weft__idle_search_begin(struct weft__idle *idle)
{
    /* relaxed: the limit is a heuristic; a CAS keeps the count exact. */
    int n = atomic_load_explicit(&idle->nr_searching, memory_order_relaxed);
    do {
        if (2 * n >= (int)idle->nworkers)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&idle->nr_searching, &n, n + 1,
                                                    memory_order_relaxed,
                                                    memory_order_relaxed));
    return true;
}

bool weft__idle_search_end(struct weft__idle *idle)
{
    /* seq_cst: a searcher that stops must not let a producer that saw it
     * searching (and so woke nobody) go unnoticed; the caller re-checks the
     * queues after this (worker.c). */
    return atomic_fetch_sub_explicit(&idle->nr_searching, 1, memory_order_seq_cst) == 1;
}

void weft__idle_enter(struct weft__idle *idle, unsigned index)
{
    weft__spin_lock(&idle->lock);
    idle->set[idle->count++] = index;
    idle->is_idle[index] = true;
    /* W1: seq_cst RMW, pairs with the producer's P2 (see park.h). */
    atomic_fetch_add_explicit(&idle->nr_idle, 1, memory_order_seq_cst);
    weft__spin_unlock(&idle->lock);
}

bool weft__idle_leave(struct weft__idle *idle, unsigned index)
{
    bool was = false;
    weft__spin_lock(&idle->lock);
    if (idle->is_idle[index]) {
        for (unsigned i = 0; i < idle->count; i++) {
            if (idle->set[i] == index) {
                idle->set[i] = idle->set[--idle->count];
                break;
            }
        }
        idle->is_idle[index] = false;
        atomic_fetch_sub_explicit(&idle->nr_idle, 1, memory_order_relaxed); /* under lock */
        was = true;
    }
    weft__spin_unlock(&idle->lock);
    return was;
}

int weft__idle_pick(struct weft__idle *idle)
{
    /* P2 (park.h): a seq_cst fence, then a plain load. The fence is local
     * (no shared cache line is written, unlike an RMW on nr_idle, which
     * every producer on every worker would bounce between cores). TSan
     * does not model fences, so its build uses the RMW form, which it
     * does. Both are StoreLoad barriers pairing with the parker's W1. */
#ifdef WEFT_TSAN
    if (atomic_fetch_add_explicit(&idle->nr_idle, 0, memory_order_seq_cst) == 0)
        return -1;
#else
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&idle->nr_idle, memory_order_relaxed) == 0)
        return -1;
#endif
    /* A searcher will find the task: waking another costs a ring round trip
     * (tens of microseconds) for nothing. */
    if (atomic_load_explicit(&idle->nr_searching, memory_order_seq_cst) > 0)
        return -1;
    int index = -1;
    weft__spin_lock(&idle->lock);
    if (idle->count) {
        index = (int)idle->set[--idle->count];
        idle->is_idle[index] = false;
        atomic_fetch_sub_explicit(&idle->nr_idle, 1, memory_order_relaxed); /* under lock */
        /* Counted as searching on its behalf: later producers see a
         * searcher and do not wake a second worker for the same burst. */
        atomic_fetch_add_explicit(&idle->nr_searching, 1, memory_order_seq_cst);
    }
    weft__spin_unlock(&idle->lock);
    return index;
}
