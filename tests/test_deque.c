/* tests/test_deque.c - the per-worker Chase-Lev deque (sched/deque.h), alone.
 *
 *   1 thread   : API semantics, capacity edges, wrap-around against a reference
 *                model, every op sequence of length 0..8 at capacities 2 and 4
 *   2 threads  : owner take vs thief steal lined up round by round: 200k
 *                rounds on the last item (CAS vs CAS), 100k on two items (the
 *                owner's take of the newest without a CAS)
 *   3 thieves  : drain a full deque 5000 times; -EAGAIN must mean empty
 *   1+k threads: owner push/take/steal with 3 or 7 thieves, capacity 8 and 256,
 *                1M items per test; every item must come out exactly once
 *
 * Randomised tests print their seed on failure; set WEFT_TEST_SEED=<n> to rerun
 * the owner's decisions exactly (thread interleavings are not reproducible).
 *
 * Criterion with --full-stats sends every PASSING assertion to the runner over
 * IPC, so loops of 10^5+ checks use CHECK (fails only) and end with one
 * summarising cr_assert. The TSan build runs the same file on tests/shim.
 * Payloads the deque hands over are plain (non-atomic) memory, so TSan checks
 * the publication and exactly-once claims too (run it with halt_on_error=1,
 * as run-tests does, so that a report fails the test).
 */
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

/* ------------------------------------------------------------------------- */
/* helpers                                                                   */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
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

/* Spin briefly, then yield: these tests may run more threads than there are
 * free cores (and a descheduled partner cannot be spun for). */
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
/* single thread: semantics                                                  */

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
/* exhaustive: every op sequence of length 0..8 at capacity 2 (and 4)         */

/* Every sequence over {push, take, steal} of length 0 to 8 (9841 of them),
 * each from four starting offsets (top = bottom = 0..3, reached by push+steal
 * pairs) so that it meets the ring at every slot; each op's result, len() and
 * bottom - top are checked against the model, and what is left is drained by
 * steals and compared. 39364 runs per capacity. */
static void exhaustive(uint32_t cap)
{
    enum { MAXLEN = 8, OFFSETS = 4 };
    uint64_t runs = 0;
    char ctx[80];
    for (int off = 0; off < OFFSETS; off++) {
        uint32_t nseq = 1;                          /* 3^len */
        for (int len = 0; len <= MAXLEN; len++, nseq *= 3) {
            for (uint32_t s = 0; s < nseq; s++) {
                struct weft__deque q;
                struct model m = { .cap = (int)cap };
                uint64_t next = 0;
                void *out;
                CHECK(weft__deque_init(&q, cap) == 0, "init");
                for (int i = 0; i < off; i++) {
                    CHECK(weft__deque_push(&q, token(next++)), "offset push");
                    CHECK(weft__deque_steal(&q, &out) == 0, "offset steal");
                }
                snprintf(ctx, sizeof ctx, "cap %u offset %d len %d seq %u step", cap, off, len, s);
                uint32_t code = s;                  /* base 3, op i = digit i */
                for (int i = 0; i < len; i++, code /= 3)
                    step(&q, &m, (enum op)(code % 3), &next, ctx, (uint64_t)i, (uint64_t)len);
                while (m.n > 0)
                    step(&q, &m, OP_STEAL, &next, ctx, (uint64_t)len, (uint64_t)len);
                CHECK(weft__deque_take(&q) == NULL, "%s: not empty at the end", ctx);
                weft__deque_destroy(&q);
                runs++;
            }
        }
    }
    cr_assert_eq(runs, (uint64_t)OFFSETS * 9841);
}

Test(deque, exhaustive_len0to8_cap2, .timeout = 30) { exhaustive(2); }
Test(deque, exhaustive_len0to8_cap4, .timeout = 30) { exhaustive(4); }

/* ------------------------------------------------------------------------- */
/* race: owner take vs thief steal, lined up round by round                  */

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
#define RACE_MAX_SPAN 2048u              /* pauses: ~65 us at ~32 ns a pause */

struct race {
    struct weft__deque q;
    _Atomic uint64_t go;         /* round the thief may start (the owner has pushed) */
    _Alignas(64) _Atomic uint64_t done; /* last round the thief finished */
    uint64_t rounds, thief_rng;
    /* written by the thief before its store of done, read by the owner after */
    void *got[RACE_MAX_ITEMS + 1];
    int ngot, rc;
    uint64_t busy;               /* -EBUSY seen by the thief */
};

