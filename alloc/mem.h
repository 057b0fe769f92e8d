/*
 * mem.h — where the runtime's own objects come from.
 *
 * jemalloc (Debian's libjemalloc2) in normal builds, through its sized
 * mallocx/sdallocx calls; libc malloc in sanitizer builds, where ASan or
 * TSan must own the allocator. Everything the runtime allocates goes
 * through these two calls. Any thread.
 */
#ifndef WEFT_ALLOC_MEM_H
#define WEFT_ALLOC_MEM_H

#include <stddef.h>

/* Zeroed memory of @size bytes, aligned to 64 (a cache line); NULL if none. */
void *weft__mem_alloc(size_t size);
/* Uninitialised memory of @size bytes aligned to @align (a power of two,
 * at least 64); free it with weft__mem_free_aligned(). NULL if none. */
void *weft__mem_alloc_aligned(size_t size, size_t align);
void weft__mem_free_aligned(void *p);
/* Free what weft__mem_alloc(@size) returned; @p may be NULL. */
void weft__mem_free(void *p, size_t size);

#endif
