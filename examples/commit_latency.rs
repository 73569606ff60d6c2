//! COMMIT latency as a client sees it, for scripts/bench's semi-sync phase:
//!
//! ```text
//! commit_latency URL DB RATE SECONDS CONNECTIONS
//! ```
//!
//! Creates `DB.commits` (if missing), then for SECONDS runs autocommit single-row INSERTs on
//! CONNECTIONS connections, RATE transactions/s in all (0: as fast as they go), each connection
//! on its own schedule (a late one is sent at once, never in a burst to catch up). Each
//! statement's time is its COMMIT's: sent → the server's OK. Prints one line:
//! `transactions seconds p50_ms p99_ms max_ms`.

use mysql_async::prelude::Queryable;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, db, rate, seconds, connections] = args.as_slice() else {
        anyhow::bail!("usage: commit_latency URL DB RATE SECONDS CONNECTIONS");
    };
    let (rate, seconds, connections): (f64, f64, u32) = (rate.parse()?, seconds.parse()?, connections.parse()?);
    let opts = mysql_async::Opts::from_url(url)?;
    let mut setup = mysql_async::Conn::new(opts.clone()).await?;
    setup.query_drop(format!("CREATE DATABASE IF NOT EXISTS `{db}`")).await?;
    setup
        .query_drop(format!("CREATE TABLE IF NOT EXISTS `{db}`.commits (id BIGINT AUTO_INCREMENT PRIMARY KEY, v INT)"))
        .await?;
    setup.disconnect().await?;

    let start = Instant::now() + Duration::from_millis(200);
    let end = start + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..connections {
        let (opts, db) = (opts.clone(), db.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = mysql_async::Conn::new(opts).await?;
            let insert = format!("INSERT INTO `{db}`.commits (v) VALUES ({c})");
            let mut times = Vec::new();
            // This connection's k-th transaction is due at start + (k·connections + c) / rate.
            let period = (rate > 0.0).then(|| Duration::from_secs_f64(f64::from(connections) / rate));
            let mut due = start + period.map_or(Duration::ZERO, |p| p.mul_f64(f64::from(c) / f64::from(connections)));
            tokio::time::sleep_until(due.into()).await;
            while Instant::now() < end {
                let sent = Instant::now();
                conn.query_drop(&insert).await?;
                times.push(sent.elapsed().as_secs_f64() * 1000.0);
                if let Some(p) = period {
                    due += p;
                    tokio::time::sleep_until(due.max(Instant::now()).into()).await;
                }
            }
            conn.disconnect().await?;
            Ok::<_, anyhow::Error>(times)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let took = start.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let at =
        |q: f64| all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1))).copied().unwrap_or(0.0);
    println!(
        "{} {:.3} {:.3} {:.3} {:.3}",
        all.len(),
        took.min(seconds),
        at(0.5),
        at(0.99),
        all.last().copied().unwrap_or(0.0)
    );
    Ok(())
}
