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
 * context_x86_64.h.
 */
#if defined(__x86_64__)
    .text
    .globl  weft__ctx_switch
    .type   weft__ctx_switch, @function
    .p2align 4
weft__ctx_switch:
    .cfi_startproc
    /* The CFI notes describe the frame at each instruction, so debuggers
     * and profilers unwind through a switch. After the stack pointer
     * changes, the frame is the target's, of the same shape. */
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    subq    $8, %rsp
    .cfi_adjust_cfa_offset 8
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    movl    (%rsp), %eax        /* our control words, to compare below */
    movzwl  4(%rsp), %edx
    movq    %rsp, (%rdi)        /* from->sp */
    movq    (%rsi), %rsp        /* to->sp */
    /* Restore the target's control words; ldmxcsr and fldcw cost several
     * cycles each, so skip them when the value is already in place (the
     * common case: tasks rarely change rounding or exception masks). Only
     * MXCSR's control bits (6-15) count: its status flags (0-5) are sticky,
     * set by any inexact operation, and caller-saved in the ABI. */
    xorl    (%rsp), %eax
    testl   $0xffc0, %eax
    jz      1f
    ldmxcsr (%rsp)
1:  cmpw    4(%rsp), %dx
    je      2f
    fldcw   4(%rsp)
2:  addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    ret
    .cfi_endproc
    .size   weft__ctx_switch, .-weft__ctx_switch

/* First code run on a fresh stack: entry(arg, arg2) with r12 = entry,
 * r13 = arg, rbx = arg2. Marked as the outermost frame so debuggers stop
 * unwinding here. */
    .globl  weft__ctx_trampoline
    .type   weft__ctx_trampoline, @function
    .p2align 4
weft__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r13, %rdi
    movq    %rbx, %rsi
    callq   *%r12
    ud2                         /* entry must never return */
    .cfi_endproc
    .size   weft__ctx_trampoline, .-weft__ctx_trampoline
#else
#error "weft: no context switch for this architecture yet (add sched/context_<arch>.S)"
#endif
    .section .note.GNU-stack,"",@progbits
