// go-bench: the Go counterparts of weft-bench's workloads.
//
// Each workload is written the way a Go programmer would write it (goroutines,
// channels, sync.WaitGroup; no tricks and no handicaps) and prints one line per
// result in weft-bench's format:
//
//	bench=NAME runtime=go workers=W n=N ms=T ns_per_op=X cold_ms=C reps=R ...
//
// ms and ns_per_op are the median of --reps repetitions in this process,
// cold_ms the first repetition. --workers sets GOMAXPROCS. A failed
// correctness check prints a message on stderr and exits with status 1; an
// unknown workload exits with status 2 ("unknown benchmark").
//
// Usage: go-bench [--bench] NAME [--n N] [--workers W] [--reps R] [--cutoff C]
//
// The servers for run.py's server workloads are in servers.go
// (go-bench echo-server|http-server|mixed-server --port P ...).
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// A workload runs once with size n and returns the number of operations that
// ns_per_op divides by, plus extra key=value fields for the output line, or
// an error when its correctness check fails.
type workload struct {
	defN int
	run  func(n int) (ops int, extra string, err error)
}

var cutoff = 12

var workloads = map[string]workload{
	"switch":   {10_000_000, benchSwitch},
	"spawn":    {1_000_000, benchSpawn},
	"skynet":   {1_000_000, benchSkynet},
	"fib":      {32, benchFib},
	"pingpong": {1_000_000, benchPingpong},
	"oneshot":  {1_000_000, benchOneshot},
}

// switch: two goroutines yield to each other with runtime.Gosched; n yields in
// all (run it with --workers 1 so that both share one P).
func benchSwitch(n int) (int, string, error) {
	var wg sync.WaitGroup
	var done [2]int
	wg.Add(2)
	for g := 0; g < 2; g++ {
		iters := n / 2
		if g == 0 {
			iters += n % 2
		}
		go func(g, iters int) {
			defer wg.Done()
			for i := 0; i < iters; i++ {
				runtime.Gosched()
			}
			done[g] = iters
		}(g, iters)
	}
	wg.Wait()
	if done[0]+done[1] != n {
		return 0, "", fmt.Errorf("switch: %d yields, want %d", done[0]+done[1], n)
	}
	return n, "", nil
}

// spawn: start n empty goroutines, then wait for all of them.
func benchSpawn(n int) (int, string, error) {
	var wg sync.WaitGroup
	wg.Add(n)
	for i := 0; i < n; i++ {
		go wg.Done()
	}
	wg.Wait()
	return n, "", nil
}

// skynet: the classic benchmark (github.com/atemerev/skynet): a goroutine per
// node of a 10-ary tree with n leaves; each node sums its children's numbers.
func skynet(c chan<- int, num, size, div int) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int, div)
	sub := size / div
	for i := 0; i < div; i++ {
		go skynet(rc, num+i*sub, sub, div)
	}
	sum := 0
	for i := 0; i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func benchSkynet(n int) (int, string, error) {
	const div = 10
	tasks := 0
	for s := n; ; s /= div {
		tasks += n / s
		if s == 1 {
			break
		}
		if s%div != 0 {
			return 0, "", fmt.Errorf("skynet: n=%d is not a power of %d", n, div)
		}
	}
	c := make(chan int, 1)
	go skynet(c, 0, n, div)
	sum := <-c
	want := n * (n - 1) / 2
	if sum != want {
		return 0, "", fmt.Errorf("skynet: sum %d, want %d", sum, want)
	}
	return n, fmt.Sprintf("tasks=%d sum=%d", tasks, sum), nil
}

// fib: fork-join fib(n). A call above the cutoff forks fib(n-1) into a new
// goroutine, computes fib(n-2) itself and joins; below it recursion is
// sequential. ops = number of fib calls (2*fib(n+1)-1).
func seqFib(n int) int {
	if n < 2 {
		return n
	}
	return seqFib(n-1) + seqFib(n-2)
}

func fib(n int) int {
	if n <= cutoff {
		return seqFib(n)
	}
	c := make(chan int, 1)
	go func() { c <- fib(n - 1) }()
	b := fib(n - 2)
	return <-c + b
}

