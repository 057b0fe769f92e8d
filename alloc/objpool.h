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
 */
#ifndef WEFT_ALLOC_OBJPOOL_H
#define WEFT_ALLOC_OBJPOOL_H

#include <stdbool.h>
#include <stddef.h>

struct weft__objpool_slab;

struct weft__objpool {
    void *free;                        /* recycled objects */
    char *bump, *end;                  /* never-used part of the newest slab */
    struct weft__objpool_slab *slabs;
    size_t obj_size;                   /* multiple of 64 */
    size_t next_bytes;                 /* size of the next slab */
};

void weft__objpool_init(struct weft__objpool *p, size_t obj_size);
/* Frees every slab (objects still in use included). */
void weft__objpool_destroy(struct weft__objpool *p);

/* An object; *fresh says whether it was never handed out before (its
 * memory is then uninitialised). NULL when memory is exhausted. */
void *weft__objpool_get(struct weft__objpool *p, bool *fresh);
void weft__objpool_put(struct weft__objpool *p, void *obj);

#endif
