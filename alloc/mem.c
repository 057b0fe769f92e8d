/* mem.c — see mem.h. */
#include "alloc/mem.h"

#include <stdlib.h>
#include <string.h>

#ifdef WEFT_JEMALLOC
/* Debian's jemalloc exports its non-standard API without a prefix. */
#include <jemalloc/jemalloc.h>
#define WEFT_MALLOCX_ALIGN64 MALLOCX_LG_ALIGN(6)
#define WEFT_MALLOCX_ZERO    MALLOCX_ZERO

void *weft__mem_alloc(size_t size)
{
    return mallocx(size ? size : 1, WEFT_MALLOCX_ALIGN64 | WEFT_MALLOCX_ZERO);
}

void *weft__mem_alloc_aligned(size_t size, size_t align)
{
    return mallocx(size ? size : 1, MALLOCX_ALIGN(align));
}

void weft__mem_free_aligned(void *p)
{
    if (p)
        dallocx(p, 0);
}

void weft__mem_free(void *p, size_t size)
{
    /* sdallocx must be given the same alignment flag as mallocx was. */
    if (p)
        sdallocx(p, size ? size : 1, WEFT_MALLOCX_ALIGN64);
}
#else
void *weft__mem_alloc(size_t size)
{
    void *p = NULL;
    size = (size + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, size ? size : 64) != 0)
        return NULL;
    memset(p, 0, size);
    return p;
}

void *weft__mem_alloc_aligned(size_t size, size_t align)
{
    void *p = NULL;
    if (posix_memalign(&p, align, size ? size : 64) != 0)
        return NULL;
    return p;
}

void weft__mem_free_aligned(void *p)
{
    free(p);
}

void weft__mem_free(void *p, size_t size)
{
    (void)size;
    free(p);
}
#endif
