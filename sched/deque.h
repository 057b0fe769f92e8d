/* sched/deque.h - the per-worker work-stealing deque (fixed-capacity Chase-Lev).
 *
 * Every worker owns one deque of runnable tasks. The owner pushes and takes at
 * the BOTTOM end (LIFO: the task it just made runnable is the one whose data is
 * still in cache); idle workers steal at the TOP end (FIFO: the oldest task,
 * usually the root of the largest piece of work).
 *
 * WHO MAY CALL WHAT
 *   push, take     the OWNER only: one thread at a time, the worker that owns q.
 *   steal          any thread, the owner included (e.g. to move overflow out).
 *   len            any thread; a hint, never a promise.
 *   init, destroy  nobody else may touch q meanwhile (before the workers start,
 *                  after they have stopped). Items still in q at destroy are the
 *                  caller's; the deque owns no items, only its slot array.
 *   The struct is 64-byte aligned (top and bottom live on separate cache lines):
 *   embed it in static storage, on the stack, or in memory from aligned_alloc /
 *   posix_memalign - plain malloc only guarantees 16.
 *
 * THE ALGORITHM
 *   Chase & Lev, "Dynamic Circular Work-Stealing Deque" (SPAA 2005), in the C11
 *   form proven correct by Le, Pop, Cohen and Zappa Nardelli, "Correct and
 *   Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013), without the
 *   growable array: the ring has a fixed capacity and push() says "full", so the
 *   caller moves overflow to the global inject queue. A ring that never grows
 *   never frees an array a thief may still be reading, so no memory reclamation
 *   is needed (Tokio made the same choice).
 *
 * INDICES AND INVARIANTS
 *   top and bottom count from 0 and never wrap; index i lives in slots[i & mask].
 *   The deque holds exactly the indices [top, bottom).
 *   I1. top only grows, by one, by a successful CAS top: t -> t+1 - a steal, or
 *       the owner's take of the LAST item. Nothing else writes top.
 *   I2. Only the owner writes bottom (push: +1; take: -1, then maybe +1 again).
 *   I3. 0 <= bottom - top <= capacity whenever no take() is in flight. Inside a
 *       take() of an empty deque, bottom is briefly top - 1.
 *   I4. Who owns which index: the owner writes slot b only for b == bottom and
 *       only while b - top < capacity, i.e. after index b - capacity (the last
 *       user of that slot) has been claimed. An index in [top, bottom) belongs to
 *       whoever claims it: a thief by the CAS that moves top past it; the owner
 *       by take() - with no CAS when it is not the last item (top < b; see (c)
 *       below for why no thief can then claim b), with the same CAS as the
 *       thieves when it is the last one (top == b).
 *   Why signed: take() decrements bottom BEFORE it knows whether the deque is
 *   empty, so bottom - top == -1 happens. With unsigned indices, take() on a
 *   fresh deque makes bottom 2^64-1 and "top <= bottom" then reads as non-empty
 *   (the bug fixed in crossbeam-deque PR #33). int64 cannot overflow in practice
 *   (one push per nanosecond for 292 years).
 *   Why atomic slots: a thief reads slots[t & mask] BEFORE its CAS tells it
 *   whether it won. If it lost, the owner may already be writing that slot again
 *   for index t + capacity (the ring wrapped); the thief throws the value away,
 *   but a plain read racing with a plain write is still undefined behaviour (and
 *   a TSan report). Relaxed atomic slots make the race defined; on x86-64 and
 *   AArch64 a relaxed pointer load or store is a plain mov / ldr / str.
 *
 * MEMORY ORDERS: NO STAND-ALONE FENCES
 *   The paper has fence(release) in push and fence(seq_cst) in take and steal.
 *   ThreadSanitizer does not model stand-alone fences (llvm/llvm-project#52942),
 *   so it would report false races, and gcc flags atomic_thread_fence as
 *   unsupported under -fsanitize=thread (-Wtsan; an error under -Werror). So
 *   each ordering is put on the atomic operations themselves:
 *       paper                                        here
 *     push:  store slot; fence(release);             store slot;
 *            store(bottom, relaxed)                  store(bottom, release)
 *     take:  store(bottom, relaxed); fence(seq_cst); store(bottom, seq_cst);
 *            load(top, relaxed)                      load(top, seq_cst)
 *     steal: load(top, acquire); fence(seq_cst);     load(top, seq_cst);
 *            load(bottom, acquire)                   load(bottom, seq_cst)
 *     take's / steal's CAS on top: seq_cst           unchanged
 *     take's restore stores of bottom: relaxed       release (see (a))
 *     take's early-out: -                            load(top, relaxed) (see (d))
 *   On x86-64, push and take compile to the same instructions as the paper's:
 *   take's seq_cst store is its one full barrier (xchg, where the paper has
 *   mov + mfence), and every load and release store is a plain mov. steal comes
 *   out cheaper: a seq_cst load is a plain mov, and the paper's fence(seq_cst)
 *   between the two loads (an mfence or lock-or, checked with gcc 12 and clang
 *   14) has no counterpart - x86 never reorders a load with a load, and in the
 *   C11 model the order S of (c) takes its place. On AArch64 the seq_cst loads
 *   are ldar and the seq_cst/release stores stlr, instead of dmb fences.
 *
 *   What pairs with what:
 *   (a) Publishing an item. push() stores the slot (relaxed), then bottom with
 *       release. That pairs with steal()'s seq_cst (so acquire) load of bottom: a
 *       thief that reads bottom > t also sees the item in slot t. Every store of
 *       bottom is at least release, so whichever one a thief reads, every slot
 *       written before it is visible. (In the paper the release fence of an earlier
 *       push covers take's later relaxed restore stores as well; without the fence
 *       the restores must be release themselves, or lean on same-thread release
 *       sequences, which C++20 dropped. A release store is a plain mov on x86.)
 *       take() reads slots the owner wrote itself: program order suffices.
 *   (b) Reusing a slot. push()'s load-acquire of top pairs with the CAS on top
 *       (seq_cst, hence release) in steal() and take(): when push sees
 *       top > b - capacity, the thief that claimed index b - capacity has finished
 *       reading slot b & mask before push overwrites it.
 *   (c) The owner/thief race. take() claims a non-last item with NO CAS, so no
 *       thief may claim the same index. take() stores bottom, then loads top: a
 *       store followed by a load of another location, an order (StoreLoad) that
 *       only seq_cst keeps. With take's store and load, steal's two loads and
 *       every CAS on top all seq_cst, they sit in one total order S consistent
 *       with each thread's program order. If take() read top < b, then
 *         store(bottom=b) <S take's load(top) <S the CAS that later moves top
 *         to b <S a thief's load(top) that returns b <S its load(bottom),
 *       so that thief reads bottom <= b: nothing to steal at b (or a NEW item
 *       that a later push put at index b, published by (a)). steal's order
 *       matters as much: loading bottom before top would let a thief pair an
 *       old bottom with a newer top and claim b. For the last item (top == b)
 *       both sides CAS top from b, so exactly one wins.
 *   (d) take()'s early-out (not in the paper) reads top relaxed before touching
 *       bottom: top never shrinks and only the owner moves bottom, so top >=
 *       bottom once seen means empty at that moment; it returns NULL having
 *       claimed nothing, so it needs no ordering, and it spares an idle
 *       worker's take() the full fence.
 *
 * NO BATCH STEAL
 *   Stealing n > 1 items with one CAS (top: t -> t+n) is NOT safe in Chase-Lev:
 *   take() of a non-last item claims index b without any CAS, after checking only
 *   that top < b. A thief that read the old bottom (b+1) and top == t < b can
 *   still CAS t -> b+1 afterwards and claim index b too: a duplicate. Argument (c)
 *   only covers a thief claiming the single index top. So callers that want
 *   "half" (overflow to the inject queue, steal-half) call steal() repeatedly,
 *   one CAS per item, using len() as the hint for how many. (Go's and Tokio's
 *   rings batch-steal safely because there the owner's pop CASes the head too.)
 */
