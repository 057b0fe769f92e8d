/*
 * context_x86_64.h — weft__ctx_make for x86-64 System V: the first frame
 * that context_x86_64.S's weft__ctx_switch pops (see context.h).
 */
#ifndef WEFT_SCHED_CONTEXT_X86_64_H
#define WEFT_SCHED_CONTEXT_X86_64_H

#include <stddef.h>

static inline void weft__ctx_make(struct weft__ctx *ctx, void *base, size_t size,
                                  void (*entry)(void *, void *), void *arg, void *arg2)
{
    /* Frame popped by the first weft__ctx_switch into @ctx, low to high:
     * [mxcsr|fpucw] r15 r14 r13 r12 rbx rbp ret=trampoline. The return
     * address sits just below the aligned top, so the trampoline starts with
     * rsp 16-byte aligned and its call gives entry(arg) the ABI's alignment
     * (r12 = entry, r13 = arg, rbx = arg2). */
    unsigned long top = ((unsigned long)base + size) & ~15ul;
    void **sp = (void **)top;
    *--sp = (void *)weft__ctx_trampoline;       /* return address */
    *--sp = 0;                                  /* rbp */
    *--sp = arg2;                               /* rbx */
    *--sp = (void *)entry;                      /* r12 */
    *--sp = arg;                                /* r13 */
    *--sp = 0;                                  /* r14 */
    *--sp = 0;                                  /* r15 */
    /* MXCSR default 0x1f80 (all exceptions masked, round to nearest) in the
     * low 32 bits, x87 control word default 0x037f in the next 16. */
    *--sp = (void *)(0x1f80ul | (0x037ful << 32));
    ctx->sp = sp;
}

#endif
