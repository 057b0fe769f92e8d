/*
 * blocking.h — test hooks of the blocking pool (blocking.c).
 */
#ifndef WEFT_SYNC_BLOCKING_H
#define WEFT_SYNC_BLOCKING_H

#include <stdint.h>

/* How long an idle pool thread waits for work before it exits (default
 * 10 s); tests shorten it. Any thread. */
void weft__blocking_set_idle_ns(int64_t ns);

/* Pool threads waiting for work now. A thread that just finished a job
 * counts only once it is back in its wait (it completes the job's future
 * first), so tests that count on idle threads being reused wait for this
 * to reach weft_blocking_threads(). Any thread. */
unsigned weft__blocking_idle(void);

/* Make the next @n thread starts of the pool fail as if pthread_create had
 * (tests of the -EAGAIN paths; a root process cannot be made to hit
 * RLIMIT_NPROC). Any thread. */
void weft__blocking_fail_starts(unsigned n);

#endif
