/*
 * test_task.c — the runtime and tasks: weft_run's life cycle, spawn/join/
 * detach and every misuse error, cancellation and shutdown, many tasks,
 * foreign threads, stealing. Concurrency tests run with more workers than
 * this machine has cores, so stealing and parking races occur.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft.h"
#include "tests/helpers.h"

/* ---- weft_run ------------------------------------------------------------ */

static void *ret_arg(void *arg)
{
    return arg;
}

Test(run, returns_main_result, .timeout = 30)
{
    void *r = NULL;
    cr_assert_eq(weft_run(NULL, ret_arg, (void *)0x1234, &r), 0);
    cr_assert_eq(r, (void *)0x1234);
}

Test(run, rejects_bad_config, .timeout = 30)
{
    weft_config too_many = { .workers = WEFT_MAX_WORKERS + 1 };
    weft_config small_stack = { .workers = 1, .stack_size = 1024 };
    weft_config huge_stack = { .workers = 1, .stack_size = SIZE_MAX };   /* rounds to 0 */
    weft_config big_stack = { .workers = 1, .stack_size = WEFT_STACK_MAX + 1 };
    cr_assert_eq(weft_run(NULL, NULL, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_run(&too_many, ret_arg, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_run(&small_stack, ret_arg, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_run(&huge_stack, ret_arg, NULL, NULL), -EINVAL);
    cr_assert_eq(weft_run(&big_stack, ret_arg, NULL, NULL), -EINVAL);
    /* A valid size other than the default, with pinned workers. */
    weft_config custom = { .workers = 2, .stack_size = 64 * 1024 + 1, .pin_workers = true };
    void *r = NULL;
    cr_assert_eq(weft_run(&custom, ret_arg, (void *)7, &r), 0);
    cr_assert_eq(r, (void *)7);
}

static void *nested_run(void *arg)
{
    return (void *)(intptr_t)weft_run(NULL, ret_arg, NULL, NULL);
}

Test(run, nested_run_is_busy, .timeout = 30)
{
    void *r;
    cr_assert_eq(weft_run(NULL, nested_run, NULL, &r), 0);
    cr_assert_eq((intptr_t)r, -EBUSY);
}

static void *square(void *arg)
{
    uintptr_t x = (uintptr_t)arg;
    weft_yield();
    return (void *)(x * x);
}

static void *spawn_some(void *arg)
{
    uintptr_t n = (uintptr_t)arg, sum = 0;
    weft_task t[64];
    for (uintptr_t i = 0; i < n; i++)
        cr_assert_eq(weft_task_spawn(&t[i], square, (void *)i, NULL), 0);
    for (uintptr_t i = 0; i < n; i++) {
        void *r;
        cr_assert_eq(weft_task_join(t[i], &r, WEFT_NEVER), 0);
        sum += (uintptr_t)r;
    }
    return (void *)sum;
}

/* Foreign threads that keep taking the runtime's read lock (each call on
 * a handle holds it) must not keep the shutdown from taking the write
 * lock: weft_run returns promptly after main does. */
static atomic_int hammer_stop;
static weft_task hammer_target;

static void *hammer(void *arg)
{
    char name[WEFT_TASK_NAME_MAX];
    weft_stats st;
    while (!atomic_load(&hammer_stop)) {
        weft_task_name(hammer_target, name, sizeof(name));
        weft_stats_get(&st);
    }
    return NULL;
}

static void *hammered_main(void *arg)
{
    hammer_target = weft_task_self();
    weft_sleep(20000000);
    return NULL;
}

Test(run, shutdown_not_starved_by_foreign_calls, .timeout = 30)
{
    enum { T = 4 };
    pthread_t th[T];
    atomic_store(&hammer_stop, 0);
    for (int i = 0; i < T; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, hammer, NULL), 0);
    for (int round = 0; round < 5; round++) {
        weft_config cfg = { .workers = 2 };
        int64_t t0 = weft_now();
        cr_assert_eq(weft_run(&cfg, hammered_main, NULL, NULL), 0);
        cr_assert_lt(weft_now() - t0, 3000000000LL, "weft_run took %lld ms",
                     (long long)((weft_now() - t0) / 1000000));
    }
    atomic_store(&hammer_stop, 1);
    for (int i = 0; i < T; i++)
        pthread_join(th[i], NULL);
}

/* A handle kept from an earlier run names no task in a later one (its
 * TCB was freed with that run): every call on it is -ESRCH, and nothing
 * touches the old memory (ASan would report a use after free). */
static weft_task old_handles[3];

static void *keep_handles_main(void *arg)
{
    cr_assert_eq(weft_task_spawn(&old_handles[0], ret_arg, NULL, NULL), 0);
    cr_assert_eq(weft_task_join(old_handles[0], NULL, WEFT_NEVER), 0);  /* joined */
    cr_assert_eq(weft_task_spawn(&old_handles[1], ret_arg, NULL, NULL), 0);
    cr_assert_eq(weft_task_detach(old_handles[1]), 0);                  /* detached */
    old_handles[2] = weft_task_self();                                  /* the root */
    return NULL;
}

static void *use_old_handles_main(void *arg)
{
    /* New tasks, so that recycled memory could look alive. */
    weft_task fresh[64];
    for (int i = 0; i < 64; i++)
        cr_assert_eq(weft_task_spawn(&fresh[i], ret_arg, NULL, NULL), 0);
    char name[WEFT_TASK_NAME_MAX];
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(weft_task_join(old_handles[i], NULL, 0), -ESRCH, "handle %d", i);
        cr_assert_eq(weft_task_detach(old_handles[i]), -ESRCH, "handle %d", i);
        cr_assert_eq(weft_task_cancel(old_handles[i]), -ESRCH, "handle %d", i);
        cr_assert_eq(weft_task_name(old_handles[i], name, sizeof(name)), -ESRCH, "handle %d", i);
    }
    for (int i = 0; i < 64; i++)
        cr_assert_eq(weft_task_join(fresh[i], NULL, WEFT_NEVER), 0);
    return NULL;
}

Test(run, handles_of_an_earlier_run_are_stale, .timeout = 30)
{
    cr_assert_eq(weft_run(NULL, keep_handles_main, NULL, NULL), 0);
    cr_assert_eq(weft_run(NULL, use_old_handles_main, NULL, NULL), 0);
}

Test(run, repeated_runs_do_not_leak, .timeout = 120)
{
    /* Warm up allocator caches, then many runs must not grow the heap.
     * (LeakSanitizer checks the same in the ASan build.) */
    weft_config cfg = { .workers = 2 };
    cr_assert_eq(weft_run(&cfg, spawn_some, (void *)64, NULL), 0);
    size_t before = test_heap_allocated();
    for (unsigned i = 0; i < 40; i++) {
        cfg.workers = 1 + i % 8;
        void *r;
        cr_assert_eq(weft_run(&cfg, spawn_some, (void *)64, &r), 0);
        cr_assert_eq((uintptr_t)r, 63 * 64 * 127 / 6, "run %u: sum %lu", i, (unsigned long)(uintptr_t)r);
    }
    size_t after = test_heap_allocated();
    if (before && after)
        cr_assert_lt(after, before + 256 * 1024, "heap grew from %zu to %zu", before, after);
}

/* ---- spawn / join / detach ---------------------------------------------- */

static void *errors_main(void *arg)
{
    weft_task t;
    /* spawn misuse */
    cr_assert_eq(weft_task_spawn(&t, NULL, NULL, NULL), -EINVAL);
    weft_task_opts tiny = { .stack_size = 100 };
    cr_assert_eq(weft_task_spawn(&t, ret_arg, NULL, &tiny), -EINVAL);
    weft_task_opts huge = { .stack_size = SIZE_MAX };     /* would round to 0 */
    cr_assert_eq(weft_task_spawn(&t, ret_arg, NULL, &huge), -EINVAL);
    huge.stack_size = WEFT_STACK_MAX + 1;
    cr_assert_eq(weft_task_spawn(&t, ret_arg, NULL, &huge), -EINVAL);

    /* join yourself */
    cr_assert_eq(weft_task_join(weft_task_self(), NULL, WEFT_NEVER), -EDEADLK);
    /* join nothing */
    cr_assert_eq(weft_task_join((weft_task){ 0 }, NULL, WEFT_NEVER), -ESRCH);

    /* join twice */
    void *r;
    cr_assert_eq(weft_task_spawn(&t, ret_arg, (void *)7, NULL), 0);
    cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
    cr_assert_eq(r, (void *)7);
    cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), -ESRCH);
    cr_assert_eq(weft_task_detach(t), -ESRCH);
    cr_assert_eq(weft_task_cancel(t), -ESRCH);

    /* join a detached task: -EINVAL while it lives, -ESRCH once gone */
    cr_assert_eq(weft_task_spawn(&t, square, (void *)3, NULL), 0);
    cr_assert_eq(weft_task_detach(t), 0);
    int rc = weft_task_join(t, NULL, WEFT_NEVER);
    cr_assert(rc == -EINVAL || rc == -ESRCH, "join detached: %d", rc);
    rc = weft_task_detach(t);
    cr_assert(rc == -EINVAL || rc == -ESRCH, "detach twice: %d", rc);

    /* a stale handle is never taken for a newer task in the same TCB */
    weft_task old;
    cr_assert_eq(weft_task_spawn(&old, ret_arg, NULL, NULL), 0);
    cr_assert_eq(weft_task_join(old, NULL, WEFT_NEVER), 0);
    cr_assert_eq(weft_task_spawn(&t, ret_arg, (void *)9, NULL), 0);
    cr_assert_eq(weft_task_join(old, NULL, WEFT_NEVER), -ESRCH);
    cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
    cr_assert_eq(r, (void *)9);
    return NULL;
}

