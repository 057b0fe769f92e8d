/*
 * sanitizer.h — telling ASan and TSan about every stack switch.
 *
 * ASan tracks one stack per thread; when a thread jumps to a task's stack
 * it must be told before (__sanitizer_start_switch_fiber: where we go) and
 * after (__sanitizer_finish_switch_fiber: we arrived) or it reports false
 * stack overflows and misses use-after-return. A context that leaves for
 * good passes NULL as its fake-stack slot so ASan frees it.
 * TSan keeps a "fiber" per stack (alloc/stack.c: pooled with the stack,
 * replaced every 1000 tasks, kept in a process-wide cache with TSan-build
 * stacks), switched to right before each jump.
 * In normal builds everything here compiles to nothing.
 */
#ifndef WEFT_SCHED_SANITIZER_H
#define WEFT_SCHED_SANITIZER_H

#include <stddef.h>

#ifdef WEFT_ASAN
#include <sanitizer/common_interface_defs.h>
#define WEFT__ASAN_START(fake_save, bottom, size) \
    __sanitizer_start_switch_fiber((fake_save), (bottom), (size))
#define WEFT__ASAN_FINISH(fake) \
    __sanitizer_finish_switch_fiber((fake), NULL, NULL)
#else
#define WEFT__ASAN_START(fake_save, bottom, size) ((void)0)
#define WEFT__ASAN_FINISH(fake) ((void)0)
#endif

#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>
#define WEFT__TSAN_CURRENT() __tsan_get_current_fiber()
#define WEFT__TSAN_SWITCH(fiber) __tsan_switch_to_fiber((fiber), 0)
#define WEFT__TSAN_NAME(fiber, name) __tsan_set_fiber_name((fiber), (name))
#else
#define WEFT__TSAN_CURRENT() NULL
#define WEFT__TSAN_SWITCH(fiber) ((void)0)
#define WEFT__TSAN_NAME(fiber, name) ((void)0)
#endif

#endif
