//! kill -9 of a rowferry process, and the moment after which nothing it sent can still land.
//!
//! A killed producer's last produce requests may still be in the broker's socket buffer when the
//! kill returns; the broker appends them a little later. A test that reads the topic's end right
//! after the kill and calls it "the boundary" can therefore see a record of the killed process
//! after the boundary. So: freeze the process (SIGSTOP: it opens no new connection), note its TCP
//! connections to the broker, kill it, and wait until the broker has closed its side of each.
//! Kafka handles one request per connection at a time and reads the next (or the end of the
//! stream) only once the previous one is done, so a connection the broker has closed has nothing
//! left to append.
#![allow(dead_code)]

use std::collections::HashSet;
use std::process::Child;
use std::time::{Duration, Instant};

/// TCP states (as /proc/net/tcp writes them) in which the broker may still read from a link.
const OPEN: [&str; 3] = ["01", "03", "08"]; // ESTABLISHED, SYN_RECV, CLOSE_WAIT

/// (local port, remote port, state, inode) of every IPv4/IPv6 TCP socket on the machine.
fn sockets() -> Vec<(u16, u16, String, u64)> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let port = |addr: &str| addr.rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok());
            if let (Some(local), Some(remote), Ok(inode)) = (port(f[1]), port(f[2]), f[9].parse()) {
                out.push((local, remote, f[3].to_string(), inode));
            }
        }
    }
    out
}

/// The local ports of `pid`'s TCP connections to any of `broker_ports`.
fn client_ports(pid: u32, broker_ports: &HashSet<u16>) -> HashSet<u16> {
    let inodes: HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    sockets()
        .into_iter()
        .filter(|(_, remote, _, inode)| inodes.contains(inode) && broker_ports.contains(remote))
        .map(|(local, ..)| local)
        .collect()
}

/// kill -9 of `child`; returns once no produce request it sent can still be appended by the
/// brokers listening on `broker_ports` (see the module docs).
pub fn kill_and_settle(child: &mut Child, broker_ports: &[u16]) {
    let pid = child.id();
    let brokers: HashSet<u16> = broker_ports.iter().copied().collect();
    let _ = std::process::Command::new("kill").args(["-STOP", &pid.to_string()]).status();
    let ports = client_ports(pid, &brokers);
    child.kill().expect("kill -9");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let open = sockets()
            .into_iter()
            .filter(|(local, remote, state, _)| {
                brokers.contains(local) && ports.contains(remote) && OPEN.contains(&state.as_str())
            })
            .count();
        if open == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the broker kept {open} link(s) of the killed rowferry open for 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The ports of a bootstrap list `host:port,host:port`.
pub fn ports(bootstrap: &str) -> Vec<u16> {
    bootstrap.split(',').filter_map(|a| a.rsplit(':').next()?.parse().ok()).collect()
}
