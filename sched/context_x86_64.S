/*
 * context_x86_64.S — context switch for x86-64 System V.
 *
 * void weft__ctx_switch(struct weft__ctx *from  (%rdi),
 *                       struct weft__ctx *to    (%rsi));
 *
 * Saves what the ABI says a callee must preserve: rbp, rbx, r12-r15, the
 * stack pointer, the MXCSR control/status bits and the x87 control word.
 * rax and rdx are caller-saved scratch, free to use here.
 * Everything else is caller-saved, so the C compiler already treats it as
 * clobbered by this call. The frame layout matches weft__ctx_make() in
 * context.h.
 */
#if defined(__x86_64__)
    .text
    .globl  weft__ctx_switch
    .type   weft__ctx_switch, @function
    .p2align 4
weft__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movl    (%rsp), %eax        /* our control words, to compare below */
    movzwl  4(%rsp), %edx
    movq    %rsp, (%rdi)        /* from->sp */
    movq    (%rsi), %rsp        /* to->sp */
    /* Restore the target's control words; ldmxcsr and fldcw cost several
     * cycles each, so skip them when the value is already in place (the
     * common case: tasks rarely change rounding or exception masks). */
    cmpl    (%rsp), %eax
    je      1f
    ldmxcsr (%rsp)
1:  cmpw    4(%rsp), %dx
    je      2f
    fldcw   4(%rsp)
2:  addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
    .cfi_endproc
    .size   weft__ctx_switch, .-weft__ctx_switch

/* First code run on a fresh stack: entry(arg) with r12 = entry, r13 = arg.
 * Marked as the outermost frame so debuggers stop unwinding here. */
    .globl  weft__ctx_trampoline
    .type   weft__ctx_trampoline, @function
    .p2align 4
weft__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r13, %rdi
    callq   *%r12
    ud2                         /* entry must never return */
    .cfi_endproc
    .size   weft__ctx_trampoline, .-weft__ctx_trampoline
#else
#error "weft: no context switch for this architecture yet (add sched/context_<arch>.S)"
#endif
    .section .note.GNU-stack,"",@progbits
