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
        if (spins < 128)
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
/* 2. owner take vs thief steal, lined up round by round                      */

/* Each round: the owner pushes `items` items (1 or 2), releases the thief,
 * waits a random few pauses and takes once; the thief waits a random few
 * pauses and steals until the deque is empty (retrying on -EBUSY, which means
 * someone else claimed the item it aimed at). Every item must come out once.
 *   1 item : take's last-item CAS against steal's CAS.
 *   2 items: take claims index 1 WITHOUT a CAS while the thief steals index 0
 *     and then aims at index 1: the StoreLoad case of deque.h (c). Make take's
 *     store of bottom relaxed and both get index 1 (the 2-item test and the
 *     stress tests catch that on x86; the 1-item test cannot, it always CASes).
 */

#define RACE_MAX_ITEMS 2
#define RACE_MAX_THIEVES 1

struct race_thief {
    pthread_t th;
    struct race *r;
    uint64_t rng;
    /* written by the thief before its done store, read by the owner after */
    void *got[RACE_MAX_ITEMS];
    int ngot, rc;
    uint64_t busy;               /* -EBUSY seen */
    _Alignas(64) _Atomic uint64_t done; /* last round this thief finished */
};

struct race {
    struct weft__deque q;
    _Atomic uint64_t go;         /* round the thieves may start (owner has pushed) */
    uint64_t rounds;
    struct race_thief t[RACE_MAX_THIEVES];
};

static void *race_thief(void *arg)
{
    struct race_thief *me = arg;
    struct race *r = me->r;
    for (uint64_t round = 1; round <= r->rounds; round++) {
        unsigned jitter = (unsigned)(rng_next(&me->rng) % 16);
        wait_for(&r->go, round);
        for (unsigned i = 0; i < jitter; i++)
            cpu_relax();
        void *item = NULL;
        int rc;
        me->ngot = 0;
        while ((rc = weft__deque_steal(&r->q, &item)) != -EAGAIN) {
            if (rc == -EBUSY) {
                me->busy++;
            } else if (rc != 0 || me->ngot == RACE_MAX_ITEMS) {
                break;                   /* impossible: reported by the owner */
            } else {
                me->got[me->ngot++] = item;
            }
        }
        me->rc = rc;
        atomic_store_explicit(&me->done, round, memory_order_release); /* publishes got/rc */
    }
    return NULL;
}

