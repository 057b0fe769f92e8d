/* objpool.c — see objpool.h. */
#include "alloc/objpool.h"
#include "alloc/mem.h"

void weft__objpool_init(struct weft__objpool *p, size_t obj_size, size_t side_size,
                        void (*init)(void *obj))
{
    p->free = NULL;
    p->cur = NULL;
    atomic_init(&p->slabs, NULL);
    p->init = init;
    p->obj_size = (obj_size + 63) & ~(size_t)63;
    p->side_size = side_size;
    p->cap = (WEFT__OBJPOOL_SLAB - sizeof(struct weft__objpool_slab)) /
             (p->obj_size + side_size);
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
    p->cur = NULL;
}

static bool slab_new(struct weft__objpool *p)
{
    struct weft__objpool_slab *s = weft__mem_alloc_aligned(WEFT__OBJPOOL_SLAB,
                                                           WEFT__OBJPOOL_SLAB);
    if (!s)
        return false;
    atomic_init(&s->carved, 0);
    s->obj_size = p->obj_size;
    s->side_size = p->side_size;
    s->side = s->data + p->cap * p->obj_size;
    s->next = atomic_load_explicit(&p->slabs, memory_order_relaxed); /* owner is the only writer */
    /* store-release: pairs with the load-acquire in weft__objpool_walk, so
     * a walker sees the slab's header. */
    atomic_store_explicit(&p->slabs, s, memory_order_release);
    p->cur = s;
    return true;
}

void *weft__objpool_get(struct weft__objpool *p)
{
    void *obj = p->free;
    if (obj) {
        p->free = *(void **)obj;
        return obj;
    }
    struct weft__objpool_slab *s = p->cur;
    size_t n = s ? atomic_load_explicit(&s->carved, memory_order_relaxed) : p->cap;
    if (n == p->cap) {
        if (!slab_new(p))
            return NULL;
        s = p->cur;
        n = 0;
    }
    obj = s->data + n * p->obj_size;
    p->init(obj);
    /* store-release: a walker that counts this object sees it initialised. */
    atomic_store_explicit(&s->carved, n + 1, memory_order_release);
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
        size_t n = atomic_load_explicit(&s->carved, memory_order_acquire);
        for (size_t i = 0; i < n; i++)
            fn(s->data + i * s->obj_size, arg);
    }
}
