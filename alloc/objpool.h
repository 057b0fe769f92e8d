/*
 * objpool.h — a pool of fixed-size, type-stable objects (task control
 * blocks), owned by one thread or guarded by its owner's lock.
 *
 * Objects are carved from slabs that grow geometrically (64 objects first,
 * up to 2 MiB slabs, which are 2 MiB-aligned and marked MADV_HUGEPAGE: a
 * million TCBs then cost ~100 page faults, not ~50,000). Freed objects go
 * on a free list and are reused; memory goes back only when the pool is
 * destroyed. Type-stability is what lets a stale task handle be checked
 * safely: the memory behind it stays a TCB for the pool's whole life.
 * The free list is linked through the object's first pointer-sized word.
 *
 * Every object of a new slab is given to `init` before the slab is
 * published, so weft__objpool_walk() — which any thread may run while the
 * owner allocates — only ever sees initialised objects. The slab list is
 * prepend-only: `slabs` is stored with release (after the slab and its
 * objects are initialised) and loaded with acquire by walkers; a slab's
 * `next` and size never change after that.
 */
#ifndef WEFT_ALLOC_OBJPOOL_H
#define WEFT_ALLOC_OBJPOOL_H

#include <stdbool.h>
#include <stdatomic.h>
#include <stddef.h>

struct weft__objpool_slab;

struct weft__objpool {
    void *free;                        /* recycled objects */
    char *bump, *end;                  /* never-used part of the newest slab */
    struct weft__objpool_slab *_Atomic slabs;
    size_t obj_size;                   /* multiple of 64 */
    size_t next_bytes;                 /* size of the next slab */
    void (*init)(void *obj);           /* run on each object of a new slab */
};

void weft__objpool_init(struct weft__objpool *p, size_t obj_size, void (*init)(void *obj));
/* Frees every slab (objects still in use included). */
void weft__objpool_destroy(struct weft__objpool *p);

/* An object (initialised by `init` once, then as the last user left it);
 * NULL when memory is exhausted. Owner only. */
void *weft__objpool_get(struct weft__objpool *p);
void weft__objpool_put(struct weft__objpool *p, void *obj);

/* Call @fn on every object of every slab, in use or not. Any thread, also
 * while the owner allocates (objects carved meanwhile may be missed). */
void weft__objpool_walk(struct weft__objpool *p, void (*fn)(void *obj, void *arg),
                        void *arg);

#endif