static void *race_thief(void *arg)
{
    struct race *r = arg;
    for (uint64_t round = 1; round <= r->rounds; round++) {
        unsigned jitter = (unsigned)(rng_next(&r->thief_rng) % 16);
        wait_for(&r->go, round);
        for (unsigned i = 0; i < jitter; i++)
            cpu_relax();
        void *item = NULL;
        int rc;
        r->ngot = 0;
        while ((rc = weft__deque_steal(&r->q, &item)) != -EAGAIN) {
            if (rc == -EBUSY)
                r->busy++;
            else if (rc != 0 || r->ngot > RACE_MAX_ITEMS)
                break;                   /* impossible: reported by the owner */
            else
                r->got[r->ngot++] = item;
        }
        r->rc = rc;
        atomic_store_explicit(&r->done, round, memory_order_release); /* publishes got/ngot/rc */
    }
    return NULL;
}

static void race(int nitems, uint64_t rounds)
{
    static struct race r; /* static: the deque's 64-byte alignment is honoured */
    memset(&r, 0, sizeof r);
    uint64_t seed = base_seed(), rng = seed;
    r.rounds = rounds;
    r.thief_rng = seed ^ 0x7468696566ull;
    cr_assert_eq(weft__deque_init(&r.q, 2), 0); /* capacity 2: the slots alternate */
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, race_thief, &r), 0);

    /* The owner waits rng % span pauses before its take. span adapts so the
     * thief wins the contested item (the newest, at the owner's end) about
     * half the time: that is where the two operations overlap most, and it
     * keeps both outcomes coming on a loaded machine or under TSan. At the
     * largest span the owner also yields now and then, as if preempted
     * between push and take: when the thief shares its CPU (a busy machine)
     * that is the only way the thief gets in first. */
    uint64_t owner_got = 0, thief_got = 0, thief_won = 0, window = 0;
    unsigned span = 64;
    for (uint64_t round = 1; round <= rounds; round++) {
        void *pushed[RACE_MAX_ITEMS];
        for (int k = 0; k < nitems; k++) {
            pushed[k] = token(round * RACE_MAX_ITEMS + (uint64_t)k);
            CHECK(weft__deque_push(&r.q, pushed[k]), "seed %" PRIu64 " round %" PRIu64 ": push refused", seed, round);
        }
        unsigned jitter = (unsigned)(rng_next(&rng) % span);
        atomic_store_explicit(&r.go, round, memory_order_release);
        for (unsigned i = 0; i < jitter; i++)
            cpu_relax();
        if (span == RACE_MAX_SPAN && (jitter & 1))
            sched_yield();

        void *got[2 * RACE_MAX_ITEMS + 2];
        int n = 0;
        if ((got[n] = weft__deque_take(&r.q)) != NULL)
            n++, owner_got++;
        wait_for(&r.done, round);
        CHECK(r.rc == -EAGAIN, "seed %" PRIu64 " round %" PRIu64 ": steal rc %d after %d items",
              seed, round, r.rc, r.ngot);
        for (int j = 0; j < r.ngot; j++) {
            got[n++] = r.got[j], thief_got++;
            window += r.got[j] == pushed[nitems - 1];
        }
        void *left;
        while (n < (int)(sizeof got / sizeof got[0]) && (left = weft__deque_take(&r.q)) != NULL)
            got[n++] = left, owner_got++;   /* after the race: should find nothing */

        /* Exactly once: n == nitems, each pushed item present once. */
        CHECK(n == nitems, "seed %" PRIu64 " round %" PRIu64 ": %d items came out of %d pushed (%s)",
              seed, round, n, nitems, n > nitems ? "DUPLICATE: the owner and the thief both got one" : "LOST");
        for (int k = 0; k < nitems; k++) {
            int seen = 0;
            for (int j = 0; j < n; j++)
                seen += got[j] == pushed[k];
            CHECK(seen == 1, "seed %" PRIu64 " round %" PRIu64 ": item %d came out %d times", seed, round, k, seen);
        }
        CHECK(raw_top(&r.q) == raw_bottom(&r.q), "seed %" PRIu64 " round %" PRIu64 ": top %" PRId64
              " bottom %" PRId64 " after the round", seed, round, raw_top(&r.q), raw_bottom(&r.q));
        if ((round & 255) == 0) {
            if (window < 64 && span < RACE_MAX_SPAN)
                span *= 2;               /* thief won < 1/4: give it more time */
            else if (window > 192 && span > 2)
                span /= 2;               /* thief won > 3/4: less */
            thief_won += window;
            window = 0;
        }
    }
    thief_won += window;
    cr_assert_eq(pthread_join(th, NULL), 0);
    cr_assert_eq(owner_got + thief_got, (uint64_t)nitems * rounds);
    cr_log_info("race %d item(s): owner got %" PRIu64 ", thief got %" PRIu64 " (the contested one %" PRIu64
                " times), thief lost a CAS %" PRIu64 " times, final span %u (seed %" PRIu64 ")",
                nitems, owner_got, thief_got, thief_won, r.busy, span, seed);
    /* How often each side won is logged, not asserted: on a machine whose
     * other jobs leave the two threads one CPU between them, the split is up
     * to the kernel's scheduler, and a test must not fail for that. */
    weft__deque_destroy(&r.q);
}

