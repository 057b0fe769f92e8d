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

void weft__objpool_init(struct weft__objpool *p, size_t obj_size)
{
    p->free = NULL;
    p->bump = p->end = NULL;
    p->slabs = NULL;
    p->obj_size = (obj_size + 63) & ~(size_t)63;
    p->next_bytes = sizeof(struct weft__objpool_slab) + SLAB_FIRST_OBJS * p->obj_size;
}

void weft__objpool_destroy(struct weft__objpool *p)
{
    while (p->slabs) {
        struct weft__objpool_slab *s = p->slabs;
        p->slabs = s->next;
        weft__mem_free_aligned(s);
    }
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
    s->next = p->slabs;
    p->slabs = s;
    p->bump = s->data;
    p->end = (char *)s + bytes;
    if (p->next_bytes < SLAB_MAX_BYTES)
        p->next_bytes = p->next_bytes * 2 > SLAB_MAX_BYTES ? SLAB_MAX_BYTES : p->next_bytes * 2;
    return true;
}

void *weft__objpool_get(struct weft__objpool *p, bool *fresh)
{
    void *obj = p->free;
    if (obj) {
        p->free = *(void **)obj;
        *fresh = false;
        return obj;
    }
    if ((size_t)(p->end - p->bump) < p->obj_size && !slab_new(p))
        return NULL;
    obj = p->bump;
    p->bump += p->obj_size;
    *fresh = true;
    return obj;
}

void weft__objpool_put(struct weft__objpool *p, void *obj)
{
    *(void **)obj = p->free;
    p->free = obj;
}
