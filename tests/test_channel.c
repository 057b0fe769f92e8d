/*
 * test_channel.c — channels of the three kinds: constructors and every
 * error, FIFO order, try operations, close (drain, then -EPIPE), foreign
 * threads, and the stress test: producers and consumers on several
 * workers with random deadlines and random cancellations of consumers
 * (and, in a second one, of producers too, with a foreign producer and
 * consumer taking part), counting every item to show none is lost or
 * delivered twice; and a cancelled task's blocking calls, which take
 * nothing even when an item, a slot or a peer is ready.
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

enum kind { UNBOUNDED, BOUNDED, RENDEZVOUS };

static weft_chan *make(enum kind k, size_t esize, size_t cap)
{
    weft_chan *c = NULL;
    int rc = k == UNBOUNDED ? weft_chan_unbounded(&c, esize)
           : k == BOUNDED   ? weft_chan_bounded(&c, esize, cap)
                            : weft_chan_rendezvous(&c, esize);
    cr_assert_eq(rc, 0);
    return c;
}

/* ---- constructors, try ops, close --------------------------------------- */

Test(channel, constructors_reject_bad_arguments, .timeout = 30)
{
    weft_chan *c;
    cr_assert_eq(weft_chan_unbounded(NULL, 8), -EINVAL);
    cr_assert_eq(weft_chan_bounded(&c, 8, 0), -EINVAL);   /* 0 is not "infinite" */
    cr_assert_eq(weft_chan_bounded(&c, 1 << 20, 4), -EINVAL);
    cr_assert_eq(weft_chan_rendezvous(NULL, 8), -EINVAL);
    cr_assert_eq(weft_chan_send(NULL, "", 0), -EINVAL);
    cr_assert_eq(weft_chan_close(NULL), -EINVAL);
    cr_assert_eq(weft_chan_unbounded(&c, 0), 0);          /* signals only */
    cr_assert_eq(weft_chan_send(c, NULL, WEFT_NEVER), 0);
    cr_assert_eq(weft_chan_recv(c, NULL, WEFT_NEVER), 0);
    weft_chan_free(c);
    weft_chan_free(NULL);
}

Test(channel, try_ops_and_close_without_runtime, .timeout = 30)
{
    /* channels need no runtime: a foreign thread uses them directly */
    int v;
    weft_chan *b = make(BOUNDED, sizeof(int), 2);
    cr_assert_eq(weft_chan_try_recv(b, &v), -EAGAIN);
    cr_assert_eq(weft_chan_recv(b, &v, 0), -ETIMEDOUT);
    cr_assert_eq(weft_chan_recv(b, &v, weft_deadline_in(1000000)), -ETIMEDOUT);
    v = 1; cr_assert_eq(weft_chan_try_send(b, &v), 0);
    v = 2; cr_assert_eq(weft_chan_send(b, &v, 0), 0);
    v = 3; cr_assert_eq(weft_chan_try_send(b, &v), -EAGAIN);
    cr_assert_eq(weft_chan_send(b, &v, weft_deadline_in(1000000)), -ETIMEDOUT);
    cr_assert_eq(weft_chan_len(b), 2);
    cr_assert_not(weft_chan_closed(b));
    cr_assert_eq(weft_chan_close(b), 0);
    cr_assert_eq(weft_chan_close(b), -EALREADY);
    cr_assert(weft_chan_closed(b));
    cr_assert_eq(weft_chan_send(b, &v, WEFT_NEVER), -EPIPE);
    cr_assert_eq(weft_chan_try_send(b, &v), -EPIPE);
    cr_assert_eq(weft_chan_recv(b, &v, WEFT_NEVER), 0);   /* drain first */
    cr_assert_eq(v, 1);
    cr_assert_eq(weft_chan_try_recv(b, &v), 0);
    cr_assert_eq(v, 2);
    cr_assert_eq(weft_chan_recv(b, &v, WEFT_NEVER), -EPIPE);
    cr_assert_eq(weft_chan_try_recv(b, &v), -EPIPE);
    weft_chan_free(b);

    weft_chan *r = make(RENDEZVOUS, sizeof(int), 0);
    cr_assert_eq(weft_chan_try_send(r, &v), -EAGAIN);    /* nobody receiving */
    cr_assert_eq(weft_chan_try_recv(r, &v), -EAGAIN);
    cr_assert_eq(weft_chan_len(r), 0);
    weft_chan_free(r);

    weft_chan *u = make(UNBOUNDED, sizeof(int), 0);
    for (int i = 0; i < 1000; i++)                       /* grows, keeps order */
        cr_assert_eq(weft_chan_try_send(u, &i), 0);
    for (int i = 0; i < 500; i++) {
        cr_assert_eq(weft_chan_try_recv(u, &v), 0);
        cr_assert_eq(v, i);
    }
    for (int i = 1000; i < 1100; i++)                    /* wrap around, grow */
        cr_assert_eq(weft_chan_try_send(u, &i), 0);
    for (int i = 500; i < 1100; i++) {
        cr_assert_eq(weft_chan_try_recv(u, &v), 0);
        cr_assert_eq(v, i);
    }
    weft_chan_free(u);   /* freeing with items buffered is fine, too */
    u = make(UNBOUNDED, sizeof(int), 0);
    cr_assert_eq(weft_chan_try_send(u, &v), 0);
    weft_chan_free(u);
}