static void race(int nitems, int nthieves, uint64_t rounds)
{
    static struct race r; /* static: the deque's 64-byte alignment is honoured */
    memset(&r, 0, sizeof r);
    uint64_t seed = base_seed(), rng = seed;
    r.rounds = rounds;
    cr_assert_eq(weft__deque_init(&r.q, 2), 0); /* capacity 2: the slots alternate */
    for (int i = 0; i < nthieves; i++) {
        r.t[i].r = &r;
        r.t[i].rng = seed ^ (0x7468696566ull * (uint64_t)(i + 1));
        cr_assert_eq(pthread_create(&r.t[i].th, NULL, race_thief, &r.t[i]), 0);
    }

    uint64_t owner_got = 0, thief_got = 0, busy = 0;
    for (uint64_t round = 1; round <= rounds; round++) {
        void *pushed[RACE_MAX_ITEMS];
        for (int k = 0; k < nitems; k++) {
            pushed[k] = token(round * 2 + (uint64_t)k);
            CHECK(weft__deque_push(&r.q, pushed[k]), "seed %" PRIu64 " round %" PRIu64 ": push refused", seed, round);
        }
        unsigned jitter = (unsigned)(rng_next(&rng) % 64);
        atomic_store_explicit(&r.go, round, memory_order_release);
        for (unsigned i = 0; i < jitter; i++)
            cpu_relax();

        void *got[1 + RACE_MAX_THIEVES * RACE_MAX_ITEMS + RACE_MAX_ITEMS];
        int n = 0;
        if ((got[n] = weft__deque_take(&r.q)) != NULL)
            n++, owner_got++;
        for (int i = 0; i < nthieves; i++) {
            wait_for(&r.t[i].done, round);
            CHECK(r.t[i].rc == -EAGAIN, "seed %" PRIu64 " round %" PRIu64 ": steal rc %d after %d items",
                  seed, round, r.t[i].rc, r.t[i].ngot);
            for (int j = 0; j < r.t[i].ngot; j++)
                got[n++] = r.t[i].got[j], thief_got++;
        }
        void *left;
        while (n < (int)(sizeof got / sizeof got[0]) && (left = weft__deque_take(&r.q)) != NULL)
            got[n++] = left, owner_got++;   /* a take after everyone is done: not part of the race */

        /* Exactly once: n == nitems, each pushed item present once. */
        CHECK(n == nitems, "seed %" PRIu64 " round %" PRIu64 ": %d items came out of %d pushed (%s)",
              seed, round, n, nitems, n > nitems ? "DUPLICATE: owner and a thief both got one" : "LOST");
        for (int k = 0; k < nitems; k++) {
            int seen = 0;
            for (int j = 0; j < n; j++)
                seen += got[j] == pushed[k];
            CHECK(seen == 1, "seed %" PRIu64 " round %" PRIu64 ": item %d came out %d times", seed, round, k, seen);
        }
        CHECK(raw_top(&r.q) == raw_bottom(&r.q), "seed %" PRIu64 " round %" PRIu64 ": top %" PRId64
              " bottom %" PRId64 " after the round", seed, round, raw_top(&r.q), raw_bottom(&r.q));
    }
    for (int i = 0; i < nthieves; i++) {
        cr_assert_eq(pthread_join(r.t[i].th, NULL), 0);
        busy += r.t[i].busy;
    }
    cr_assert_eq(owner_got + thief_got, (uint64_t)nitems * rounds);
    cr_log_info("race %d item(s) %d thief(s): owner got %" PRIu64 ", thieves got %" PRIu64
                ", a thief lost a CAS %" PRIu64 " times (seed %" PRIu64 ")",
                nitems, nthieves, owner_got, thief_got, busy, seed);
    /* With two CPUs both sides must win sometimes, or the race never ran. */
    if (online_cpus() >= 2) {
        cr_assert_gt(owner_got, 0, "seed %" PRIu64 ": the owner never won", seed);
        cr_assert_gt(thief_got, 0, "seed %" PRIu64 ": the thieves never won", seed);
    }
    weft__deque_destroy(&r.q);
}

Test(deque, race_last_item_owner_vs_thief, .timeout = 60) { race(1, 1, 200000); }
Test(deque, race_two_items_owner_vs_greedy_thief, .timeout = 60) { race(2, 1, 200000); }

/* ------------------------------------------------------------------------- */
/* 3. stress: 1 owner + k thieves, every item out exactly once                */

#define MAX_THIEVES 7

/* An item is a task stand-in. value and taken_by are PLAIN fields: the owner
 * writes value before push and only the deque orders that write before the
 * consumer's read, so a publication bug is a TSan report (and a value
 * mismatch); a duplicate is two plain writes of taken_by (a TSan report) and
 * count == 2. */
struct item {
    uint64_t value;
    uint32_t taken_by;
    _Atomic uint32_t count;
};

#define ITEM_MAGIC 0x5eed5eed00000000ull

struct stress {
    struct weft__deque q;
    struct item *items;
    uint64_t n;
    int64_t cap;
    _Atomic uint64_t ready;  /* thieves started: the owner waits for all */
    _Atomic bool stop;
    _Atomic uint64_t bad;    /* a thief saw something impossible; kind in bad_what */
    _Atomic uint64_t bad_what;
};

struct thief {
    pthread_t th;
    struct stress *s;
    uint32_t id;
    uint64_t stolen, busy, empty;
};

static void flag_bad(struct stress *s, uint64_t what)
{
    uint64_t zero = 0;
    atomic_compare_exchange_strong(&s->bad_what, &zero, what);
    atomic_fetch_add(&s->bad, 1);
}

/* 0 ok; 1 a pointer never pushed; 4 the payload did not arrive. */
static inline int consume(struct stress *s, void *p, uint32_t who)
{
    struct item *it = p;
    if (it < s->items || it >= s->items + s->n)
        return 1;
    int rc = it->value == (ITEM_MAGIC | (uint64_t)(it - s->items)) ? 0 : 4;
    it->taken_by = who;
    atomic_fetch_add_explicit(&it->count, 1, memory_order_relaxed);
    return rc;
}

