#!/usr/bin/python3
"""Benchmark weft against asyncio, uvloop and Go, and say which is faster.

Runs every workload in every available runtime on this machine, interleaved
(round 1: weft asyncio uvloop go, round 2: the same again, ...), waits for the
machine to be quiet before each run, and reports per cell the median across
rounds of each run's own median, with its spread. Writes results.json,
results.csv and ratios.svg under build/compare/ (build/compare/smoke/ for
--smoke) and prints a Markdown table. Exits 1 if any benchmark failed its own
correctness check (or crashed, or timed out): a wrong run's figures never reach
the table.

Standard library only; run it with Debian's /usr/bin/python3.

    run.py [--quick | --full | --smoke] [--only fib,skynet] [--runtimes weft,go]

Adding a workload is one WORKLOADS entry: its name, what one op is, sizes per
mode, and, where the default command line does not fit, a per-runtime command
builder. Server workloads (echo, http, mixed: a server per runtime variant
driven by echo-load or wrk, pinned, killed on every path) are SERVER_WORKLOADS
entries; they get their own table (req/s, p50, p99, server CPU per request).
"""

import argparse
import csv
import datetime
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

RUNTIMES = ("weft", "asyncio", "uvloop", "go")
PEERS = ("asyncio", "uvloop", "go")
PYTHON_RUNTIMES = ("asyncio", "uvloop")
# Size classes: "native" for weft and Go, "python" for asyncio and uvloop.
SIZE_CLASS = {"weft": "native", "go": "native", "asyncio": "python", "uvloop": "python"}
# Worker counts a runtime can use (one event loop is one thread).
RUNTIME_WORKERS = {"asyncio": (1,), "uvloop": (1,)}

UNRELIABLE_SPREAD = 0.20


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------

@dataclass(frozen=True)
class Mode:
    rounds: int
    reps: int
    quiet_wait_s: float     # longest wait for a quiet machine before a run
    timeout_s: float        # per run


MODES = {
    # ~3.5 minutes on 2 cores with weft included (servers: 1 s per run).
    "quick": Mode(rounds=3, reps=5, quiet_wait_s=3.0, timeout_s=120.0),
    # The programs' default sizes; ~20 minutes on 2 cores.
    "full": Mode(rounds=7, reps=5, quiet_wait_s=10.0, timeout_s=600.0),
    # Tiny sizes: does every counterpart start, answer correctly and stop?
    "smoke": Mode(rounds=1, reps=1, quiet_wait_s=0.0, timeout_s=20.0),
}


# --------------------------------------------------------------------------
# Workloads
# --------------------------------------------------------------------------

@dataclass
class Ctx:
    """Where the programs are; handed to command builders."""
    weft_bench: Path
    go_bench: Path
    python: str
    py_bench: Path
    build: Path = ROOT / "build"
    py_servers: Path = HERE / "py_servers.py"
    echo_load: Path = ROOT / "build" / "benchmarks" / "echo-load"
    wrk: str = "wrk"


def default_command(rt: str, ctx: Ctx, wl: "Workload", n: int, workers: int,
                    reps: int) -> Sequence[str]:
    common = ["--n", str(n), "--workers", str(workers), "--reps", str(reps),
              *wl.args]
    if rt == "weft":
        return [str(ctx.weft_bench), wl.name, *common]
    if rt == "go":
        return [str(ctx.go_bench), wl.name, *common]
    if rt in PYTHON_RUNTIMES:
        return [ctx.python, str(ctx.py_bench), "--loop", rt, wl.name, *common]
    raise ValueError(rt)


CommandBuilder = Callable[[str, Ctx, "Workload", int, int, int], Sequence[str]]


@dataclass
class Workload:
    name: str
    op: str                                   # what one op is (table legend)
    sizes: Dict[str, Dict[str, int]]          # mode -> size class -> n
    workers: Tuple[int, ...] = (1, 2)
    args: Tuple[str, ...] = ()                # extra arguments for every runtime
    ops: Callable[[int], int] = lambda n: n   # n -> ops that ns/op divides by
    reps: Dict[str, int] = field(default_factory=dict)       # mode -> reps
    command: Dict[str, CommandBuilder] = field(default_factory=dict)  # runtime -> builder

    def argv(self, rt, ctx, n, workers, reps):
        return self.command.get(rt, default_command)(rt, ctx, self, n, workers, reps)


def fib_calls(n: int) -> int:
    a, b = 0, 1
    for _ in range(n + 1):
        a, b = b, a + b
    return 2 * a - 1        # calls made by naive fib(n) = 2*fib(n+1) - 1


def sizes(quick, full, smoke):
    """(native, python) pairs per mode."""
    return {m: {"native": v[0], "python": v[1]}
            for m, v in (("quick", quick), ("full", full), ("smoke", smoke))}


WORKLOADS = [
    Workload("switch", "one yield (a switch between two tasks on one worker)",
             sizes(quick=(5_000_000, 100_000), full=(10_000_000, 1_000_000),
                   smoke=(2_000, 2_000)),
             workers=(1,)),
    Workload("spawn", "one empty task spawned and waited for",
             sizes(quick=(400_000, 50_000), full=(1_000_000, 200_000),
                   smoke=(1_000, 1_000))),
    Workload("skynet", "one leaf of the 10-ary tree (1.11 tasks per leaf)",
             sizes(quick=(1_000_000, 10_000), full=(1_000_000, 100_000),
                   smoke=(1_000, 1_000)),
             reps={"quick": 3}),
    Workload("fib", "one fib call (fib(32): 7.0M calls, 17,710 tasks at cutoff 12)",
             sizes(quick=(32, 32), full=(32, 32), smoke=(20, 20)),
             args=("--cutoff", "12"), ops=fib_calls),
    Workload("pingpong", "one round trip over a pair of channels",
             sizes(quick=(500_000, 20_000), full=(1_000_000, 200_000),
                   smoke=(1_000, 1_000))),
    Workload("oneshot", "one request over a channel answered through a fresh future",
             sizes(quick=(500_000, 20_000), full=(1_000_000, 200_000),
                   smoke=(1_000, 1_000))),
]


# --------------------------------------------------------------------------
# Server workloads: a server (one per runtime variant) and a load client
# --------------------------------------------------------------------------
#
# A server workload starts a server on a free loopback port (pinned with
# `taskset -c 0` when pin_server), waits until it accepts, runs the load
# client pinned to CPU 1 (`taskset -c 1`), then stops the server (its whole
# process group, on every path). The client checks correctness: echo-load
# verifies every byte echoed, wrk's non-2xx answers or socket errors fail the
# cell, and the HTTP servers' body is checked once before the load.

@dataclass
class Variant:
    runtime: str                    # weft | asyncio | uvloop | go (availability, --runtimes)
    label: str                      # the table's name for this server
    argv: Callable[["Ctx", "ServerWorkload", int, int], Sequence[str]]   # ctx, wl, port, workers
    needs: Tuple[str, ...] = ()     # python modules it imports (aiohttp)


@dataclass
class ServerWorkload:
    name: str
    what: str
    client: str                     # echo | wrk | mixed
    workers: int
    pin_server: bool
    variants: Sequence[Variant]
    duration: Dict[str, float]      # mode -> measured seconds
    warmup: Dict[str, float]
    conns: int = 50
    size: int = 1024
    heavy_every: int = 100
    burn_us: int = 1000