Test(task, misuse_errors, .timeout = 30)
{
    weft_config cfg = { .workers = 2 };
    cr_assert_eq(weft_run(&cfg, errors_main, NULL, NULL), 0);
}

Test(task, spawn_without_runtime, .timeout = 30)
{
    weft_task t;
    cr_assert_eq(weft_task_spawn(&t, ret_arg, NULL, NULL), -ESRCH);
    cr_assert_eq(weft_task_self().ptr, NULL);
    cr_assert_eq(weft_yield(), 0);
}

static void *sleeper(void *arg)
{
    int rc = weft_sleep((int64_t)(intptr_t)arg);
    return (void *)(intptr_t)rc;
}

/* Polls with a zero deadline until main has become t's joiner (-EINVAL),
 * or t is gone. A zero deadline never waits and leaves t joinable. */
static void *second_joiner(void *arg)
{
    weft_task *t = arg;
    int rc;
    while ((rc = weft_task_join(*t, NULL, 0)) == -ETIMEDOUT)
        weft_yield();
    return (void *)(intptr_t)rc;
}

static void *join_timeout_main(void *arg)
{
    weft_task t, j2;
    cr_assert_eq(weft_task_spawn(&t, sleeper, (void *)(intptr_t)50000000, NULL), 0);
    /* deadline already past: no wait, still joinable */
    cr_assert_eq(weft_task_join(t, NULL, 0), -ETIMEDOUT);
    int64_t t0 = weft_now();
    cr_assert_eq(weft_task_join(t, NULL, weft_deadline_in(5000000)), -ETIMEDOUT);
    cr_assert_geq(weft_now() - t0, 5000000);
    /* while we wait, a second joiner is refused */
    cr_assert_eq(weft_task_spawn(&j2, second_joiner, &t, NULL), 0);
    void *r = (void *)-1, *r2;
    int rc;
    /* -EINVAL while the poller's zero-deadline join holds the joiner slot */
    while ((rc = weft_task_join(t, &r, WEFT_NEVER)) == -EINVAL)
        weft_yield();
    cr_assert_eq(weft_task_join(j2, &r2, WEFT_NEVER), 0);
    if (rc == 0) {
        cr_assert_eq((intptr_t)r, 0, "sleep returned %ld", (long)(intptr_t)r);
        cr_assert_eq((intptr_t)r2, -EINVAL, "second joiner got %ld", (long)(intptr_t)r2);
    } else {
        /* the poller collected t in the instant before we registered */
        cr_assert_eq(rc, -ESRCH);
        cr_assert_eq((intptr_t)r2, 0);
    }
    return NULL;
}

