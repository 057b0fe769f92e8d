#!/usr/bin/env python3
"""scaling_and_go.py - the two targets that need pairing within one host pace.

This VM's host switches between a fast and a slow pace every few seconds, and
the two programs of a comparison do not slow down alike, so each figure here
comes from short runs taken in turn, with medians over many rounds:

  fib   weft-bench fib (fib(32), cutoff 12) on 1 worker, on 2 workers, and two
        1-worker processes at once. speed-up = t1 / t2; the ceiling, what the
        machine's two CPUs give two independent workers at that moment, is
        2 * t1 / t(two at once); efficiency = speed-up / ceiling.
  go    weft-bench pingpong --workers 1 against go-bench pingpong (Go's
        unbuffered channel, GOMAXPROCS=1): weft ns / Go ns per round.

    cmake --build build          # build/benchmarks/weft-bench
    /usr/bin/python3 benchmarks/peers/scaling_and_go.py [fib|go|both] [--rounds N]

go-bench is build/compare/go-bench (./run-benchmarks builds it). Standard
library only; exits 1 if a program fails or prints no figure.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEFT = os.path.join(ROOT, "build", "benchmarks", "weft-bench")
GO = os.path.join(ROOT, "build", "compare", "go-bench")


def figure(out, key):
    m = re.search(r"\b%s=([0-9.]+)" % key, out)
    if not m:
        sys.exit("no %s= in: %s" % (key, out.strip()))
    return float(m.group(1))


def run(cmd, key):
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("%s failed: %s" % (" ".join(cmd), p.stderr.strip()))
    return figure(p.stdout, key)


def summary(values):
    q = statistics.quantiles(values, n=4)
    return "%.3f (IQR %.3f-%.3f)" % (statistics.median(values), q[0], q[2])


def fib(rounds):
    cmd = lambda w: [WEFT, "fib", "--workers", str(w), "--reps", "5"]
    speedup, ceiling, eff = [], [], []
    for i in range(rounds):
        t1 = run(cmd(1), "ms")
        t2 = run(cmd(2), "ms")
        procs = [subprocess.Popen(cmd(1), stdout=subprocess.PIPE, text=True) for _ in range(2)]
        both = max(figure(p.communicate()[0], "ms") for p in procs)
        speedup.append(t1 / t2)
        ceiling.append(2 * t1 / both)
        eff.append(speedup[-1] / ceiling[-1])
        print("round %d: 1 worker %.2f ms, 2 workers %.2f ms, two 1-worker processes %.2f ms"
              % (i + 1, t1, t2, both), flush=True)
    print("fib(32): speed-up on 2 workers %s; ceiling %s; speed-up / ceiling %s"
          % (summary(speedup), summary(ceiling), summary(eff)))


def go(rounds):
    if not os.access(GO, os.X_OK):
        sys.exit("no %s: run ./run-benchmarks once to build it" % GO)
    w, g, r = [], [], []
    for i in range(rounds):
        weft_cmd = [WEFT, "pingpong", "--workers", "1", "--reps", "3"]
        go_cmd = [GO, "pingpong", "--workers", "1", "--reps", "3"]
        if i % 2 == 0:                      # the order alternates
            a = run(weft_cmd, "ns_per_op")
            b = run(go_cmd, "ns_per_op")
        else:
            b = run(go_cmd, "ns_per_op")
            a = run(weft_cmd, "ns_per_op")
        w.append(a)
        g.append(b)
        r.append(a / b)
        print("round %d: weft %.1f ns, Go %.1f ns, ratio %.3f" % (i + 1, a, b, a / b), flush=True)
    print("pingpong: weft %s ns, Go %s ns; ratio of medians %.3f; per-round ratio %s; "
          "rounds <= 0.3: %d of %d" % (summary(w), summary(g),
                                       statistics.median(w) / statistics.median(g),
                                       summary(r), sum(x <= 0.3 for x in r), rounds))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", default="both", choices=["fib", "go", "both"])
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    if a.rounds < 2:
        sys.exit("--rounds must be at least 2")
    if a.what in ("fib", "both"):
        fib(a.rounds)
    if a.what in ("go", "both"):
        go(a.rounds)


if __name__ == "__main__":
    main()
