/*
 * context.h — the machine-level context switch between task stacks.
 *
 * A context is just a saved stack pointer: weft__ctx_switch() pushes the
 * callee-saved registers (and the MXCSR / x87 control words, which the
 * System V ABI also makes callee-saved) on the current stack, stores the
 * stack pointer in @from, loads @to's and pops the same frame back. No
 * system call, no signal mask (that is what makes ucontext slow).
 *
 * The implementation is per architecture: context_x86_64.S (the switch and
 * the trampoline) and context_x86_64.h (weft__ctx_make, the first frame).
 * Another architecture adds context_<arch>.{S,h} with the same three names.
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

/* The entry trampoline (assembly): calls entry(arg, arg2) from a fresh
 * stack. */
void weft__ctx_trampoline(void);

/*
 * weft__ctx_make(ctx, base, size, entry, arg, arg2): prepare @ctx so that
 * the first switch to it calls @entry(@arg, @arg2) on the stack [@base,
 * @base + @size). @entry must never return: a task leaves its stack by switching
 * away for the last time. It lays out the frame that architecture's
 * weft__ctx_switch pops, so it lives beside it.
 */
#if defined(__x86_64__)
#include "sched/context_x86_64.h"
#else
#error "weft: no context switch for this architecture yet (add sched/context_<arch>.{h,S})"
#endif

#endif
