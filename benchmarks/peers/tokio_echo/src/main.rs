//! tokio-echo: a Tokio 1.24 echo server, the peer of weft's examples/echo_server.
//!
//!   tokio-echo [--port N] [--addr HOST] [--workers 1]
//!
//! Written the way a Tokio user writes it: a current_thread runtime (the
//! server is pinned to one CPU, so one thread), TcpListener::accept in a
//! loop, a spawned task per connection that reads into its 16 KiB buffer and
//! write_all's what it read, until end of stream or an error. Accepted
//! sockets get TCP_NODELAY, as in every other server of the comparison.
//! --workers is accepted for echo_server's command line and must be 1.
//!
//! Exit status: runs until killed; 1 when it cannot listen, 2 on bad arguments.

use std::process::exit;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn echo(mut sock: TcpStream) {
    let mut buf = vec![0u8; 16384];
    loop {
        let n = match sock.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if sock.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn serve(addr: String) -> std::io::Result<()> {
    let listener = TcpListener::bind(&addr).await?;
    eprintln!("tokio-echo: listening on {}", addr);
    loop {
        match listener.accept().await {
            Ok((sock, _)) => {
                let _ = sock.set_nodelay(true);
                tokio::spawn(echo(sock));
            }
            // EMFILE and the like: report and keep accepting.
            Err(e) => eprintln!("tokio-echo: accept: {}", e),
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: tokio-echo [--port N] [--addr HOST] [--workers 1]");
    exit(2)
}

fn main() {
    let mut host = String::from("127.0.0.1");
    let mut port: u16 = 9000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--port" => port = v.parse().unwrap_or_else(|_| usage()),
            "--addr" => host = v,
            "--workers" => {
                if v != "1" {
                    usage()
                }
            }
            _ => usage(),
        }
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap_or_else(|e| {
            eprintln!("tokio-echo: runtime: {}", e);
            exit(1)
        });
    if let Err(e) = rt.block_on(serve(format!("{}:{}", host, port))) {
        eprintln!("tokio-echo: listen {}:{}: {}", host, port, e);
        exit(1);
    }
}
