/*
 * test_generator.c — task-backed generators: values in order, the normal
 * end, a body's failure, closing early (the body sees -EPIPE/-ECANCELED
 * and is waited for), deadlines, and the Ticker example.
 */
#include <criterion/criterion.h>
#include <errno.h>
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
