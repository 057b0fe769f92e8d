#!/usr/bin/python3
"""py_bench: the asyncio / uvloop counterparts of weft-bench's workloads.

Each workload is written the way an asyncio programmer would write it (tasks,
asyncio.Queue, loop.create_future(); the garbage collector left on, as in any
real program) and prints one line per result in weft-bench's format:

    bench=NAME runtime=asyncio|uvloop workers=1 n=N ms=T ns_per_op=X cold_ms=C reps=R ...

ms and ns_per_op are the median of --reps repetitions in this process, cold_ms
the first repetition. There is one event loop on one thread, so --workers is
accepted and ignored (workers=1 is printed). A failed correctness check prints
a message on stderr and exits with status 1; an unknown workload exits with
status 2 ("unknown benchmark").

Usage: py_bench.py [--loop asyncio|uvloop] [--bench] NAME [--n N] [--reps R] [--cutoff C]
Run it with Debian's /usr/bin/python3 (python3-uvloop is a Debian package).
"""

import argparse
import asyncio
import gc
import statistics
import sys
import time


class CheckFailed(Exception):
    pass


# Each workload is `async def NAME(n, args) -> (ops, extra)`: it runs once with
# size n, checks its own result and returns the number of operations ns_per_op
# divides by plus extra "key=value" text for the output line.

