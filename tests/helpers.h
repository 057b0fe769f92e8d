/*
 * helpers.h — small shared pieces of the test suite.
 */
#ifndef WEFT_TESTS_HELPERS_H
#define WEFT_TESTS_HELPERS_H

#include <stddef.h>
#include <stdint.h>

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
