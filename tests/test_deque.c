/* tests/test_deque.c - the per-worker Chase-Lev deque (sched/deque.h), alone.
 *
 *   single thread : API semantics, capacity edges, wrap-around against a
 *                   reference model, every op sequence of length 8 at capacity 2/4
 *   two threads   : owner take vs thief steal on the last item, 200k times
 *   1 + k threads : owner push/take/steal + 3 or 7 thieves; every item must come
 *                   out exactly once
 *
 * Randomised tests print their seed on failure; set WEFT_TEST_SEED=<n> to rerun
 * the owner's decisions exactly (thread interleavings are not reproducible).
 *
 * Criterion with --full-stats (as ctest runs it) sends every PASSING assertion
 * to the runner over IPC, so loops of 10^5+ checks use CHECK (fails only) and
 * end with one summarising cr_assert.
 */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <criterion/criterion.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sched/deque.h"

#define CHECK(cond, ...)                \
    do {                                \
        if (__builtin_expect(!(cond), 0)) \
            cr_assert_fail(__VA_ARGS__); \
    } while (0)

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifndef UNDER_TSAN
#define UNDER_TSAN 0
#endif

/* ------------------------------------------------------------------------- */
/* helpers                                                                   */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* splitmix64: tiny, seedable, per-thread state. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t base_seed(void)
{
    const char *env = getenv("WEFT_TEST_SEED");
    if (env != NULL && *env != '\0')
        return strtoull(env, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((uint64_t)ts.tv_sec * 1000000007ull) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
}

static int online_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        return CPU_COUNT(&set);
    return 1;
}

/* Spin briefly, then yield: the stress tests run more threads than cores. */
static void wait_for(_Atomic uint64_t *v, uint64_t want)
{
    for (unsigned spins = 0; atomic_load_explicit(v, memory_order_acquire) != want; spins++) {
        if (spins < 2000)
            cpu_relax();
        else
            sched_yield();
    }
}

/* A distinct, never-dereferenced, non-NULL item. */
static inline void *token(uint64_t k) { return (void *)(uintptr_t)(k + 1); }

static int64_t raw_top(struct weft__deque *q) { return atomic_load_explicit(&q->top, memory_order_relaxed); }
static int64_t raw_bottom(struct weft__deque *q) { return atomic_load_explicit(&q->bottom, memory_order_relaxed); }

/* ------------------------------------------------------------------------- */
/* reference model: a plain array, obviously right                           */

#define MODEL_MAX 64
struct model {
    void *v[MODEL_MAX]; /* v[0] is the top (oldest), v[n-1] the bottom (newest) */
    int n, cap;
};

static bool model_push(struct model *m, void *x)
{
    if (m->n == m->cap)
        return false;
    m->v[m->n++] = x;
    return true;
}

static void *model_take(struct model *m)
{
    return m->n == 0 ? NULL : m->v[--m->n];
}

static int model_steal(struct model *m, void **out)
{
    if (m->n == 0)
        return -EAGAIN;
    *out = m->v[0];
    memmove(&m->v[0], &m->v[1], (size_t)(m->n - 1) * sizeof m->v[0]);
    m->n--;
    return 0;
}

enum op { OP_PUSH, OP_TAKE, OP_STEAL };
static const char *const op_name[] = { "push", "take", "steal" };

/* One op on both; CHECKs that they agree, including len() and the raw index
 * invariants (single-threaded, so these are exact). ctx names the caller. */
static void step(struct weft__deque *q, struct model *m, enum op op, uint64_t *next_token,
                 const char *ctx, uint64_t a, uint64_t b)
{
    switch (op) {
    case OP_PUSH: {
        void *x = token((*next_token)++);
        bool got = weft__deque_push(q, x), want = model_push(m, x);
        CHECK(got == want, "%s %" PRIu64 "/%" PRIu64 ": push returned %d, model %d", ctx, a, b, got, want);
        break;
    }
    case OP_TAKE: {
        void *got = weft__deque_take(q), *want = model_take(m);
        CHECK(got == want, "%s %" PRIu64 "/%" PRIu64 ": take returned %p, model %p", ctx, a, b, got, want);
        break;
    }
    case OP_STEAL: {
        void *got = (void *)0x1, *want = (void *)0x2;
        int rc = weft__deque_steal(q, &got), wrc = model_steal(m, &want);
        CHECK(rc == wrc, "%s %" PRIu64 "/%" PRIu64 ": steal returned %d, model %d", ctx, a, b, rc, wrc);
        CHECK(rc != 0 || got == want, "%s %" PRIu64 "/%" PRIu64 ": steal got %p, model %p", ctx, a, b, got, want);
        CHECK(rc == 0 || got == (void *)0x1, "%s: failed steal wrote *out", ctx);
        break;
    }
    }
    int64_t t = raw_top(q), bo = raw_bottom(q);
    CHECK(bo - t == m->n, "%s %" PRIu64 "/%" PRIu64 ": after %s bottom-top = %" PRId64 ", model %d",
          ctx, a, b, op_name[op], bo - t, m->n);
    CHECK(weft__deque_len(q) == m->n, "%s %" PRIu64 "/%" PRIu64 ": len %" PRId64 ", model %d",
          ctx, a, b, weft__deque_len(q), m->n);
}

