//! Prints the transactions rowferry reads from a server's binlog, from "now" on.
//!
//! `cargo run --example tail_binlog -- mysql://user:password@127.0.0.1:3306 [server_id]`
//! A debugging aid for the read side (reader + decoder + assembler), before Kafka is involved.

use rowferry::config::{FlavorSetting, Secret, SourceSettings, TlsMode, TlsSettings};
use rowferry::reader::{Reader, ReaderOptions, current_position, flavor};
use std::num::NonZeroU32;
use std::time::Duration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = url::Url::parse(&args.next().ok_or_else(|| anyhow::anyhow!("usage: tail_binlog URL [server_id]"))?)?;
    let server_id: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5401);
    let settings = SourceSettings {
        host: url.host_str().unwrap_or("127.0.0.1").to_string(),
        port: url.port().unwrap_or(3306),
        user: url.username().to_string(),
        password: Secret::new(url.password().unwrap_or_default()),
        server_id: NonZeroU32::new(server_id).ok_or_else(|| anyhow::anyhow!("server_id 0"))?,
        flavor: FlavorSetting::Auto,
        connect_timeout: Duration::from_secs(10),
        tls: TlsSettings { mode: TlsMode::Disabled, ca_file: None, client_identity: None },
        semi_sync: false,
    };
    let mut conn = rowferry::source::connect(&settings).await?;
    let flavor = flavor(&mut conn).await?;
    let start = current_position(&mut conn, flavor).await?;
    conn.disconnect().await?;
    println!("{flavor} from {start}");
    let (tx, mut rx) = tokio::sync::mpsc::channel::<rowferry::reader::TxnEvent>(1024);
    let reader = Reader::new(settings, ReaderOptions::default());
    let task = tokio::spawn(async move { reader.run(start, tx).await });
    while let Some(event) = rx.recv().await {
        println!("{event:?}");
    }
    task.await??;
    Ok(())
}
