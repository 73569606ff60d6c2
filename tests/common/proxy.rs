//! A TCP proxy for fault tests: forwards 127.0.0.1:<port> to an upstream address; `freeze()`
//! stops every connection open at that moment from forwarding in either direction while keeping
//! its sockets open (a silent, half-dead link), and new connections work normally.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub addr: SocketAddr,
    flags: Arc<Mutex<Vec<Arc<AtomicBool>>>>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let flags: Arc<Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let registry = Arc::clone(&flags);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else { continue };
                let frozen = Arc::new(AtomicBool::new(false));
                registry.lock().expect("proxy registry").push(Arc::clone(&frozen));
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pipe(cr, sw, Arc::clone(&frozen)));
                tokio::spawn(pipe(sr, cw, frozen));
            }
        });
        Proxy { addr, flags }
    }

    /// Freezes every connection open now.
    pub fn freeze(&self) {
        for flag in self.flags.lock().expect("proxy registry").iter() {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            // Hold both sockets open and forward nothing, forever.
            let _keep = (from, to);
            std::future::pending::<()>().await;
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