/* ------------------------------------------------------------------------- */
/* 1. single-thread semantics                                                */

Test(deque, init_rejects_bad_capacity, .timeout = 10)
{
    static const uint32_t bad[] = { 0, 1, 3, 5, 6, 7, 12, 100, 1000, (1u << 20) + 1, (1u << 31) + 1, UINT32_MAX };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct weft__deque q;
        cr_assert_eq(weft__deque_init(&q, bad[i]), -EINVAL, "capacity %u accepted", bad[i]);
        cr_assert_null(q.slots, "capacity %u: slots left non-NULL after -EINVAL", bad[i]);
        weft__deque_destroy(&q); /* harmless after a failed init */
    }
}

Test(deque, init_accepts_powers_of_two, .timeout = 10)
{
    for (uint32_t cap = 2; cap <= (1u << 16); cap <<= 1) {
        struct weft__deque q;
        cr_assert_eq(weft__deque_init(&q, cap), 0, "capacity %u refused", cap);
        cr_assert_eq(q.mask, (int64_t)cap - 1);
        cr_assert_eq(weft__deque_len(&q), 0);
        weft__deque_destroy(&q);
        cr_assert_null(q.slots);
    }
}

Test(deque, layout_top_and_bottom_on_separate_lines, .timeout = 10)
{
    cr_assert_geq(offsetof(struct weft__deque, bottom) - offsetof(struct weft__deque, top), 64);
    cr_assert_eq(_Alignof(struct weft__deque) % 64, 0);
    cr_assert_eq(sizeof(struct weft__deque) % 64, 0);
}

Test(deque, empty, .timeout = 10)
{
    struct weft__deque q;
    cr_assert_eq(weft__deque_init(&q, 8), 0);
    void *out = (void *)0x1;
    for (int i = 0; i < 3; i++) {
        cr_assert_null(weft__deque_take(&q));
        cr_assert_eq(weft__deque_steal(&q, &out), -EAGAIN);
        cr_assert_eq(out, (void *)0x1, "failed steal wrote *out");
        cr_assert_eq(weft__deque_len(&q), 0);
    }
    weft__deque_destroy(&q);
}

/* take() on an empty deque decrements bottom below top before it looks; the
 * indices must come back exactly (unsigned indices break here). */
Test(deque, take_on_empty_restores_indices, .timeout = 10)
{
    struct weft__deque q;
    cr_assert_eq(weft__deque_init(&q, 4), 0);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5; i++) {
            cr_assert_null(weft__deque_take(&q));
            cr_assert_eq(raw_bottom(&q), raw_top(&q), "round %d: bottom %" PRId64 " top %" PRId64,
                         round, raw_bottom(&q), raw_top(&q));
        }
        cr_assert(weft__deque_push(&q, token(1)));
        cr_assert_eq(weft__deque_len(&q), 1);
        void *out = NULL;
        cr_assert_eq(weft__deque_steal(&q, &out), 0);
        cr_assert_eq(out, token(1));
        cr_assert_null(weft__deque_take(&q));
        cr_assert_eq(weft__deque_steal(&q, &out), -EAGAIN);
    }
    cr_assert_eq(raw_top(&q), 3);
    cr_assert_eq(raw_bottom(&q), 3);
    weft__deque_destroy(&q);
}

