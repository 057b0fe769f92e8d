/* stack.c — see stack.h. */
#include "alloc/stack.h"
#include "alloc/mem.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef WEFT_ASAN
#include <sanitizer/asan_interface.h>
#endif
#ifdef WEFT_TSAN
#include <sanitizer/tsan_interface.h>
/* TSan (GCC 12 / LLVM 14 runtime) never reuses a destroyed fiber's id, and
 * maps trace memory per id, so a fiber per task runs out after ~64k tasks.
 * A fiber pooled with its stack runs out differently: a task leaves by
 * switching away, never returning, so a few shadow frames stay behind on
 * the fiber per task, up to TSan's 64k-frame limit. A fiber is therefore
 * reused for this many tasks, then replaced. */
#define WEFT__TSAN_FIBER_USES 1000
/* Under TSan, stacks (with their fibers) also outlive the runtime, in one
 * process-wide cache: TSan gives back neither a fiber's trace memory nor
 * the shadow mappings of an unmapped stack, so mapping new ones on every
 * weft_run exhausts vm.max_map_count within a test run. */
#include <pthread.h>
static pthread_mutex_t tsan_cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct weft__stack **tsan_cache;
static size_t tsan_cache_count, tsan_cache_cap;

static struct weft__stack *tsan_cache_get(size_t size)
{
    struct weft__stack *found = NULL;
    pthread_mutex_lock(&tsan_cache_lock);
    for (size_t i = tsan_cache_count; i-- > 0;) {
        if (tsan_cache[i]->size == size) {
            found = tsan_cache[i];
            tsan_cache[i] = tsan_cache[--tsan_cache_count];
            break;
        }
    }
    pthread_mutex_unlock(&tsan_cache_lock);
    return found;
}

static bool tsan_cache_put(struct weft__stack *s)
{
    bool kept = false;
    pthread_mutex_lock(&tsan_cache_lock);
    if (tsan_cache_count == tsan_cache_cap) {
        size_t cap = tsan_cache_cap ? tsan_cache_cap * 2 : 256;
        struct weft__stack **c = realloc(tsan_cache, cap * sizeof(*c));
        if (c) {
            tsan_cache = c;
            tsan_cache_cap = cap;
        }
    }
    if (tsan_cache_count < tsan_cache_cap) {
        tsan_cache[tsan_cache_count++] = s;
        kept = true;
    }
    pthread_mutex_unlock(&tsan_cache_lock);
    return kept;
}
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

_Static_assert(sizeof(struct weft__stack) <= WEFT__STACK_HDR, "stack descriptor too big");

static struct weft__stack *stack_map(size_t size)
{
#ifdef WEFT_TSAN
    struct weft__stack *cached = tsan_cache_get(size);
    if (cached)
        return cached;
#endif
    size_t guard = page_size();
    /* One mapping, then the guard page made inaccessible: MAP_NORESERVE so
     * untouched stack pages cost neither memory nor commit charge. */
    char *p = mmap(NULL, size + guard, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (mprotect(p, guard, PROT_NONE) != 0) {
        munmap(p, size + guard);
        return NULL;
    }
    struct weft__stack *s = (struct weft__stack *)(p + guard + size - WEFT__STACK_HDR);
    s->base = p + guard;
    s->size = size;
#ifdef WEFT_TSAN
    s->tsan_fiber = __tsan_create_fiber(0);
    s->tsan_uses = 0;
#endif
    return s;
}

static void stack_unmap(struct weft__stack *s)
{
#ifdef WEFT_TSAN
    if (tsan_cache_put(s))
        return;
    __tsan_destroy_fiber(s->tsan_fiber);
#endif
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
        stack_unmap(p->free[--p->count]);
    weft__mem_free(p->free, sizeof(*p->free) * p->cap);
    p->free = NULL;
}

struct weft__stack *weft__stack_get(struct weft__stack_pool *p, size_t size)
{
    struct weft__stack *s;
    if (size == p->size && p->count) {
        s = p->free[--p->count];
    } else {
        __atomic_store_n(&p->mapped, p->mapped + 1, __ATOMIC_RELAXED); /* read by stats */
        s = stack_map(size);
    }
#ifdef WEFT_TSAN
    if (s && ++s->tsan_uses >= WEFT__TSAN_FIBER_USES) {
        __tsan_destroy_fiber(s->tsan_fiber);   /* not the current one */
        s->tsan_fiber = __tsan_create_fiber(0);
        s->tsan_uses = 0;
    }
#endif
    return s;
}

void weft__stack_put(struct weft__stack_pool *p, struct weft__stack *s)
{
#ifdef WEFT_ASAN
    /* A finished task leaves redzone poison on its stack; clear it before the
     * next task runs there. */
    ASAN_UNPOISON_MEMORY_REGION(s->base, weft__stack_usable(s));
#endif
    if (s->size == p->size && p->count < p->cap)
        p->free[p->count++] = s;
    else
        stack_unmap(s);
}

int weft__stack_in_guard(const struct weft__stack *s, const void *addr)
{
    const char *a = addr, *b = s ? s->base : NULL;
    return b && a < b && a >= b - page_size();
}
