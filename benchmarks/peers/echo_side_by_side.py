#!/usr/bin/python3
"""echo_side_by_side.py - weft's echo server against a liburing loop, Tokio and Go.

The issue's per-core echo target (1 KiB ping-pong, 50 connections, server
pinned to CPU 0, echo-load pinned to CPU 1) is a set of ratios measured at the
same moment on the same machine: weft's server CPU per request at most 0.95x
Tokio's and 0.85x Go's, level with a hand-written liburing loop, and a p99 no
worse than theirs. This runs the four servers one after another in R rounds
(the order rotates each round), each run through benchmarks/compare/run.py's
own server runner (same pinning, same echo-load client, same CPU accounting:
utime+stime of the whole server process from /proc/PID/stat over the
measured window, divided by the requests answered in it; every byte
verified), and prints per server the medians over rounds and weft's ratios.

    benchmarks/peers/build.sh                 # once: build/peers/uring-echo, tokio-echo
    cmake --build build                       # build/examples/echo_server, build/benchmarks/echo-load
    /usr/bin/python3 benchmarks/peers/echo_side_by_side.py [--rounds 5] [--duration 5] [--warmup 1]
        [--quiet-wait 3] [--only weft,tokio]

The Go server is build/compare/go-bench (built here with GOPROXY=off, as
run-benchmarks does, when missing). A server whose binary is missing is
skipped with a line saying so. Every run goes to build/peers/echo_side_by_side.json.
Standard library only. Exits 1 if any run failed its correctness check.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT / "benchmarks" / "compare"))
import run as cmp  # noqa: E402  benchmarks/compare/run.py: the server runner

BUILD = ROOT / "build"
SERVERS = [  # label, binary, extra arguments (each also gets --port P)
    ("weft", BUILD / "examples" / "echo_server", ["--workers", "1"]),
    ("liburing", BUILD / "peers" / "uring-echo", []),
    ("tokio", BUILD / "peers" / "tokio-echo", []),
    ("go", BUILD / "compare" / "go-bench", ["--workers", "1"]),
]
TARGETS = {"tokio": 0.95, "go": 0.85, "liburing": 1.0}   # weft CPU/req ÷ peer, at most


def argv_for(binary, extra, label):
    sub = ["echo-server"] if label == "go" else []
    return lambda ctx, wl, port, w: [str(binary), *sub, "--port", str(port), *extra]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds per run")
    ap.add_argument("--quiet-wait", type=float, default=3.0,
                    help="wait up to this many seconds for a quiet machine before each run")
    ap.add_argument("--only", help="comma-separated labels (weft,liburing,tokio,go)")
    a = ap.parse_args()

    echo_load = BUILD / "benchmarks" / "echo-load"
    if not os.access(echo_load, os.X_OK):
        print(f"{echo_load} not built (cmake --build build)", file=sys.stderr)
        return 1
    go = BUILD / "compare" / "go-bench"
    if not os.access(go, os.X_OK):
        print("echo_side_by_side: building the Go servers (go build, GOPROXY=off) ...",
              file=sys.stderr)
        (BUILD / "compare").mkdir(parents=True, exist_ok=True)
        _, _, why = cmp.build_go(BUILD / "compare")
        if why:
            print(f"echo_side_by_side: {why.splitlines()[0]}", file=sys.stderr)
    servers = []
    for label, binary, extra in SERVERS:
        if a.only and label not in a.only.split(","):
            continue
        if not os.access(binary, os.X_OK):
            how = ("cmake --build build" if label == "weft" else
                   "benchmarks/peers/build.sh" if label != "go" else "apt-get install golang-go")
            print(f"skip {label}: {binary} not built ({how})")
            continue
        servers.append(cmp.Variant(label, label, argv_for(binary, extra, label)))
    if not servers:
        return 1

    wl = cmp.ServerWorkload("echo", "echo 1 KiB, 50 connections", "echo", workers=1,
                            pin_server=True, variants=servers,
                            duration={"x": a.duration}, warmup={"x": a.warmup})
    ctx = cmp.Ctx(weft_bench=BUILD / "benchmarks" / "weft-bench", go_bench=go,
                  python=sys.executable, py_bench=ROOT / "benchmarks" / "compare" / "py_bench.py",
                  echo_load=echo_load)
    runs = {v.label: [] for v in servers}   # label -> [ServerRun], one per round
    failed = False
    for r in range(a.rounds):
        k = r % len(servers)
        for v in servers[k:] + servers[:k]:
            run = cmp.ServerRun("echo", 1, v.label, v.runtime, r + 1)
            run.quiet_wait_s, run.busy_cores = cmp.wait_quiet(a.quiet_wait)
            run.busy = run.busy_cores is not None and run.busy_cores > 0.25
            cmp.run_server_one(run, wl, v, ctx, "x", timeout_s=a.duration + a.warmup + 60)
            res = run.result
            busy = f" (machine busy: {run.busy_cores:.2f} cores)" if run.busy else ""
            if run.status == "ok":
                print(f"round {r + 1}/{a.rounds} {v.label:<14} req/s {res['req_s']:>8.0f}  "
                      f"p50 {res['p50_us']:>6.0f} us  p99 {res['p99_us']:>6.0f} us  "
                      f"cpu {res['cpu_us_per_req']:.2f} us/req{busy}", file=sys.stderr)
            else:
                failed = True
                print(f"round {r + 1}/{a.rounds} {v.label}: FAIL: {run.why}", file=sys.stderr)
            runs[v.label].append(run)

    def med(label, key):
        xs = [x.result[key] for x in runs[label] if x.status == "ok"]
        return statistics.median(xs) if xs else None

    def spread(label, key):
        xs = [x.result[key] for x in runs[label] if x.status == "ok"]
        m = statistics.median(xs) if xs else None
        return (max(xs) - min(xs)) / m if xs and m else None

    print(f"\n{time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs, "
          f"{a.rounds} rounds, {a.warmup:g} s warm-up + {a.duration:g} s measured; "
          "medians over rounds (spread of CPU/req across rounds)\n")
    nbusy = sum(1 for lst in runs.values() for x in lst if x.busy)
    if nbusy:
        print(f"the machine was busy with something else when {nbusy} of "
              f"{sum(len(lst) for lst in runs.values())} runs started: figures are noisy\n")
    print("| server | ok rounds | req/s | p50 us | p99 us | server CPU us/req |")
    print("|---|--:|--:|--:|--:|--:|")
    for v in servers:
        ok = sum(1 for x in runs[v.label] if x.status == "ok")
        if not ok:
            print(f"| {v.label} | 0 | FAIL | | | |")
            continue
        print(f"| {v.label} | {ok} | {med(v.label, 'req_s'):,.0f} | {med(v.label, 'p50_us'):,.0f} "
              f"| {med(v.label, 'p99_us'):,.0f} | {med(v.label, 'cpu_us_per_req'):.2f} "
              f"({spread(v.label, 'cpu_us_per_req'):.0%}) |")
    if "weft" in runs and med("weft", "cpu_us_per_req"):
        # Within a round the servers ran seconds apart, so a round's ratio is
        # steadier than a ratio of medians when the machine changes pace
        # between rounds; both are shown.
        print("\n| weft ÷ peer | CPU/req: ratio of medians | median of per-round ratios (range) "
              "| target | p99: ratio of medians | median of per-round ratios |")
        print("|---|--:|--:|--:|--:|--:|")
        for v in servers:
            if v.label == "weft" or not med(v.label, "cpu_us_per_req"):
                continue
            pairs = [(w.result, p.result) for w, p in zip(runs["weft"], runs[v.label])
                     if w.status == p.status == "ok"]
            c = med("weft", "cpu_us_per_req") / med(v.label, "cpu_us_per_req")
            per = [w["cpu_us_per_req"] / p["cpu_us_per_req"] for w, p in pairs]
            per99 = [w["p99_us"] / p["p99_us"] for w, p in pairs]
            t = TARGETS[v.label]
            pm = statistics.median(per)
            verdict = "met" if pm <= t else "NOT met"
            print(f"| {v.label} | {c:.2f} | {pm:.2f} ({min(per):.2f}–{max(per):.2f}) "
                  f"| ≤ {t:.2f}: {verdict} | {med('weft', 'p99_us') / med(v.label, 'p99_us'):.2f} "
                  f"| {statistics.median(per99):.2f} |")
    out = BUILD / "peers" / "echo_side_by_side.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "rounds": a.rounds,
        "duration_s": a.duration, "warmup_s": a.warmup,
        "runs": [{"server": x.label, "round": x.round, "status": x.status, "why": x.why,
                  "server_argv": list(x.server_argv), "client_argv": list(x.client_argv),
                  "result": x.result, "busy_cores": x.busy_cores, "machine_busy": x.busy}
                 for lst in runs.values() for x in lst]}, indent=1))
    print(f"\nevery run: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