#ifndef WEFT_SCHED_DEQUE_H
#define WEFT_SCHED_DEQUE_H

#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The indices and slots must be real lock-free atomics, never libatomic's
 * lock-based fallback. A lock-free atomic pointer is a plain pointer on every
 * target weft supports (x86-64, AArch64), so calloc'ed slots are valid NULLs. */
_Static_assert(ATOMIC_POINTER_LOCK_FREE == 2, "weft deque needs lock-free pointer atomics");
_Static_assert(ATOMIC_LONG_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
               "weft deque needs lock-free 64-bit atomics");

/* WEFT_DEBUG builds check the callers' side of the contract. */
#if defined(WEFT_DEBUG) && WEFT_DEBUG > 0
#include <assert.h>
#define WEFT__DEQUE_ASSERT(e) assert(e)
#else
#define WEFT__DEQUE_ASSERT(e) ((void)0)
#endif

struct weft__deque {
    /* Thieves' end. Written only by the CAS in steal() and take(); read by all. */
    _Alignas(64) _Atomic int64_t top;
    /* Owner's end, on its own cache line with the read-only fields: a thief
     * needs bottom anyway, so slots and mask come with the same miss. */
    _Alignas(64) _Atomic int64_t bottom;
    _Atomic(void *) *slots;          /* capacity entries, accessed relaxed */
    int64_t mask;                    /* capacity - 1; read-only after init */
};

/* Capacity: a power of two >= 2. Returns 0, -EINVAL (bad capacity) or -ENOMEM.
 * On failure q->slots is NULL and destroy() is a harmless no-op. */