Test(deque, race_last_item_owner_vs_thief, .timeout = 60) { race(1, 200000); }
Test(deque, race_two_items_owner_vs_greedy_thief, .timeout = 60) { race(2, 100000); }

/* ------------------------------------------------------------------------- */
/* thieves only: -EAGAIN must mean empty                                      */

/* Each round the owner fills the deque and then stays out; 3 thieves drain
 * it. Nothing pushes during the drain, so once empty it stays empty: a thief
 * that gets -EAGAIN must then see len() == 0. A lost CAS must say -EBUSY: a
 * worker that took it for "empty" could park while work is queued. */

#define DRAIN_THIEVES 3
#define DRAIN_CAP 64u

struct drain {
    struct weft__deque q;
    _Atomic uint64_t go;         /* round the thieves may start */
    _Atomic uint64_t finished;   /* thieves done, over all rounds */
    _Atomic uint64_t eagain_not_empty, bad;
    uint64_t rounds;
    _Atomic uint32_t count[DRAIN_CAP];
};

static void *drain_thief(void *arg)
{
    struct drain *d = arg;
    for (uint64_t round = 1; round <= d->rounds; round++) {
        wait_for(&d->go, round);
        void *item;
        int rc;
        while ((rc = weft__deque_steal(&d->q, &item)) != -EAGAIN) {
            if (rc == 0) {
                uintptr_t k = (uintptr_t)item - 1;
                if (k >= DRAIN_CAP)
                    atomic_fetch_add(&d->bad, 1);
                else
                    atomic_fetch_add_explicit(&d->count[k], 1, memory_order_relaxed);
            } else if (rc != -EBUSY) {
                atomic_fetch_add(&d->bad, 1);
            }
        }
        if (weft__deque_len(&d->q) != 0)
            atomic_fetch_add(&d->eagain_not_empty, 1);
        atomic_fetch_add_explicit(&d->finished, 1, memory_order_release);
    }
    return NULL;
}

Test(deque, steal_eagain_means_empty, .timeout = 60)
{
    static struct drain d; /* static: the deque's 64-byte alignment is honoured */
    memset(&d, 0, sizeof d);
    d.rounds = 5000;
    cr_assert_eq(weft__deque_init(&d.q, DRAIN_CAP), 0);
    pthread_t th[DRAIN_THIEVES];
    for (int i = 0; i < DRAIN_THIEVES; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, drain_thief, &d), 0);
    for (uint64_t round = 1; round <= d.rounds; round++) {
        for (uint64_t k = 0; k < DRAIN_CAP; k++)
            CHECK(weft__deque_push(&d.q, token(k)), "round %" PRIu64 ": push %" PRIu64 " refused", round, k);
        atomic_store_explicit(&d.go, round, memory_order_release);
        wait_for(&d.finished, round * DRAIN_THIEVES);
        for (uint64_t k = 0; k < DRAIN_CAP; k++)
            CHECK(atomic_load_explicit(&d.count[k], memory_order_relaxed) == round,
                  "round %" PRIu64 ": item %" PRIu64 " stolen %u times in all", round, k,
                  atomic_load_explicit(&d.count[k], memory_order_relaxed));
        CHECK(atomic_load(&d.eagain_not_empty) == 0, "round %" PRIu64 ": -EAGAIN while items were left", round);
        CHECK(atomic_load(&d.bad) == 0, "round %" PRIu64 ": foreign item or undocumented rc", round);
    }
    for (int i = 0; i < DRAIN_THIEVES; i++)
        cr_assert_eq(pthread_join(th[i], NULL), 0);
    cr_assert_eq(raw_top(&d.q), (int64_t)(d.rounds * DRAIN_CAP));
    weft__deque_destroy(&d.q);
}

/* ------------------------------------------------------------------------- */
/* stress: 1 owner + k thieves, every item out exactly once                  */

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