Test(deque, one_item, .timeout = 10)
{
    struct weft__deque q;
    void *out = NULL;
    cr_assert_eq(weft__deque_init(&q, 2), 0);

    cr_assert(weft__deque_push(&q, token(7)));
    cr_assert_eq(weft__deque_len(&q), 1);
    cr_assert_eq(weft__deque_take(&q), token(7));
    cr_assert_null(weft__deque_take(&q));
    cr_assert_eq(weft__deque_steal(&q, &out), -EAGAIN);

    cr_assert(weft__deque_push(&q, token(8)));
    cr_assert_eq(weft__deque_steal(&q, &out), 0);
    cr_assert_eq(out, token(8));
    cr_assert_null(weft__deque_take(&q));
    cr_assert_eq(weft__deque_steal(&q, &out), -EAGAIN);
    cr_assert_eq(weft__deque_len(&q), 0);
    weft__deque_destroy(&q);
}

Test(deque, take_is_lifo, .timeout = 10)
{
    struct weft__deque q;
    cr_assert_eq(weft__deque_init(&q, 64), 0);
    for (uint64_t i = 0; i < 64; i++)
        cr_assert(weft__deque_push(&q, token(i)));
    for (uint64_t i = 64; i-- > 0;) {
        cr_assert_eq(weft__deque_take(&q), token(i));
        cr_assert_eq(weft__deque_len(&q), (int64_t)i);
    }
    cr_assert_null(weft__deque_take(&q));
    weft__deque_destroy(&q);
}

Test(deque, steal_is_fifo, .timeout = 10)
{
    struct weft__deque q;
    cr_assert_eq(weft__deque_init(&q, 64), 0);
    for (uint64_t i = 0; i < 64; i++)
        cr_assert(weft__deque_push(&q, token(i)));
    for (uint64_t i = 0; i < 64; i++) {
        void *out = NULL;
        cr_assert_eq(weft__deque_steal(&q, &out), 0);
        cr_assert_eq(out, token(i));
        cr_assert_eq(weft__deque_len(&q), (int64_t)(63 - i));
    }
    void *out = NULL;
    cr_assert_eq(weft__deque_steal(&q, &out), -EAGAIN);
    weft__deque_destroy(&q);
}

/* Both ends at once: steal takes the oldest, take the newest. */
Test(deque, mixed_ends, .timeout = 10)
{
    struct weft__deque q;
    void *out = NULL;
    cr_assert_eq(weft__deque_init(&q, 4), 0);
    for (uint64_t i = 0; i < 4; i++)
        cr_assert(weft__deque_push(&q, token(i)));
    cr_assert_eq(weft__deque_steal(&q, &out), 0);
    cr_assert_eq(out, token(0));
    cr_assert_eq(weft__deque_take(&q), token(3));
    cr_assert_eq(weft__deque_steal(&q, &out), 0);
    cr_assert_eq(out, token(1));
    cr_assert_eq(weft__deque_take(&q), token(2));
    cr_assert_null(weft__deque_take(&q));
    weft__deque_destroy(&q);
}

Test(deque, full_at_exactly_capacity, .timeout = 10)
{
    for (uint32_t cap = 2; cap <= 4096; cap <<= 1) {
        struct weft__deque q;
        void *out = NULL;
        uint64_t k = 0;
        cr_assert_eq(weft__deque_init(&q, cap), 0);
        for (int lap = 0; lap < 3; lap++) { /* each lap starts one slot further round the ring */
            uint64_t pushed = 0;
            while (weft__deque_len(&q) < (int64_t)cap) {
                CHECK(weft__deque_push(&q, token(k++)), "cap %u lap %d: push %" PRIu64 " refused", cap, lap, pushed);
                pushed++;
            }
            cr_assert_eq(pushed, lap == 0 ? cap : cap - 1, "cap %u lap %d", cap, lap);
            cr_assert_not(weft__deque_push(&q, token(999999)), "cap %u lap %d: push beyond capacity", cap, lap);
            cr_assert_eq(weft__deque_len(&q), (int64_t)cap);
            cr_assert_eq(raw_bottom(&q) - raw_top(&q), (int64_t)cap);
            /* The refused push changed nothing: the newest is still the last accepted. */
            cr_assert_eq(weft__deque_take(&q), token(k - 1), "cap %u lap %d", cap, lap);
            cr_assert(weft__deque_push(&q, token(k - 1)), "cap %u: push after take refused", cap);
            cr_assert_not(weft__deque_push(&q, token(999999)));
            /* Freeing the top end makes room too. */
            cr_assert_eq(weft__deque_steal(&q, &out), 0);
            cr_assert(weft__deque_push(&q, token(k++)), "cap %u: push after steal refused", cap);
            cr_assert_not(weft__deque_push(&q, token(999999)));
            /* Leave one item, then shift the offset by one slot. */
            while (weft__deque_len(&q) > 1)
                CHECK(weft__deque_steal(&q, &out) == 0, "cap %u: drain", cap);
            cr_assert(weft__deque_push(&q, token(k++)));
            cr_assert_eq(weft__deque_steal(&q, &out), 0);
            cr_assert_eq(raw_top(&q) % cap, (int64_t)(lap + 1) % cap, "cap %u lap %d: offset", cap, lap);
        }
        weft__deque_destroy(&q);
    }
}

