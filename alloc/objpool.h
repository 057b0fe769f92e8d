/*
 * objpool.h — a pool of fixed-size, type-stable objects (task control
 * blocks), owned by one thread or guarded by its owner's lock.
 *
 * Objects are carved, one at a time as they are first needed, from slabs
 * of WEFT__OBJPOOL_SLAB bytes aligned to their size, so a slab's header is
 * found from any object in it by masking. Each object may have a few
 * "side" bytes, kept apart from the objects at the slab's end (the task
 * name): an object stays one cache line, and side bytes nobody writes are
 * never touched, so they cost no memory. Only what is carved is touched:
 * a slab is address space until then. Freed objects go on a free list and
 * are reused; memory goes back only when the pool is destroyed.
 * Type-stability is what lets a stale task handle be checked safely: the
 * memory behind it stays a TCB for the pool's whole life. The free list is
 * linked through the object's first pointer-sized word.
 *
 * No huge pages: on VMs whose host takes freed guest memory back (virtio
 * free page reporting, common in clouds), a fresh 2 MiB page costs the
 * host a fault of its own, and a million new TCBs took 2-3x longer to
 * touch with MADV_HUGEPAGE than without (docs/design.md).
 *
 * Walkers: every object is given to `init` before it counts as carved, so
 * weft__objpool_walk() — which any thread may run while the owner
 * allocates — only ever sees initialised objects. A slab's `carved` count
 * is stored with release after the object's init and loaded with acquire
 * by walkers; the slab list is prepend-only, `slabs` stored with release
 * after the slab is set up and loaded with acquire; a slab's `next` and
 * layout never change after that.
 */
#ifndef WEFT_ALLOC_OBJPOOL_H
#define WEFT_ALLOC_OBJPOOL_H

#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define WEFT__OBJPOOL_SLAB ((size_t)2 << 20)   /* bytes per slab, and its alignment */

struct weft__objpool_slab {
    struct weft__objpool_slab *next;
    _Atomic size_t carved;   /* objects initialised so far: walkable */
    size_t obj_size;
    size_t side_size;
    char *side;              /* object i's side bytes: side + i * side_size */
    _Alignas(64) char data[];
};

struct weft__objpool {
    void *free;                        /* recycled objects */
    struct weft__objpool_slab *cur;    /* newest slab, where objects are carved */
    size_t cap;                        /* objects per slab */
    struct weft__objpool_slab *_Atomic slabs;
    size_t obj_size;                   /* multiple of 64 */
    size_t side_size;
    void (*init)(void *obj);           /* run on each object when carved */
};

void weft__objpool_init(struct weft__objpool *p, size_t obj_size, size_t side_size,
                        void (*init)(void *obj));
/* Frees every slab (objects still in use included). */
void weft__objpool_destroy(struct weft__objpool *p);

/* An object (initialised by `init` once, then as the last user left it);
 * NULL when memory is exhausted. Owner only. */
void *weft__objpool_get(struct weft__objpool *p);
void weft__objpool_put(struct weft__objpool *p, void *obj);

/* The side bytes of @obj, an object of some pool. Any thread. */
static inline void *weft__objpool_side(const void *obj)
{
    struct weft__objpool_slab *s =
        (struct weft__objpool_slab *)((uintptr_t)obj & ~(uintptr_t)(WEFT__OBJPOOL_SLAB - 1));
    return s->side + (size_t)((const char *)obj - s->data) / s->obj_size * s->side_size;
}

/* Call @fn on every object carved so far, in use or not. Any thread, also
 * while the owner allocates (objects carved meanwhile may be missed). */
void weft__objpool_walk(struct weft__objpool *p, void (*fn)(void *obj, void *arg),
                        void *arg);

#endif
