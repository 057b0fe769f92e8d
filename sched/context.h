/*
 * context.h — the machine-level context switch between task stacks.
 *
 * A context is just a saved stack pointer: weft__ctx_switch() pushes the
 * callee-saved registers (and the MXCSR / x87 control words, which the
 * System V ABI also makes callee-saved) on the current stack, stores the
 * stack pointer in @from, loads @to's and pops the same frame back. No
 * system call, no signal mask (that is what makes ucontext slow).
 *
 * The implementation is per architecture: context_x86_64.S. Another
 * architecture adds context_<arch>.S with the same two symbols.
 */
#ifndef WEFT_SCHED_CONTEXT_H
#define WEFT_SCHED_CONTEXT_H

#include <stddef.h>

struct weft__ctx {
    void *sp;
};

/* Save the current context in @from and resume @to. Returns when some other
 * context switches back to @from. Called by the thread that runs @from. */
void weft__ctx_switch(struct weft__ctx *from, struct weft__ctx *to);

/* The entry trampoline (assembly): calls entry(arg) from a fresh stack. */
void weft__ctx_trampoline(void);

/*
 * Prepare @ctx so that the first switch to it calls @entry(@arg) on the
 * stack [@base, @base + @size). @entry must never return: a task leaves its
 * stack by switching away for the last time.
 */
static inline void weft__ctx_make(struct weft__ctx *ctx, void *base, size_t size,
                                  void (*entry)(void *), void *arg)
{
    /* Frame popped by the first weft__ctx_switch into @ctx, low to high:
     * [mxcsr|fpucw] r15 r14 r13 r12 rbx rbp ret=trampoline. The return
     * address sits just below the aligned top, so the trampoline starts with
     * rsp 16-byte aligned and its call gives entry(arg) the ABI's alignment
     * (r12 = entry, r13 = arg). */
    unsigned long top = ((unsigned long)base + size) & ~15ul;
    void **sp = (void **)top;
    *--sp = (void *)weft__ctx_trampoline;       /* return address */
    *--sp = 0;                                  /* rbp */
    *--sp = 0;                                  /* rbx */
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
