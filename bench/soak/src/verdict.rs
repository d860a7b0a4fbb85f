//! The pass/fail rule: RSS, descriptors and threads must level off, and no request may fail.
//!
//! The run's samples are cut into quarters. The first quarter is warm-up
//! (caches and pools fill, the first idle connections time out, each app's
//! instances reach their working set) and is not judged. A resource "keeps
//! growing" when the median of the last quarter exceeds the median of the
//! second quarter by more than its slack: a steady level, however noisy,
//! passes; a leak, which raises the level between the two quarters, fails.
//! Medians, not means or maxima, so that a single spike (a swap's compile, a
//! burst of reconnecting idle connections) decides nothing.
//!
//! The RSS slack (8 MiB + 5 %, about 15 MiB at this server's 140 MiB) fails
//! a 2-minute run whose RSS grows by about 15 MiB a minute or more (its
//! medians are a minute apart), and a 30-minute run one of about 1 MiB a
//! minute (fifteen minutes apart); slower leaks need longer runs.

/// RSS slack, absolute: after warm-up the server's RSS settles within a
/// MiB or two (1-second spikes of 20-40 MiB aside, which medians ignore);
/// 8 MiB leaves room for allocator arenas settling in steps.
pub const RSS_SLACK_MIB: f64 = 8.0;
/// RSS slack, relative to the second quarter's median: on top of the
/// absolute slack, for allocator arenas and caches that scale with what the
/// host holds (about 7 MiB at this server's 140 MiB).
pub const RSS_SLACK_FRACTION: f64 = 0.05;
/// Descriptor slack: the median sits at one value (the listeners, the
/// databases, the 200 idle and 4 slowloris connections); a few more client
/// connections may be open at a sample.
pub const FD_SLACK: f64 = 8.0;
/// Thread slack: the workers, event loop, watcher and admin listener are
/// fixed; a swap may add a helper thread for a moment.
pub const THREAD_SLACK: f64 = 4.0;
/// Errors allowed in the whole run: none. Every request has one expected
/// answer (503 "retry" aside), so any other is a bug worth looking at.
pub const MAX_ERRORS: u64 = 0;
/// Fewest samples judged: each quarter needs at least ten.
pub const MIN_SAMPLES: usize = 40;

/// The median (the mean of the middle two for an even count); 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The four quarters' bounds (sample indices): `[0, a)`, `[a, b)`, `[b, c)`, `[c, n)`.
pub fn quarters(n: usize) -> (usize, usize, usize) {
    (n / 4, n / 2, 3 * n / 4)
}

/// One resource judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Growth {
    pub name: &'static str,
    /// Median of the second quarter.
    pub q2: f64,
    /// Median of the last quarter.
    pub q4: f64,
    /// The most the last quarter's median may be.
    pub allowed: f64,
    /// Least-squares slope after warm-up, per minute (reported, not judged).
    pub slope_per_min: f64,
}

impl Growth {
    pub fn ok(&self) -> bool {
        self.q4 <= self.allowed
    }
}

/// Judges one series (one value per second) with its slack.
pub fn growth(name: &'static str, values: &[f64], slack: f64, fraction: f64) -> Growth {
    let (a, b, c) = quarters(values.len());
    let q2 = median(&values[a..b]);
    let q4 = median(&values[c..]);
    Growth {
        name,
        q2,
        q4,
        allowed: q2 * (1.0 + fraction) + slack,
        slope_per_min: slope(&values[a..]) * 60.0,
    }
}

/// Least-squares slope of equally spaced values, per step.
fn slope(values: &[f64]) -> f64 {
    let n = values.len() as f64;
    if values.len() < 2 {
        return 0.0;
    }
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = values.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (i, y) in values.iter().enumerate() {
        let dx = i as f64 - mean_x;
        num += dx * (y - mean_y);
        den += dx * dx;
    }
    num / den
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), 0.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
    }

    #[test]
    fn a_steady_noisy_level_passes_and_a_leak_fails() {
        // Warm-up climb, then a level with spikes.
        let steady: Vec<f64> = (0..120)
            .map(|i| {
                let base = if i < 20 { 50.0 + i as f64 } else { 70.0 };
                base + if i % 17 == 0 { 30.0 } else { (i % 3) as f64 }
            })
            .collect();
        let g = growth("steady", &steady, 5.0, 0.0);
        assert!(g.ok(), "{g:?}");
        // One unit a second after warm-up: 60 units between the quarters.
        let leak: Vec<f64> = (0..120).map(|i| 70.0 + i as f64).collect();
        let g = growth("leak", &leak, 5.0, 0.1);
        assert!(!g.ok(), "{g:?}");
        assert!((g.slope_per_min - 60.0).abs() < 1e-9, "{g:?}");
    }

    #[test]
    fn warm_up_growth_is_not_judged() {
        let values: Vec<f64> = (0..100)
            .map(|i| if i < 25 { i as f64 * 10.0 } else { 250.0 })
            .collect();
        assert!(growth("warm", &values, 0.0, 0.0).ok());
    }

    #[test]
    fn quarter_bounds() {
        assert_eq!(quarters(120), (30, 60, 90));
        assert_eq!(quarters(41), (10, 20, 30));
    }
}