/* close wakes blocked receivers (-EPIPE) and blocked senders (-EPIPE) */
static void *blocked_recv(void *arg)
{
    int v;
    return (void *)(intptr_t)weft_chan_recv(arg, &v, WEFT_NEVER);
}

static void *blocked_send(void *arg)
{
    int v = 5;
    return (void *)(intptr_t)weft_chan_send(arg, &v, WEFT_NEVER);
}

static void *close_wakes_main(void *arg)
{
    /* every blocked party of one role wakes with -EPIPE */
    struct { enum kind k; bool senders; } cfgs[] = {
        { UNBOUNDED, false }, { BOUNDED, false }, { BOUNDED, true },
        { RENDEZVOUS, false }, { RENDEZVOUS, true },
    };
    for (unsigned n = 0; n < sizeof(cfgs) / sizeof(cfgs[0]); n++) {
        weft_chan *c = make(cfgs[n].k, sizeof(int), 1);
        int v = 0;
        if (cfgs[n].k == BOUNDED && cfgs[n].senders)
            cr_assert_eq(weft_chan_send(c, &v, 0), 0);   /* fill it */
        weft_task t[8];
        for (int i = 0; i < 8; i++)
            cr_assert_eq(weft_task_spawn(&t[i], cfgs[n].senders ? blocked_send : blocked_recv,
                                         c, NULL), 0);
        for (int i = 0; i < 30; i++)
            weft_yield();
        cr_assert_eq(weft_chan_close(c), 0);
        for (int i = 0; i < 8; i++) {
            void *r;
            cr_assert_eq(weft_task_join(t[i], &r, WEFT_NEVER), 0);
            cr_assert_eq((intptr_t)r, -EPIPE, "cfg %u task %d: %d", n, i, (int)(intptr_t)r);
        }
        if (cfgs[n].k == BOUNDED && cfgs[n].senders) {
            cr_assert_eq(weft_chan_recv(c, &v, 0), 0);   /* the buffered one stays */
            cr_assert_eq(weft_chan_recv(c, &v, 0), -EPIPE);
        }
        weft_chan_free(c);
    }
    return NULL;
}

Test(channel, close_wakes_everyone, .timeout = 30)
{
    run_on(4, close_wakes_main, NULL);
}

/* ---- FIFO order across workers ------------------------------------------ */

struct fifo { weft_chan *c; uint64_t n; };

static void *fifo_producer(void *arg)
{
    struct fifo *f = arg;
    for (uint64_t i = 0; i < f->n; i++)
        cr_assert_eq(weft_chan_send(f->c, &i, WEFT_NEVER), 0);
    cr_assert_eq(weft_chan_close(f->c), 0);
    return NULL;
}

