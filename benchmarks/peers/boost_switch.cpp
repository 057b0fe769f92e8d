// boost-switch: the raw cost of a user-space context switch with
// Boost.Context, the floor any stackful-task runtime is measured against.
//
// Two execution contexts, each a boost::context::fiber (the caller's own
// context is one too: resume() hands it to the other side as a fiber), jump
// to each other N times in all. One op = one jump (one switch), as in
// weft-bench's switch, where each yield counts as one switch.
//
//   boost-switch [switch] [--n N] [--reps R] [--workers 1]
//
// Prints: bench=switch runtime=boost-context workers=1 n=N ms=T ns_per_op=X
//         cold_ms=C reps=R
// where ms / ns_per_op are the median of R repetitions in this process and
// cold_ms the first. Exits 1 when the jump count does not add up, 2 on bad
// arguments.
#include <boost/context/fiber.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

namespace ctx = boost::context;

// One repetition: n/2 jumps main -> fiber and n/2 jumps fiber -> main (the
// first one enters the fiber, the last is its return). Returns the number of
// jumps taken, counted on both sides.
static uint64_t run_once(uint64_t n)
{
    const uint64_t rounds = n / 2;
    uint64_t main_jumps = 0, fiber_jumps = 0;
    if (rounds == 0)
        return 0;
    ctx::fiber f{[rounds, &fiber_jumps](ctx::fiber &&back) {
        for (uint64_t i = 1; i < rounds; i++) {
            back = std::move(back).resume();
            fiber_jumps++;
        }
        fiber_jumps++;  // returning is the last jump back
        return std::move(back);
    }};
    for (uint64_t i = 0; i < rounds; i++) {
        f = std::move(f).resume();
        main_jumps++;
    }
    if (f)  // the fiber must have finished
        return 0;
    return main_jumps + fiber_jumps;
}

static void usage(FILE *out)
{
    std::fprintf(out, "usage: boost-switch [switch] [--n N] [--reps R] [--workers 1]\n");
}

int main(int argc, char **argv)
{
    uint64_t n = 10000000;
    unsigned long long reps = 5, workers = 1;
    int i = 1;
    if (i < argc && argv[i][0] != '-') {
        if (std::strcmp(argv[i], "switch") != 0) {
            std::fprintf(stderr, "boost-switch: unknown benchmark '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
        i++;
    }
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!std::strcmp(a, "-h") || !std::strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "boost-switch: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        char *end;
        unsigned long long x = std::strtoull(v, &end, 10);
        if (!*v || *end) {
            std::fprintf(stderr, "boost-switch: bad number '%s' for %s\n", v, a);
            return 2;
        }
        if (!std::strcmp(a, "--n")) n = x;
        else if (!std::strcmp(a, "--reps")) reps = x;
        else if (!std::strcmp(a, "--workers")) workers = x;
        else if (!std::strcmp(a, "--cutoff")) { /* accepted, unused */ }
        else {
            std::fprintf(stderr, "boost-switch: unknown option %s\n", a);
            return 2;
        }
    }
    if (n < 2 || reps == 0 || workers != 1) {
        std::fprintf(stderr, "boost-switch: needs --n >= 2, --reps > 0 and --workers 1\n");
        return 2;
    }
    const uint64_t want = n / 2 * 2;

    std::vector<double> ms(reps);
    for (unsigned long long r = 0; r < reps; r++) {
        auto t0 = std::chrono::steady_clock::now();
        uint64_t got = run_once(n);
        auto t1 = std::chrono::steady_clock::now();
        if (got != want) {
            std::fprintf(stderr, "boost-switch: %llu jumps, want %llu: check FAILED\n",
                         (unsigned long long)got, (unsigned long long)want);
            return 1;
        }
        ms[r] = std::chrono::duration<double, std::milli>(t1 - t0).count();
    }
    const double cold = ms[0];
    std::sort(ms.begin(), ms.end());
    const double med = reps % 2 ? ms[reps / 2] : (ms[reps / 2 - 1] + ms[reps / 2]) / 2;
    std::printf("bench=switch runtime=boost-context workers=1 n=%llu ms=%.3f ns_per_op=%.2f "
                "cold_ms=%.3f reps=%llu\n",
                (unsigned long long)n, med, med * 1e6 / (double)want, cold, reps);
    return 0;
}