def _py(kind, loop, *extra):
    return lambda ctx, wl, port, w: [ctx.python, str(ctx.py_servers), kind, "--loop", loop,
                                     "--port", str(port), *extra]


def _py_mixed(loop, *extra):
    return lambda ctx, wl, port, w: [ctx.python, str(ctx.py_servers), "mixed", "--loop", loop,
                                     "--port", str(port), "--size", str(wl.size),
                                     "--burn-us", str(wl.burn_us), *extra]


def _go(kind):
    def f(ctx, wl, port, w):
        extra = (["--size", str(wl.size), "--burn-us", str(wl.burn_us)]
                 if kind == "mixed-server" else [])
        return [str(ctx.go_bench), kind, "--port", str(port), "--workers", str(w), *extra]
    return f


def _weft(prog, mixed=False):
    def f(ctx, wl, port, w):
        extra = (["--burn-marker", "B", "--size", str(wl.size), "--burn-us", str(wl.burn_us)]
                 if mixed else [])
        return [str(ctx.build / "examples" / prog), "--port", str(port), "--workers", str(w),
                *extra]
    return f


SERVER_DURATION = {"quick": 1.0, "full": 10.0, "smoke": 0.5}
SERVER_WARMUP = {"quick": 0.5, "full": 2.0, "smoke": 0.2}

SERVER_WORKLOADS = [
    ServerWorkload(
        "echo", "echo server, 50 connections, 1 KiB ping-pong (echo-load, depth 1, "
        "every byte verified); server pinned to CPU 0, client to CPU 1",
        "echo", workers=1, pin_server=True, duration=SERVER_DURATION, warmup=SERVER_WARMUP,
        variants=[
            Variant("weft", "weft", _weft("echo_server")),
            Variant("asyncio", "asyncio protocol", _py("echo", "asyncio", "--api", "protocol")),
            Variant("asyncio", "asyncio streams", _py("echo", "asyncio", "--api", "streams")),
            Variant("uvloop", "uvloop protocol", _py("echo", "uvloop", "--api", "protocol")),
            Variant("uvloop", "uvloop streams", _py("echo", "uvloop", "--api", "streams")),
            Variant("go", "go", _go("echo-server")),
        ]),
    ServerWorkload(
        "http", "HTTP/1.1 keep-alive GET / -> 200 \"Hello, world!\\n\" (wrk -t1 -c50 --latency); "
        "server pinned to CPU 0, wrk to CPU 1",
        "wrk", workers=1, pin_server=True, duration=SERVER_DURATION, warmup=SERVER_WARMUP,
        variants=[
            Variant("weft", "weft (http_hello)", _weft("http_hello")),
            Variant("asyncio", "aiohttp asyncio", _py("http", "asyncio"), needs=("aiohttp",)),
            Variant("uvloop", "aiohttp uvloop", _py("http", "uvloop"), needs=("aiohttp",)),
            Variant("go", "go net/http", _go("http-server")),
        ]),
    ServerWorkload(
        "mixed", "echo, 50 connections, 1 KiB requests; 1 in 100 (first byte 'B') burns "
        "1 ms of CPU in the server before its answer; p50/p99 of the light requests; "
        "server on 2 workers, not pinned; client on CPU 1",
        "mixed", workers=2, pin_server=False, duration=SERVER_DURATION, warmup=SERVER_WARMUP,
        variants=[
            Variant("weft", "weft", _weft("echo_server", mixed=True)),
            Variant("asyncio", "asyncio", _py_mixed("asyncio")),
            Variant("asyncio", "asyncio executor", _py_mixed("asyncio", "--executor")),
            Variant("uvloop", "uvloop", _py_mixed("uvloop")),
            Variant("uvloop", "uvloop executor", _py_mixed("uvloop", "--executor")),
            Variant("go", "go", _go("mixed-server")),
        ]),
]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_cpu_s(pid: int) -> Optional[float]:
    """utime + stime of a process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def wait_accepting(proc, port: int, timeout_s: float) -> Optional[str]:
    """Wait until something accepts on 127.0.0.1:port. None, or why not."""
    import socket
    t_end = time.monotonic() + timeout_s
    while time.monotonic() < t_end:
        if proc.poll() is not None:
            return f"server exited with status {proc.returncode} before accepting"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return None
        except OSError:
            time.sleep(0.03)
    return f"server did not accept within {timeout_s:.0f} s"


def stop_server(proc) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left."""
    import signal
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # the leader is gone; make sure nothing else of its group survives
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return


def _kv(line: str) -> dict:
    return dict(p.split("=", 1) for p in line.split() if "=" in p)


