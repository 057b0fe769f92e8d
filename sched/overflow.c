/*
 * overflow.c — naming a task whose stack overflowed.
 *
 * Every task stack has a PROT_NONE guard page below it (alloc/stack.h), so
 * running off the end faults. The fault is delivered on the faulting stack,
 * which is exhausted, so each worker gives its thread an alternate signal
 * stack (sigaltstack) and weft_run installs a SIGSEGV/SIGBUS handler with
 * SA_ONSTACK for its duration. If the fault address lies in the guard page
 * of the task running on this thread, the handler prints which task
 * overflowed and how big its stack was, and aborts. Any other fault is
 * passed on to the handler that was installed before weft_run (or the
 * default action), as if weft had not been there.
 *
 * Sanitizer builds leave this to ASan/TSan, which install their own.
 */
#define _GNU_SOURCE
#include "sched/overflow.h"
#include "sched/worker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if !defined(WEFT_ASAN) && !defined(WEFT_TSAN)
#define WEFT__OVERFLOW_HANDLER 1
#endif

#define ALTSTACK_SIZE (64 * 1024)

#ifdef WEFT__OVERFLOW_HANDLER
static struct sigaction old_segv, old_bus;

static void write_str(const char *s)
{
    ssize_t unused = write(STDERR_FILENO, s, strlen(s));
    (void)unused;
}

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
    struct weft__worker *w = weft__worker_current();
    struct weft__task *t = w ? w->current : NULL;
    if (t && weft__stack_in_guard(weft__task_stack(t), si->si_addr)) {
        /* async-signal-safe formatting only */
        char num[32];
        char *p = num + sizeof(num);
        size_t kib = weft__task_stack(t)->size / 1024;
        *--p = 0;
        do
            *--p = (char)('0' + kib % 10);
        while (kib /= 10);
        write_str("weft: stack overflow in task '");
        const char *name = weft__task_name(t);
        write_str(name[0] ? name : "(unnamed)");
        write_str("' (stack ");
        write_str(p);
        write_str(" KiB; raise weft_task_opts.stack_size or weft_config.stack_size)\n");
        signal(SIGABRT, SIG_DFL);
        abort();
    }
    /* Not ours: hand it to whoever was there before. */
    struct sigaction *old = sig == SIGBUS ? &old_bus : &old_segv;
    if (old->sa_flags & SA_SIGINFO) {
        old->sa_sigaction(sig, si, uctx);
    } else if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
        /* Restore the default and return: the fault repeats and kills. */
        signal(sig, SIG_DFL);
    } else {
        old->sa_handler(sig);
    }
}
#endif

void weft__overflow_install(void)
{
#ifdef WEFT__OVERFLOW_HANDLER
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
#endif
}

void weft__overflow_uninstall(void)
{
#ifdef WEFT__OVERFLOW_HANDLER
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
#endif
}

void *weft__overflow_thread_begin(void)
{
#ifdef WEFT__OVERFLOW_HANDLER
    void *mem = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    stack_t ss = { .ss_sp = mem, .ss_size = ALTSTACK_SIZE, .ss_flags = 0 };
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, ALTSTACK_SIZE);
        return NULL;
    }
    return mem;
#else
    return NULL;
#endif
}

void weft__overflow_thread_end(void *altstack)
{
    if (!altstack)
        return;
    stack_t ss = { .ss_flags = SS_DISABLE };
    sigaltstack(&ss, NULL);
    munmap(altstack, ALTSTACK_SIZE);
}
