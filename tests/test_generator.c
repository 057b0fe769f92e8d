/*
 * test_generator.c — task-backed generators: values in order, the normal
 * end, a body's failure, closing early (the body sees -EPIPE/-ECANCELED
 * and is waited for), deadlines, the Ticker example, a foreign-thread
 * consumer, and a cancelled consumer (its weft_gen_next returns -ECANCELED
 * at once and the value it did not take goes to the next consumer).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "weft.h"
#include "tests/helpers.h"

static void run_on(unsigned workers, void *(*fn)(void *), void *arg)
{
    weft_config cfg = { .workers = workers };
    cr_assert_eq(weft_run(&cfg, fn, arg, NULL), 0);
}

static int count_to(weft_gen *g, void *arg)
{
    intptr_t n = (intptr_t)arg;
    for (int i = 0; i < n; i++) {
        int rc = weft_gen_yield(g, &i, WEFT_NEVER);
        if (rc)
            return rc;
    }
    return n == 3 ? -EIO : 0;    /* n == 3: fails after its values */
}

static _Atomic int body_rc = 1;

static int endless(weft_gen *g, void *arg)
{
    for (int i = 0;; i++) {
        int rc = weft_gen_yield(g, &i, WEFT_NEVER);
        if (rc) {
            atomic_store(&body_rc, rc);
            return 0;
        }
    }
}

/* the Ticker of include/weft.h */
static int ticker(weft_gen *g, void *arg)
{
    int64_t period = *(int64_t *)arg, next = weft_now();
    for (;;) {
        next += period;
        int rc = weft_sleep_until(next);
        if (rc == 0)
            rc = weft_gen_yield(g, &next, WEFT_NEVER);
        if (rc)
            return rc == -EPIPE || rc == -ECANCELED ? 0 : rc;
    }
}

static void *gen_main(void *arg)
{
    weft_gen *g;
    int v;
    cr_assert_eq(weft_gen_new(NULL, sizeof(int), count_to, NULL), -EINVAL);
    cr_assert_eq(weft_gen_new(&g, sizeof(int), NULL, NULL), -EINVAL);
    cr_assert_eq(weft_gen_next(NULL, &v, 0), -EINVAL);

    cr_assert_eq(weft_gen_new(&g, sizeof(int), count_to, (void *)(intptr_t)100), 0);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(weft_gen_next(g, &v, WEFT_NEVER), 0);
        cr_assert_eq(v, i);
    }
    cr_assert_eq(weft_gen_next(g, &v, WEFT_NEVER), -EPIPE);
    cr_assert_eq(weft_gen_next(g, &v, WEFT_NEVER), -EPIPE);
    weft_gen_close(g);

    cr_assert_eq(weft_gen_new(&g, sizeof(int), count_to, (void *)(intptr_t)3), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(weft_gen_next(g, &v, WEFT_NEVER), 0);
    cr_assert_eq(weft_gen_next(g, &v, WEFT_NEVER), -EIO);
    weft_gen_close(g);

    /* closing early: the body's pending yield fails and it is waited for */
    atomic_store(&body_rc, 1);
    cr_assert_eq(weft_gen_new(&g, sizeof(int), endless, NULL), 0);
    cr_assert_eq(weft_gen_next(g, &v, WEFT_NEVER), 0);
    cr_assert_eq(weft_gen_next(g, &v, WEFT_NEVER), 0);
    cr_assert_eq(v, 1);
    weft_gen_close(g);
    int rc = atomic_load(&body_rc);
    cr_assert(rc == -EPIPE || rc == -ECANCELED, "body saw %d", rc);
    weft_gen_close(NULL);

    /* the ticker: ticks at the period, in order; a deadline shorter than
     * the period times out */
    int64_t period = 2000000, tick, last = 0;
    cr_assert_eq(weft_gen_new(&g, sizeof(int64_t), ticker, &period), 0);
    cr_assert_eq(weft_gen_next(g, &tick, weft_now() + 100000), -ETIMEDOUT);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(weft_gen_next(g, &tick, WEFT_NEVER), 0);
        if (last)
            cr_assert_eq(tick - last, period);
        cr_assert_leq(tick, weft_now());
        last = tick;
    }
    weft_gen_close(g);
    return NULL;
}

