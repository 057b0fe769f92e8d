/* objpool.c — see objpool.h. */
#include "alloc/objpool.h"
#include "alloc/mem.h"

#include <stdint.h>
#include <sys/mman.h>

#define SLAB_FIRST_OBJS 64
#define SLAB_MAX_BYTES  (2u << 20)     /* one huge page */

struct weft__objpool_slab {
    struct weft__objpool_slab *next;
    size_t bytes;
    _Alignas(64) char data[];
};

void weft__objpool_init(struct weft__objpool *p, size_t obj_size, void (*init)(void *obj))
{
    p->free = NULL;
    p->bump = p->end = NULL;
    atomic_init(&p->slabs, NULL);
    p->init = init;
    p->obj_size = (obj_size + 63) & ~(size_t)63;
    p->next_bytes = sizeof(struct weft__objpool_slab) + SLAB_FIRST_OBJS * p->obj_size;
}

void weft__objpool_destroy(struct weft__objpool *p)
{
    struct weft__objpool_slab *s = atomic_load_explicit(&p->slabs, memory_order_relaxed);
    while (s) {
        struct weft__objpool_slab *next = s->next;
        weft__mem_free_aligned(s);
        s = next;
    }
    atomic_store_explicit(&p->slabs, NULL, memory_order_relaxed);
    p->free = NULL;
    p->bump = p->end = NULL;
}

static bool slab_new(struct weft__objpool *p)
{
    size_t bytes = p->next_bytes;
    struct weft__objpool_slab *s = weft__mem_alloc_aligned(bytes,
            bytes >= SLAB_MAX_BYTES ? SLAB_MAX_BYTES : 64);
    if (!s)
        return false;
    if (bytes >= SLAB_MAX_BYTES)
        madvise(s, bytes, MADV_HUGEPAGE);   /* a hint; failure is harmless */
    s->bytes = bytes;
    s->next = atomic_load_explicit(&p->slabs, memory_order_relaxed); /* owner is the only writer */
    p->bump = s->data;
    p->end = s->data + (bytes - sizeof(*s)) / p->obj_size * p->obj_size;
    for (char *o = p->bump; o < p->end; o += p->obj_size)
        p->init(o);
    /* store-release: pairs with the load-acquire in weft__objpool_walk, so
     * a walker sees the initialised objects. */
    atomic_store_explicit(&p->slabs, s, memory_order_release);
    if (p->next_bytes < SLAB_MAX_BYTES)
        p->next_bytes = p->next_bytes * 2 > SLAB_MAX_BYTES ? SLAB_MAX_BYTES : p->next_bytes * 2;
    return true;
}

void *weft__objpool_get(struct weft__objpool *p)
{
    void *obj = p->free;
    if (obj) {
        p->free = *(void **)obj;
        return obj;
    }
    if (p->bump == p->end && !slab_new(p))
        return NULL;
    obj = p->bump;
    p->bump += p->obj_size;
    return obj;
}

void weft__objpool_put(struct weft__objpool *p, void *obj)
{
    *(void **)obj = p->free;
    p->free = obj;
}

void weft__objpool_walk(struct weft__objpool *p, void (*fn)(void *obj, void *arg), void *arg)
{
    struct weft__objpool_slab *s = atomic_load_explicit(&p->slabs, memory_order_acquire);
    for (; s; s = s->next) {
        char *end = s->data + (s->bytes - sizeof(*s)) / p->obj_size * p->obj_size;
        for (char *o = s->data; o < end; o += p->obj_size)
            fn(o, arg);
    }
}
