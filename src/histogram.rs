//! A fixed-bucket latency histogram in the Prometheus sense (cumulative buckets, sum, count),
//! updated with atomics from the pipeline and read by `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the buckets, in seconds (`+Inf` is implied). Fine below 0.1 s, where a
/// healthy pipeline's quantiles lie, so `histogram_quantile` interpolates over a narrow bucket.
pub const BOUNDS: [f64; 19] = [
    0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

/// See the module docs.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Per bucket (not cumulative), the last one for values above every bound.
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_us: AtomicU64,
    count: AtomicU64,
    max_us: AtomicU64,
}

impl Histogram {
    /// Records one observation of `micros` microseconds (negative, from clock skew, counts as 0).
    pub fn observe(&self, micros: i64) {
        let micros = micros.max(0) as u64;
        let secs = micros as f64 / 1e6;
        let i = BOUNDS.iter().position(|b| secs <= *b).unwrap_or(BOUNDS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(micros, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(micros, Ordering::Relaxed);
    }

    /// The largest observation so far, in seconds.
    pub fn max_seconds(&self) -> f64 {
        self.max_us.load(Ordering::Relaxed) as f64 / 1e6
    }

    /// Cumulative counts per bound (and `+Inf` last), the sum in seconds, and the count.
    pub fn snapshot(&self) -> (Vec<u64>, f64, u64) {
        let mut running = 0;
        let cumulative = self
            .counts
            .iter()
            .map(|c| {
                running += c.load(Ordering::Relaxed);
                running
            })
            .collect();
        (cumulative, self.sum_us.load(Ordering::Relaxed) as f64 / 1e6, self.count.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_sum_is_in_seconds() {
        let h = Histogram::default();
        for us in [500, 1_000, 3_000, 2_000_000, 100_000_000, -5] {
            h.observe(us);
        }
        let (buckets, sum, count) = h.snapshot();
        assert_eq!(count, 6);
        assert_eq!(buckets[0], 3, "≤ 1 ms: 500 µs, 1 ms, and the negative one");
        assert_eq!(buckets[3], 4, "≤ 5 ms");
        assert_eq!(buckets[BOUNDS.len() - 1], 5, "≤ 60 s");
        assert_eq!(buckets[BOUNDS.len()], 6, "+Inf holds all");
        assert!((sum - 102.0045).abs() < 1e-9, "{sum}");
        assert!((h.max_seconds() - 100.0).abs() < 1e-9);
    }
}