static void *fifo_main(void *arg)
{
    for (int k = 0; k < 3; k++) {
        struct fifo f = { make(k, sizeof(uint64_t), 8), test_scale(50000) };
        weft_task p;
        cr_assert_eq(weft_task_spawn(&p, fifo_producer, &f, NULL), 0);
        uint64_t v, expect = 0;
        int rc;
        while ((rc = weft_chan_recv(f.c, &v, WEFT_NEVER)) == 0)
            cr_assert_eq(v, expect++);
        cr_assert_eq(rc, -EPIPE);
        cr_assert_eq(expect, f.n);
        weft_task_join(p, NULL, WEFT_NEVER);
        weft_chan_free(f.c);
    }
    return NULL;
}

Test(channel, fifo_order_each_kind, .timeout = 60)
{
    run_on(2, fifo_main, NULL);
}

/* ---- foreign threads on both ends --------------------------------------- */

struct foreign { weft_chan *c; uint64_t n; _Atomic uint64_t sum; };

static void *foreign_producer(void *arg)
{
    struct foreign *f = arg;
    for (uint64_t i = 1; i <= f->n; i++)
        cr_assert_eq(weft_chan_send(f->c, &i, WEFT_NEVER), 0);
    return NULL;
}

static void *foreign_consumer(void *arg)
{
    struct foreign *f = arg;
    uint64_t v;
    while (weft_chan_recv(f->c, &v, WEFT_NEVER) == 0)
        atomic_fetch_add(&f->sum, v);
    return NULL;
}

static void *task_producer(void *arg)
{
    return foreign_producer(arg);
}

