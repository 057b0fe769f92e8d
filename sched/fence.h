/*
 * fence.h — asymmetric fences: a free "light" side on a hot path, paid for
 * by an expensive "heavy" side on a rare one.
 *
 * The pattern they serve is store buffering between two threads: each
 * stores one flag and then loads the other's. Symmetric code needs a
 * StoreLoad barrier (a locked instruction) on both sides. When one side
 * is hot (a task switching away from a channel wait, every round trip)
 * and the other rare (weft_task_cancel), the hot side can get away with a
 * compiler barrier if the rare side makes every running thread of the
 * process execute a full barrier: the Linux membarrier(2) system call,
 * MEMBARRIER_CMD_PRIVATE_EXPEDITED (an IPI to each CPU running one of our
 * threads; a thread not running passes through the scheduler, which is a
 * full barrier too). Folly's asymmetric fences and liburcu do the same.
 *
 * Why it is correct: membarrier returns only after each other thread has
 * executed a full barrier at some point P of its own execution. Light
 * side: store A; compiler barrier; load B. Heavy side: store B; heavy
 * fence; load A. If the light side's store A came before its P, A is
 * visible to the heavy side's load. Otherwise its load of B comes after
 * P, and so after the heavy side's store B (which the system call itself
 * ordered before P). Either way one side sees the other's store.
 *
 * C11's memory model has no name for this; the light side's accesses are
 * relaxed atomics, so the sanitizers see no race (TSan does not model the
 * heavy fence, and does not need to: it reports races, not reorderings).
 */
#ifndef WEFT_SCHED_FENCE_H
#define WEFT_SCHED_FENCE_H

#include <stdatomic.h>
#include <stdbool.h>

/* Whether the heavy fence is available: set once by weft__fence_init()
 * before any worker starts, read-only afterwards. Where it is not
 * (kernels before 4.14, a seccomp filter that forbids membarrier, or
 * WEFT_NO_MEMBARRIER=1 in the environment, for testing), the light sides
 * use locked instructions instead and the heavy side does nothing. */
extern bool weft__fence_asym;

/* Register the process for expedited membarriers and set weft__fence_asym.
 * Called by weft_run before the workers start. */
void weft__fence_init(void);

/* The light side: orders nothing on the CPU, only keeps the compiler from
 * moving the load above the store. */
static inline void weft__fence_light(void)
{
    atomic_signal_fence(memory_order_seq_cst);
}

/* The heavy side: every thread of the process executes a full barrier
 * before this returns. Costs a system call and an IPI per CPU running one
 * of our threads (1 us to tens of us in a VM). Any thread. */
void weft__fence_heavy(void);

#endif
