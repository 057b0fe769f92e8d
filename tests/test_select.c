/*
 * test_select.c — select over channel operations: ready cases, fairness
 * among ready cases, deadlines, disabled (NULL) cases, closed channels,
 * send cases, every error, a stress of selecting producers and consumers
 * with deadlines and cancellations that counts every item, a cancelled
 * task's select (a cancellation point even with a case ready), and a
 * foreign thread's select woken by a task.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "weft.h"
#include "tests/helpers.h"

static void run_on(unsigned workers, void *(*fn)(void *), void *arg)
{
    weft_config cfg = { .workers = workers };
    cr_assert_eq(weft_run(&cfg, fn, arg, NULL), 0);
}

Test(select, errors_and_timeouts, .timeout = 30)
{
    weft_chan *a;
    int v = 0;
    cr_assert_eq(weft_chan_bounded(&a, sizeof(int), 1), 0);
    weft_select_case bad[] = { { a, 7, &v, 0 } };
    cr_assert_eq(weft_select(bad, 1, 0), -EINVAL);
    cr_assert_eq(weft_select(NULL, 1, 0), -EINVAL);
    weft_select_case big[WEFT_SELECT_MAX + 1] = { { 0 } };
    cr_assert_eq(weft_select(big, WEFT_SELECT_MAX + 1, 0), -EINVAL);
    weft_select_case noelem[] = { { a, WEFT_SELECT_RECV, NULL, 0 } };
    cr_assert_eq(weft_select(noelem, 1, 0), -EINVAL);
    /* nothing ready: a past deadline polls, a near one waits */
    weft_select_case rc1[] = { { a, WEFT_SELECT_RECV, &v, 0 }, { NULL, WEFT_SELECT_SEND, &v, 0 } };
    cr_assert_eq(weft_select(rc1, 2, 0), -ETIMEDOUT);
    int64_t t0 = weft_now();
    cr_assert_eq(weft_select(rc1, 2, t0 + 2000000), -ETIMEDOUT);
    cr_assert_geq(weft_now() - t0, 2000000);
    cr_assert_eq(weft_select(NULL, 0, 0), -ETIMEDOUT);   /* empty select */
    /* a send case completes, then a recv case */
    int x = 11, y = 0;
    weft_select_case s[] = { { a, WEFT_SELECT_SEND, &x, -1 } };
    cr_assert_eq(weft_select(s, 1, 0), 0);
    cr_assert_eq(s[0].result, 0);
    cr_assert_eq(weft_select(s, 1, 0), -ETIMEDOUT);      /* full now */
    weft_select_case r[] = { { NULL, WEFT_SELECT_RECV, &y, 0 }, { a, WEFT_SELECT_RECV, &y, -1 } };
    cr_assert_eq(weft_select(r, 2, 0), 1);
    cr_assert_eq(r[1].result, 0);
    cr_assert_eq(y, 11);
    /* closed: recv and send cases are ready with -EPIPE */
    cr_assert_eq(weft_chan_close(a), 0);
    cr_assert_eq(weft_select(r, 2, WEFT_NEVER), 1);
    cr_assert_eq(r[1].result, -EPIPE);
    cr_assert_eq(weft_select(s, 1, WEFT_NEVER), 0);
    cr_assert_eq(s[0].result, -EPIPE);
    weft_chan_free(a);
}

/* ---- fairness among ready cases ----------------------------------------- */

Test(select, fair_among_ready_cases, .timeout = 30)
{
    weft_chan *c[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_chan_unbounded(&c[i], sizeof(int)), 0);
    int counts[3] = { 0 }, v = 0;
    enum { N = 3000 };
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < N; k++)
            cr_assert_eq(weft_chan_send(c[i], &k, 0), 0);
    weft_select_case cs[3];
    for (int i = 0; i < 3; i++)
        cs[i] = (weft_select_case){ c[i], WEFT_SELECT_RECV, &v, 0 };
    for (int k = 0; k < N; k++) {
        int i = weft_select(cs, 3, 0);
        cr_assert(i >= 0 && i < 3);
        counts[i]++;
    }
    for (int i = 0; i < 3; i++) {
        cr_assert_gt(counts[i], N / 3 - N / 10, "case %d chosen %d of %d", i, counts[i], N);
        weft_chan_free(c[i]);
    }
}