def parse_wrk(out: str) -> Tuple[Optional[dict], str]:
    """req/s, p50, p99 (us) and request count from `wrk --latency`; why not."""
    import re
    r: dict = {}
    unit = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 6e7}
    for line in out.splitlines():
        s = line.strip()
        m = re.match(r"Requests/sec:\s+([\d.]+)", s)
        if m:
            r["req_s"] = float(m.group(1))
        m = re.match(r"(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s|m)$", s)
        if m:
            r["p50_us" if m.group(1) == "50" else "p99_us"] = float(m.group(2)) * unit[m.group(3)]
        m = re.match(r"(\d+) requests in", s)
        if m:
            r["requests"] = int(m.group(1))
        m = re.match(r"Non-2xx or 3xx responses:\s+(\d+)", s)
        if m:
            r["non_2xx"] = int(m.group(1))
        m = re.match(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s)
        if m:
            r["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                          map(int, m.groups())))
    if "req_s" not in r or "p50_us" not in r or "p99_us" not in r:
        return None, "could not parse wrk's output"
    if r.get("non_2xx"):
        return None, f"wrk: {r['non_2xx']} non-2xx/3xx responses"
    errs = r.get("socket_errors") or {}
    if any(errs.get(k) for k in ("connect", "read", "write")):
        return None, f"wrk: socket errors {errs}"
    if not r.get("requests"):
        return None, "wrk: no request completed"
    return r, ""


def check_http(port: int) -> Optional[str]:
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as resp:
            body = resp.read()
            if resp.status != 200 or body != b"Hello, world!\n":
                return f"GET / answered {resp.status} {body[:40]!r}, want 200 'Hello, world!\\n'"
    except Exception as e:      # noqa: BLE001 - any failure is the server's
        return f"GET / failed: {e}"
    return None


@dataclass
class ServerRun:
    workload: str
    workers: int
    label: str
    runtime: str
    round: int
    server_argv: Sequence[str] = ()
    client_argv: Sequence[str] = ()
    status: str = ""                # ok | failed
    why: str = ""
    result: dict = field(default_factory=dict)
    wall_s: float = 0.0
    quiet_wait_s: float = 0.0
    busy_cores: Optional[float] = None
    busy: bool = False


SERVER_METRICS = ("req_s", "p50_us", "p99_us", "cpu_us_per_req", "heavy_p50_us", "heavy_p99_us")


@dataclass
class ServerCell:
    workload: str
    workers: int
    label: str
    runtime: str
    status: str = "not run"         # ok | failed | unavailable | not run
    why: str = ""
    runs: list = field(default_factory=list)

    def med(self, key):
        xs = [r.result[key] for r in self.runs if r.status == "ok" and r.result.get(key) is not None]
        return statistics.median(xs) if xs else None

    def spread(self, key="req_s"):
        xs = [r.result[key] for r in self.runs if r.status == "ok" and r.result.get(key)]
        m = statistics.median(xs) if xs else None
        return (max(xs) - min(xs)) / m if xs and m else None

    @property
    def unreliable(self):
        s = self.spread()
        return sum(1 for r in self.runs if r.status == "ok") > 1 and s is not None \
            and s > UNRELIABLE_SPREAD


def run_server_one(run: ServerRun, wl: ServerWorkload, v: Variant, ctx: "Ctx", mode: str,
                   timeout_s: float) -> None:
    import tempfile
    t0 = time.monotonic()
    port = free_port()
    sargv = list(v.argv(ctx, wl, port, wl.workers))
    if wl.pin_server:
        sargv = ["taskset", "-c", "0", *sargv]
    run.server_argv = sargv
    dur, warm = wl.duration[mode], wl.warmup[mode]
    proc = None
    errf = tempfile.TemporaryFile()
    try:
        try:
            proc = subprocess.Popen(sargv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=errf, cwd=ROOT, start_new_session=True)
        except OSError as e:
            run.status, run.why = "failed", f"server could not start: {e}"
            return
        why = wait_accepting(proc, port, 15.0)
        if why:
            errf.seek(0)
            err = errf.read().decode(errors="replace").strip()
            run.status, run.why = "failed", why + (": " + err.splitlines()[-1] if err else "")
            return
        if wl.client == "wrk":
            why = check_http(port)
            if why:
                run.status, run.why = "failed", why
                return
            time.sleep(min(warm, 0.5))
            cargv = ["taskset", "-c", "1", ctx.wrk, "-t1", f"-c{wl.conns}",
                     f"-d{max(1, int(round(dur)))}s", "--latency", f"http://127.0.0.1:{port}/"]
        else:
            cargv = ["taskset", "-c", "1", str(ctx.echo_load), "--addr", f"127.0.0.1:{port}",
                     "--conns", str(wl.conns), "--size", str(wl.size), "--depth", "1",
                     "--duration", str(dur), "--warmup", str(warm), "--workers", "1",
                     "--server-pid", str(proc.pid)]
            if wl.client == "mixed":
                cargv += ["--heavy-every", str(wl.heavy_every), "--marker", "B"]
        run.client_argv = cargv
        cpu0 = proc_cpu_s(proc.pid)
        try:
            p = subprocess.run(cargv, capture_output=True, text=True, timeout=timeout_s, cwd=ROOT)
        except subprocess.TimeoutExpired:
            run.status, run.why = "failed", f"client timed out after {timeout_s:.0f} s"
            return
        except OSError as e:
            run.status, run.why = "failed", f"client could not start: {e}"
            return
        cpu1 = proc_cpu_s(proc.pid)
        if proc.poll() is not None:
            run.status, run.why = "failed", f"server died (status {proc.returncode}) under load"
            return
        err = (p.stderr or "").strip()
        if wl.client == "wrk":
            r, why = parse_wrk(p.stdout)
            if p.returncode != 0 or r is None:
                run.status = "failed"
                run.why = why or f"wrk exit status {p.returncode}: {err[-200:]}"
                return
            if cpu0 is not None and cpu1 is not None:
                r["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / r["requests"]
            run.result = r
        else:
            if p.returncode != 0:
                run.status = "failed"
                run.why = (f"echo-load exit status {p.returncode}"
                           + (": " + err.splitlines()[-1] if err else ""))
                return
            echo = mixed = None
            for line in p.stdout.splitlines():
                if line.startswith("echo "):
                    echo = _kv(line)
                elif line.startswith("mixed "):
                    mixed = _kv(line)
            if echo is None or (wl.client == "mixed" and mixed is None):
                run.status, run.why = "failed", "no parsable echo-load line"
                return
            if int(echo.get("errors", "1")) != 0:
                run.status, run.why = "failed", f"echo-load reported {echo.get('errors')} errors"
                return
            r = {"req_s": float(echo["req_s"]), "cpu_us_per_req":
                 float(echo["server_cpu_us_per_req"]),
                 "all_p50_us": float(echo["p50_us"]), "all_p99_us": float(echo["p99_us"]),
                 "p999_us": float(echo["p999_us"])}
            if mixed:
                r.update(p50_us=float(mixed["light_p50_us"]), p99_us=float(mixed["light_p99_us"]),
                         heavy_p50_us=float(mixed["heavy_p50_us"]),
                         heavy_p99_us=float(mixed["heavy_p99_us"]),
                         light_n=int(mixed["light_n"]), heavy_n=int(mixed["heavy_n"]))
            else:
                r.update(p50_us=r["all_p50_us"], p99_us=r["all_p99_us"])
            if r["req_s"] <= 0:
                run.status, run.why = "failed", "no request completed"
                return
            run.result = r
        run.status = "ok"
    finally:
        stop_server(proc)
        errf.close()
        run.wall_s = time.monotonic() - t0


def fmt_num(x: Optional[float]) -> str:
    if x is None:
        return "—"
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def server_markdown(swls, scells, cfg) -> str:
    out = ["## Servers — throughput, latency and server CPU per request", "",
           f"{cfg['rounds']} round(s) interleaved; each figure is the median over rounds. "
           "req/s: higher is better; p50/p99 (microseconds) and server CPU per request: "
           "lower is better. For mixed, p50/p99 are the light requests' (heavy p99 apart) and "
           "req/s counts all requests.", "",
           "| workload | workers | server | req/s | p50 us | p99 us | server CPU us/req "
           "| heavy p99 us | weft req/s ÷ this |",
           "|---|--:|---|--:|--:|--:|--:|--:|--:|"]
    for wl in swls:
        weft = scells.get((wl.name, wl.workers, "weft")) or next(
            (c for (n, w, lab), c in scells.items() if n == wl.name and c.runtime == "weft"), None)
        wr = weft.med("req_s") if weft and weft.status == "ok" else None
        for v in wl.variants:
            c = scells.get((wl.name, wl.workers, v.label))
            if c is None:
                continue
            if c.status == "failed":
                cols = ["FAIL"] * 5 + ["—"]
            elif c.status != "ok":
                cols = ["—"] * 6
            else:
                rq = fmt_num(c.med("req_s"))
                if c.unreliable:
                    rq += f" (unreliable, spread {c.spread():.0%})"
                r = c.med("req_s")
                cols = [rq, fmt_num(c.med("p50_us")), fmt_num(c.med("p99_us")),
                        fmt_num(c.med("cpu_us_per_req")),
                        fmt_num(c.med("heavy_p99_us")) if wl.client == "mixed" else "",
                        fmt_ratio(wr / r) if wr and r and v.runtime != "weft" else "—"]
            out.append(f"| {wl.name} | {wl.workers} | {v.label} | " + " | ".join(cols) + " |")
    out += ["", "FAIL = a correctness failure (echo-load byte mismatch or connection error, "
            "wrk non-2xx or socket errors, wrong HTTP body), a crash or a timeout; its figures "
            "are left out. — = not run (runtime or tool unavailable).", ""]
    out.append("Workloads: " + "; ".join(f"{w.name} = {w.what}" for w in swls) + ".")
    return "\n".join(out)


# --------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------

def sh(argv, **kw) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw)
        return r.stdout.strip() if r.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def dpkg_version(pkg: str) -> str:
    return sh(["dpkg-query", "-W", "-f=${Version}", pkg]) or "not installed"


def machine(python: str, go_version: str) -> dict:
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    git = sh(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    if git and sh(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"]):
        git += "+dirty"
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu or platform.processor() or "unknown",
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "os": sh(["sh", "-c", ". /etc/os-release && echo \"$PRETTY_NAME\""]),
        "python": sh([python, "-c", "import sys; print(sys.version.split()[0])"]),
        "python_path": python,
        "uvloop": sh([python, "-c", "import uvloop; print(uvloop.__version__)"]) or "not available",
        "python3-uvloop": dpkg_version("python3-uvloop"),
        "go": go_version or "not available",
        "golang-go": dpkg_version("golang-go"),
        "liburing-dev": dpkg_version("liburing-dev"),
        "liburing2": dpkg_version("liburing2"),
        "libjemalloc-dev": dpkg_version("libjemalloc-dev"),
        "gcc": dpkg_version("gcc"),
        "weft_git": git or "unknown",
    }


def cpu_busy_cores(window_s: float = 0.2) -> float:
    """CPU time used by anything on the machine over window_s, in cores."""
    def snap():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v[:8]), v[3] + v[4]          # total, idle + iowait
    t0, i0 = snap()
    time.sleep(window_s)
    t1, i1 = snap()
    total = t1 - t0
    if total <= 0:
        return 0.0
    return (1 - (i1 - i0) / total) * (os.cpu_count() or 1)


def wait_quiet(max_wait_s: float) -> Tuple[float, Optional[float]]:
    """Wait (at most max_wait_s) until the machine is quiet. Returns the time
    waited and the last busy figure (None when not checked)."""
    if max_wait_s <= 0:
        return 0.0, None
    limit = max(0.25, 0.1 * (os.cpu_count() or 1))
    t0 = time.monotonic()
    while True:
        try:
            busy = cpu_busy_cores()
        except OSError:
            return 0.0, None
        if busy <= limit or time.monotonic() - t0 >= max_wait_s:
            return time.monotonic() - t0, busy


# --------------------------------------------------------------------------
# Running
# --------------------------------------------------------------------------

def build_go(out_dir: Path) -> Tuple[Optional[Path], str, str]:
    """go build the Go counterparts into out_dir. Returns (binary or None,
    go version, why not)."""
    go = shutil.which("go")
    if not go:
        return None, "", "go not installed (apt-get install golang-go)"
    env = dict(os.environ,
               GOCACHE=str(out_dir / "gocache"), GOPATH=str(out_dir / "gopath"),
               GOPROXY="off", GOFLAGS="", GO111MODULE="on", GOTOOLCHAIN="local",
               GOTELEMETRY="off", CGO_ENABLED="0")
    version = sh([go, "version"], env=env)
    out = out_dir / "go-bench"
    try:
        r = subprocess.run([go, "build", "-o", str(out), "."],
                           cwd=HERE / "go", env=env, capture_output=True, text=True,
                           timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        return None, version, f"go build failed: {e}"
    if r.returncode != 0:
        return None, version, "go build failed:\n" + r.stderr.strip()
    return out, version, ""


def parse_line(text: str, bench: str) -> Optional[dict]:
    for line in text.splitlines():
        if not line.startswith("bench="):
            continue
        kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
        if kv.get("bench") != bench:
            continue
        try:
            for k in ("n", "workers"):
                kv[k] = int(kv[k])
            for k in ("ms", "ns_per_op", "cold_ms"):
                kv[k] = float(kv[k])
        except (KeyError, ValueError):
            return None
        return kv
    return None


@dataclass
class Run:
    workload: str
    workers: int
    runtime: str
    round: int
    argv: Sequence[str]
    status: str = ""            # ok | unsupported | failed
    why: str = ""
    result: Optional[dict] = None
    ns_per_op: Optional[float] = None   # ms * 1e6 / ops(n): the same op in every runtime
    wall_s: float = 0.0
    quiet_wait_s: float = 0.0
    busy_cores: Optional[float] = None
    busy: bool = False          # ran although the machine was not quiet


def run_one(run: Run, wl: Workload, n: int, timeout_s: float) -> None:
    t0 = time.monotonic()
    try:
        p = subprocess.run(run.argv, capture_output=True, text=True, timeout=timeout_s,
                           cwd=ROOT)
    except subprocess.TimeoutExpired:
        run.wall_s = time.monotonic() - t0
        run.status, run.why = "failed", f"timed out after {timeout_s:.0f} s"
        return
    except OSError as e:
        run.wall_s = time.monotonic() - t0
        run.status, run.why = "failed", f"could not start: {e}"
        return
    run.wall_s = time.monotonic() - t0
    err = (p.stderr or "").strip()
    if p.returncode == 2 and "unknown benchmark" in (err + p.stdout):
        run.status, run.why = "unsupported", "unknown benchmark"
        return
    if p.returncode != 0:
        how = (f"killed by signal {-p.returncode}" if p.returncode < 0
               else f"exit status {p.returncode}")
        run.status = "failed"
        run.why = how + (": " + err.splitlines()[-1] if err else "")
        return
    kv = parse_line(p.stdout, wl.name)
    if kv is None:
        run.status, run.why = "failed", "no parsable 'bench=' line in its output"
        return
    if kv["n"] != n:
        run.status, run.why = "failed", f"ran n={kv['n']}, asked for n={n}"
        return
    run.status, run.result = "ok", kv
    run.ns_per_op = kv["ms"] * 1e6 / wl.ops(n)


def fmt_dur(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def fmt_ns(x: Optional[float]) -> str:
    if x is None:
        return "—"
    if x < 10:
        return f"{x:.2f}"
    if x < 100:
        return f"{x:.1f}"
    return f"{x:,.0f}"


def fmt_ratio(r: Optional[float]) -> str:
    if r is None:
        return "—"
    if r < 10:
        return f"{r:.2f}x"
    if r < 100:
        return f"{r:.1f}x"
    return f"{r:,.0f}x"


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

@dataclass
class Cell:
    workload: str
    workers: int
    runtime: str
    n: int
    status: str = "not run"     # ok | unsupported | failed | unavailable | not run
    why: str = ""
    values: list = field(default_factory=list)   # ns/op of each round
    runs: list = field(default_factory=list)

    @property
    def median(self):
        return statistics.median(self.values) if self.values else None

    @property
    def spread(self):
        m = self.median
        return (max(self.values) - min(self.values)) / m if self.values and m else None

    @property
    def unreliable(self):
        return len(self.values) > 1 and self.spread is not None and self.spread > UNRELIABLE_SPREAD

    def med_of(self, key):
        xs = [r.result[key] for r in self.runs if r.status == "ok" and key in r.result]
        return statistics.median(xs) if xs else None


def ratio(cells, wl, w, peer) -> Optional[float]:
    a, b = cells.get((wl, w, peer)), cells.get((wl, w, "weft"))
    if a and b and a.status == "ok" and b.status == "ok" and a.median and b.median:
        return a.median / b.median
    return None


def cell_text(c: Optional[Cell]) -> str:
    if c is None or c.status in ("unsupported", "unavailable", "not run"):
        return "—"
    if c.status == "failed":
        return "FAIL"
    s = fmt_ns(c.median)
    if c.unreliable:
        s += f" (unreliable, spread {c.spread:.0%})"
    return s


def markdown(rows, runtimes, cells, workloads, mach, cfg) -> str:
    peers = [p for p in PEERS if p in runtimes]
    out = [f"## weft vs {', '.join(peers) or 'nothing'} — ns per op (lower is better)", "",
           f"{mach['cpu']}, {mach['cores']} cores, Linux {mach['kernel']}; mode {cfg['mode']}: "
           f"{cfg['rounds']} round(s) interleaved; each cell is the median over rounds of "
           f"each run's median of {cfg['reps_note']} reps.", ""]
    head = ["workload", "workers", *runtimes]
    if "weft" in runtimes:
        head += [f"{p} x slower" for p in peers]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join(["---", "--:"] + ["--:"] * (len(head) - 2)) + "|")
    for wl, w in rows:
        line = [wl, str(w)] + [cell_text(cells.get((wl, w, rt))) for rt in runtimes]
        if "weft" in runtimes:
            line += [fmt_ratio(ratio(cells, wl, w, p))
                     + (" ?" if ratio(cells, wl, w, p) and (cells[(wl, w, p)].unreliable
                                                         or cells[(wl, w, "weft")].unreliable)
                        else "")
                     for p in peers]
        out.append("| " + " | ".join(line) + " |")
    out += ["", "x slower = peer ns/op ÷ weft ns/op (above 1: weft is faster; ? = from an "
            "unreliable cell). "
            "— = not run (no such workload or worker count in that runtime, or runtime "
            "unavailable). FAIL = the program failed its own correctness check, crashed "
            "or timed out; its figures are left out.", ""]
    out.append("One op: " + "; ".join(f"{w.name} = {w.op}" for w in workloads) + ".")
    return "\n".join(out)


def verdict(rows, runtimes, cells) -> Tuple[str, dict]:
    lines, summary = [], {}
    if "weft" not in runtimes:
        return "weft was not run: peers only.", summary
    if not any(c.status == "ok" for (_, _, rt), c in cells.items() if rt == "weft"):
        return "No weft figures to compare with (see below).", summary
    for p in PEERS:
        if p not in runtimes:
            continue
        rs = [(f"{wl}/w{w}", ratio(cells, wl, w, p)) for wl, w in rows]
        rs = [(k, r) for k, r in rs if r is not None]
        if not rs:
            continue
        gm = math.exp(sum(math.log(r) for _, r in rs) / len(rs))
        faster = sum(1 for _, r in rs if r > 1)
        worst = min(rs, key=lambda kr: kr[1])
        summary[p] = {"geomean_ratio": gm, "weft_faster_cells": faster, "cells": len(rs)}
        msg = (f"- vs {p}: weft is faster in {faster} of {len(rs)} cells; "
               f"geometric mean {fmt_ratio(gm)} ({'weft faster' if gm > 1 else 'weft slower'})")
        if worst[1] < 1:
            msg += f"; {p} is faster at {worst[0]} ({fmt_ratio(1 / worst[1])})"
        lines.append(msg)
    return "\n".join(["**Answer:**", *lines]), summary


SVG_COLORS = {"asyncio": "#4C72B0", "uvloop": "#55A868", "go": "#00ADD8"}


def svg_chart(rows, runtimes, cells, title_note: str) -> str:
    peers = [p for p in PEERS if p in runtimes]
    groups = []
    for wl, w in rows:
        bars = []
        for p in peers:
            r = ratio(cells, wl, w, p)
            if r is not None:
                bars.append((p, r, cells[(wl, w, p)].unreliable or cells[(wl, w, "weft")].unreliable))
        if bars:
            groups.append((f"{wl} w={w}", bars))
    W, left, right, top, bar_h, gap = 900, 130, 110, 70, 16, 14
    esc = lambda s: s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if not groups:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="80">'
                f'<text x="20" y="45" font-family="sans-serif" font-size="15">'
                f'No peer/weft ratios to draw: {esc(title_note)}</text></svg>\n')
    allr = [r for _, bars in groups for _, r, _ in bars]
    lo = 10 ** math.floor(math.log10(min(min(allr), 1) * 0.8))
    hi = 10 ** math.ceil(math.log10(max(max(allr), 1) * 1.25))
    plot_w = W - left - right
    x = lambda r: left + plot_w * (math.log10(r) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))
    H = top + sum(len(b) * bar_h + gap for _, b in groups) + 50
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="12">',
         f'<rect width="{W}" height="{H}" fill="white"/>',
         f'<text x="{left}" y="22" font-size="16" font-weight="bold">How many times slower than '
         f'weft (peer ns/op ÷ weft ns/op, log scale)</text>',
         f'<text x="{left}" y="40" fill="#555">{esc(title_note)}</text>']
    # legend
    lx = left
    for p in peers:
        o.append(f'<rect x="{lx}" y="50" width="12" height="12" fill="{SVG_COLORS[p]}"/>'
                 f'<text x="{lx + 16}" y="60">{p}</text>')
        lx += 90
    o.append(f'<text x="{lx}" y="60" fill="#555">faded = unreliable (spread &gt; 20%)</text>')
    y_end = H - 40
    d = lo
    while d <= hi * 1.001:
        for m in (1, 2, 5):
            v = d * m
            if lo <= v <= hi:
                X = x(v)
                major = m == 1
                o.append(f'<line x1="{X:.1f}" y1="{top}" x2="{X:.1f}" y2="{y_end}" '
                         f'stroke="{"#bbb" if major else "#eee"}"/>')
                o.append(f'<text x="{X:.1f}" y="{y_end + 16}" text-anchor="middle" '
                         f'fill="{"#333" if major else "#999"}">{v:g}x</text>')
        d *= 10
    y = top
    for label, bars in groups:
        gh = len(bars) * bar_h
        o.append(f'<text x="{left - 8}" y="{y + gh / 2 + 4:.1f}" text-anchor="end">{esc(label)}</text>')
        for p, r, unrel in bars:
            x0, x1 = sorted((x(1), x(r)))
            op = "0.45" if unrel else "1"
            o.append(f'<rect x="{x0:.1f}" y="{y + 1}" width="{max(x1 - x0, 1):.1f}" '
                     f'height="{bar_h - 2}" fill="{SVG_COLORS[p]}" fill-opacity="{op}"/>')
            tx = x(r) + 4 if r >= 1 else x(r) - 4
            anchor = "start" if r >= 1 else "end"
            o.append(f'<text x="{tx:.1f}" y="{y + bar_h - 4}" text-anchor="{anchor}" '
                     f'font-size="11">{fmt_ratio(r)}{" ?" if unrel else ""}</text>')
            y += bar_h
        y += gap
    X1 = x(1)
    o.append(f'<line x1="{X1:.1f}" y1="{top - 4}" x2="{X1:.1f}" y2="{y_end}" stroke="black" '
             f'stroke-width="1.5"/>')
    o.append(f'<text x="{X1:.1f}" y="{y_end + 32}" text-anchor="middle">1x = as fast as '
             f'weft (right: weft faster; left: peer faster)</text>')
    o.append("</svg>")
    return "\n".join(o) + "\n"


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    m = p.add_mutually_exclusive_group()
    m.add_argument("--quick", dest="mode", action="store_const", const="quick",
                   help="about 3 minutes (runtimes) + 5 (servers) on 2 cores (default)")
    m.add_argument("--full", dest="mode", action="store_const", const="full",
                   help="full sizes, 7 rounds (about 40 minutes on 2 cores)")
    m.add_argument("--smoke", dest="mode", action="store_const", const="smoke",
                   help="tiny sizes, 1 round, 1 rep: does every counterpart work?")
    p.add_argument("--only", help="comma-separated workloads: "
                   + ",".join(w.name for w in WORKLOADS + SERVER_WORKLOADS)
                   + " (or the groups compute, servers)")
    p.add_argument("--runtimes", help="comma-separated, from " + ",".join(RUNTIMES))
    p.add_argument("--workers", help="comma-separated worker counts (default 1,2)")
    p.add_argument("--rounds", type=int, help="override the mode's rounds")
    p.add_argument("--reps", type=int, help="override the mode's repetitions per run")
    p.add_argument("--quiet-wait", type=float, help="longest wait (s) for a quiet machine "
                   "before each run; 0 skips the check")
    p.add_argument("--timeout", type=float, help="per-run time limit (s)")
    p.add_argument("--build-dir", default=str(ROOT / "build"), help="weft's build directory")
    p.add_argument("--weft-bench", help="weft-bench binary (default BUILD/benchmarks/weft-bench)")
    p.add_argument("--weft-missing", metavar="WHY",
                   help="do not run weft, saying why (run-benchmarks: the build failed)")
    p.add_argument("--python", help="python for asyncio/uvloop (default /usr/bin/python3)")
    p.add_argument("--out", help="where results go (default BUILD/compare, "
                   "BUILD/compare/smoke for --smoke)")
    a = p.parse_args(argv)
    a.mode = a.mode or "quick"
    return a


