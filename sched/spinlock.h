/*
 * spinlock.h — a test-and-test-and-set lock for the runtime's short
 * critical sections (a timer heap update, the idle set), where a mutex's
 * futex would cost more than the work it protects.
 *
 * Invariant: `locked` is 1 exactly while one thread is inside the section.
 * Orders: the winning exchange is an acquire (pairs with the release store
 * in unlock), so everything the previous holder wrote is visible; the wait
 * loop only reads (relaxed) to keep the line shared until it looks free.
 */
#ifndef WEFT_SCHED_SPINLOCK_H
#define WEFT_SCHED_SPINLOCK_H

#include <sched.h>
#include <stdatomic.h>

struct weft__spinlock {
    _Atomic unsigned char locked;   /* a byte, so it packs beside other fields */
};

static inline void weft__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/*
 * A StoreLoad barrier between two threads that each store, then load what
 * the other stored (the "store buffering" pattern: parking, quiescence).
 * Both sides call it with the same @pairing atomic. Normal builds use a
 * seq_cst fence (local: no shared line is written). TSan models no fences
 * (and gcc's -Wtsan rejects them), so its build does a seq_cst RMW on
 * @pairing instead: of two RMWs on one atomic, one reads the other, which
 * synchronizes the two sides.
 */
static inline void weft__storeload(_Atomic int *pairing)
{
#ifdef WEFT_TSAN
    atomic_fetch_add_explicit(pairing, 0, memory_order_seq_cst);
#else
    (void)pairing;
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

static inline void weft__spin_lock(struct weft__spinlock *l)
{
    for (unsigned spins = 0;; spins++) {
        if (!atomic_exchange_explicit(&l->locked, 1, memory_order_acquire))
            return;                                  /* acquire: pairs with unlock */
        while (atomic_load_explicit(&l->locked, memory_order_relaxed)) {
            if (++spins > 1000)
                sched_yield();                       /* holder was preempted */
            else
                weft__cpu_relax();
        }
    }
}

static inline void weft__spin_unlock(struct weft__spinlock *l)
{
    atomic_store_explicit(&l->locked, 0, memory_order_release); /* pairs with lock's acquire */
}

#endif
