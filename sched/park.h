/*
 * park.h — idle workers: searching, parking, and waking them without
 * losing a wake-up.
 *
 * A worker that runs out of local work may become a *searcher* (it spins
 * over the other workers' deques and the injection queue, stealing), but at
 * most half of the workers (rounded up: the one of one, two of three) search
 * at once, so idle CPUs are not all burned
 * on spinning. A searcher that finds nothing *parks*: it sleeps in its ring.
 *
 * The protocol (the same "delicate dance" as Go's proc.go):
 *
 *   producer (made a task runnable)     parking worker
 *   -------------------------------     ------------------------------
 *   P1 publish the task (deque          W1 add self to the idle set:
 *      bottom store-release, or            nr_idle += 1 (seq_cst RMW)
 *      inject queue under its lock)     W2 re-check every queue (deques,
 *   P2 seq_cst fence; n = nr_idle           injection queue, shutdown)
 *      (TSan build: n = fetch_add(      W3 found work: leave the idle set
 *      nr_idle, 0), a seq_cst RMW)         and run it; else sleep in the
 *   P3 if n > 0 and no worker is           ring (a wake already posted to
 *      searching: pop an idle worker,      the ring ends the sleep at once)
 *      count it as searching, wake it
 *
 * Why no wake-up is lost (C11 seq_cst rules): W1 is a seq_cst RMW and
 * the re-check's loads in W2 are seq_cst. If W1 precedes the fence P2 in
 * the single total order S, the load after the fence observes W1 (or
 * later): the producer sees an idle worker and wakes it (or a searcher,
 * which will find the task). Otherwise P2 precedes W2's loads in S, and a
 * seq_cst load that follows a fence in S observes the stores sequenced
 * before that fence: the re-check sees the task. In the TSan build P2 is
 * an RMW on nr_idle, so P2 and W1 read one another (TSan models RMWs, not
 * fences); the StoreLoad barrier is then the RMW pair.
 *
 * A woken worker is counted as searching by its waker (P3), so a burst of
 * new tasks wakes one worker, not all of them; a searcher that finds work
 * and was the last searcher wakes another (work may come in bursts).
 */
#ifndef WEFT_SCHED_PARK_H
#define WEFT_SCHED_PARK_H

#include <stdatomic.h>
#include <stdbool.h>

#include "sched/spinlock.h"

struct weft__idle {
    _Atomic int nr_searching;   /* workers spinning in search of work */
    _Atomic int nr_idle;        /* workers in the idle set */
    struct weft__spinlock lock; /* guards set and is_idle */
    unsigned *set;              /* parked worker indices, a stack */
    unsigned count;
    bool *is_idle;              /* by worker index */
    unsigned nworkers;
};

int  weft__idle_init(struct weft__idle *idle, unsigned nworkers);
void weft__idle_destroy(struct weft__idle *idle);

/* Become a searcher if fewer than half of the workers search. */
bool weft__idle_search_begin(struct weft__idle *idle);
/* Stop searching; true if the caller was the last searcher. */
bool weft__idle_search_end(struct weft__idle *idle);

/* W1: enter the idle set. */
void weft__idle_enter(struct weft__idle *idle, unsigned index);
/* Leave the idle set after W2/W3. Returns false if a waker had already
 * removed the caller: it was then counted as a searcher (and a wake-up is
 * in flight to its ring). */
bool weft__idle_leave(struct weft__idle *idle, unsigned index);

/* P2/P3: the index of a parked worker to wake (already counted as
 * searching), or -1 when a searcher exists or nobody is parked. */
int  weft__idle_pick(struct weft__idle *idle);

#endif
