// The Go servers of benchmarks/compare (run.py), written as a Go programmer
// writes them: net.Listen and a goroutine per connection; net/http for HTTP.
//
//	go-bench echo-server  --port P [--workers W]
//	go-bench http-server  --port P [--workers W]
//	go-bench mixed-server --port P --size B [--burn-marker B] [--burn-us 1000] [--workers W]
//
// --workers sets GOMAXPROCS. echo-server sends back every byte it receives;
// http-server answers GET / with 200 "Hello, world!\n" (text/plain,
// keep-alive); mixed-server reads requests of --size bytes and, when a
// request's first byte is --burn-marker, burns --burn-us microseconds of CPU
// (this thread's CPU clock) in the connection's goroutine before echoing it.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

func threadCPUNs() int64 {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	syscall.RawSyscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID,
		uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

func burn(us int) {
	end := threadCPUNs() + int64(us)*1000
	for threadCPUNs() < end {
	}
}

func echoConn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 16384)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, werr := c.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func mixedConn(c net.Conn, size int, marker byte, us int) {
	defer c.Close()
	buf := make([]byte, size)
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if buf[0] == marker {
			burn(us)
		}
		if _, err := c.Write(buf); err != nil {
			return
		}
	}
}

func serverMain(kind string, args []string) {
	fs := flag.NewFlagSet(kind, flag.ContinueOnError)
	port := fs.Int("port", 0, "port on 127.0.0.1")
	workers := fs.Int("workers", 1, "GOMAXPROCS")
	size := fs.Int("size", 0, "mixed: bytes per request")
	marker := fs.String("burn-marker", "B", "mixed: first byte of a heavy request")
	us := fs.Int("burn-us", 1000, "mixed: CPU microseconds a heavy request burns")
	if err := fs.Parse(args); err != nil || *port <= 0 || *workers < 1 ||
		(kind == "mixed-server" && (*size <= 0 || *marker == "")) {
		fail(2, "usage: go-bench %s --port P [--workers W] [--size B --burn-marker C --burn-us U]", kind)
	}
	runtime.GOMAXPROCS(*workers)
	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	if kind == "http-server" {
		mux := http.NewServeMux()
		body := []byte("Hello, world!\n")
		mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.Write(body)
		})
		fmt.Fprintf(os.Stderr, "go-bench: http on %s\n", addr)
		fail(1, "%v", http.ListenAndServe(addr, mux))
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fail(1, "listen %s: %v", addr, err)
	}
	fmt.Fprintf(os.Stderr, "go-bench: %s on %s\n", kind, addr)
	for {
		c, err := ln.Accept()
		if err != nil {
			fail(1, "accept: %v", err)
		}
		if kind == "mixed-server" {
			go mixedConn(c, *size, (*marker)[0], *us)
		} else {
			go echoConn(c)
		}
	}
}