/* ---- a select that waits is woken by the channel that becomes ready ---- */

struct wake { weft_chan *c[4]; };

static void *late_sender(void *arg)
{
    weft_chan *c = arg;
    int v = 77;
    weft_yield();
    cr_assert_eq(weft_chan_send(c, &v, WEFT_NEVER), 0);
    return NULL;
}

static void *wake_main(void *arg)
{
    for (int round = 0; round < 200; round++) {
        weft_chan *c[4];
        for (int i = 0; i < 4; i++)
            cr_assert_eq(weft_chan_rendezvous(&c[i], sizeof(int)), 0);
        int v[4] = { 0 };
        weft_select_case cs[4];
        for (int i = 0; i < 4; i++)
            cs[i] = (weft_select_case){ c[i], WEFT_SELECT_RECV, &v[i], -1 };
        weft_task t;
        int which = round % 4;
        cr_assert_eq(weft_task_spawn(&t, late_sender, c[which], NULL), 0);
        cr_assert_eq(weft_select(cs, 4, WEFT_NEVER), which);
        cr_assert_eq(v[which], 77);
        cr_assert_eq(cs[which].result, 0);
        weft_task_join(t, NULL, WEFT_NEVER);
        for (int i = 0; i < 4; i++)
            weft_chan_free(c[i]);
    }
    return NULL;
}

Test(select, waiting_select_woken_by_ready_channel, .timeout = 30)
{
    run_on(3, wake_main, NULL);
}

/* ---- stress: selecting producers and consumers -------------------------- */

#define SP 4
#define SC 4

struct sstress {
    weft_chan *a, *b;
    uint64_t per;
    _Atomic uint8_t *seen;
    _Atomic uint64_t received;
    _Atomic int producers_left;
    uint64_t seed;
};

struct sp_arg { struct sstress *s; uint64_t id; };

static void *sel_producer(void *arg)
{
    struct sp_arg *p = arg;
    struct sstress *s = p->s;
    uint64_t rng = test_seed_for(s->seed, p->id);
    for (uint64_t i = 0; i < s->per; i++) {
        uint64_t item = p->id * s->per + i;
        weft_select_case cs[2] = { { s->a, WEFT_SELECT_SEND, &item, -1 },
                                   { s->b, WEFT_SELECT_SEND, &item, -1 } };
        for (;;) {
            uint64_t r = test_xorshift(&rng);
            int64_t dl = r % 3 == 0 ? weft_deadline_in((int64_t)(r % 20000)) : WEFT_NEVER;
            int rc = weft_select(cs, 2, dl);
            if (rc >= 0) {
                cr_assert_eq(cs[rc].result, 0);
                break;
            }
            cr_assert_eq(rc, -ETIMEDOUT, "seed %llu", (unsigned long long)s->seed);
        }
    }
    if (atomic_fetch_sub(&s->producers_left, 1) == 1) {
        weft_chan_close(s->a);
        weft_chan_close(s->b);
    }
    return NULL;
}

static void *sel_consumer(void *arg)
{
    struct sstress *s = arg;
    uint64_t rng = s->seed ^ (uint64_t)(uintptr_t)&rng;
    uint64_t va, vb;
    weft_select_case cs[2] = { { s->a, WEFT_SELECT_RECV, &va, -1 },
                               { s->b, WEFT_SELECT_RECV, &vb, -1 } };
    for (;;) {
        uint64_t r = test_xorshift(&rng);
        int64_t dl = r % 3 == 0 ? weft_deadline_in((int64_t)(r % 30000)) : WEFT_NEVER;
        int rc = weft_select(cs, 2, dl);
        if (rc == -ETIMEDOUT)
            continue;
        if (rc == -ECANCELED)
            return NULL;
        cr_assert(rc == 0 || rc == 1, "rc %d", rc);
        if (cs[rc].result == -EPIPE) {
            cs[rc].chan = NULL;               /* that one is done */
            if (!cs[0].chan && !cs[1].chan)
                return NULL;
            continue;
        }
        uint64_t item = rc == 0 ? va : vb;
        cr_assert_lt(item, SP * s->per);
        cr_assert_eq(atomic_fetch_add(&s->seen[item], 1), 0, "seed %llu: item %llu twice",
                     (unsigned long long)s->seed, (unsigned long long)item);
        atomic_fetch_add(&s->received, 1);
    }
}

