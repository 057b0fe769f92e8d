/*
 * test_timer.c — the per-worker timer heap (sched/timer.{h,c}) alone: an
 * intrusive pairing heap. Random arms, disarms and runs against a model
 * (every timer fires exactly once, at a run whose time has reached its
 * deadline, unless disarmed first; earliest() is the model's minimum), and
 * disarms from other threads racing the owner's runs (each timer either
 * fires or is disarmed, never both, never neither).
 */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "sched/timer.h"
#include "tests/helpers.h"

struct tt {
    struct weft__timer t;
    atomic_int fired;
    bool armed;            /* the model's view */
    int64_t fired_at;      /* the run's `now` when it fired */
};

static int64_t run_now;

static void on_fire(struct weft__timer *t)
{
    struct tt *x = (struct tt *)t;
    atomic_fetch_add(&x->fired, 1);
    x->fired_at = run_now;
}

static int64_t model_min(struct tt *v, size_t n)
{
    int64_t m = INT64_MAX;
    for (size_t i = 0; i < n; i++)
        if (v[i].armed && v[i].t.deadline < m)
            m = v[i].t.deadline;
    return m;
}

Test(timer, random_ops_match_a_model, .timeout = 60)
{
    enum { N = 2000 };
    size_t rounds = test_scale(200000);
    struct tt *v = calloc(N, sizeof(*v));
    cr_assert_not_null(v);
    struct weft__timer_heap h;
    cr_assert_eq(weft__timer_heap_init(&h), 0);
    unsigned seed = 12345;
    run_now = 0;
    size_t fires = 0, disarms = 0;
    for (size_t r = 0; r < rounds; r++) {
        struct tt *x = &v[rand_r(&seed) % N];
        int op = rand_r(&seed) % 10;
        if (op < 5 && !x->armed) {
            /* Deadlines collide often (ties must work too). */
            x->t.deadline = run_now + rand_r(&seed) % 20000;
            x->t.fire = on_fire;
            atomic_store(&x->fired, 0);
            cr_assert_eq(weft__timer_arm(&h, &x->t), 0);
            x->armed = true;
        } else if (op < 8) {
            bool pending = weft__timer_disarm(&x->t);
            cr_assert_eq(pending, x->armed, "disarm said %d for a timer the model has %s",
                         pending, x->armed ? "armed" : "idle");
            if (pending)
                disarms++;
            x->armed = false;
        } else {
            run_now += rand_r(&seed) % 200;
            weft__timer_run(&h, run_now);
            for (size_t i = 0; i < N; i++) {
                if (!v[i].armed)
                    continue;
                if (v[i].t.deadline <= run_now) {
                    cr_assert_eq(atomic_load(&v[i].fired), 1, "timer %zu due at %lld, now %lld",
                                 i, (long long)v[i].t.deadline, (long long)run_now);
                    cr_assert_eq(v[i].fired_at, run_now);
                    v[i].armed = false;
                    fires++;
                } else {
                    cr_assert_eq(atomic_load(&v[i].fired), 0, "timer %zu fired early", i);
                }
            }
        }
        cr_assert_eq(weft__timer_earliest(&h), model_min(v, N));
    }
    cr_assert_gt(fires, rounds / 100, "%zu fires", fires);
    cr_log_info("%zu fires, %zu disarms", fires, disarms);
    cr_assert_gt(disarms, rounds / 100, "%zu disarms", disarms);
    weft__timer_heap_destroy(&h);
    free(v);
}

/* Disarms from other threads while the owner arms and runs. */
enum { RACE_N = 4096, RACE_THREADS = 3 };
static struct tt race_v[RACE_N];
static atomic_int race_disarmed[RACE_N];
static atomic_int race_next;
static struct weft__timer_heap race_h;

static void *race_disarmer(void *arg)
{
    int i;
    while ((i = atomic_fetch_add(&race_next, 1)) < RACE_N) {
        while (!__atomic_load_n(&race_v[i].t.heap, __ATOMIC_ACQUIRE) &&
               !atomic_load(&race_v[i].fired))
            ;                          /* until the owner armed it */
        if (weft__timer_disarm(&race_v[i].t))
            atomic_store(&race_disarmed[i], 1);
    }
    return NULL;
}

Test(timer, disarm_races_run, .timeout = 60)
{
    cr_assert_eq(weft__timer_heap_init(&race_h), 0);
    pthread_t th[RACE_THREADS];
    for (int k = 0; k < RACE_THREADS; k++)
        cr_assert_eq(pthread_create(&th[k], NULL, race_disarmer, NULL), 0);
    unsigned seed = 99;
    run_now = 0;
    for (int i = 0; i < RACE_N; i++) {
        race_v[i].t.deadline = run_now + rand_r(&seed) % 64;
        race_v[i].t.fire = on_fire;
        weft__timer_arm(&race_h, &race_v[i].t);
        if (i % 8 == 7)
            weft__timer_run(&race_h, run_now += 16);
    }
    for (int k = 0; k < RACE_THREADS; k++)
        pthread_join(th[k], NULL);
    weft__timer_run(&race_h, INT64_MAX - 1);
    for (int i = 0; i < RACE_N; i++) {
        int f = atomic_load(&race_v[i].fired), d = atomic_load(&race_disarmed[i]);
        cr_assert_eq(f + d, 1, "timer %d: fired %d, disarmed %d", i, f, d);
    }
    cr_assert_eq(weft__timer_earliest(&race_h), INT64_MAX);
}