/* 100k random ops against the model, capacity 2, 4 and 8: the indices wrap
 * the ring tens of thousands of times; push sees "full" and take/steal "empty"
 * constantly. */
static void wraparound_vs_model(uint32_t cap, uint64_t ops)
{
    uint64_t seed = base_seed() ^ cap, rng = seed, next = 0;
    struct weft__deque q;
    struct model m = { .cap = (int)cap };
    cr_assert_eq(weft__deque_init(&q, cap), 0);
    char ctx[64];
    snprintf(ctx, sizeof ctx, "cap %u seed %" PRIu64 " op", cap, seed);
    for (uint64_t i = 0; i < ops; i++) {
        uint64_t r = rng_next(&rng);
        /* Bias the mix per 1024-op phase so the deque spends time both full and empty. */
        unsigned phase = (unsigned)((i >> 10) % 3), pick = (unsigned)(r % 100);
        unsigned push_pct = phase == 0 ? 34 : phase == 1 ? 60 : 20;
        enum op op = pick < push_pct ? OP_PUSH : (r >> 32) & 1 ? OP_TAKE : OP_STEAL;
        step(&q, &m, op, &next, ctx, i, ops);
    }
    /* Drain: the remaining contents must match too. */
    while (m.n > 0)
        step(&q, &m, OP_STEAL, &next, ctx, ops, ops);
    cr_assert_gt(raw_top(&q), 1000 * (int64_t)cap, "cap %u: ring wrapped only %" PRId64 " times",
                 cap, raw_top(&q) / cap);
    weft__deque_destroy(&q);
}

Test(deque, wraparound_vs_model_cap2, .timeout = 30) { wraparound_vs_model(2, 100000); }
Test(deque, wraparound_vs_model_cap4, .timeout = 30) { wraparound_vs_model(4, 100000); }
Test(deque, wraparound_vs_model_cap8, .timeout = 30) { wraparound_vs_model(8, 100000); }

/* ------------------------------------------------------------------------- */
/* 4. exhaustive: every op sequence of length 8 at capacity 2 (and 4)        */

/* Checking after every op of every length-8 sequence also checks every
 * shorter sequence (each is a prefix of one). Each sequence runs from four
 * starting offsets (top = bottom = 0..3 after push+steal pairs), so the same
 * sequence meets the ring at each slot. 3^8 * 4 = 26244 runs per capacity. */
static void exhaustive(uint32_t cap)
{
    enum { LEN = 8, SEQS = 6561 /* 3^8 */, OFFSETS = 4 };
    uint64_t checked = 0;
    char ctx[64];
    for (int off = 0; off < OFFSETS; off++) {
        for (uint32_t s = 0; s < SEQS; s++) {
            struct weft__deque q;
            struct model m = { .cap = (int)cap };
            uint64_t next = 0;
            void *out;
            CHECK(weft__deque_init(&q, cap) == 0, "init");
            for (int i = 0; i < off; i++) {
                CHECK(weft__deque_push(&q, token(next++)), "offset push");
                CHECK(weft__deque_steal(&q, &out) == 0, "offset steal");
            }
            snprintf(ctx, sizeof ctx, "cap %u offset %d seq %u step", cap, off, s);
            uint32_t code = s;
            for (int i = 0; i < LEN; i++, code /= 3) {
                step(&q, &m, (enum op)(code % 3), &next, ctx, (uint64_t)i, LEN);
                checked++;
            }
            while (m.n > 0)
                step(&q, &m, OP_STEAL, &next, ctx, LEN, LEN);
            CHECK(weft__deque_take(&q) == NULL, "%s: not empty at the end", ctx);
            weft__deque_destroy(&q);
        }
    }
    cr_assert_eq(checked, (uint64_t)OFFSETS * SEQS * LEN);
}