static void *sstress_main(void *arg)
{
    struct sstress *s = arg;
    uint64_t rng = s->seed;
    struct sp_arg pa[SP];
    weft_task prod[SP], cons[SC];
    for (int i = 0; i < SC; i++)
        cr_assert_eq(weft_task_spawn(&cons[i], sel_consumer, s, NULL), 0);
    for (int i = 0; i < SP; i++) {
        pa[i] = (struct sp_arg){ s, (uint64_t)i };
        cr_assert_eq(weft_task_spawn(&prod[i], sel_producer, &pa[i], NULL), 0);
    }
    while (atomic_load(&s->received) < SP * s->per * 8 / 10) {
        uint64_t r = test_xorshift(&rng);
        for (unsigned y = 0; y < r % 8; y++)
            weft_yield();
        int i = (int)(r % SC);
        weft_task_cancel(cons[i]);
        cr_assert_eq(weft_task_join(cons[i], NULL, WEFT_NEVER), 0);
        cr_assert_eq(weft_task_spawn(&cons[i], sel_consumer, s, NULL), 0);
    }
    for (int i = 0; i < SP; i++)
        cr_assert_eq(weft_task_join(prod[i], NULL, WEFT_NEVER), 0);
    for (int i = 0; i < SC; i++)
        cr_assert_eq(weft_task_join(cons[i], NULL, WEFT_NEVER), 0);
    return NULL;
}

Test(select, stress_select_timeouts_cancels, .timeout = 120)
{
    uint64_t seed = test_seed("select stress");
    for (unsigned round = 0; round < 4; round++) {
        struct sstress s = { .per = test_scale(10000), .seed = seed + round,
                             .producers_left = SP };
        cr_assert_eq(weft_chan_rendezvous(&s.a, sizeof(uint64_t)), 0);
        cr_assert_eq(weft_chan_bounded(&s.b, sizeof(uint64_t), 2), 0);
        s.seen = calloc(SP * s.per, 1);
        run_on(round % 2 ? 8 : 4, sstress_main, &s);
        cr_assert_eq(atomic_load(&s.received), SP * s.per, "seed %llu",
                     (unsigned long long)s.seed);
        free((void *)s.seen);
        weft_chan_free(s.a);
        weft_chan_free(s.b);
    }
}

/* ---- a cancelled task's select takes nothing ----------------------------- */

static void *cancelled_select_body(void *arg)
{
    weft_chan **c = arg;
    int v = 0, w = 5;
    weft_select_case cs[2] = { { c[0], WEFT_SELECT_RECV, &v, -1 },
                               { c[1], WEFT_SELECT_SEND, &w, -1 } };
    cr_assert_eq(weft_task_cancel(weft_task_self()), 0);
    cr_assert_eq(weft_select(cs, 2, WEFT_NEVER), -ECANCELED);
    cr_assert_eq(weft_select(cs, 2, weft_deadline_in(1000000000)), -ECANCELED);
    cr_assert_eq(weft_select(NULL, 0, WEFT_NEVER), -ECANCELED);
    cr_assert_eq(weft_select(cs, 2, WEFT_NEVER), -ECANCELED);
    cr_assert_eq(v, 0);
    cr_assert_eq(cs[0].result, -1);
    cr_assert_eq(cs[1].result, -1);
    cr_assert_eq(weft_chan_len(c[0]), 1);      /* the item is still there */
    cr_assert_eq(weft_chan_len(c[1]), 0);      /* and nothing was sent */
    cs[1].chan = NULL;
    cr_assert_eq(weft_select(cs, 2, 0), 0);    /* a poll is not a cancellation point */
    cr_assert_eq(v, 11);
    cr_assert_eq(cs[0].result, 0);
    return NULL;
}

