/*
 * overflow.h — reporting task stack overflows (see overflow.c).
 */
#ifndef WEFT_SCHED_OVERFLOW_H
#define WEFT_SCHED_OVERFLOW_H

/* Process-wide SIGSEGV/SIGBUS handler, for the duration of weft_run.
 * Called by weft_run's thread. */
void weft__overflow_install(void);
void weft__overflow_uninstall(void);

/* The calling worker thread's alternate signal stack: returns it (NULL
 * when none could be set up, or in sanitizer builds) for _end. */
void *weft__overflow_thread_begin(void);
void weft__overflow_thread_end(void *altstack);

#endif
