//! Progress bars for `rowferry snapshot` on a terminal: rows, rate and ETA per table, drawn from
//! the connector's own `/status` (so the bars show exactly what the status endpoint reports).

use std::collections::BTreeMap;
use std::time::Duration;

/// Polls `/status` on `listen` and draws one bar per table until the process ends.
pub async fn show(listen: std::net::SocketAddr) {
    let multi = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template(
        "{prefix:30} [{bar:30}] {human_pos}/{human_len} rows  {per_sec}  ETA {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut bars: BTreeMap<String, indicatif::ProgressBar> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Ok(body) = super::super::ops::http::fetch_status(listen).await else { continue };
        let Ok(status) = serde_json::from_str::<serde_json::Value>(&body) else { continue };
        let Some(tables) = status.get("snapshot").and_then(|s| s.as_object()) else { continue };
        for (name, t) in tables {
            let rows = t.get("rows").and_then(serde_json::Value::as_u64).unwrap_or(0);
            let estimate = t.get("estimate").and_then(serde_json::Value::as_u64).unwrap_or(0);
            let bar = bars.entry(name.clone()).or_insert_with(|| {
                let bar = multi.add(indicatif::ProgressBar::new(estimate.max(1)));
                bar.set_style(style.clone());
                bar.set_prefix(name.clone());
                bar
            });
            bar.set_length(estimate.max(rows).max(1));
            bar.set_position(rows);
            if t.get("done").and_then(serde_json::Value::as_bool) == Some(true) && !bar.is_finished() {
                bar.set_length(rows.max(1));
                bar.finish();
            }
        }
    }
}