async def bench_switch(n, args):
    """Two tasks yield to each other with `await asyncio.sleep(0)`; n yields."""
    async def yielder(iters):
        for _ in range(iters):
            await asyncio.sleep(0)
        return iters

    loop = asyncio.get_running_loop()
    a = loop.create_task(yielder(n - n // 2))
    b = loop.create_task(yielder(n // 2))
    done = await a + await b
    if done != n:
        raise CheckFailed(f"switch: {done} yields, want {n}")
    return n, ""


async def _noop():
    pass


async def bench_spawn(n, args):
    """Create n empty tasks, then wait for all of them (awaiting each in turn
    was the fastest of gather / wait / TaskGroup / await-in-turn here)."""
    create = asyncio.get_running_loop().create_task
    tasks = [create(_noop()) for _ in range(n)]
    for t in tasks:
        await t
    if not all(t.done() for t in tasks):
        raise CheckFailed("spawn: a task did not finish")
    return n, ""


async def _skynet(num, size, div):
    if size == 1:
        return num
    create = asyncio.get_running_loop().create_task
    sub = size // div
    children = [create(_skynet(num + i * sub, sub, div)) for i in range(div)]
    total = 0
    for c in children:
        total += await c
    return total


async def bench_skynet(n, args):
    """Classic skynet: a task per node of a 10-ary tree with n leaves."""
    div, tasks, s = 10, 0, n
    while True:
        tasks += n // s
        if s == 1:
            break
        if s % div:
            raise CheckFailed(f"skynet: n={n} is not a power of {div}")
        s //= div
    total = await asyncio.get_running_loop().create_task(_skynet(0, n, div))
    want = n * (n - 1) // 2
    if total != want:
        raise CheckFailed(f"skynet: sum {total}, want {want}")
    return n, f"tasks={tasks} sum={total}"


def _seq_fib(n):
    return n if n < 2 else _seq_fib(n - 1) + _seq_fib(n - 2)


async def _fib(n, cutoff):
    if n <= cutoff:
        return _seq_fib(n)
    t = asyncio.get_running_loop().create_task(_fib(n - 1, cutoff))
    b = await _fib(n - 2, cutoff)   # the other half runs in this task
    return await t + b


def _fib_tasks(n, cutoff):
    return 0 if n <= cutoff else 1 + _fib_tasks(n - 1, cutoff) + _fib_tasks(n - 2, cutoff)


def _fib_iter(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


async def bench_fib(n, args):
    """Fork-join fib(n): a call above the cutoff forks fib(n-1) into a new
    task and computes fib(n-2) itself; sequential at or below the cutoff.
    ops = number of fib calls (2*fib(n+1)-1)."""
    got = await _fib(n, args.cutoff)
    want = _fib_iter(n)
    if got != want:
        raise CheckFailed(f"fib({n}) = {got}, want {want}")
    return (2 * _fib_iter(n + 1) - 1,
            f"tasks={_fib_tasks(n, args.cutoff)} cutoff={args.cutoff} value={got}")


async def bench_pingpong(n, args):
    """Two tasks pass an integer back and forth over two asyncio.Queues."""
    ping, pong = asyncio.Queue(), asyncio.Queue()

    async def ponger():
        for _ in range(n):
            pong.put_nowait(await ping.get() + 1)

    server = asyncio.get_running_loop().create_task(ponger())
    bad = None
    for i in range(n):
        ping.put_nowait(i)
        v = await pong.get()
        if v != i + 1 and bad is None:
            bad = f"pingpong: got {v}, want {i + 1}"
    await server
    if bad:
        raise CheckFailed(bad)
    return n, ""


async def bench_oneshot(n, args):
    """A request travels over an asyncio.Queue; the reply comes back through a
    fresh future (loop.create_future()) made for that request."""
    loop = asyncio.get_running_loop()
    reqs = asyncio.Queue()

    async def serve():
        for _ in range(n):
            v, fut = await reqs.get()
            fut.set_result(v + 1)

    server = loop.create_task(serve())
    bad = None
    for i in range(n):
        fut = loop.create_future()
        reqs.put_nowait((i, fut))
        v = await fut
        if v != i + 1 and bad is None:
            bad = f"oneshot: got {v}, want {i + 1}"
    await server
    if bad:
        raise CheckFailed(bad)
    return n, ""


# name -> (function, default n)
WORKLOADS = {
    "switch": (bench_switch, 1_000_000),
    "spawn": (bench_spawn, 200_000),
    "skynet": (bench_skynet, 100_000),
    "fib": (bench_fib, 32),
    "pingpong": (bench_pingpong, 200_000),
    "oneshot": (bench_oneshot, 200_000),
}


async def _timed(fn, n, args):
    # Time inside the running loop, as weft-bench times inside its runtime.
    t0 = time.perf_counter_ns()
    ops, extra = await fn(n, args)
    return time.perf_counter_ns() - t0, ops, extra


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("name", nargs="?", help="workload: " + ", ".join(WORKLOADS))
    p.add_argument("--bench", help="workload (instead of the positional NAME)")
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--n", type=int, default=0, help="size (0: the workload's default)")
    p.add_argument("--workers", type=int, default=1, help="ignored: one event loop")
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--cutoff", type=int, default=12, help="fib: sequential at or below")
    args = p.parse_args()

    name = args.bench or args.name
    if name not in WORKLOADS:
        print(f"py_bench: unknown benchmark {name!r}", file=sys.stderr)
        return 2
    if args.reps < 1:
        print("py_bench: --reps must be at least 1", file=sys.stderr)
        return 2
    fn, default_n = WORKLOADS[name]
    n = args.n if args.n > 0 else default_n

    if args.loop == "uvloop":
        import uvloop
        loop_factory = uvloop.new_event_loop
    else:
        loop_factory = asyncio.new_event_loop

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    times = []
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        for _ in range(args.reps):
            gc.collect()    # start every repetition from a collected heap
            try:
                ns, ops, extra = runner.run(_timed(fn, n, args))
            except CheckFailed as e:
                print(f"py_bench ({args.loop}): {e}", file=sys.stderr)
                return 1
            times.append(ns / 1e6)
    med = statistics.median(times)
    line = (f"bench={name} runtime={args.loop} workers=1 n={n} ms={med:.3f} "
            f"ns_per_op={med * 1e6 / ops:.2f} cold_ms={times[0]:.3f} reps={args.reps}")
    print(line + (" " + extra if extra else ""), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