static void *stress_thief(void *arg)
{
    struct thief *t = arg;
    struct stress *s = t->s;
    unsigned idle = 0;
    atomic_fetch_add(&s->ready, 1);
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        void *item = NULL;
        int rc = weft__deque_steal(&s->q, &item);
        if (rc == 0) {
            int bad = consume(s, item, t->id);
            if (bad)
                flag_bad(s, (uint64_t)bad);
            t->stolen++;
            idle = 0;
        } else if (rc == -EBUSY) {
            t->busy++;
        } else if (rc == -EAGAIN) {
            t->empty++;
            int64_t n = weft__deque_len(&s->q);
            if (n < 0 || n > s->cap)
                flag_bad(s, 2);                  /* 2: len() out of [0, capacity] */
            if (++idle < 64) {
                cpu_relax();
            } else {
                sched_yield();                   /* more threads than cores */
                idle = 0;
            }
        } else {
            flag_bad(s, 3);                      /* 3: an undocumented return code */
        }
    }
    return NULL;
}

static void stress(int nthieves, uint32_t cap, uint64_t nitems, int rounds)
{
    static struct stress s; /* static: the deque's 64-byte alignment is honoured */
    struct thief th[MAX_THIEVES];
    uint64_t base = base_seed();

    for (int round = 0; round < rounds; round++) {
        uint64_t seed = base + (uint64_t)round, rng = seed;
        memset(&s, 0, sizeof s);
        s.n = nitems;
        s.cap = cap;
        s.items = calloc(nitems, sizeof *s.items);
        cr_assert_not_null(s.items);
        cr_assert_eq(weft__deque_init(&s.q, cap), 0);
        for (int i = 0; i < nthieves; i++) {
            th[i] = (struct thief){ .s = &s, .id = (uint32_t)i + 1 };
            cr_assert_eq(pthread_create(&th[i].th, NULL, stress_thief, &th[i]), 0);
        }
        wait_for(&s.ready, (uint64_t)nthieves); /* start line: every thief is stealing */

        /* The owner (id 0). The mix changes every 2048 decisions: near-empty
         * phases (last-item races), balanced ones, and push-heavy ones that
         * fill the ring and take the overflow path. Half the time it "runs"
         * the task it took for a while, so the thieves keep up. */
        uint64_t next = 0, owner_took = 0, overflow_moved = 0, fulls = 0, self_steals = 0;
        uint64_t bad_owner = 0;
        unsigned push_pct = 50;
        for (uint64_t d = 0; next < nitems; d++) {
            uint64_t r = rng_next(&rng);
            if ((d & 2047) == 0) {
                /* Block, as a task waiting on IO does, until the thieves have
                 * taken everything: however loaded the machine is, they steal
                 * (and are running as the next phase starts). */
                for (unsigned spins = 0; weft__deque_len(&s.q) > 0; spins++)
                    spins < 256 ? cpu_relax() : (void)sched_yield();
                static const unsigned mix[] = { 40, 50, 55, 65, 80, 97 };
                push_pct = mix[(r >> 40) % 6];
            }
            unsigned pick = (unsigned)(r % 100);
            void *item = NULL;
            if (pick < push_pct) {
                struct item *it = &s.items[next];
                it->value = ITEM_MAGIC | next;   /* plain write, published by push */
                if (weft__deque_push(&s.q, it)) {
                    next++;
                    continue;
                }
                /* Full: move about half out with single steals, as a worker
                 * spilling to the inject queue will (no batch steal). */
                fulls++;
                int64_t half = weft__deque_len(&s.q) / 2;
                for (int64_t k = 0; k < half; k++) {
                    int rc = weft__deque_steal(&s.q, &item);
                    if (rc == 0) {
                        bad_owner += consume(&s, item, 0) != 0;
                        overflow_moved++;
                    } else if (rc == -EAGAIN) {
                        break;
                    }
                }
                continue;
            } else if (pick < push_pct + 2) {
                if (weft__deque_steal(&s.q, &item) != 0)
                    continue;
                self_steals++;
            } else {
                if ((item = weft__deque_take(&s.q)) == NULL)
                    continue;
                owner_took++;
            }
            bad_owner += consume(&s, item, 0) != 0;
            if ((r >> 19) & 1)                   /* half the time: run it a while (0-1 us) */
                for (unsigned w = (unsigned)((r >> 20) & 31); w > 0; w--)
                    cpu_relax();
        }
        void *item;
        while ((item = weft__deque_take(&s.q)) != NULL) { /* drain: NULL means empty for good */
            bad_owner += consume(&s, item, 0) != 0;
            owner_took++;
        }
        atomic_store_explicit(&s.stop, true, memory_order_relaxed);
        uint64_t stolen = 0, busy = 0, empty = 0;
        for (int i = 0; i < nthieves; i++) {
            cr_assert_eq(pthread_join(th[i].th, NULL), 0);
            stolen += th[i].stolen;
            busy += th[i].busy;
            empty += th[i].empty;
        }

        /* Every item exactly once. */
        uint64_t lost = 0, dup = 0, first_wrong = UINT64_MAX;
        for (uint64_t i = 0; i < nitems; i++) {
            uint32_t c = atomic_load_explicit(&s.items[i].count, memory_order_relaxed);
            if (c != 1 && first_wrong == UINT64_MAX)
                first_wrong = i;
            lost += c == 0;
            dup += c > 1 ? c - 1 : 0;
        }
        cr_assert_eq(bad_owner, 0, "seed %" PRIu64 ": the owner got %" PRIu64 " bad items", seed, bad_owner);
        cr_assert_eq(atomic_load(&s.bad), 0,
                     "seed %" PRIu64 ": thieves saw %" PRIu64 " bad results (first kind %" PRIu64
                     "; 1 foreign pointer, 2 len out of range, 3 bad rc, 4 payload not published)",
                     seed, atomic_load(&s.bad), atomic_load(&s.bad_what));
        cr_assert(lost == 0 && dup == 0,
                  "seed %" PRIu64 " (%d thieves, cap %u): %" PRIu64 " items lost, %" PRIu64
                  " duplicated, first wrong #%" PRIu64 " count %u",
                  seed, nthieves, cap, lost, dup, first_wrong,
                  first_wrong == UINT64_MAX ? 1u : atomic_load(&s.items[first_wrong].count));
        cr_assert_eq(owner_took + self_steals + overflow_moved + stolen, nitems,
                     "seed %" PRIu64 ": %" PRIu64 " owner + %" PRIu64 " self-steal + %" PRIu64
                     " overflow + %" PRIu64 " stolen != %" PRIu64,
                     seed, owner_took, self_steals, overflow_moved, stolen, nitems);
        cr_assert_eq(raw_top(&s.q), raw_bottom(&s.q), "seed %" PRIu64 ": not empty at the end", seed);
        cr_assert_gt(stolen, 0, "seed %" PRIu64 ": the thieves never stole anything", seed);
        cr_log_info("stress %d thieves cap %u seed %" PRIu64 ": %" PRIu64 " items: owner took %" PRIu64
                    ", self-steal %" PRIu64 ", overflow moved %" PRIu64 " (%" PRIu64 " fulls), thieves stole %" PRIu64
                    " (lost %" PRIu64 " CASes, found it empty %" PRIu64 " times)",
                    nthieves, cap, seed, nitems, owner_took, self_steals, overflow_moved, fulls, stolen, busy, empty);

        weft__deque_destroy(&s.q);
        free(s.items);
    }
}

/* 4 rounds of 250k items = 1M items per test. */
#define STRESS_ITEMS 250000u

Test(deque, stress_3_thieves_cap8, .timeout = 60) { stress(3, 8, STRESS_ITEMS, 4); }
Test(deque, stress_3_thieves_cap256, .timeout = 60) { stress(3, 256, STRESS_ITEMS, 4); }
Test(deque, stress_7_thieves_cap8, .timeout = 60) { stress(7, 8, STRESS_ITEMS, 4); }
Test(deque, stress_7_thieves_cap256, .timeout = 60) { stress(7, 256, STRESS_ITEMS, 4); }
