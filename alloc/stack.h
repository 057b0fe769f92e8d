/*
 * stack.h — task stacks: mmap'd, guard page below, pooled per worker.
 *
 * A stack is [base, base + size) with one PROT_NONE guard page just below
 * base, so running off the end faults instead of silently writing into a
 * neighbour. Its descriptor (struct weft__stack) lives in its own top
 * WEFT__STACK_HDR bytes, so a task holds one pointer for its stack, and
 * the task runs on the weft__stack_usable() bytes below. Each worker keeps
 * a bounded pool of free stacks of the runtime's default size: taking and
 * returning one is a pointer move, with no system call and no lock. Stacks of other sizes are mapped and unmapped
 * on demand. A task holds a stack only from its first run to its exit.
 *
 * Every mapping with a guard page costs two VMAs, and vm.max_map_count
 * (default 65530) bounds the number of stacks mapped at once (in use by
 * started tasks, plus those in the pools) to about 32,000 unless it is
 * raised; docs/design.md says more.
 */
#ifndef WEFT_ALLOC_STACK_H
#define WEFT_ALLOC_STACK_H

#include <stddef.h>
#include <stdint.h>

struct weft__stack {     /* at base + size - WEFT__STACK_HDR */
    void  *base;        /* lowest usable byte; the guard page is below */
    size_t size;        /* bytes mapped above the guard page (page multiple) */
#ifdef WEFT_TSAN
    void  *tsan_fiber;  /* TSan's context for this stack, pooled with it */
    unsigned tsan_uses; /* tasks run on it since the fiber was made */
#endif
};

#define WEFT__STACK_HDR 64   /* top bytes of a stack that hold its descriptor */

/* The bytes a task may use, from s->base up. */
static inline size_t weft__stack_usable(const struct weft__stack *s)
{
    return s->size - WEFT__STACK_HDR;
}

struct weft__stack_pool {     /* owned by one worker; no locking */
    struct weft__stack **free; /* free[0 .. count) are ready to use */
    unsigned count;
    unsigned cap;
    size_t   size;            /* the size pooled stacks have */
    uint64_t mapped;          /* stacks mmap'd so far (pool misses) */
};

/* Round a requested stack size up to whole pages. */
size_t weft__stack_round(size_t size);

int  weft__stack_pool_init(struct weft__stack_pool *p, size_t size, unsigned cap);
/* Unmaps every pooled stack. */
void weft__stack_pool_destroy(struct weft__stack_pool *p);

/* A stack of @size bytes (a page multiple), or NULL when mmap fails
 * (memory or vm.max_map_count). Owner worker only. */
struct weft__stack *weft__stack_get(struct weft__stack_pool *p, size_t size);
/* Return a stack to the pool (or unmap it if the pool is full or it has
 * another size). Owner worker only. */
void weft__stack_put(struct weft__stack_pool *p, struct weft__stack *s);

/* Whether @addr lies in the guard page of @s. */
int  weft__stack_in_guard(const struct weft__stack *s, const void *addr);

#endif
