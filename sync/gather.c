/*
 * gather.c — waiting on many futures: weft_wait (all / first),
 * weft_gather, weft_as_completed, and weft_wait_for.
 *
 * Waiting for the first of many links one queue entry per future, all
 * sharing one waiter (as select does): whichever future completes first
 * claims it.
 *
 * Which one completed first: every completion takes a global sequence
 * number inside its locked transition (future.h). A scan that finds some
 * futures done cannot just take the smallest number among them: a future
 * scanned a moment earlier may have looked PENDING and completed since
 * with a smaller number (another thread between taking its number and
 * publishing its state, or simply completed after our load but before the
 * one we found). So first_done() then looks at each future that was still
 * PENDING under that future's lock: one still PENDING there takes its
 * number after we unlock — after the number of the done one we found,
 * which happens-before our look — so it completes later; one done by then
 * is compared by number. The answer is exactly the earliest completion.
 * That costs one uncontended lock per pending future, only when something
 * is done; weft_gather pays it only for a failure (values need no order).
 */
#include "sync/future.h"
#include "alloc/mem.h"

#include <errno.h>
#include <string.h>

#define WEFT__STACK_NODES 8

/*
 * The index of the future of @fs not marked in @skip that completed first,
 * or -1 if none is done yet; *@any tells whether any is unskipped. With
 * @exact false, only the first completed of those this scan saw done
 * (cheaper; used where the order does not matter).
 */
static int first_done(weft_future *const *fs, size_t n, const uint8_t *skip, bool exact,
                      bool *any)
{
    int best = -1;
    uint64_t best_seq = UINT64_MAX;
    *any = false;
    for (size_t i = 0; i < n; i++) {
        if (skip && skip[i])
            continue;
        *any = true;
        /* acquire (in state_get): pairs with complete()'s release, so
         * `seq` is readable without the lock. */
        if (weft_future_state_get(fs[i]) != WEFT_FUTURE_PENDING && fs[i]->seq < best_seq) {
            best = (int)i;
            best_seq = fs[i]->seq;
        }
    }
    if (best < 0 || !exact)
        return best;
    for (size_t i = 0; i < n; i++) {
        if ((skip && skip[i]) || (int)i == best)
            continue;
        weft_future *f = fs[i];
        if (weft_future_state_get(f) == WEFT_FUTURE_PENDING) {
            weft__spin_lock(&f->lock);
            /* relaxed: under f->lock, which the transition holds. Still
             * PENDING: it will take a larger number than best_seq. */
            bool done = atomic_load_explicit(&f->state, memory_order_relaxed) !=
                        WEFT_FUTURE_PENDING;
            uint64_t seq = f->seq;
            weft__spin_unlock(&f->lock);
            if (!done)
                continue;
            if (seq < best_seq) {
                best = (int)i;
                best_seq = seq;
            }
        } else if (f->seq < best_seq) {
            best = (int)i;
            best_seq = f->seq;
        }
    }
    return best;
}

/*
 * Wait until one future of @fs not marked in @skip is done; return its
 * index (the one that completed first, or with @exact false, the first
 * completed among those one scan sees done), -EPIPE if every one is
 * skipped, -ETIMEDOUT, -ECANCELED, -ENOMEM (no memory for the entries).
 */
static int wait_first(weft_future *const *fs, size_t n, const uint8_t *skip,
                      bool exact, int64_t deadline)
{
    if (weft__cancel_point(deadline))      /* even if one is done (waitq.h) */
        return -ECANCELED;
    struct weft__wnode stack_nodes[WEFT__STACK_NODES], *nodes = NULL;
    for (;;) {
        bool any;
        int best = first_done(fs, n, skip, exact, &any);
        if (best >= 0 || !any) {
            if (nodes && nodes != stack_nodes)
                weft__mem_free(nodes, n * sizeof(*nodes));
            return best >= 0 ? best : -EPIPE;
        }
        if (deadline != WEFT_NEVER && deadline <= weft_now()) {
            if (nodes && nodes != stack_nodes)
                weft__mem_free(nodes, n * sizeof(*nodes));
            return -ETIMEDOUT;
        }
        if (!nodes) {
            nodes = n <= WEFT__STACK_NODES ? stack_nodes : weft__mem_alloc(n * sizeof(*nodes));
            if (!nodes)
                return -ENOMEM;
        }
        struct weft__waiter w;
        int fired = -1;
        weft__waiter_init(&w);
        size_t linked = 0;
        bool done_early = false;
        for (; linked < n; linked++) {
            weft__wnode_init(&nodes[linked], &w, NULL, (int)linked, &fired);
            if (skip && skip[linked])
                continue;
            if (!weft__future_link(fs[linked], &nodes[linked])) {
                done_early = true;          /* completed meanwhile: rescan */
                linked++;
                break;
            }
        }
        int rc = 0;
        if (!done_early)
            rc = weft__waiter_wait(&w, deadline);
        else if (!weft__waiter_claim(&w))   /* a waker may hold it: let it */
            rc = weft__waiter_wait_flags(&w, WEFT_NEVER, WEFT__WAIT_NOCANCEL); /* finish */
        for (size_t i = 0; i < linked; i++)
            if (!(skip && skip[i]))
                weft__future_unlink(fs[i], &nodes[i]);
        if (weft__wait_aborted(rc) && !done_early) {
            if (nodes != stack_nodes)
                weft__mem_free(nodes, n * sizeof(*nodes));
            return rc;
        }
    }
}