static void *foreign_main(void *arg)
{
    struct foreign *f = arg;
    weft_task t[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(weft_task_spawn(&t[i], task_producer, f, NULL), 0);
    for (int i = 0; i < 2; i++)
        weft_task_join(t[i], NULL, WEFT_NEVER);
    return NULL;
}

Test(channel, foreign_threads_send_and_receive, .timeout = 60)
{
    for (int k = 0; k < 3; k++) {
        struct foreign f = { make(k, sizeof(uint64_t), 4), test_scale(5000), 0 };
        pthread_t prod[2], cons[2];
        for (int i = 0; i < 2; i++) {
            cr_assert_eq(pthread_create(&prod[i], NULL, foreign_producer, &f), 0);
            cr_assert_eq(pthread_create(&cons[i], NULL, foreign_consumer, &f), 0);
        }
        run_on(3, foreign_main, &f);   /* two task producers meanwhile */
        for (int i = 0; i < 2; i++)
            pthread_join(prod[i], NULL);
        weft_chan_close(f.c);
        for (int i = 0; i < 2; i++)
            pthread_join(cons[i], NULL);
        cr_assert_eq(atomic_load(&f.sum), 4 * (f.n * (f.n + 1) / 2), "kind %d", k);
        weft_chan_free(f.c);
    }
}

/* ---- the stress test: timeouts and cancellations at handoff ------------- */

#define NPROD 4
#define NCONS 6

struct stress {
    weft_chan *c;
    uint64_t per;                  /* items per producer */
    _Atomic uint8_t *seen;         /* per item id: deliveries */
    _Atomic uint64_t received, timeouts, cancels, send_timeouts;
    uint64_t seed;
};

struct prod_arg { struct stress *s; uint64_t id; };

static void *stress_producer(void *arg)
{
    struct prod_arg *p = arg;
    struct stress *s = p->s;
    uint64_t rng = test_seed_for(s->seed, p->id);
    for (uint64_t i = 0; i < s->per; i++) {
        uint64_t item = p->id * s->per + i;
        for (;;) {
            uint64_t r = test_xorshift(&rng);
            int64_t dl = r % 4 == 0 ? weft_deadline_in((int64_t)(r % 20000)) : WEFT_NEVER;
            int rc = weft_chan_send(s->c, &item, dl);
            if (rc == 0) {
                if (r % 8 == 3)
                    weft_yield();   /* let consumers and cancels interleave */
                break;
            }
            /* a failed send must not have delivered: we retry the same id,
             * so a delivery here would show up as a duplicate */
            cr_assert_eq(rc, -ETIMEDOUT, "seed %llu", (unsigned long long)s->seed);
            atomic_fetch_add(&s->send_timeouts, 1);
        }
    }
    return NULL;
}

static void *stress_consumer(void *arg)
{
    struct stress *s = arg;
    uint64_t rng = s->seed ^ (uint64_t)(uintptr_t)&rng;
    for (;;) {
        uint64_t item, r = test_xorshift(&rng);
        int64_t dl = r % 3 == 0 ? weft_deadline_in((int64_t)(r % 30000)) : WEFT_NEVER;
        int rc = weft_chan_recv(s->c, &item, dl);
        if (rc == 0) {
            cr_assert_lt(item, NPROD * s->per);
            uint8_t before = atomic_fetch_add(&s->seen[item], 1);
            cr_assert_eq(before, 0, "seed %llu: item %llu delivered twice",
                         (unsigned long long)s->seed, (unsigned long long)item);
            atomic_fetch_add(&s->received, 1);
            if (r % 4 == 1)
                weft_yield();
        } else if (rc == -ETIMEDOUT) {
            atomic_fetch_add(&s->timeouts, 1);
        } else if (rc == -ECANCELED) {
            atomic_fetch_add(&s->cancels, 1);
            return NULL;
        } else {
            cr_assert_eq(rc, -EPIPE);
            return NULL;
        }
    }
}

static void *stress_main(void *arg)
{
    struct stress *s = arg;
    uint64_t rng = s->seed;
    struct prod_arg pa[NPROD];
    weft_task prod[NPROD], cons[NCONS];
    for (int i = 0; i < NCONS; i++)
        cr_assert_eq(weft_task_spawn(&cons[i], stress_consumer, s, NULL), 0);
    for (int i = 0; i < NPROD; i++) {
        pa[i] = (struct prod_arg){ s, (uint64_t)i };
        cr_assert_eq(weft_task_spawn(&prod[i], stress_producer, &pa[i], NULL), 0);
    }
    /* Cancel random consumers and replace them while items flow. */
    while (atomic_load(&s->received) < NPROD * s->per * 9 / 10) {
        uint64_t r = test_xorshift(&rng);
        for (unsigned y = 0; y < r % 4; y++)
            weft_yield();
        int i = (int)(r % NCONS);
        cr_assert_eq(weft_task_cancel(cons[i]), 0);
        cr_assert_eq(weft_task_join(cons[i], NULL, WEFT_NEVER), 0);
        cr_assert_eq(weft_task_spawn(&cons[i], stress_consumer, s, NULL), 0);
    }
    for (int i = 0; i < NPROD; i++)
        cr_assert_eq(weft_task_join(prod[i], NULL, WEFT_NEVER), 0);
    cr_assert_eq(weft_chan_close(s->c), 0);
    for (int i = 0; i < NCONS; i++)
        cr_assert_eq(weft_task_join(cons[i], NULL, WEFT_NEVER), 0);
    return NULL;
}

static void stress(enum kind k, size_t cap)
{
    cr_log_info("channel stress kind %d", k);
    uint64_t seed = test_seed("channel stress");
    for (unsigned round = 0; round < 6; round++) {
        unsigned workers = round % 2 ? 8 : 4;
        struct stress s = { .c = make(k, sizeof(uint64_t), cap), .per = test_scale(20000),
                            .seed = seed + round };
        s.seen = calloc(NPROD * s.per, 1);
        run_on(workers, stress_main, &s);
        cr_assert_eq(atomic_load(&s.received), NPROD * s.per,
                     "seed %llu: %llu of %llu received", (unsigned long long)s.seed,
                     (unsigned long long)atomic_load(&s.received),
                     (unsigned long long)(NPROD * s.per));
        for (uint64_t i = 0; i < NPROD * s.per; i++)
            cr_assert_eq(atomic_load(&s.seen[i]), 1, "seed %llu item %llu",
                         (unsigned long long)s.seed, (unsigned long long)i);
        cr_log_info("workers %u: %llu recv timeouts, %llu cancels, %llu send timeouts", workers,
                    (unsigned long long)s.timeouts, (unsigned long long)s.cancels,
                    (unsigned long long)s.send_timeouts);
        free((void *)s.seen);
        weft_chan_free(s.c);
    }
}

Test(channel, stress_rendezvous_timeouts_cancels, .timeout = 120)
{
    stress(RENDEZVOUS, 0);
}

Test(channel, stress_bounded_timeouts_cancels, .timeout = 120)
{
    stress(BOUNDED, 3);
}

Test(channel, stress_unbounded_timeouts_cancels, .timeout = 120)
{
    stress(UNBOUNDED, 0);
}

/* ---- cancellation racing the start of a wait ------------------------------
 * A channel wait is published for cancellation through the task's state
 * word (sched/task.h): a cancel either claims the open wait or is seen by
 * the switch away. Cancel receivers at random points of their wait's start
 * (before it opens, while it opens, after it parked), from a task on another
 * worker and from a foreign thread: every one must end with -ECANCELED (a
 * lost cancel hangs the join, and the test's timeout reports it). Half the
 * receivers wait in a select, half in a receive with a far deadline. */

#define RACE_ROUNDS 3000

static void *blocked_receiver(void *arg)
{
    weft_chan *c = arg;
    uint64_t v;
    if ((weft_task_self().id >> 11) % 2) {   /* the spawn sequence number */
        weft_select_case sc = { .chan = c, .op = WEFT_SELECT_RECV, .elem = &v };
        int rc = weft_select(&sc, 1, weft_deadline_in(60000000000LL));
        return (void *)(intptr_t)rc;
    }
    return (void *)(intptr_t)weft_chan_recv(c, &v, weft_deadline_in(60000000000LL));
}

struct race { weft_chan *c; uint64_t seed; weft_task t; _Atomic int go, done; };

static void *cancel_from_thread(void *arg)
{
    struct race *r = arg;
    uint64_t rng = r->seed;
    for (unsigned i = 0; i < RACE_ROUNDS / 4; i++) {
        while (atomic_load(&r->go) != (int)i + 1)
            ;
        for (unsigned k = test_xorshift(&rng) % 200; k; k--)
            __asm__ volatile("" ::: "memory");
        if (weft_task_cancel(r->t) != 0)
            return (void *)1;
        atomic_store(&r->done, (int)i + 1);
    }
    return NULL;
}

static void *cancel_race_main(void *arg)
{
    struct race *r = arg;
    uint64_t rng = r->seed;
    r->c = make(RENDEZVOUS, sizeof(uint64_t), 0);
    for (unsigned i = 0; i < RACE_ROUNDS; i++) {
        weft_task t;
        cr_assert_eq(weft_task_spawn(&t, blocked_receiver, r->c, NULL), 0);
        for (unsigned y = test_xorshift(&rng) % 3; y; y--)
            weft_yield();
        cr_assert_eq(weft_task_cancel(t), 0);
        void *res;
        cr_assert_eq(weft_task_join(t, &res, WEFT_NEVER), 0);
        cr_assert_eq((intptr_t)res, -ECANCELED, "round %u: %d", i, (int)(intptr_t)res);
    }
    /* The same from a foreign thread, racing the receiver's start. */
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, cancel_from_thread, r), 0);
    for (unsigned i = 0; i < RACE_ROUNDS / 4; i++) {
        cr_assert_eq(weft_task_spawn(&r->t, blocked_receiver, r->c, NULL), 0);
        atomic_store(&r->go, (int)i + 1);
        void *res;
        cr_assert_eq(weft_task_join(r->t, &res, WEFT_NEVER), 0);
        cr_assert_eq((intptr_t)res, -ECANCELED, "foreign round %u: %d", i, (int)(intptr_t)res);
        while (atomic_load(&r->done) != (int)i + 1)
            weft_yield();
    }
    void *tr;
    cr_assert_eq(pthread_join(th, &tr), 0);
    cr_assert_null(tr);
    weft_chan_free(r->c);
    return NULL;
}