Test(deque, exhaustive_len8_cap2, .timeout = 30) { exhaustive(2); }
Test(deque, exhaustive_len8_cap4, .timeout = 30) { exhaustive(4); }

/* ------------------------------------------------------------------------- */
/* 2. owner take vs thief steal on the last item                             */

#define RACE_ROUNDS 200000u

struct race {
    struct weft__deque q;
    _Atomic uint64_t go;    /* round the thief may start (owner has pushed) */
    _Atomic uint64_t done;  /* last round the thief finished */
    uint64_t seed;
    /* written by the thief before done, read by the owner after it */
    void *thief_item;
    int thief_rc;
    uint64_t thief_busy;    /* -EBUSY seen (lost the CAS) */
};

static void *race_thief(void *arg)
{
    struct race *r = arg;
    uint64_t rng = r->seed ^ 0x7468696566ull;
    for (uint64_t round = 1; round <= RACE_ROUNDS; round++) {
        unsigned jitter = (unsigned)(rng_next(&rng) % 48);
        wait_for(&r->go, round);                       /* load-acquire: the push is visible */
        for (unsigned i = 0; i < jitter; i++)
            cpu_relax();
        void *item = NULL;
        int rc;
        /* -EBUSY means someone claimed the item: retrying must then see empty. */
        while ((rc = weft__deque_steal(&r->q, &item)) == -EBUSY)
            r->thief_busy++;
        r->thief_item = rc == 0 ? item : NULL;
        r->thief_rc = rc;
        atomic_store_explicit(&r->done, round, memory_order_release); /* publishes thief_item/rc */
    }
    return NULL;
}

Test(deque, race_last_item_owner_vs_thief, .timeout = 60)
{
    static struct race r; /* 64-byte aligned via the deque member */
    memset(&r, 0, sizeof r);
    r.seed = base_seed();
    cr_assert_eq(weft__deque_init(&r.q, 2), 0); /* capacity 2: the slot alternates */
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, race_thief, &r), 0);

    uint64_t rng = r.seed, owner_wins = 0, thief_wins = 0;
    for (uint64_t round = 1; round <= RACE_ROUNDS; round++) {
        void *item = token(round);
        unsigned jitter = (unsigned)(rng_next(&rng) % 48);
        CHECK(weft__deque_push(&r.q, item), "seed %" PRIu64 " round %" PRIu64 ": push refused", r.seed, round);
        atomic_store_explicit(&r.go, round, memory_order_release);
        for (unsigned i = 0; i < jitter; i++)
            cpu_relax();
        void *mine = weft__deque_take(&r.q);
        wait_for(&r.done, round);
        void *theirs = r.thief_item;
        CHECK(mine == NULL || mine == item, "seed %" PRIu64 " round %" PRIu64 ": take returned %p, pushed %p",
              r.seed, round, mine, item);
        CHECK(r.thief_rc == 0 || r.thief_rc == -EAGAIN, "seed %" PRIu64 " round %" PRIu64 ": steal rc %d",
              r.seed, round, r.thief_rc);
        CHECK(theirs == NULL || theirs == item, "seed %" PRIu64 " round %" PRIu64 ": steal got %p, pushed %p",
              r.seed, round, theirs, item);
        CHECK(!(mine != NULL && theirs != NULL), "seed %" PRIu64 " round %" PRIu64 ": BOTH got the item",
              r.seed, round);
        CHECK(!(mine == NULL && theirs == NULL), "seed %" PRIu64 " round %" PRIu64 ": NEITHER got the item",
              r.seed, round);
        CHECK(raw_top(&r.q) == (int64_t)round && raw_bottom(&r.q) == (int64_t)round,
              "seed %" PRIu64 " round %" PRIu64 ": top %" PRId64 " bottom %" PRId64 " after the race",
              r.seed, round, raw_top(&r.q), raw_bottom(&r.q));
        owner_wins += mine != NULL;
        thief_wins += theirs != NULL;
    }
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(owner_wins + thief_wins, RACE_ROUNDS);
    cr_log_info("race: owner won %" PRIu64 ", thief won %" PRIu64 ", thief lost a CAS %" PRIu64 " times (seed %" PRIu64 ")",
                owner_wins, thief_wins, r.thief_busy, r.seed);
    /* With two CPUs both sides must win sometimes, or the race was never run. */
    if (online_cpus() >= 2) {
        cr_assert_gt(owner_wins, 0, "seed %" PRIu64 ": the owner never won", r.seed);
        cr_assert_gt(thief_wins, 0, "seed %" PRIu64 ": the thief never won", r.seed);
    }
    weft__deque_destroy(&r.q);
}

