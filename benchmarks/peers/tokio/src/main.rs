//! tokio-bench: the Tokio counterparts of weft-bench's workloads.
//!
//! Each workload is written the way a Tokio user would write it (tokio::spawn,
//! JoinHandles, tokio::sync channels; release build, no handicaps) and prints
//! one line in weft-bench's format:
//!
//!   bench=NAME runtime=tokio workers=W n=N ms=T ns_per_op=X cold_ms=C reps=R ...
//!
//! ms and ns_per_op are the median of --reps repetitions in this process,
//! cold_ms the first one. Timing is taken inside the running runtime, around
//! the workload only, by a driver task spawned on it (so, as in weft-bench, the
//! workload itself runs inside a task, on a worker thread).
//!
//! Runtimes: `switch` runs on a current_thread runtime (one thread); every
//! other workload on a multi_thread runtime with --workers worker threads.
//! No I/O or timer driver is enabled: no workload needs one.
//!
//! Exit status: 0; 1 when a correctness check fails (message on stderr, no
//! figure); 2 on an unknown workload ("unknown benchmark") or bad arguments.
//!
//! Usage: tokio-bench [--bench] NAME [--n N] [--workers W] [--reps R] [--cutoff C]

use std::future::Future;
use std::pin::Pin;
use std::process::exit;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What one repetition measured: the number of ops ns_per_op divides by and
/// extra key=value fields for the output line.
struct Outcome {
    ops: u64,
    extra: String,
}

type BenchResult = Result<Outcome, String>;

struct Workload {
    name: &'static str,
    default_n: u64,
    help: &'static str,
}

const WORKLOADS: &[Workload] = &[
    Workload { name: "switch", default_n: 10_000_000, help: "two tasks yield_now to each other (current_thread); n yields" },
    Workload { name: "spawn", default_n: 1_000_000, help: "spawn n empty tasks, await every JoinHandle" },
    Workload { name: "skynet", default_n: 1_000_000, help: "task tree of 10-ary fan-out, n leaves" },
    Workload { name: "fib", default_n: 32, help: "fork-join fib(n), a task per call above --cutoff" },
    Workload { name: "pingpong", default_n: 1_000_000, help: "round trips over a pair of mpsc channels (capacity 1)" },
    Workload { name: "oneshot", default_n: 1_000_000, help: "request over mpsc, reply through a fresh oneshot" },
];

// ---------------------------------------------------------------- switch ---

/// Two tasks call yield_now in a loop; n yields in all.
async fn bench_switch(n: u64) -> BenchResult {
    let iters = [n - n / 2, n / 2];
    let mut handles = Vec::with_capacity(2);
    for &k in &iters {
        handles.push(tokio::spawn(async move {
            for _ in 0..k {
                tokio::task::yield_now().await;
            }
            k
        }));
    }
    let mut done = 0;
    for h in handles {
        done += h.await.map_err(|e| e.to_string())?;
    }
    if done != n {
        return Err(format!("switch: {} yields, want {}", done, n));
    }
    Ok(Outcome { ops: n, extra: String::new() })
}

// ----------------------------------------------------------------- spawn ---

/// Spawn n tasks that each return their number; await every JoinHandle.
async fn bench_spawn(n: u64) -> BenchResult {
    let mut handles: Vec<JoinHandle<u64>> = Vec::with_capacity(n as usize);
    for i in 0..n {
        handles.push(tokio::spawn(async move { i }));
    }
    let mut bad = false;
    for (i, h) in handles.into_iter().enumerate() {
        match h.await {
            Ok(v) if v == i as u64 => {}
            _ => bad = true,
        }
    }
    if bad {
        return Err("spawn: a task returned the wrong value".into());
    }
    Ok(Outcome { ops: n, extra: String::new() })
}

// ---------------------------------------------------------------- skynet ---

/// A task per node of a 10-ary tree: a leaf returns its number, a node spawns
/// its ten children and returns the sum of their results.
fn skynet(num: u64, size: u64) -> BoxFuture<u64> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let sub = size / 10;
        let mut kids: [Option<JoinHandle<u64>>; 10] = Default::default();
        for (i, k) in kids.iter_mut().enumerate() {
            *k = Some(tokio::spawn(skynet(num + i as u64 * sub, sub)));
        }
        let mut sum = 0;
        for k in kids.iter_mut() {
            sum += k.take().unwrap().await.expect("skynet child panicked");
        }
        sum
    })
}

