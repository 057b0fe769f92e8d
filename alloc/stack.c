/* stack.c — see stack.h. */
#include "alloc/stack.h"
#include "alloc/mem.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef WEFT_ASAN
#include <sanitizer/asan_interface.h>
#endif

static size_t page_size(void)
{
    static size_t ps;
    if (!ps)
        ps = (size_t)sysconf(_SC_PAGESIZE);
    return ps;
}

size_t weft__stack_round(size_t size)
{
    size_t ps = page_size();
    return (size + ps - 1) & ~(ps - 1);
}

static int stack_map(size_t size, struct weft__stack *out)
{
    size_t guard = page_size();
    /* One mapping, then the guard page made inaccessible: MAP_NORESERVE so
     * untouched stack pages cost neither memory nor commit charge. */
    char *p = mmap(NULL, size + guard, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    if (mprotect(p, guard, PROT_NONE) != 0) {
        munmap(p, size + guard);
        return -ENOMEM;
    }
    out->base = p + guard;
    out->size = size;
    return 0;
}

static void stack_unmap(struct weft__stack *s)
{
    size_t guard = page_size();
    munmap((char *)s->base - guard, s->size + guard);
}

int weft__stack_pool_init(struct weft__stack_pool *p, size_t size, unsigned cap)
{
    p->free = weft__mem_alloc(sizeof(*p->free) * cap);
    if (!p->free)
        return -ENOMEM;
    p->count = 0;
    p->cap = cap;
    p->size = weft__stack_round(size);
    p->mapped = 0;
    return 0;
}

void weft__stack_pool_destroy(struct weft__stack_pool *p)
{
    while (p->count)
        stack_unmap(&p->free[--p->count]);
    weft__mem_free(p->free, sizeof(*p->free) * p->cap);
    p->free = NULL;
}

int weft__stack_get(struct weft__stack_pool *p, size_t size, struct weft__stack *out)
{
    if (size == p->size && p->count) {
        *out = p->free[--p->count];
        return 0;
    }
    __atomic_store_n(&p->mapped, p->mapped + 1, __ATOMIC_RELAXED); /* read by stats */
    return stack_map(size, out);
}

void weft__stack_put(struct weft__stack_pool *p, struct weft__stack *s)
{
#ifdef WEFT_ASAN
    /* A finished task leaves redzone poison on its stack; clear it before the
     * next task runs there. */
    ASAN_UNPOISON_MEMORY_REGION(s->base, s->size);
#endif
    if (s->size == p->size && p->count < p->cap)
        p->free[p->count++] = *s;
    else
        stack_unmap(s);
    s->base = NULL;
}

int weft__stack_in_guard(const struct weft__stack *s, const void *addr)
{
    const char *a = addr, *b = s->base;
    return b && a < b && a >= b - page_size();
}
