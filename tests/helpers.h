/*
 * helpers.h — small shared pieces of the test suite (Criterion tests).
 */
#ifndef WEFT_TESTS_HELPERS_H
#define WEFT_TESTS_HELPERS_H

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "weft.h"

#if defined(WEFT_ASAN) || defined(WEFT_TSAN)
#define TEST_SANITIZED 1
#else
#define TEST_SANITIZED 0
#endif

/* Sanitizer builds run 5-20x slower: scale big loop counts down there. */
static inline uint64_t test_scale(uint64_t n)
{
    return TEST_SANITIZED ? (n / 10 ? n / 10 : 1) : n;
}

/* xorshift64: a seedable random stream for the tests' interleavings, its
 * state in *@s (never 0). */
static inline uint64_t test_xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* A seed for a stress test's random interleavings: new each run, logged
 * (cr_log_info, with @what) so that a failing run can be told apart. */
#define test_seed(what)                                                        \
    ({                                                                         \
        uint64_t seed_ = (uint64_t)weft_now() * 2654435761u | 1;               \
        cr_log_info("%s seed %llu", (what), (unsigned long long)seed_);        \
        seed_;                                                                 \
    })

/* A stream of its own for party @i of a stress test seeded with @seed
 * (never 0, and different for each @i). */
static inline uint64_t test_seed_for(uint64_t seed, uint64_t i)
{
    return (seed ^ (i + 1) * 0x9E3779B97F4A7C15ull) | 1;
}

/* Cancel a random subset of the @n tasks @t, about one in @one_in, from a
 * task, marking each one in @marked before its cancel (so a task that saw
 * -ECANCELED can check it was marked) and yielding now and then so the
 * cancels interleave with the tasks' waits. */
static inline void test_cancel_some(weft_task *t, _Atomic int *marked, int n,
                                    uint64_t seed, unsigned one_in)
{
    for (int i = 0; i < n; i++) {
        if (test_xorshift(&seed) % one_in)
            continue;
        if (seed % 5 == 0)
            weft_yield();
        atomic_store(&marked[i], 1);
        cr_assert_eq(weft_task_cancel(t[i]), 0);
    }
}

/* Bytes the process has allocated, per jemalloc's statistics; 0 where that
 * is unknown (sanitizer builds use libc malloc, and LeakSanitizer checks
 * for leaks there instead). */
#if !TEST_SANITIZED
#include <jemalloc/jemalloc.h>
static inline size_t test_heap_allocated(void)
{
    uint64_t epoch = 1;
    size_t sz = sizeof(epoch), allocated = 0, asz = sizeof(allocated);
    mallctl("epoch", &epoch, &sz, &epoch, sz);
    if (mallctl("stats.allocated", &allocated, &asz, NULL, 0) != 0)
        return 0;
    return allocated;
}
#else
static inline size_t test_heap_allocated(void)
{
    return 0;
}
#endif

#endif