async fn bench_skynet(n: u64) -> BenchResult {
    let mut leaves = 1u64;
    while leaves < n {
        leaves *= 10;
    }
    let mut tasks = 0;
    let mut s = leaves;
    loop {
        tasks += leaves / s;
        if s == 1 {
            break;
        }
        s /= 10;
    }
    let sum = tokio::spawn(skynet(0, leaves)).await.map_err(|e| e.to_string())?;
    let want = leaves * (leaves - 1) / 2;
    if sum != want {
        return Err(format!("skynet: sum {}, want {}", sum, want));
    }
    Ok(Outcome { ops: leaves, extra: format!("tasks={} sum={}", tasks, sum) })
}

// ------------------------------------------------------------------- fib ---

fn seq_fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        seq_fib(n - 1) + seq_fib(n - 2)
    }
}

/// Above the cutoff: fork fib(n-1) into a new task, compute fib(n-2) here,
/// join. At or below it: plain recursion.
fn fib(n: u64, cutoff: u64) -> BoxFuture<u64> {
    Box::pin(async move {
        if n <= cutoff {
            return seq_fib(n);
        }
        let left = tokio::spawn(fib(n - 1, cutoff));
        let right = fib(n - 2, cutoff).await;
        left.await.expect("fib task panicked") + right
    })
}

fn fib_iter(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        let t = a + b;
        a = b;
        b = t;
    }
    a
}

fn fib_tasks(n: u64, cutoff: u64) -> u64 {
    if n <= cutoff {
        0
    } else {
        1 + fib_tasks(n - 1, cutoff) + fib_tasks(n - 2, cutoff)
    }
}

async fn bench_fib(n: u64, cutoff: u64) -> BenchResult {
    if n > 90 {
        return Err(format!("fib: n={} overflows u64", n));
    }
    let got = tokio::spawn(fib(n, cutoff)).await.map_err(|e| e.to_string())?;
    let want = fib_iter(n);
    if got != want {
        return Err(format!("fib({}) = {}, want {}", n, got, want));
    }
    Ok(Outcome {
        ops: 2 * fib_iter(n + 1) - 1, // fib calls
        extra: format!("tasks={} cutoff={} value={}", fib_tasks(n, cutoff), cutoff, got),
    })
}

// -------------------------------------------------------------- pingpong ---

/// Two tasks pass an integer back and forth over a pair of bounded mpsc
/// channels of capacity 1; n round trips.
async fn bench_pingpong(n: u64) -> BenchResult {
    let (ping_tx, mut ping_rx) = mpsc::channel::<u64>(1);
    let (pong_tx, mut pong_rx) = mpsc::channel::<u64>(1);
    let echo = tokio::spawn(async move {
        while let Some(v) = ping_rx.recv().await {
            if pong_tx.send(v + 1).await.is_err() {
                break;
            }
        }
    });
    let mut err = None;
    for i in 0..n {
        if ping_tx.send(i).await.is_err() {
            err = Some("pingpong: echo task gone".to_string());
            break;
        }
        match pong_rx.recv().await {
            Some(v) if v == i + 1 => {}
            got => {
                err = Some(format!("pingpong: got {:?}, want {}", got, i + 1));
                break;
            }
        }
    }
    drop(ping_tx);
    echo.await.map_err(|e| e.to_string())?;
    match err {
        Some(e) => Err(e),
        None => Ok(Outcome { ops: n, extra: String::new() }),
    }
}

// --------------------------------------------------------------- oneshot ---

/// A request travels over an mpsc channel (capacity 1); the reply comes back
/// through a fresh tokio::sync::oneshot made for that request.
async fn bench_oneshot(n: u64) -> BenchResult {
    let (req_tx, mut req_rx) = mpsc::channel::<(u64, oneshot::Sender<u64>)>(1);
    let server = tokio::spawn(async move {
        while let Some((v, reply)) = req_rx.recv().await {
            let _ = reply.send(v + 1);
        }
    });
    let mut err = None;
    for i in 0..n {
        let (reply_tx, reply_rx) = oneshot::channel();
        if req_tx.send((i, reply_tx)).await.is_err() {
            err = Some("oneshot: server task gone".to_string());
            break;
        }
        match reply_rx.await {
            Ok(v) if v == i + 1 => {}
            got => {
                err = Some(format!("oneshot: got {:?}, want {}", got.ok(), i + 1));
                break;
            }
        }
    }
    drop(req_tx);
    server.await.map_err(|e| e.to_string())?;
    match err {
        Some(e) => Err(e),
        None => Ok(Outcome { ops: n, extra: String::new() }),
    }
}