Test(task, join_deadline_and_second_joiner, .timeout = 30)
{
    weft_config cfg = { .workers = 2 };
    cr_assert_eq(weft_run(&cfg, join_timeout_main, NULL, NULL), 0);
}

static void *named_main(void *arg)
{
    weft_task t;
    weft_task_opts o = { .name = "a-rather-long-task-name-that-is-cut" };
    char buf[64];
    cr_assert_eq(weft_task_spawn(&t, square, (void *)2, &o), 0);
    int n = weft_task_name(t, buf, sizeof(buf));
    cr_assert_eq(n, WEFT_TASK_NAME_MAX - 1);
    cr_assert_eq(strncmp(buf, o.name, (size_t)n), 0);
    cr_assert_eq(weft_task_name(t, NULL, 0), -EINVAL);
    cr_assert_eq(weft_task_join(t, NULL, WEFT_NEVER), 0);
    cr_assert_eq(weft_task_name(t, buf, sizeof(buf)), -ESRCH);
    n = weft_task_name(weft_task_self(), buf, sizeof(buf));
    cr_assert_str_eq(buf, "weft-main");
    return NULL;
}

Test(task, names, .timeout = 30)
{
    cr_assert_eq(weft_run(NULL, named_main, NULL, NULL), 0);
}

/* Names live beside the TCBs, in the pools' side bytes: check every task's
 * across several slabs (a slab holds ~26,000 TCBs), on workers and from a
 * foreign thread, then again when the TCBs are reused with other names or
 * none (a reused TCB must not show its last task's name). */