/* ------------------------------------------------------------------------- */
/* 3. stress: 1 owner + k thieves, every item out exactly once                */

#define MAX_THIEVES 7

struct stress {
    struct weft__deque q;
    _Atomic uint32_t *count; /* the items are &count[i]; consuming one adds 1 */
    uint64_t n;
    int64_t cap;
    _Atomic bool stop;
    _Atomic uint64_t bad;    /* thief saw something impossible (first one in bad_what) */
    _Atomic uint64_t bad_what;
};

struct thief {
    pthread_t th;
    struct stress *s;
    uint64_t stolen, busy;
};

static inline bool consume(struct stress *s, void *item)
{
    _Atomic uint32_t *c = item;
    if (c < s->count || c >= s->count + s->n)
        return false;
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
    return true;
}

static void flag_bad(struct stress *s, uint64_t what)
{
    uint64_t zero = 0;
    atomic_compare_exchange_strong(&s->bad_what, &zero, what);
    atomic_fetch_add(&s->bad, 1);
}

static void *stress_thief(void *arg)
{
    struct thief *t = arg;
    struct stress *s = t->s;
    unsigned idle = 0;
    while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
        void *item = NULL;
        int rc = weft__deque_steal(&s->q, &item);
        if (rc == 0) {
            if (!consume(s, item))
                flag_bad(s, 1);                  /* 1: a pointer that was never pushed */
            t->stolen++;
            idle = 0;
        } else if (rc == -EBUSY) {
            t->busy++;
        } else if (rc == -EAGAIN) {
            int64_t n = weft__deque_len(&s->q);
            if (n < 0 || n > s->cap)
                flag_bad(s, 2);                  /* 2: len() out of [0, capacity] */
            if (++idle < 64)
                cpu_relax();
            else
                sched_yield(), idle = 0;         /* more threads than cores */
        } else {
            flag_bad(s, 3);                      /* 3: an undocumented return code */
        }
    }
    return NULL;
}