def split_list(s, allowed, what):
    items = [x.strip() for x in s.split(",") if x.strip()]
    bad = [x for x in items if x not in allowed]
    if bad:
        sys.exit(f"run.py: unknown {what}: {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def main(argv=None) -> int:
    a = parse_args(argv)
    mode = MODES[a.mode]
    rounds = a.rounds or mode.rounds
    reps_override = a.reps
    quiet_wait = mode.quiet_wait_s if a.quiet_wait is None else a.quiet_wait
    timeout_s = a.timeout or mode.timeout_s
    build = Path(a.build_dir).resolve()
    out_dir = Path(a.out).resolve() if a.out else build / "compare" / ("smoke" if a.mode == "smoke" else "")
    out_dir.mkdir(parents=True, exist_ok=True)
    tools_dir = build / "compare"
    tools_dir.mkdir(parents=True, exist_ok=True)

    workloads, swls = WORKLOADS, SERVER_WORKLOADS
    if a.only:
        names = split_list(a.only, [w.name for w in WORKLOADS + SERVER_WORKLOADS]
                           + ["compute", "servers"], "workload")
        workloads = [w for w in WORKLOADS if w.name in names or "compute" in names]
        swls = [w for w in SERVER_WORKLOADS if w.name in names or "servers" in names]
    asked = split_list(a.runtimes, RUNTIMES, "runtime") if a.runtimes else list(RUNTIMES)
    runtimes = [rt for rt in RUNTIMES if rt in asked]
    try:
        worker_counts = [int(x) for x in a.workers.split(",")] if a.workers else [1, 2]
    except ValueError:
        sys.exit(f"run.py: --workers wants numbers such as 1,2, not {a.workers!r}")

    python = a.python or ("/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK)
                          else sys.executable)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)

    # Which runtimes can run here?
    unavailable: Dict[str, str] = {}
    weft_bench = Path(a.weft_bench) if a.weft_bench else build / "benchmarks" / "weft-bench"
    if "weft" in runtimes and a.weft_missing:
        unavailable["weft"] = a.weft_missing
    elif "weft" in runtimes and not os.access(weft_bench, os.X_OK):
        unavailable["weft"] = f"{weft_bench} not built (cmake --build build)"
    go_bin, go_version = None, ""
    if "go" in runtimes:
        log("run.py: building the Go counterparts (go build, no network) ...")
        go_bin, go_version, why = build_go(tools_dir)
        if not go_bin:
            unavailable["go"] = why
    if "uvloop" in runtimes and not sh([python, "-c", "import uvloop; print(1)"]):
        unavailable["uvloop"] = f"{python} cannot import uvloop (apt-get install python3-uvloop)"
    if not shutil.which(python) and not os.access(python, os.X_OK):
        for rt in PYTHON_RUNTIMES:
            unavailable[rt] = f"{python} not found"
    for rt, why in unavailable.items():
        if rt in runtimes:
            log(f"run.py: {rt} unavailable: {why}")
    if a.runtimes and any(rt in unavailable for rt in runtimes):
        log("run.py: a runtime named in --runtimes is unavailable")
        return 2
    active = [rt for rt in runtimes if rt not in unavailable]
    if not active:
        log("run.py: no runtime to run")
        return 2

    ctx = Ctx(weft_bench=weft_bench.resolve() if weft_bench.exists() else weft_bench,
              go_bench=go_bin or tools_dir / "go-bench", python=python,
              py_bench=HERE / "py_bench.py", build=build,
              echo_load=build / "benchmarks" / "echo-load", wrk=shutil.which("wrk") or "wrk")
    mach = machine(python, go_version)

    # The grid: rows = workload x workers, columns = runtimes.
    rows = [(w.name, n) for w in workloads for n in worker_counts if n in w.workers]
    by_name = {w.name: w for w in workloads}
    cells: Dict[Tuple[str, int, str], Cell] = {}
    plan = []     # (workload, workers, runtime) in the order of one round
    for wl, w in rows:
        for rt in runtimes:
            n = by_name[wl].sizes[a.mode][SIZE_CLASS[rt]]
            c = cells[(wl, w, rt)] = Cell(wl, w, rt, n)
            if rt in unavailable:
                c.status, c.why = "unavailable", unavailable[rt]
            elif w not in RUNTIME_WORKERS.get(rt, worker_counts):
                c.status, c.why = "unsupported", f"{rt} has one event loop (workers=1 only)"
            else:
                plan.append((wl, w, rt))

    # Server workloads: one cell per (workload, server variant).
    scells: Dict[Tuple[str, int, str], ServerCell] = {}
    splan = []    # (server workload, variant) in the order of one round
    have_mod = {}
    for swl in swls:
        for v in swl.variants:
            if v.runtime not in runtimes:
                continue
            c = scells[(swl.name, swl.workers, v.label)] = ServerCell(swl.name, swl.workers,
                                                                       v.label, v.runtime)
            why = unavailable.get(v.runtime)
            if not why and swl.client in ("echo", "mixed") and not os.access(ctx.echo_load,
                                                                             os.X_OK):
                why = f"{ctx.echo_load} not built (cmake --build build)"
            if not why and swl.client == "wrk" and not shutil.which("wrk"):
                why = "wrk not installed (apt-get install wrk)"
            if not why and not shutil.which("taskset"):
                why = "taskset not installed (util-linux)"
            if not why and v.runtime == "weft":
                prog = Path(v.argv(ctx, swl, 1, 1)[0])
                if not os.access(prog, os.X_OK):
                    why = f"{prog} not built (cmake --build build)"
            for mod in v.needs:
                if mod not in have_mod:
                    have_mod[mod] = bool(sh([python, "-c", f"import {mod}; print(1)"]))
                if not why and not have_mod[mod]:
                    why = f"{python} cannot import {mod} (apt-get install python3-{mod})"
            if why:
                c.status, c.why = "unavailable", why
            else:
                splan.append((swl, v))
    total = rounds * (len(plan) + len(splan))
    log(f"run.py: {a.mode}: {len(rows)} rows x {len(active)} runtimes + {len(scells)} server "
        f"cells, {rounds} round(s), {total} runs; results in {out_dir}")
    all_sruns = []

    all_runs = []
    busy_streak = 0     # consecutive runs that waited in vain for a quiet machine
    quiet_streak = 0    # consecutive runs that found it quiet
    busy_for_good = False
    est: Dict[Tuple[str, int, str], float] = {}
    done = 0
    t_start = time.monotonic()
    for rnd in range(1, rounds + 1):
        for wl, w, rt in plan:
            c = cells[(wl, w, rt)]
            done += 1
            if c.status in ("failed", "unsupported"):
                continue        # a failed cell stays failed; skip its later rounds
            wlo = by_name[wl]
            reps = reps_override or wlo.reps.get(a.mode, mode.reps)
            r = Run(wl, w, rt, rnd, list(wlo.argv(rt, ctx, c.n, w, reps)))
            # A machine that stayed busy through three full waits is busy for
            # good (another job): then only glance at it (1 s) until it has
            # been quiet three runs in a row, and say so.
            r.quiet_wait_s, r.busy_cores = wait_quiet(min(quiet_wait, 1.0) if busy_for_good
                                                      else quiet_wait)
            was_busy = r.busy_cores is not None and r.quiet_wait_s >= min(quiet_wait, 1.0) \
                and r.busy_cores > max(0.25, 0.1 * (os.cpu_count() or 1))
            busy_streak = busy_streak + 1 if was_busy else 0
            quiet_streak = 0 if was_busy else quiet_streak + 1
            if busy_streak >= 3 and not busy_for_good:
                busy_for_good = True
                log("run.py: the machine stays busy (something else is using "
                    f"{r.busy_cores:.2f} cores): figures will be noisy; waiting at most 1 s "
                    "per run until it is quiet again")
            elif quiet_streak >= 3:
                busy_for_good = False
            run_one(r, wlo, c.n, timeout_s)
            all_runs.append(r)
            c.runs.append(r)
            est[(wl, w, rt)] = r.wall_s
            if r.status == "ok":
                c.status = "ok"
                c.values.append(r.ns_per_op)
                res = f"{fmt_ns(r.ns_per_op)} ns/op"
            else:
                c.status, c.why, c.values = r.status, r.why, []
                res = "skipped (unknown benchmark)" if r.status == "unsupported" else f"FAILED: {r.why}"
            # Estimated time left: each remaining run takes what it took last
            # round (or, in round 1, what this runtime's runs took so far),
            # plus the recent runs' average wait for a quiet machine.
            recent = all_runs[-5:]
            wait_guess = sum(x.quiet_wait_s for x in recent) / len(recent)
            left = 0.0
            seen_rt = {}
            for (kwl, kw, krt), v in est.items():
                seen_rt.setdefault(krt, []).append(v)
            for i, (kwl, kw, krt) in enumerate(plan * rounds):
                if i < done or cells[(kwl, kw, krt)].status in ("failed", "unsupported"):
                    continue
                left += wait_guess + est.get(
                    (kwl, kw, krt), statistics.mean(seen_rt[krt]) if krt in seen_rt else 1.5)
            r.busy = was_busy
            busy = f" (machine busy: {r.busy_cores:.2f} cores)" if was_busy else ""
            log(f"[{done:3d}/{total}] round {rnd}/{rounds} {wl:<8} w={w} {rt:<7} "
                f"{res}{busy}  ~{fmt_dur(left)} left")
        for swl, v in splan:
            c = scells[(swl.name, swl.workers, v.label)]
            done += 1
            if c.status == "failed":
                continue
            r = ServerRun(swl.name, swl.workers, v.label, v.runtime, rnd)
            r.quiet_wait_s, r.busy_cores = wait_quiet(min(quiet_wait, 1.0) if busy_for_good
                                                      else quiet_wait)
            r.busy = r.busy_cores is not None and r.quiet_wait_s >= min(quiet_wait, 1.0) \
                and r.busy_cores > max(0.25, 0.1 * (os.cpu_count() or 1))
            run_server_one(r, swl, v, ctx, a.mode, timeout_s)
            all_sruns.append(r)
            c.runs.append(r)
            if r.status == "ok":
                c.status = "ok"
                x = r.result
                res = (f"{x['req_s']:,.0f} req/s p50 {fmt_num(x['p50_us'])} us "
                       f"p99 {fmt_num(x['p99_us'])} us cpu "
                       f"{fmt_num(x.get('cpu_us_per_req'))} us/req")
            else:
                c.status, c.why = "failed", r.why
                res = f"FAILED: {r.why}"
            busy = f" (machine busy: {r.busy_cores:.2f} cores)" if r.busy else ""
            log(f"[{done:3d}/{total}] round {rnd}/{rounds} {swl.name:<8} w={swl.workers} "
                f"{v.label:<18} {res}{busy}")
    elapsed = time.monotonic() - t_start

    # Notes: places where the runtimes may not be doing the same thing.
    notes = []
    for rt in runtimes:
        odd = sorted({wl for (wl, w, crt), c in cells.items() if crt == rt and c.status == "ok"
                      and c.med_of("ns_per_op") and c.median
                      and abs(c.med_of("ns_per_op") / c.median - 1) > 0.05})
        if odd:
            notes.append(f"{rt}'s own ns_per_op for {', '.join(odd)} divides by another op "
                         "than the legend's; the table uses ms x 1e6 / ops(n) for every runtime.")
    for wl, w in rows:
        tasks = {}
        for rt in runtimes:
            c = cells[(wl, w, rt)]
            t = [r.result.get("tasks") for r in c.runs if r.status == "ok" and "tasks" in r.result]
            if t:
                tasks.setdefault((c.n, t[0]), []).append(rt)
        by_n = {}
        for (n, t), rts in tasks.items():
            by_n.setdefault(n, []).append((t, rts))
        for n, lst in by_n.items():
            if len(lst) > 1:
                notes.append(f"{wl} w={w} n={n}: the runtimes create different numbers of tasks: "
                             + "; ".join(f"{'/'.join(r)} {t}" for t, r in lst))
    failures = [c for c in cells.values() if c.status == "failed"]
    sfailures = [c for c in scells.values() if c.status == "failed"]

    cfg = {"mode": a.mode, "rounds": rounds,
           "reps": reps_override or mode.reps, "runtimes": runtimes,
           "reps_note": str(reps_override) if reps_override else
           f"{mode.reps}" + "".join(f" ({w.name}: {w.reps[a.mode]})" for w in workloads
                                    if a.mode in w.reps),
           "workloads": [w.name for w in workloads], "workers": worker_counts,
           "quiet_wait_s": quiet_wait, "timeout_s": timeout_s,
           "unavailable": unavailable, "elapsed_s": round(elapsed, 1),
           "server_workloads": [w.name for w in swls]}
    table = markdown(rows, runtimes, cells, workloads, mach, cfg) if rows else ""
    stable = server_markdown(swls, scells, cfg) if scells else ""
    answer, summary = verdict(rows, runtimes, cells)

    # results.json / results.csv / ratios.svg
    def cell_json(c: Cell):
        return {"workload": c.workload, "workers": c.workers, "runtime": c.runtime, "n": c.n,
                "ops": by_name[c.workload].ops(c.n), "status": c.status, "why": c.why,
                "ns_per_op": c.median, "spread": c.spread, "unreliable": c.unreliable,
                "ms": c.med_of("ms"), "cold_ms": c.med_of("cold_ms"),
                "ratio_vs_weft": ratio(cells, c.workload, c.workers, c.runtime)
                if c.runtime != "weft" else None,
                "rounds": c.values}
    doc = {"machine": mach, "config": cfg, "answer": summary, "notes": notes,
           "cells": [cell_json(c) for c in cells.values()],
           "runs": [{"workload": r.workload, "workers": r.workers, "runtime": r.runtime,
                     "round": r.round, "argv": r.argv, "status": r.status, "why": r.why,
                     "ns_per_op": r.ns_per_op, "result": r.result, "wall_s": round(r.wall_s, 3),
                     "quiet_wait_s": round(r.quiet_wait_s, 3),
                     "busy_cores": r.busy_cores, "machine_busy": r.busy} for r in all_runs],
           "server_cells": [{"workload": c.workload, "workers": c.workers, "server": c.label,
                             "runtime": c.runtime, "status": c.status, "why": c.why,
                             **{k: c.med(k) for k in SERVER_METRICS},
                             "req_s_spread": c.spread(), "unreliable": c.unreliable,
                             "rounds": [r.result for r in c.runs if r.status == "ok"]}
                            for c in scells.values()],
           "server_runs": [{"workload": r.workload, "workers": r.workers, "server": r.label,
                            "runtime": r.runtime, "round": r.round,
                            "server_argv": r.server_argv, "client_argv": r.client_argv,
                            "status": r.status, "why": r.why, "result": r.result,
                            "wall_s": round(r.wall_s, 3), "quiet_wait_s": round(r.quiet_wait_s, 3),
                            "busy_cores": r.busy_cores, "machine_busy": r.busy}
                           for r in all_sruns]}
    (out_dir / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    with open(out_dir / "results.csv", "w", newline="") as f:
        wr = csv.writer(f)
        mkeys = ("date", "cpu", "cores", "kernel", "python", "uvloop", "go", "liburing-dev",
                 "weft_git")
        wr.writerow(["workload", "workers", "runtime", "status", "n", "ops", "ns_per_op",
                     "spread", "unreliable", "ms", "cold_ms", "ratio_vs_weft", "rounds",
                     "mode", *mkeys, *SERVER_METRICS])
        for c in cells.values():
            j = cell_json(c)
            wr.writerow([c.workload, c.workers, c.runtime, c.status, c.n, j["ops"],
                         f"{c.median:.3f}" if c.median else "",
                         f"{c.spread:.3f}" if c.spread is not None else "", int(c.unreliable),
                         j["ms"] or "", j["cold_ms"] or "",
                         f"{j['ratio_vs_weft']:.3f}" if j["ratio_vs_weft"] else "",
                         ";".join(f"{v:.3f}" for v in c.values), a.mode,
                         *(mach[k] for k in mkeys), *[""] * len(SERVER_METRICS)])
        # server cells: runtime = the server's label; rounds = each round's req/s
        for c in scells.values():
            wr.writerow([c.workload, c.workers, c.label, c.status, "", "", "",
                         f"{c.spread():.3f}" if c.spread() is not None else "",
                         int(c.unreliable), "", "", "",
                         ";".join(f"{r.result['req_s']:.0f}" for r in c.runs if r.status == "ok"),
                         a.mode, *(mach[k] for k in mkeys),
                         *[f"{c.med(k):.3f}" if c.med(k) is not None else ""
                           for k in SERVER_METRICS]])
    note = (f"{mach['cpu']}, {mach['cores']} cores, Linux {mach['kernel']}, "
            f"{a.mode} mode, {mach['date'][:10]}")
    (out_dir / "ratios.svg").write_text(svg_chart(rows, runtimes, cells, note))

    if table:
        print(table)
        print()
        print(answer)
    if stable:
        print()
        print(stable)
    for rt in runtimes:
        if rt in unavailable:
            print(f"- {rt} not run: {unavailable[rt]}")
    unsup = sorted({c.workload for c in cells.values()
                    if c.runtime == "weft" and c.status == "unsupported"})
    if unsup:
        print(f"- weft-bench has no {', '.join(unsup)} yet (shown as —).")
    nbusy = sum(1 for r in all_runs + all_sruns if r.busy)
    if nbusy:
        print(f"- the machine was busy with something else during {nbusy} of "
              f"{len(all_runs) + len(all_sruns)} runs: treat these figures with care.")
    for c in scells.values():
        if c.status == "unavailable":
            print(f"- {c.workload} {c.label} not run: {c.why}")
    sunrel = [f"{c.workload}/{c.label}" for c in scells.values() if c.unreliable]
    if sunrel:
        print(f"- unreliable req/s (spread > {UNRELIABLE_SPREAD:.0%} across rounds): "
              f"{', '.join(sunrel)}.")
    unrel = [f"{c.workload}/w{c.workers}/{c.runtime}" for c in cells.values() if c.unreliable]
    if unrel:
        print(f"- unreliable (spread > {UNRELIABLE_SPREAD:.0%} across rounds): {', '.join(unrel)}; "
              "rerun on a quieter machine or with --full.")
    for nt in notes:
        print(f"- note: {nt}")
    for c in failures:
        print(f"- FAILED {c.workload} w={c.workers} {c.runtime}: {c.why}")
    for c in sfailures:
        print(f"- FAILED {c.workload} w={c.workers} {c.label}: {c.why}")
    print(f"\nTook {fmt_dur(elapsed)}. Results: {out_dir / 'results.json'}, "
          f"{out_dir / 'results.csv'}, chart: {out_dir / 'ratios.svg'}")
    if failures or sfailures:
        log(f"run.py: {len(failures) + len(sfailures)} benchmark(s) failed; "
            "their figures are not reported")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