enum { NAMES_N = 60000, NAMES_FOREIGN = 30000 };

static void name_of(char *buf, unsigned i, unsigned round)
{
    snprintf(buf, WEFT_TASK_NAME_MAX, "r%u-%u", round, i);
}

static void *check_own_name(void *arg)
{
    uintptr_t want = (uintptr_t)arg;   /* index + 1 | round << 32, 0: unnamed */
    char buf[WEFT_TASK_NAME_MAX], exp[WEFT_TASK_NAME_MAX] = "";
    if (want & 0xffffffffu)
        name_of(exp, (unsigned)(want & 0xffffffffu) - 1, (unsigned)(want >> 32));
    if ((want & 3) == 1)
        weft_yield();                  /* move between workers now and then */
    int n = weft_task_name(weft_task_self(), buf, sizeof(buf));
    return (void *)(uintptr_t)(n == (int)strlen(exp) && strcmp(buf, exp) == 0);
}

static void spawn_named(weft_task *t, unsigned n, unsigned round)
{
    for (unsigned i = 0; i < n; i++) {
        char name[WEFT_TASK_NAME_MAX];
        bool named = (i + round) % 3 != 0;
        name_of(name, i, round);
        weft_task_opts o = { .name = named ? name : NULL };
        uintptr_t want = named ? (i + 1) | (uintptr_t)round << 32 : 0;
        cr_assert_eq(weft_task_spawn(&t[i], check_own_name, (void *)want, &o), 0);
    }
}

static void check_named(weft_task *t, unsigned n, unsigned round)
{
    unsigned bad = 0;
    for (unsigned i = 0; i < n; i++) {
        char buf[WEFT_TASK_NAME_MAX], exp[WEFT_TASK_NAME_MAX] = "";
        if ((i + round) % 3 != 0)
            name_of(exp, i, round);
        if (weft_task_name(t[i], buf, sizeof(buf)) != (int)strlen(exp) || strcmp(buf, exp))
            bad++;
        void *ok;
        cr_assert_eq(weft_task_join(t[i], &ok, WEFT_NEVER), 0);
        bad += ok == NULL;
    }
    cr_assert_eq(bad, 0, "%u wrong names in round %u", bad, round);
}