static void stress(int nthieves, uint32_t cap, uint64_t items, int rounds)
{
    static struct stress s; /* static: 64-byte alignment honoured */
    struct thief th[MAX_THIEVES];
    uint64_t base = base_seed();

    for (int round = 0; round < rounds; round++) {
        uint64_t seed = base + (uint64_t)round, rng = seed;
        memset(&s, 0, sizeof s);
        s.n = items;
        s.cap = cap;
        s.count = calloc(items, sizeof *s.count);
        cr_assert_not_null(s.count);
        cr_assert_eq(weft__deque_init(&s.q, cap), 0);
        for (int i = 0; i < nthieves; i++) {
            th[i] = (struct thief){ .s = &s };
            cr_assert_eq(pthread_create(&th[i].th, NULL, stress_thief, &th[i]), 0);
        }

        /* The owner. The mix changes every 4096 decisions: near-empty phases
         * (last-item races), balanced ones, and push-heavy ones that fill the
         * ring and take the overflow path. */
        uint64_t next = 0, owner_took = 0, overflow_moved = 0, fulls = 0, self_steals = 0, bad_owner = 0;
        unsigned push_pct = 50;
        for (uint64_t d = 0; next < items; d++) {
            uint64_t r = rng_next(&rng);
            if ((d & 4095) == 0) {
                static const unsigned mix[] = { 45, 52, 60, 75, 95 };
                push_pct = mix[(r >> 40) % 5];
            }
            unsigned pick = (unsigned)(r % 100);
            if (pick < push_pct) {
                if (weft__deque_push(&s.q, (void *)&s.count[next])) {
                    next++;
                    continue;
                }
                /* Full: move about half out with single steals, as the worker
                 * will when it spills to the inject queue (no batch steal). */
                fulls++;
                int64_t half = weft__deque_len(&s.q) / 2;
                for (int64_t k = 0; k < half; k++) {
                    void *item = NULL;
                    int rc = weft__deque_steal(&s.q, &item);
                    if (rc == 0) {
                        bad_owner += !consume(&s, item);
                        overflow_moved++;
                    } else if (rc == -EAGAIN) {
                        break;
                    }
                }
            } else if (pick < push_pct + 2) {
                void *item = NULL;
                if (weft__deque_steal(&s.q, &item) == 0) {
                    bad_owner += !consume(&s, item);
                    self_steals++;
                }
            } else {
                void *item = weft__deque_take(&s.q);
                if (item != NULL) {
                    bad_owner += !consume(&s, item);
                    owner_took++;
                }
            }
        }
        void *item;
        while ((item = weft__deque_take(&s.q)) != NULL) { /* drain: take NULL = empty for good */
            bad_owner += !consume(&s, item);
            owner_took++;
        }
        atomic_store_explicit(&s.stop, true, memory_order_release);
        uint64_t stolen = 0, busy = 0;
        for (int i = 0; i < nthieves; i++) {
            cr_assert_eq(pthread_join(th[i].th, NULL), 0);
            stolen += th[i].stolen;
            busy += th[i].busy;
        }

        /* Every item exactly once. */
        uint64_t lost = 0, dup = 0, first_wrong = UINT64_MAX;
        for (uint64_t i = 0; i < items; i++) {
            uint32_t c = atomic_load_explicit(&s.count[i], memory_order_relaxed);
            if (c != 1 && first_wrong == UINT64_MAX)
                first_wrong = i;
            lost += c == 0;
            dup += c > 1 ? c - 1 : 0;
        }
        cr_assert_eq(bad_owner, 0, "seed %" PRIu64 ": owner got %" PRIu64 " foreign pointers", seed, bad_owner);
        cr_assert_eq(atomic_load(&s.bad), 0, "seed %" PRIu64 ": thieves saw %" PRIu64 " bad results (first kind %" PRIu64 ")",
                     seed, atomic_load(&s.bad), atomic_load(&s.bad_what));
        cr_assert(lost == 0 && dup == 0,
                  "seed %" PRIu64 " (%d thieves, cap %u): %" PRIu64 " items lost, %" PRIu64 " duplicated, first wrong #%" PRIu64 " count %u",
                  seed, nthieves, cap, lost, dup, first_wrong,
                  first_wrong == UINT64_MAX ? 1u : atomic_load(&s.count[first_wrong]));
        cr_assert_eq(owner_took + self_steals + overflow_moved + stolen, items,
                     "seed %" PRIu64 ": %" PRIu64 " owner + %" PRIu64 " self-steal + %" PRIu64 " overflow + %" PRIu64 " stolen != %" PRIu64,
                     seed, owner_took, self_steals, overflow_moved, stolen, items);
        cr_assert_eq(raw_top(&s.q), raw_bottom(&s.q), "seed %" PRIu64 ": not empty at the end", seed);
        if (online_cpus() >= 2)
            cr_assert_gt(stolen, 0, "seed %" PRIu64 ": the thieves never stole anything", seed);
        cr_log_info("stress %d thieves cap %u seed %" PRIu64 ": %" PRIu64 " items: owner took %" PRIu64
                    ", self-steal %" PRIu64 ", overflow moved %" PRIu64 " (%" PRIu64 " fulls), thieves stole %" PRIu64
                    " (lost %" PRIu64 " CASes)",
                    nthieves, cap, seed, items, owner_took, self_steals, overflow_moved, fulls, stolen, busy);

        weft__deque_destroy(&s.q);
        free((void *)s.count);
    }
}

/* ~1M items per test natively; TSan runs every atomic through its runtime,
 * so it gets fewer (it still sees every kind of interleaving many times). */
#if UNDER_TSAN
#define STRESS_ITEMS 100000u
#else
#define STRESS_ITEMS 250000u
#endif

Test(deque, stress_3_thieves_cap8, .timeout = 60) { stress(3, 8, STRESS_ITEMS, 4); }
Test(deque, stress_3_thieves_cap256, .timeout = 60) { stress(3, 256, STRESS_ITEMS, 4); }
Test(deque, stress_7_thieves_cap8, .timeout = 60) { stress(7, 8, STRESS_ITEMS, 4); }
Test(deque, stress_7_thieves_cap256, .timeout = 60) { stress(7, 256, STRESS_ITEMS, 4); }