Test(generator, values_end_failure_close_ticker, .timeout = 30)
{
    run_on(2, gen_main, NULL);
}

/* ---- a foreign thread consumes ------------------------------------------- */

struct fgen { int n; int errors; int got; };

static void *foreign_consumer(void *arg)
{
    struct fgen *f = arg;
    weft_gen *g;
    int v, rc;
    if (weft_gen_new(&g, sizeof(int), count_to, (void *)(intptr_t)f->n) != 0) {
        f->errors++;
        return NULL;
    }
    /* deadlines too: a short one may time out, the value then comes later */
    for (int want = 0; want < f->n;) {
        rc = weft_gen_next(g, &v, want % 3 ? WEFT_NEVER : weft_deadline_in(50000));
        if (rc == -ETIMEDOUT)
            continue;
        f->errors += rc != 0 || v != want;
        want++;
        f->got++;
    }
    f->errors += weft_gen_next(g, &v, WEFT_NEVER) != -EPIPE;
    weft_gen_close(g);
    /* closing early from a thread: the body is cancelled and waited for */
    atomic_store(&body_rc, 1);
    if (weft_gen_new(&g, sizeof(int), endless, NULL) != 0) {
        f->errors++;
        return NULL;
    }
    f->errors += weft_gen_next(g, &v, WEFT_NEVER) != 0 || v != 0;
    weft_gen_close(g);
    rc = atomic_load(&body_rc);
    f->errors += rc != -EPIPE && rc != -ECANCELED;
    return NULL;
}

static void *foreign_gen_main(void *arg)
{
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, foreign_consumer, arg), 0);
    pthread_join(th, NULL);
    return NULL;
}

Test(generator, foreign_thread_consumer, .timeout = 30)
{
    struct fgen f = { .n = (int)test_scale(2000) };
    run_on(3, foreign_gen_main, &f);
    cr_assert_eq(f.errors, 0);
    cr_assert_eq(f.got, f.n);
}

/* ---- a cancelled consumer ------------------------------------------------ */

struct cgen { weft_gen *g; int v; int rc[3]; };

/* Takes one value, cancels itself, and finds its next calls refused at
 * once, whether or not the body is already waiting to hand the next value
 * over; that value stays for the next consumer. */
static void *cancelled_consumer(void *arg)
{
    struct cgen *c = arg;
    c->rc[0] = weft_gen_next(c->g, &c->v, WEFT_NEVER);
    weft_task_cancel(weft_task_self());
    int v = -1;
    c->rc[1] = weft_gen_next(c->g, &v, WEFT_NEVER);
    c->rc[2] = weft_gen_next(c->g, &v, weft_deadline_in(1000000000));
    return (void *)(intptr_t)v;
}

static void *cancelled_gen_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 50; round++) {
        struct cgen c = { .v = -1 };
        cr_assert_eq(weft_gen_new(&c.g, sizeof(int), count_to, (void *)(intptr_t)10), 0);
        weft_task t;
        void *untouched;
        cr_assert_eq(weft_task_spawn(&t, cancelled_consumer, &c, NULL), 0);
        cr_assert_eq(weft_task_join(t, &untouched, WEFT_NEVER), 0);
        cr_assert_eq(c.rc[0], 0);
        cr_assert_eq(c.v, 0);
        cr_assert_eq(c.rc[1], -ECANCELED);
        cr_assert_eq(c.rc[2], -ECANCELED);
        cr_assert_eq((intptr_t)untouched, -1);
        /* the value the cancelled consumer did not take is the next one */
        for (int want = 1; want < 10; want++) {
            int v;
            cr_assert_eq(weft_gen_next(c.g, &v, WEFT_NEVER), 0);
            cr_assert_eq(v, want, "round %d", round);
        }
        int v;
        cr_assert_eq(weft_gen_next(c.g, &v, WEFT_NEVER), -EPIPE);
        weft_gen_close(c.g);
    }
    return NULL;
}

Test(generator, cancelled_consumer_takes_nothing, .timeout = 30)
{
    run_on(4, cancelled_gen_main, NULL);
}