Test(channel, cancel_races_wait_start, .timeout = 120)
{
    uint64_t seed = test_seed("cancel race");
    for (unsigned workers = 1; workers <= 8; workers *= 2) {
        struct race r = { .seed = seed + workers };
        run_on(workers, cancel_race_main, &r);
    }
}

/* ---- cancellation points on ready channels, NULL getters ---------------- */

static void *recv_one(void *arg)
{
    int v = -1;
    int rc = weft_chan_recv(arg, &v, WEFT_NEVER);
    return (void *)(intptr_t)(rc ? rc : v);
}

static void *send_nine(void *arg)
{
    int v = 9;
    return (void *)(intptr_t)weft_chan_send(arg, &v, WEFT_NEVER);
}

struct peers { weft_task receiver, sender; weft_chan *c[4]; };

/* One worker: each yield below lets the spawned peers run until they wait. */
static void *cancelled_ops_body(void *arg)
{
    struct peers *p = arg;
    weft_chan *b = make(BOUNDED, sizeof(int), 2);
    weft_chan *rx = make(RENDEZVOUS, sizeof(int), 0);   /* a receiver waits */
    weft_chan *tx = make(RENDEZVOUS, sizeof(int), 0);   /* a sender waits */
    weft_chan *closed = make(UNBOUNDED, sizeof(int), 0);
    int v = 7;
    cr_assert_eq(weft_chan_send(b, &v, WEFT_NEVER), 0);
    cr_assert_eq(weft_chan_close(closed), 0);
    cr_assert_eq(weft_task_spawn(&p->receiver, recv_one, rx, NULL), 0);
    cr_assert_eq(weft_task_spawn(&p->sender, send_nine, tx, NULL), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_yield(), 0);
    cr_assert_eq(weft_task_cancel(weft_task_self()), 0);
    int64_t dls[3] = { WEFT_NEVER, weft_deadline_in(1000000000), -1 };
    for (int d = 0; d < 3; d++) {
        int x = 100 + d;
        /* an item is buffered, a slot is free, a peer waits: all refused */
        cr_assert_eq(weft_chan_recv(b, &v, dls[d]), -ECANCELED);
        cr_assert_eq(weft_chan_send(b, &x, dls[d]), -ECANCELED);
        cr_assert_eq(weft_chan_len(b), 1);
        cr_assert_eq(weft_chan_send(rx, &x, dls[d]), -ECANCELED);
        cr_assert_eq(weft_chan_recv(tx, &v, dls[d]), -ECANCELED);
        cr_assert_eq(weft_chan_send(closed, &x, dls[d]), -ECANCELED);
        cr_assert_eq(weft_chan_recv(closed, &v, dls[d]), -ECANCELED);
    }
    /* polls go through: the item, the slot and both peers were intact */
    cr_assert_eq(weft_chan_recv(b, &v, 0), 0);
    cr_assert_eq(v, 7);
    cr_assert_eq(weft_chan_try_recv(b, &v), -EAGAIN);
    v = 8;
    cr_assert_eq(weft_chan_try_send(b, &v), 0);
    cr_assert_eq(weft_chan_send(b, &v, 0), 0);
    cr_assert_eq(weft_chan_try_send(b, &v), -EAGAIN);
    cr_assert_eq(weft_chan_len(b), 2);
    v = 42;
    cr_assert_eq(weft_chan_try_send(rx, &v), 0);
    cr_assert_eq(weft_chan_try_recv(tx, &v), 0);
    cr_assert_eq(v, 9);
    cr_assert_eq(weft_chan_send(closed, &v, 0), -EPIPE);
    cr_assert_eq(weft_chan_try_recv(closed, &v), -EPIPE);
    p->c[0] = b, p->c[1] = rx, p->c[2] = tx, p->c[3] = closed;
    return NULL;
}