static void *foreign_names(void *arg)
{
    weft_task *t = arg;
    for (unsigned round = 0; round < 2; round++) {
        spawn_named(t, NAMES_FOREIGN, round + 10);
        check_named(t, NAMES_FOREIGN, round + 10);
    }
    return NULL;
}

static void *names_main(void *arg)
{
    static weft_task t[NAMES_N], ft[NAMES_FOREIGN];
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, foreign_names, ft), 0);
    for (unsigned round = 0; round < 3; round++) {
        spawn_named(t, NAMES_N, round);
        check_named(t, NAMES_N, round);
    }
    cr_assert_eq(pthread_join(th, NULL), 0);
    return NULL;
}

Test(task, names_beside_the_tcbs_across_slabs_and_reuse, .timeout = 120)
{
    weft_config cfg = { .workers = 4 };
    cr_assert_eq(weft_run(&cfg, names_main, NULL, NULL), 0);
}

/* A task with a big stack can use it; the default-size pool is not used. */
static void *deep(void *arg)
{
    volatile char buf[512 * 1024];
    for (size_t i = 0; i < sizeof(buf); i += 4096)
        buf[i] = (char)i;
    return (void *)(uintptr_t)buf[4096];
}

static void *big_stack_main(void *arg)
{
    weft_task t;
    weft_task_opts o = { .stack_size = 1024 * 1024 };
    void *r;
    cr_assert_eq(weft_task_spawn(&t, deep, NULL, &o), 0);
    cr_assert_eq(weft_task_join(t, &r, WEFT_NEVER), 0);
    cr_assert_eq((uintptr_t)r, (uintptr_t)(char)4096);
    return NULL;
}

Test(task, per_spawn_stack_size, .timeout = 30)
{
    cr_assert_eq(weft_run(NULL, big_stack_main, NULL, NULL), 0);
}

/* ---- many tasks ---------------------------------------------------------- */

static _Atomic uint64_t g_count;

static void *count_one(void *arg)
{
    atomic_fetch_add(&g_count, (uintptr_t)arg);
    return NULL;
}