func fibTasks(n int) int {
	if n <= cutoff {
		return 0
	}
	return 1 + fibTasks(n-1) + fibTasks(n-2)
}

func fibIter(n int) int {
	a, b := 0, 1
	for i := 0; i < n; i++ {
		a, b = b, a+b
	}
	return a
}

func benchFib(n int) (int, string, error) {
	got := fib(n)
	if want := fibIter(n); got != want {
		return 0, "", fmt.Errorf("fib(%d) = %d, want %d", n, got, want)
	}
	return 2*fibIter(n+1) - 1, fmt.Sprintf("tasks=%d cutoff=%d value=%d", fibTasks(n), cutoff, got), nil
}

// pingpong: two goroutines pass an integer back and forth over a pair of
// unbuffered channels; n round trips.
func benchPingpong(n int) (int, string, error) {
	ping, pong := make(chan int), make(chan int)
	go func() {
		for v := range ping {
			pong <- v + 1
		}
	}()
	var err error
	for i := 0; i < n; i++ {
		ping <- i
		if v := <-pong; v != i+1 && err == nil {
			err = fmt.Errorf("pingpong: got %d, want %d", v, i+1)
		}
	}
	close(ping)
	return n, "", err
}

// oneshot: a request travels over a channel and the reply comes back through
// a fresh one-shot channel (buffered, capacity 1) made for that request.
type request struct {
	v     int
	reply chan int
}

func benchOneshot(n int) (int, string, error) {
	reqs := make(chan request)
	go func() {
		for r := range reqs {
			r.reply <- r.v + 1
		}
	}()
	var err error
	for i := 0; i < n; i++ {
		reply := make(chan int, 1)
		reqs <- request{i, reply}
		if v := <-reply; v != i+1 && err == nil {
			err = fmt.Errorf("oneshot: got %d, want %d", v, i+1)
		}
	}
	close(reqs)
	return n, "", err
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-bench: "+format+"\n", args...)
	os.Exit(code)
}

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "echo-server", "http-server", "mixed-server":
			serverMain(os.Args[1], os.Args[2:]) // servers.go
			return
		}
	}
	fs := flag.NewFlagSet("go-bench", flag.ContinueOnError)
	bench := fs.String("bench", "", "workload: switch, spawn, skynet, fib, pingpong, oneshot")
	n := fs.Int("n", 0, "size (0: the workload's default)")
	workers := fs.Int("workers", 1, "GOMAXPROCS")
	reps := fs.Int("reps", 5, "repetitions in this process")
	fs.IntVar(&cutoff, "cutoff", 12, "fib: sequential at or below this argument")
	args := os.Args[1:]
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		*bench, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		os.Exit(2)
	}
	if fs.NArg() == 1 && *bench == "" {
		*bench = fs.Arg(0)
	} else if fs.NArg() > 0 {
		fail(2, "unexpected arguments: %v", fs.Args())
	}
	w, ok := workloads[*bench]
	if !ok {
		fail(2, "unknown benchmark %q", *bench)
	}
	if *n <= 0 {
		*n = w.defN
	}
	if *workers < 1 || *reps < 1 {
		fail(2, "--workers and --reps must be at least 1")
	}
	runtime.GOMAXPROCS(*workers)

	var ms []float64
	var ops int
	var extra string
	for r := 0; r < *reps; r++ {
		runtime.GC() // start every repetition from a collected heap
		t0 := time.Now()
		o, x, err := w.run(*n)
		el := time.Since(t0)
		if err != nil {
			fail(1, "%v", err)
		}
		ops, extra = o, x
		ms = append(ms, float64(el.Nanoseconds())/1e6)
	}
	med := median(ms)
	line := fmt.Sprintf("bench=%s runtime=go workers=%d n=%d ms=%.3f ns_per_op=%.2f cold_ms=%.3f reps=%d",
		*bench, *workers, *n, med, med*1e6/float64(ops), ms[0], *reps)
	if extra != "" {
		line += " " + extra
	}
	fmt.Println(line)
}
