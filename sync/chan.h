/*
 * chan.h — the channel's layout and the locked steps that channel.c and
 * select.c share.
 *
 * Invariants (all under `lock`):
 *  - A receiver is queued in `recvq` only while nothing is buffered and no
 *    sender could be claimed; a sender is queued in `sendq` only while the
 *    buffer is full (or the channel is a rendezvous one) and no receiver
 *    could be claimed. So when items are buffered, `recvq` holds only stale
 *    entries (waits already ended another way), and vice versa.
 *  - An item changes hands only by a successful claim of the other side's
 *    waiter, with the copy done under the lock: a receiver that timed out or
 *    was cancelled at that instant lost the claim, and the item goes to the
 *    next receiver or into the buffer. Nothing is lost or delivered twice.
 */
#ifndef WEFT_SYNC_CHAN_H
#define WEFT_SYNC_CHAN_H

#include <stdbool.h>
#include <stddef.h>

#include "weft.h"
#include "sched/spinlock.h"
#include "sync/waitq.h"

enum weft__chan_kind { WEFT__CHAN_UNBOUNDED, WEFT__CHAN_BOUNDED, WEFT__CHAN_RENDEZVOUS };

struct weft_chan {
    struct weft__spinlock lock;
    enum weft__chan_kind kind;
    bool closed;
    size_t esize;
    size_t cap;          /* bounded: capacity; else 0 */
    size_t slots;        /* ring slots allocated (unbounded grows it) */
    size_t head, count;  /* ring: items at head .. head+count-1 (mod slots) */
    char *buf;
    struct weft__waitq recvq, sendq;  /* entries: elem = where to copy to/from */
};

/* One step of a send under the lock: 1 done (*wake, if set, is a claimed
 * receiver to signal with 0 after unlocking), 0 would block, -EPIPE closed,
 * -ENOMEM (an unbounded channel could not grow). */
int weft__chan_send_locked(struct weft_chan *c, const void *elem, struct weft__wnode **wake);
/* One step of a receive: 1 done (*wake as above: a claimed sender), 0 would
 * block, -EPIPE closed and drained. */
int weft__chan_recv_locked(struct weft_chan *c, void *out, struct weft__wnode **wake);

#endif
