/*
 * blocking.h — test hooks of the blocking pool (blocking.c).
 */
#ifndef WEFT_SYNC_BLOCKING_H
#define WEFT_SYNC_BLOCKING_H

#include <stdint.h>

/* How long an idle pool thread waits for work before it exits (default
 * 10 s); tests shorten it. Any thread. */
void weft__blocking_set_idle_ns(int64_t ns);

#endif
