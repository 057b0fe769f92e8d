#!/usr/bin/python3
"""py_servers: the asyncio / uvloop servers of benchmarks/compare (run.py).

    py_servers.py --loop asyncio|uvloop --port P echo  [--api protocol|streams]
    py_servers.py --loop asyncio|uvloop --port P http
    py_servers.py --loop asyncio|uvloop --port P mixed --size B [--burn-marker B]
                  [--burn-us 1000] [--executor]

echo: every byte received is sent back. --api protocol is an asyncio.Protocol
whose data_received writes the data to its transport (the fastest way
asyncio offers); --api streams is asyncio.start_server with a reader/writer
per connection (read, write, await drain), the way most asyncio code is
written.

http: aiohttp (python3-aiohttp): GET / answers 200 "Hello, world!\\n"
(text/plain), keep-alive, access log off, as one benchmarks aiohttp.

mixed: requests of --size bytes each, framed by size (streams API, readexactly);
a request whose first byte is --burn-marker makes the handler burn --burn-us
microseconds of CPU (this thread's CPU clock) before it echoes the request.
By default the burn runs in the handler, on the event loop, as most code
would; --executor sends it to loop.run_in_executor(None, ...) (the default
thread pool). The burn is pure Python, so it holds the GIL either way: the
executor variant shows what that advice buys for CPU work in Python.

One event loop on one thread (--workers is accepted and ignored). Stops on
SIGTERM / SIGINT. Run it with Debian's /usr/bin/python3.
"""

import argparse
import asyncio
import signal
import socket
import sys
import time


def use_loop(name):
    if name == "uvloop":
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def burn(us):
    end = time.thread_time_ns() + us * 1000
    while time.thread_time_ns() < end:
        pass


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def echo_streams(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


def mixed_handler(a):
    marker = ord(a.burn_marker[0])
    size, us = a.size, a.burn_us

    async def handle(reader, writer):
        loop = asyncio.get_running_loop()
        try:
            while True:
                req = await reader.readexactly(size)
                if req[0] == marker:
                    if a.executor:
                        await loop.run_in_executor(None, burn, us)
                    else:
                        burn(us)
                writer.write(req)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
    return handle


async def serve(a):
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    if a.kind == "echo" and a.api == "protocol":
        server = await loop.create_server(EchoProtocol, "127.0.0.1", a.port, backlog=4096)
    elif a.kind == "echo":
        server = await asyncio.start_server(echo_streams, "127.0.0.1", a.port, backlog=4096)
    else:
        server = await asyncio.start_server(mixed_handler(a), "127.0.0.1", a.port,
                                            backlog=4096)
    print(f"py_servers: {a.kind} on 127.0.0.1:{a.port} ({a.loop})", file=sys.stderr, flush=True)
    await stop
    server.close()


def serve_http(a):
    from aiohttp import web

    async def hello(request):
        return web.Response(text="Hello, world!\n")

    app = web.Application()
    app.router.add_get("/", hello)
    print(f"py_servers: http on 127.0.0.1:{a.port} ({a.loop}, aiohttp)", file=sys.stderr,
          flush=True)
    web.run_app(app, host="127.0.0.1", port=a.port, access_log=None, print=None,
                backlog=4096, handle_signals=True)


def main():
    p = argparse.ArgumentParser(description="asyncio / uvloop servers for run.py")
    p.add_argument("kind", choices=("echo", "http", "mixed"))
    p.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    p.add_argument("--api", choices=("protocol", "streams"), default="protocol")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=1, help="ignored: one event loop")
    p.add_argument("--size", type=int, default=0, help="mixed: bytes per request")
    p.add_argument("--burn-marker", default="B")
    p.add_argument("--burn-us", type=int, default=1000)
    p.add_argument("--executor", action="store_true",
                   help="mixed: burn in loop.run_in_executor (default thread pool)")
    a = p.parse_args()
    if a.kind == "mixed" and a.size <= 0:
        p.error("mixed needs --size")
    use_loop(a.loop)
    if a.kind == "http":
        serve_http(a)
    else:
        asyncio.run(serve(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