Test(select, cancelled_task_select_takes_nothing, .timeout = 30)
{
    weft_chan *c[2];
    int v = 11;
    cr_assert_eq(weft_chan_bounded(&c[0], sizeof(int), 1), 0);
    cr_assert_eq(weft_chan_bounded(&c[1], sizeof(int), 1), 0);
    cr_assert_eq(weft_chan_send(c[0], &v, 0), 0);
    run_on(2, cancelled_select_body, c);
    cr_assert_eq(weft_chan_len(c[0]), 0);
    cr_assert_eq(weft_chan_len(c[1]), 0);
    weft_chan_free(c[0]);
    weft_chan_free(c[1]);
}

/* ---- a foreign thread's select, woken by a task ------------------------- */

/* Each round the thread selects over three receives and one send, all on
 * rendezvous channels; the task does one matching operation (chosen from
 * a sequence both sides derive from the seed) or, every eighth round,
 * nothing, and the thread's deadline ends that round. */
#define FS_ROUNDS 400

struct fsel { weft_chan *c[4]; uint64_t seed; int errors; _Atomic int idle_done; };

static unsigned fsel_pick(uint64_t *rng)
{
    uint64_t r = test_xorshift(rng);
    return r % 8 == 7 ? 4 : (unsigned)((r >> 8) % 4);     /* 4: an idle round */
}

static void *fsel_thread(void *arg)
{
    struct fsel *f = arg;
    uint64_t rng = f->seed;
    for (int round = 0; round < FS_ROUNDS; round++) {
        unsigned want = fsel_pick(&rng);
        int in[3] = { -1, -1, -1 }, out = round;
        weft_select_case cs[4];
        for (int i = 0; i < 3; i++)
            cs[i] = (weft_select_case){ f->c[i], WEFT_SELECT_RECV, &in[i], -7 };
        cs[3] = (weft_select_case){ f->c[3], WEFT_SELECT_SEND, &out, -7 };
        int rc = weft_select(cs, 4, want == 4 ? weft_deadline_in(1000000) : WEFT_NEVER);
        if (want == 4) {
            f->errors += rc != -ETIMEDOUT;
            atomic_store(&f->idle_done, round + 1);   /* the task may go on */
            continue;
        }
        f->errors += rc != (int)want || cs[want].result != 0;
        for (int i = 0; i < 4; i++)
            f->errors += i != (int)want && cs[i].result != -7;   /* untouched */
        if (want < 3)
            f->errors += in[want] != round * 10 + (int)want;
    }
    return NULL;
}

static void *fsel_main(void *arg)
{
    struct fsel *f = arg;
    uint64_t rng = f->seed;
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, fsel_thread, f), 0);
    for (int round = 0; round < FS_ROUNDS; round++) {
        unsigned want = fsel_pick(&rng);
        if (want == 4) {
            /* the thread times out alone; our next operation must not
             * land in that round's select */
            while (atomic_load(&f->idle_done) != round + 1)
                weft_yield();
            continue;
        }
        for (unsigned y = (unsigned)round % 3; y; y--)
            weft_yield();
        int v = round * 10 + (int)want;
        if (want < 3) {
            cr_assert_eq(weft_chan_send(f->c[want], &v, WEFT_NEVER), 0);
        } else {
            cr_assert_eq(weft_chan_recv(f->c[3], &v, WEFT_NEVER), 0);
            cr_assert_eq(v, round);
        }
    }
    pthread_join(th, NULL);
    return NULL;
}

Test(select, foreign_thread_select_woken_by_task, .timeout = 60)
{
    struct fsel f = { .seed = test_seed("foreign select") };
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_chan_rendezvous(&f.c[i], sizeof(int)), 0);
    run_on(4, fsel_main, &f);
    cr_assert_eq(f.errors, 0, "seed %llu", (unsigned long long)f.seed);
    for (int i = 0; i < 4; i++)
        weft_chan_free(f.c[i]);
}