/* Resident bytes of this process. */
static size_t rss_bytes(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    cr_assert(f);
    cr_assert_eq(fscanf(f, "%ld %ld", &pages, &resident), 2);
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void *million_main(void *arg)
{
    const uint64_t n = (uintptr_t)arg;
    weft_task *t = malloc(sizeof(*t) * n);
    cr_assert(t);
    memset(t, 0xff, sizeof(*t) * n);   /* resident before the count starts */
    size_t rss0 = rss_bytes();
    /* All spawned before any runs (one worker, no suspension in between):
     * an unstarted task holds no stack. */
    uint64_t failed = 0;
    for (uint64_t i = 0; i < n; i++)
        failed += weft_task_spawn(&t[i], count_one, (void *)1, NULL) != 0;
    cr_assert_eq(failed, 0);
    /* An unstarted task costs its TCB, one 64-byte line (task.h), and
     * nothing else: not a stack, not a page of its own. */
    size_t per_task = (rss_bytes() - rss0) / n;
    if (!TEST_SANITIZED && n >= 100000)
        cr_assert_leq(per_task, 72, "%zu resident bytes per unstarted task", per_task);
    weft_stats st;
    cr_assert_eq(weft_stats_get(&st), 0);
    cr_assert_lt(st.stacks_mapped, 300, "stacks mapped for unstarted tasks: %lu",
                 (unsigned long)st.stacks_mapped);
    for (uint64_t i = 0; i < n; i++)
        failed += weft_task_join(t[i], NULL, WEFT_NEVER) != 0;
    cr_assert_eq(failed, 0);
    free(t);
    return NULL;
}

Test(task, one_million_tasks, .timeout = 120)
{
    atomic_store(&g_count, 0);
    weft_config cfg = { .workers = 1 };
    const uint64_t n = test_scale(1000000);
    cr_assert_eq(weft_run(&cfg, million_main, (void *)(uintptr_t)n, NULL), 0);
    cr_assert_eq(atomic_load(&g_count), n);
    cfg.workers = 4;
    atomic_store(&g_count, 0);
    cr_assert_eq(weft_run(&cfg, million_main, (void *)(uintptr_t)n, NULL), 0);
    cr_assert_eq(atomic_load(&g_count), n);
}

/* A tree of nested spawns; each level yields and sleeps at random. */
static void *tree(void *arg)
{
    uintptr_t depth = (uintptr_t)arg;
    if (depth == 0) {
        atomic_fetch_add(&g_count, 1);
        if (rand() % 4 == 0)
            weft_yield();
        return (void *)1;
    }
    weft_task t[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(weft_task_spawn(&t[i], tree, (void *)(depth - 1), NULL), 0);
    uintptr_t sum = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        cr_assert_eq(weft_task_join(t[i], &r, WEFT_NEVER), 0);
        sum += (uintptr_t)r;
    }
    return (void *)sum;
}

Test(task, nested_spawns_many_workers, .timeout = 120)
{
    /* Yielding leaves let every task of the tree start before any ends;
     * under TSan each live task costs a fiber (~1 MiB of trace): smaller. */
    const uintptr_t depth = TEST_SANITIZED ? 5 : 7;
    for (unsigned workers = 1; workers <= 8; workers *= 2) {
        for (int iter = 0; iter < 5; iter++) {
            atomic_store(&g_count, 0);
            weft_config cfg = { .workers = workers };
            void *r;
            cr_assert_eq(weft_run(&cfg, tree, (void *)depth, &r), 0);
            cr_assert_eq((uintptr_t)r, 1u << (2 * depth));
            cr_assert_eq(atomic_load(&g_count), 1u << (2 * depth));
        }
    }
}

/* ---- stealing ------------------------------------------------------------ */

static void *burn(void *arg)
{
    int64_t until = weft_now() + 50000;
    while (weft_now() < until)
        ;
    atomic_fetch_add(&g_count, 1);
    return NULL;
}

static void *steal_main(void *arg)
{
    weft_task t[400];
    for (int i = 0; i < 400; i++)
        cr_assert_eq(weft_task_spawn(&t[i], burn, NULL, NULL), 0);
    for (int i = 0; i < 400; i++)
        cr_assert_eq(weft_task_join(t[i], NULL, WEFT_NEVER), 0);
    weft_stats st;
    cr_assert_eq(weft_stats_get(&st), 0);
    return (void *)(uintptr_t)st.steals;
}

Test(sched, idle_workers_steal, .timeout = 60)
{
    atomic_store(&g_count, 0);
    weft_config cfg = { .workers = 4 };
    void *steals;
    cr_assert_eq(weft_run(&cfg, steal_main, NULL, &steals), 0);
    cr_assert_eq(atomic_load(&g_count), 400);
    cr_assert_gt((uintptr_t)steals, 0, "no task was stolen");
}

/* ---- yield ---------------------------------------------------------------- */

struct alt { _Atomic int *last; int me; int rounds; int bad; };

static void *alternate(void *arg)
{
    struct alt *a = arg;
    for (int i = 0; i < a->rounds; i++) {
        if (i > 0 && atomic_load(a->last) == a->me)
            a->bad++;
        atomic_store(a->last, a->me);
        weft_yield();
    }
    return NULL;
}

static void *yield_main(void *arg)
{
    _Atomic int last = -1;
    struct alt a = { &last, 0, 1000, 0 }, b = { &last, 1, 1000, 0 };
    weft_task ta, tb;
    cr_assert_eq(weft_task_spawn(&ta, alternate, &a, NULL), 0);
    cr_assert_eq(weft_task_spawn(&tb, alternate, &b, NULL), 0);
    cr_assert_eq(weft_task_join(ta, NULL, WEFT_NEVER), 0);
    cr_assert_eq(weft_task_join(tb, NULL, WEFT_NEVER), 0);
    cr_assert_eq(a.bad + b.bad, 0, "yield did not let the other task run");
    return NULL;
}

Test(task, yield_alternates_on_one_worker, .timeout = 30)
{
    weft_config cfg = { .workers = 1 };
    cr_assert_eq(weft_run(&cfg, yield_main, NULL, NULL), 0);
}
