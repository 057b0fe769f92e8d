#!/usr/bin/env python3
"""side_by_side.py - weft-bench against Boost.Context and Tokio, interleaved.

The performance targets of the core runtime are ratios against these peers
measured at the same moment on the same machine. This runs every workload
for every available program in rounds (weft, tokio, boost, weft, tokio, ...),
takes each program's own median line per run, and prints the median over
rounds with the spread, and the ratio weft / peer.

    benchmarks/peers/build.sh        # once: builds build/peers/*
    /usr/bin/python3 benchmarks/peers/side_by_side.py [--rounds 5] [--reps 5]

Standard library only. Exits 1 if any program's own correctness check fails.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WEFT = os.path.join(ROOT, "build", "benchmarks", "weft-bench")
TOKIO = os.path.join(ROOT, "build", "peers", "tokio-bench")
BOOST = os.path.join(ROOT, "build", "peers", "boost-switch")

# (workload, workers, n): sizes as in the targets
CELLS = [("switch", 1, 10_000_000), ("spawn", 1, 1_000_000), ("spawn", 2, 1_000_000),
         ("skynet", 1, 1_000_000), ("skynet", 2, 1_000_000), ("fib", 1, 32), ("fib", 2, 32),
         ("pingpong", 1, 1_000_000), ("oneshot", 1, 1_000_000)]


def fib_calls(n):
    a, b = 0, 1
    for _ in range(n + 1):
        a, b = b, a + b
    return 2 * a - 1          # 2*fib(n+1) - 1


def command(prog, work, workers, n, reps):
    if prog == "weft":
        return [WEFT, work, "--workers", str(workers), "--n", str(n), "--reps", str(reps)]
    if prog == "tokio":
        return [TOKIO, work, "--workers", str(workers), "--n", str(n), "--reps", str(reps)]
    if prog == "boost" and work == "switch":
        return [BOOST, "--n", str(n), "--reps", str(reps)]
    return None


def run(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()}")
    m = re.search(r"\bms=([0-9.]+).*?\bcold_ms=([0-9.]+)", p.stdout)
    if not m:
        raise RuntimeError(f"{' '.join(cmd)}: no figure in {p.stdout!r}")
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", help="comma-separated workloads")
    a = ap.parse_args()
    progs = ["weft"] + [p for p, path in (("tokio", TOKIO), ("boost", BOOST)) if os.access(path, os.X_OK)]
    cells = [c for c in CELLS if not a.only or c[0] in a.only.split(",")]
    res = {}            # (prog, cell) -> [ns per op]
    cold = {}
    failed = False
    for r in range(a.rounds):
        for cell in cells:
            work, workers, n = cell
            ops = fib_calls(n) if work == "fib" else n
            for prog in progs:
                cmd = command(prog, work, workers, n, a.reps)
                if not cmd:
                    continue
                print(f"round {r + 1}/{a.rounds}: {prog} {work} workers={workers}", file=sys.stderr)
                try:
                    ms, cms = run(cmd)
                except (RuntimeError, subprocess.TimeoutExpired) as e:
                    print(f"FAIL: {e}", file=sys.stderr)
                    failed = True
                    continue
                res.setdefault((prog, cell), []).append(ms * 1e6 / ops)
                cold.setdefault((prog, cell), []).append(cms / ms if ms else 0)
    print(f"\n| workload | workers | " + " | ".join(f"{p} ns/op (spread)" for p in progs)
          + " | " + " | ".join(f"weft/{p}" for p in progs[1:]) + " | weft cold/warm |")
    print("|" + "---|" * (3 + 2 * len(progs) - 1))
    for cell in cells:
        row = [cell[0], str(cell[1])]
        med = {}
        for p in progs:
            v = res.get((p, cell))
            if v:
                med[p] = statistics.median(v)
                spread = (max(v) - min(v)) / med[p] if med[p] else 0
                row.append(f"{med[p]:.2f} ({spread:.0%})")
            else:
                row.append("—")
        for p in progs[1:]:
            row.append(f"{med['weft'] / med[p]:.2f}" if "weft" in med and p in med else "—")
        c = cold.get(("weft", cell))
        row.append(f"{statistics.median(c):.2f}" if c else "—")
        print("| " + " | ".join(row) + " |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