int weft_wait(weft_future *const *fs, size_t n, int mode, int64_t deadline)
{
    if ((!fs && n) || (mode != WEFT_WAIT_ALL && mode != WEFT_WAIT_FIRST))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    if (mode == WEFT_WAIT_FIRST)
        return n ? wait_first(fs, n, NULL, true, deadline) : -EINVAL;
    /* The cancellation point, once: each await below checks again, and
     * its -ECANCELED then reads as a done future's own outcome (skipped)
     * or, for a pending one, as ours. */
    if (weft__cancel_point(deadline))
        return -ECANCELED;
    for (size_t i = 0; i < n; i++) {
        int rc = weft__future_await(fs[i], NULL, deadline, 0);
        if (weft__wait_aborted(rc)) {
            /* a future's own outcome may read the same: ask its state */
            if (weft_future_state_get(fs[i]) == WEFT_FUTURE_PENDING)
                return rc;
        }
    }
    return 0;
}

int weft_gather(weft_future *const *fs, size_t n, void **values, int64_t deadline)
{
    if ((!fs && n))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    uint8_t stack_skip[64], *skip = n <= 64 ? stack_skip : weft__mem_alloc(n);
    if (!skip)
        return -ENOMEM;
    memset(skip, 0, n);
    int rc = 0;
    for (size_t left = n; left > 0; left--) {
        int i = wait_first(fs, n, skip, false, deadline);
        if (i < 0) {
            rc = i;
            break;
        }
        if (weft__future_outcome(fs[i], NULL) != 0) {
            /* A failure: is it the first completion after all? (An earlier
             * one that is a value is taken now and the failure next.) */
            bool any;
            i = first_done(fs, n, skip, true, &any);
        }
        skip[i] = 1;
        void *v = NULL;
        rc = weft__future_outcome(fs[i], &v);
        if (rc)
            break;                    /* the first failure, in completion order */
        if (values)
            values[i] = v;
    }
    if (skip != stack_skip)
        weft__mem_free(skip, n);
    return rc;
}

struct weft_as_completed {
    size_t n;
    weft_future **fs;
    uint8_t *skip;
};

int weft_as_completed_new(weft_as_completed **out, weft_future *const *fs, size_t n)
{
    if (!out || (!fs && n))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    weft_as_completed *it = weft__mem_alloc(sizeof(*it));
    if (!it)
        return -ENOMEM;
    it->n = n;
    it->fs = weft__mem_alloc(n * sizeof(*it->fs) + 1);
    it->skip = weft__mem_alloc(n + 1);
    if (!it->fs || !it->skip) {
        weft_as_completed_free(it);
        return -ENOMEM;
    }
    memcpy(it->fs, fs, n * sizeof(*fs));
    *out = it;
    return 0;
}

int weft_as_completed_next(weft_as_completed *it, int64_t deadline)
{
    if (!it)
        return -EINVAL;
    int i = wait_first(it->fs, it->n, it->skip, true, deadline);
    if (i >= 0)
        it->skip[i] = 1;
    return i;
}

void weft_as_completed_free(weft_as_completed *it)
{
    if (!it)
        return;
    weft__mem_free(it->fs, it->n * sizeof(*it->fs) + 1);
    weft__mem_free(it->skip, it->n + 1);
    weft__mem_free(it, sizeof(*it));
}

int weft_wait_for(weft_task_fn fn, void *arg, void **result, int64_t deadline)
{
    if (!fn)
        return -EINVAL;
    if (weft__cancel_point(deadline))      /* nothing spawned (waitq.h) */
        return -ECANCELED;
    weft_future *f;
    int rc = weft_future_spawn(&f, fn, arg);
    if (rc)
        return rc;
    void *v = NULL;
    rc = weft_future_await(f, &v, deadline);
    if (rc == 0) {
        if (result)
            *result = v;
    } else {
        /* Timed out or cancelled: cancel the operation and wait until it
         * has acknowledged (returned), whatever happens to us meanwhile. */
        weft__spin_lock(&f->lock);
        weft_task t = f->task;
        weft__spin_unlock(&f->lock);
        weft_task_cancel(t);
        weft__future_await(f, NULL, WEFT_NEVER, WEFT__WAIT_NOCANCEL);
    }
    weft_future_release(f);
    return rc;
}