static void *cancelled_ops_main(void *arg)
{
    (void)arg;
    struct peers p;
    weft_task t;
    void *r;
    cr_assert_eq(weft_task_spawn(&t, cancelled_ops_body, &p, NULL), 0);
    cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
    cr_assert_eq(weft_task_join(p.receiver, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, 42);               /* the one try_send */
    cr_assert_eq(weft_task_join(p.sender, &r, WEFT_NEVER), 0);
    cr_assert_eq((intptr_t)r, 0);
    for (int i = 0; i < 4; i++)
        weft_chan_free(p.c[i]);
    return NULL;
}

Test(channel, null_getters_and_cancelled_ops_take_nothing, .timeout = 30)
{
    cr_assert_eq(weft_chan_len(NULL), 0);
    cr_assert_not(weft_chan_closed(NULL));
    cr_assert_eq(weft_chan_recv(NULL, NULL, 0), -EINVAL);
    cr_assert_eq(weft_chan_try_recv(NULL, NULL), -EINVAL);
    cr_assert_eq(weft_chan_try_send(NULL, NULL), -EINVAL);
    run_on(1, cancelled_ops_main, NULL);
}

/* ---- stress: producers cancelled too, foreign threads on both ends ------
 * Four producer slots of tasks, each cancelled at random and replaced by a
 * producer that resumes where the cancelled one stopped (a send that
 * returned -ECANCELED did not deliver, so the same item is sent again);
 * one producer and one consumer are plain threads; task consumers are
 * cancelled and replaced too; every send and receive has a random
 * deadline half the time. Every item is received exactly once. */

#define CP_SLOTS 4
#define CP_CONS 4

struct cps {
    weft_chan *c;
    uint64_t per;                    /* items per slot (the thread's is slot CP_SLOTS) */
    _Atomic uint64_t next[CP_SLOTS + 1]; /* per slot: the next index to send; written
                                      * only by its one producer at a time */
    _Atomic uint8_t *seen;
    _Atomic uint64_t received, prod_cancels, cons_cancels;
    uint64_t seed;
};

struct cps_slot { struct cps *s; unsigned slot; };

static void *cps_producer(void *arg)
{
    struct cps_slot *p = arg;
    struct cps *s = p->s;
    uint64_t rng = s->seed ^ (uint64_t)(uintptr_t)&rng ^ p->slot;
    uint64_t per = p->slot == CP_SLOTS ? s->per / 4 : s->per;   /* the thread: fewer */
    while (atomic_load(&s->next[p->slot]) < per) {
        uint64_t item = p->slot * s->per + atomic_load(&s->next[p->slot]);
        uint64_t r = test_xorshift(&rng);
        int64_t dl = r % 2 ? weft_deadline_in((int64_t)(r % 30000)) : WEFT_NEVER;
        int rc = weft_chan_send(s->c, &item, dl);
        if (rc == 0) {
            atomic_fetch_add(&s->next[p->slot], 1);
            if (r % 4 < 2)
                weft_yield();           /* let the cancels land mid-stream */
        } else if (rc == -ECANCELED) {
            atomic_fetch_add(&s->prod_cancels, 1);
            return NULL;
        } else {
            cr_assert_eq(rc, -ETIMEDOUT, "seed %llu: %d", (unsigned long long)s->seed, rc);
        }
    }
    return NULL;
}

static void *cps_consumer(void *arg)
{
    struct cps *s = arg;
    uint64_t rng = s->seed ^ (uint64_t)(uintptr_t)&rng;
    for (;;) {
        uint64_t item, r = test_xorshift(&rng);
        int64_t dl = r % 2 ? weft_deadline_in((int64_t)(r % 30000)) : WEFT_NEVER;
        int rc = weft_chan_recv(s->c, &item, dl);
        if (rc == 0) {
            cr_assert_lt(item, CP_SLOTS * s->per + s->per / 4);
            cr_assert_eq(atomic_fetch_add(&s->seen[item], 1), 0, "seed %llu: item %llu twice",
                         (unsigned long long)s->seed, (unsigned long long)item);
            atomic_fetch_add(&s->received, 1);
        } else if (rc == -ECANCELED) {
            atomic_fetch_add(&s->cons_cancels, 1);
            return NULL;
        } else if (rc == -EPIPE) {
            return NULL;
        } else {
            cr_assert_eq(rc, -ETIMEDOUT, "seed %llu: %d", (unsigned long long)s->seed, rc);
        }
    }
}

static void *cps_main(void *arg)
{
    struct cps *s = arg;
    uint64_t rng = s->seed;
    struct cps_slot slots[CP_SLOTS + 1];
    weft_task prod[CP_SLOTS], cons[CP_CONS];
    pthread_t fprod, fcons;
    for (unsigned i = 0; i <= CP_SLOTS; i++)
        slots[i] = (struct cps_slot){ s, i };
    cr_assert_eq(pthread_create(&fcons, NULL, cps_consumer, s), 0);
    cr_assert_eq(pthread_create(&fprod, NULL, cps_producer, &slots[CP_SLOTS]), 0);
    for (int i = 0; i < CP_CONS; i++)
        cr_assert_eq(weft_task_spawn(&cons[i], cps_consumer, s, NULL), 0);
    for (int i = 0; i < CP_SLOTS; i++)
        cr_assert_eq(weft_task_spawn(&prod[i], cps_producer, &slots[i], NULL), 0);
    /* Cancel while the task producers are still at work (the thread's
     * pace is its own: with more workers than cores it may lag far). */
    for (unsigned n = 0;; n++) {
        uint64_t sent = 0;
        for (int i = 0; i < CP_SLOTS; i++)
            sent += atomic_load(&s->next[i]);
        if (n >= 200 && sent >= CP_SLOTS * s->per * 9 / 10)
            break;
        uint64_t r = test_xorshift(&rng);
        for (unsigned y = r % 3; y; y--)
            weft_yield();
        bool producer = (r >> 8) % 4 != 0;      /* mostly producers */
        weft_task *t = producer ? &prod[(r >> 10) % CP_SLOTS] : &cons[(r >> 10) % CP_CONS];
        cr_assert_eq(weft_task_cancel(*t), 0);
        cr_assert_eq(weft_task_join(*t, NULL, WEFT_NEVER), 0);
        cr_assert_eq(weft_task_spawn(t, producer ? cps_producer : cps_consumer,
                                     producer ? (void *)&slots[t - prod] : (void *)s, NULL), 0);
    }
    for (int i = 0; i < CP_SLOTS; i++) {
        cr_assert_eq(weft_task_join(prod[i], NULL, WEFT_NEVER), 0);
        cr_assert_eq(atomic_load(&s->next[i]), s->per);
    }
    pthread_join(fprod, NULL);
    cr_assert_eq(atomic_load(&s->next[CP_SLOTS]), s->per / 4);
    cr_assert_eq(weft_chan_close(s->c), 0);
    for (int i = 0; i < CP_CONS; i++)
        cr_assert_eq(weft_task_join(cons[i], NULL, WEFT_NEVER), 0);
    pthread_join(fcons, NULL);
    return NULL;
}

Test(channel, stress_cancelled_producers_and_foreign_ends, .timeout = 120)
{
    uint64_t seed = test_seed("cancelled-producer stress");
    for (unsigned round = 0; round < 6; round++) {
        enum kind k = (enum kind)(round / 2);
        struct cps s = { .c = make(k, sizeof(uint64_t), 3), .per = test_scale(8000),
                         .seed = seed + round };
        uint64_t total = CP_SLOTS * s.per + s.per / 4;
        s.seen = calloc(total, 1);
        run_on(round % 2 ? 8 : 4, cps_main, &s);
        cr_assert_eq(atomic_load(&s.received), total, "seed %llu kind %d: %llu of %llu",
                     (unsigned long long)s.seed, k, (unsigned long long)s.received,
                     (unsigned long long)total);
        for (uint64_t i = 0; i < total; i++)
            cr_assert_eq(atomic_load(&s.seen[i]), 1, "seed %llu item %llu",
                         (unsigned long long)s.seed, (unsigned long long)i);
        cr_log_info("kind %d: %llu producer cancels, %llu consumer cancels", k,
                    (unsigned long long)s.prod_cancels, (unsigned long long)s.cons_cancels);
        free((void *)s.seen);
        weft_chan_free(s.c);
    }
}