// ------------------------------------------------------------------ main ---

async fn run_once(name: &'static str, n: u64, cutoff: u64) -> BenchResult {
    match name {
        "switch" => bench_switch(n).await,
        "spawn" => bench_spawn(n).await,
        "skynet" => bench_skynet(n).await,
        "fib" => bench_fib(n, cutoff).await,
        "pingpong" => bench_pingpong(n).await,
        "oneshot" => bench_oneshot(n).await,
        _ => unreachable!(),
    }
}

fn usage() -> String {
    let mut s = String::from(
        "usage: tokio-bench [--bench] NAME [--n N] [--workers W] [--reps R] [--cutoff C]\nworkloads:\n",
    );
    for w in WORKLOADS {
        s += &format!("  {:<10} {} (default n={})\n", w.name, w.help, w.default_n);
    }
    s
}

fn die(code: i32, msg: &str) -> ! {
    eprintln!("tokio-bench: {}", msg);
    exit(code)
}

fn median(xs: &[f64]) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut bench: Option<String> = None;
    let (mut n, mut workers, mut reps, mut cutoff) = (0u64, 1u64, 5u64, 12u64);
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        match a {
            "-h" | "--help" => {
                print!("{}", usage());
                return;
            }
            "--bench" | "--n" | "--workers" | "--reps" | "--cutoff" => {
                let v = match args.get(i + 1) {
                    Some(v) => v.as_str(),
                    None => die(2, &format!("{} needs a value", a)),
                };
                i += 2;
                if a == "--bench" {
                    bench = Some(v.to_string());
                    continue;
                }
                let x: u64 = match v.parse() {
                    Ok(x) => x,
                    Err(_) => die(2, &format!("bad number '{}' for {}", v, a)),
                };
                match a {
                    "--n" => n = x,
                    "--workers" => workers = x,
                    "--reps" => reps = x,
                    _ => cutoff = x,
                }
            }
            _ if !a.starts_with('-') && bench.is_none() => {
                bench = Some(a.to_string());
                i += 1;
            }
            _ => die(2, &format!("unknown option {}\n{}", a, usage())),
        }
    }
    let bench = match bench {
        Some(b) => b,
        None => die(2, &usage()),
    };
    let w = match WORKLOADS.iter().find(|w| w.name == bench) {
        Some(w) => w,
        None => die(2, &format!("unknown benchmark '{}'\n{}", bench, usage())),
    };
    if n == 0 {
        n = w.default_n;
    }
    if workers == 0 || reps == 0 {
        die(2, "--workers and --reps must be > 0");
    }
    let name = w.name;

    let rt = if name == "switch" {
        if workers != 1 {
            eprintln!("tokio-bench: switch runs on a current_thread runtime; --workers {} ignored", workers);
            workers = 1;
        }
        tokio::runtime::Builder::new_current_thread().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers as usize)
            .build()
    };
    let rt = match rt {
        Ok(rt) => rt,
        Err(e) => die(1, &format!("cannot build the runtime: {}", e)),
    };

    // The driver runs as a task on the runtime; the workload is timed there.
    let driver = async move {
        let mut ms = Vec::with_capacity(reps as usize);
        let mut last = None;
        for _ in 0..reps {
            let t0 = Instant::now();
            let out = run_once(name, n, cutoff).await?;
            ms.push(t0.elapsed().as_secs_f64() * 1e3);
            last = Some(out);
        }
        Ok::<_, String>((ms, last.unwrap()))
    };
    let res = rt.block_on(async move { tokio::spawn(driver).await });
    let (ms, out) = match res {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => die(1, &format!("{}: correctness check FAILED: {}", name, e)),
        Err(e) => die(1, &format!("{}: FAILED: {}", name, e)),
    };
    drop(rt);

    let med = median(&ms);
    let mut line = format!(
        "bench={} runtime=tokio workers={} n={} ms={:.3} ns_per_op={:.2} cold_ms={:.3} reps={}",
        name,
        workers,
        n,
        med,
        med * 1e6 / out.ops as f64,
        ms[0],
        reps
    );
    if !out.extra.is_empty() {
        line.push(' ');
        line.push_str(&out.extra);
    }
    println!("{}", line);
}