int weft__deque_init(struct weft__deque *q, uint32_t capacity);
/* Frees the slot array; items still queued are simply forgotten. */
void weft__deque_destroy(struct weft__deque *q);

/* OWNER ONLY. Adds item (non-NULL) at the bottom. Returns false, changing
 * nothing, when the deque holds capacity items: the caller moves the overflow
 * elsewhere. Never blocks, never allocates. */
static inline bool weft__deque_push(struct weft__deque *q, void *item)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed); /* owner is the only writer */
    int64_t t = atomic_load_explicit(&q->top, memory_order_acquire);   /* load-acquire, pairs with the CAS of top in steal/take: slot b & mask is no longer being read, (b) */
    WEFT__DEQUE_ASSERT(item != NULL && b - t >= 0); /* NULL would read as "empty"; I3 */
    if (__builtin_expect(b - t > q->mask, 0))
        return false;                /* full; a stale t only makes us more cautious */
    atomic_store_explicit(&q->slots[b & q->mask], item, memory_order_relaxed); /* published by the release store below */
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release); /* store-release, pairs with the seq_cst load of bottom in steal, (a) */
    return true;
}

/* OWNER ONLY. Removes and returns the bottom (newest) item; NULL when empty. */
static inline void *weft__deque_take(struct weft__deque *q)
{
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed) - 1; /* owner is the only writer */
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);   /* early-out only: top never shrinks, so t >= b+1 means empty now */
    if (__builtin_expect(t > b, 0))
        return NULL;                 /* empty: skip the full fence below */
    atomic_store_explicit(&q->bottom, b, memory_order_seq_cst); /* store-seq_cst: reserve b before looking at top; StoreLoad with the load below, pairs with steal's seq_cst loads, (c) */
    t = atomic_load_explicit(&q->top, memory_order_seq_cst);   /* load-seq_cst, in S after the store above, (c) */
    if (__builtin_expect(t < b, 1))  /* not the last item: no thief can claim b, (c) */
        return atomic_load_explicit(&q->slots[b & q->mask], memory_order_relaxed); /* our own store */
    void *item = NULL;
    if (t == b) {                    /* the last item: race the thieves for it */
        item = atomic_load_explicit(&q->slots[b & q->mask], memory_order_relaxed); /* our own store */
        if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1,
                                                     memory_order_seq_cst,  /* same CAS as steal: one of us wins, (c); release for push's acquire of top, (b) */
                                                     memory_order_relaxed)) /* lost: a thief has it, nothing to read */
            item = NULL;
    }
    /* Empty (t > b: a thief took the last item after the early-out) or last item
     * resolved: top is now b + 1 either way; put bottom back to match. */
    atomic_store_explicit(&q->bottom, b + 1, memory_order_release); /* store-release, pairs with the seq_cst load of bottom in steal, (a) */
    return item;
}

/* ANY THREAD (the owner too). Removes the top (oldest) item into *out.
 * Returns 0 (got one), -EAGAIN (empty) or -EBUSY (lost a race with another
 * thief or the owner's last take; the caller may retry or move on). *out is
 * written only on 0. */
static inline int weft__deque_steal(struct weft__deque *q, void **out)
{
    int64_t t = atomic_load_explicit(&q->top, memory_order_seq_cst);    /* load-seq_cst: in S before the load of bottom, (c) */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_seq_cst); /* load-seq_cst: acquire pairs with the release stores of bottom, (a); in S after take's store of bottom, (c) */
    if (t >= b)
        return -EAGAIN;
    void *item = atomic_load_explicit(&q->slots[t & q->mask], memory_order_relaxed); /* may be stale if we lose the CAS: then it is discarded */
    if (!atomic_compare_exchange_strong_explicit(&q->top, &t, t + 1,
                                                 memory_order_seq_cst,  /* CAS-seq_cst: claims index t, (c); release pairs with push's acquire of top, (b) */
                                                 memory_order_relaxed)) /* lost: nothing read under it */
        return -EBUSY;
    *out = item;
    return 0;
}

/* ANY THREAD. Approximate number of items, clamped to [0, capacity]: the two
 * loads are not a snapshot (and take() briefly has bottom = top - 1). Use it
 * for heuristics (how many to steal, whether to wake a worker), never to
 * decide that a steal or take will succeed. */
static inline int64_t weft__deque_len(struct weft__deque *q)
{
    int64_t t = atomic_load_explicit(&q->top, memory_order_relaxed);    /* a hint, orders nothing */
    int64_t b = atomic_load_explicit(&q->bottom, memory_order_relaxed); /* a hint, orders nothing */
    int64_t n = b - t;
    if (n < 0)
        return 0;
    return n > q->mask ? q->mask + 1 : n;
}

#endif /* WEFT_SCHED_DEQUE_H */
