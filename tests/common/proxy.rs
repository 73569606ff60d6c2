//! A TCP proxy for fault tests: forwards 127.0.0.1:<port> to an upstream address; `freeze()`
//! stops every connection open at that moment from forwarding in either direction while keeping
//! its sockets open (a silent, half-dead link), and new connections work normally.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub addr: SocketAddr,
    flags: Arc<Mutex<Vec<Link>>>,
}

/// Per connection: frozen, and how many more bytes to forward before freezing (-1: no limit).
#[derive(Clone)]
struct Link {
    frozen: Arc<AtomicBool>,
    budget: Arc<AtomicI64>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let flags: Arc<Mutex<Vec<Link>>> = Arc::default();
        let registry = Arc::clone(&flags);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let link = Link { frozen: Arc::new(AtomicBool::new(false)), budget: Arc::new(AtomicI64::new(-1)) };
                registry.lock().expect("proxy registry").push(link.clone());
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                // Budgets apply to what the server sends (the binlog stream).
                let upstream_only = Link { frozen: Arc::clone(&link.frozen), budget: Arc::new(AtomicI64::new(-1)) };
                tokio::spawn(pipe(cr, sw, upstream_only));
                tokio::spawn(pipe(sr, cw, link));
            }
        });
        Proxy { addr, flags }
    }

    /// Freezes every connection open now.
    pub fn freeze(&self) {
        for link in self.flags.lock().expect("proxy registry").iter() {
            link.frozen.store(true, Ordering::SeqCst);
        }
    }

    /// Lets every connection open now forward `bytes` more from the server, then freezes it:
    /// a cut at a chosen point of the stream, typically inside an event or a transaction.
    pub fn freeze_after(&self, bytes: i64) {
        for link in self.flags.lock().expect("proxy registry").iter() {
            link.budget.store(bytes, Ordering::SeqCst);
        }
    }
}

async fn pipe(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, link: Link) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let mut forward = if link.frozen.load(Ordering::SeqCst) { 0 } else { n };
        let budget = link.budget.load(Ordering::SeqCst);
        if budget >= 0 {
            forward = forward.min(budget as usize);
            let left = budget - forward as i64;
            link.budget.store(left, Ordering::SeqCst);
            if left == 0 {
                link.frozen.store(true, Ordering::SeqCst);
            }
        }
        if forward > 0 && to.write_all(&buf[..forward]).await.is_err() {
            return;
        }
        if link.frozen.load(Ordering::SeqCst) {
            // Hold both sockets open and forward nothing more, forever.
            let _keep = (from, to);
            std::future::pending::<()>().await;
            return;
        }
    }
}
