//! Trend detection on one keyword's series: pure functions, no I/O.
//!
//! The test is Mann–Kendall with the tie correction in the variance of S, made
//! robust to serial correlation by the Hamed–Rao (1998) variance correction on the
//! ranks of the Sen-detrended series; the size is Sen's slope. The statistics match
//! pymannkendall's `original_test` and `hamed_rao_modification_test` (golden
//! fixtures in `tests/fixtures/trends`, written by `scripts/trend_goldens.py`).
//!
//! Invariants:
//! - the points are equally spaced and come from one series (one scale): the caller
//!   never joins windows of different relative scales;
//! - fewer than [`MIN_POINTS`] points give no direction at all ([`TrendError`]);
//! - `rising`/`declining` needs both p < alpha (Hamed–Rao) and a relative change over
//!   the window of at least the configured threshold; anything else is `stable`,
//!   whose confidence is that of an equivalence test (TOST) that the change lies
//!   within ± the threshold;
//! - bursts are flagged apart from the direction (robust z-score on median/MAD), so
//!   one spike neither makes nor hides a trend.

use serde::Serialize;

/// The fewest points a direction is computed on.
pub const MIN_POINTS: usize = 8;
/// The significance level of the trend test.
pub const ALPHA: f64 = 0.05;
/// The two-sided normal quantile of [`ALPHA`] (`norm.ppf(0.975)`).
const Z_975: f64 = 1.959_963_984_540_054;
/// A point whose robust z-score passes this is a burst (Iglewicz and Hoaglin).
pub const BURST_Z: f64 = 3.5;

/// Why a series cannot be analysed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrendError {
    /// Too short for the test.
    #[error("a trend needs at least {MIN_POINTS} points, the series has {0}")]
    TooShort(usize),
    /// A value is NaN or infinite.
    #[error("point {0} is not a finite number")]
    NotFinite(usize),
}

/// The direction of a trend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Significant and large enough upwards.
    Rising,
    /// Significant and large enough downwards.
    Declining,
    /// Neither.
    Stable,
}

/// Mann–Kendall statistics of a series (pymannkendall's names).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MannKendall {
    /// Kendall's S.
    pub s: f64,
    /// Var(S) with the tie correction, before any autocorrelation correction.
    pub var_s: f64,
    /// The standardised statistic with continuity correction.
    pub z: f64,
    /// Two-sided p-value of `z`.
    pub p: f64,
    /// Kendall's tau, S over n(n-1)/2.
    pub tau: f64,
    /// Sen's slope: the median of the pairwise slopes, per step.
    pub slope: f64,
    /// Conover's intercept: median(x) - (n-1)/2 · slope.
    pub intercept: f64,
    /// Var(S) after the Hamed–Rao correction.
    pub var_s_corrected: f64,
    /// `z` with the corrected variance.
    pub z_corrected: f64,
    /// The p-value the decision uses (corrected).
    pub p_corrected: f64,
}

/// The outcome for one series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// Rising, declining or stable.
    pub direction: Direction,
    /// 1 - p for a trend; the equivalence test's confidence for stable.
    pub confidence: f64,
    /// Sen's slope times (n - 1) over the mean of |x|: the change across the window.
    pub relative_change: f64,
    /// The statistics.
    pub stats: MannKendall,
    /// Indices of points whose robust z-score passes [`BURST_Z`].
    pub bursts: Vec<usize>,
    /// Whether the last point is a burst (what a reader of "now" wants to know).
    pub burst_now: bool,
    /// The number of points.
    pub n: usize,
}

/// Settings of the decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// The least |relative change| over the window that counts as a trend (0.1 = 10 %).
    pub min_relative_change: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_relative_change: 0.1,
        }
    }
}

/// The standard normal CDF.
pub fn normal_cdf(z: f64) -> f64 {
    0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn z_score(s: f64, var: f64) -> f64 {
    if var <= 0.0 || !var.is_finite() {
        return 0.0;
    }
    if s > 0.0 {
        (s - 1.0) / var.sqrt()
    } else if s < 0.0 {
        (s + 1.0) / var.sqrt()
    } else {
        0.0
    }
}

fn p_two_sided(z: f64) -> f64 {
    // erfc keeps precision in the tail, where 1 - cdf would round to 0.
    libm::erfc(z.abs() / std::f64::consts::SQRT_2)
}

/// Ranks with ties averaged (scipy's `rankdata`), 1-based.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for k in &idx[i..=j] {
            r[*k] = avg;
        }
        i = j + 1;
    }
    r
}

/// The pairwise slopes (x_j - x_i)/(j - i), i < j.
fn pairwise_slopes(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mut d = Vec::with_capacity(n * (n - 1) / 2);
    for i in 0..n {
        for j in i + 1..n {
            d.push((x[j] - x[i]) / (j - i) as f64);
        }
    }
    d
}

/// Mann–Kendall, Sen's slope and the Hamed–Rao correction of `x`.
pub fn mann_kendall(x: &[f64]) -> Result<MannKendall, TrendError> {
    let n = x.len();
    if n < MIN_POINTS {
        return Err(TrendError::TooShort(n));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(TrendError::NotFinite(i));
    }
    let nf = n as f64;
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            s += match x[j].total_cmp(&x[i]) {
                std::cmp::Ordering::Greater => 1,
                std::cmp::Ordering::Less => -1,
                std::cmp::Ordering::Equal => 0,
            };
        }
    }
    let s = s as f64;
    let mut sorted = x.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && sorted[j + 1] == sorted[i] {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        ties += t * (t - 1.0) * (2.0 * t + 5.0);
        i = j + 1;
    }
    let var_s = (nf * (nf - 1.0) * (2.0 * nf + 5.0) - ties) / 18.0;
    let z = z_score(s, var_s);
    let slope = median(&mut pairwise_slopes(x));
    let intercept = median(&mut x.to_vec()) - (nf - 1.0) / 2.0 * slope;

    // Hamed–Rao: the autocorrelation of the ranks of the detrended series at every
    // lag, keeping only the lags outside the 95 % band of white noise.
    let detrended: Vec<f64> = x
        .iter()
        .enumerate()
        .map(|(i, v)| v - (i + 1) as f64 * slope)
        .collect();
    // A perfectly linear series detrends to one value plus rounding noise; its
    // ranks would be the noise's and look autocorrelated. Such a series has no
    // residual to correct for. (Otherwise the same float operations as
    // pymannkendall, so results match it exactly.)
    let scale = x.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    let (lo, hi) = detrended
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
            (l.min(*v), h.max(*v))
        });
    let flat_residual = hi - lo <= 1e-9 * scale;
    let r = ranks(&detrended);
    let mean = r.iter().sum::<f64>() / nf;
    let y: Vec<f64> = r.iter().map(|v| v - mean).collect();
    let acov0: f64 = y.iter().map(|v| v * v).sum();
    let band = Z_975 / nf.sqrt();
    let mut sni = 0.0;
    if acov0 > 0.0 && !flat_residual {
        for lag in 1..n {
            let acf = y[..n - lag]
                .iter()
                .zip(&y[lag..])
                .map(|(a, b)| a * b)
                .sum::<f64>()
                / acov0;
            if acf.abs() > band {
                let k = (n - lag) as f64;
                sni += k * (k - 1.0) * (k - 2.0) * acf;
            }
        }
    }
    let n_ns = 1.0 + 2.0 / (nf * (nf - 1.0) * (nf - 2.0)) * sni;
    let var_s_corrected = var_s * n_ns;
    let z_corrected = z_score(s, var_s_corrected);
    Ok(MannKendall {
        s,
        var_s,
        z,
        p: p_two_sided(z),
        tau: s / (0.5 * nf * (nf - 1.0)),
        slope,
        intercept,
        var_s_corrected,
        z_corrected,
        // A non-positive corrected variance (strong negative autocorrelation) says
        // nothing: no evidence of a trend.
        p_corrected: if var_s_corrected > 0.0 {
            p_two_sided(z_corrected)
        } else {
            1.0
        },
    })
}

/// Indices of the points whose robust z-score 0.6745 (x - median) / MAD passes
/// [`BURST_Z`]; with a MAD of 0 (mostly one value) any other value is a burst.
pub fn bursts(x: &[f64]) -> Vec<usize> {
    let med = median(&mut x.to_vec());
    let mad = median(&mut x.iter().map(|v| (v - med).abs()).collect::<Vec<_>>());
    x.iter()
        .enumerate()
        .filter(|(_, v)| {
            let dev = (*v - med).abs();
            if mad > 0.0 {
                0.674_5 * dev / mad > BURST_Z
            } else {
                dev > 0.0
            }
        })
        .map(|(i, _)| i)
        .collect()
}

/// The slope's standard error read from the Sen confidence interval (the ranks
/// (N ± z·sqrt(Var S))/2 of the sorted pairwise slopes), over 2·z.
fn slope_se(x: &[f64], var_s: f64) -> f64 {
    let mut d = pairwise_slopes(x);
    d.sort_by(f64::total_cmp);
    let big_n = d.len() as f64;
    let c = Z_975 * var_s.max(0.0).sqrt();
    let at = |rank: f64| {
        let i = (rank.round() as isize - 1).clamp(0, d.len() as isize - 1) as usize;
        d[i]
    };
    let lower = at((big_n - c) / 2.0);
    let upper = at((big_n + c) / 2.0 + 1.0);
    (upper - lower) / (2.0 * Z_975)
}

/// Analyses one series of equally spaced points.
pub fn analyse(x: &[f64], th: Thresholds) -> Result<Analysis, TrendError> {
    let stats = mann_kendall(x)?;
    let n = x.len();
    let level = x.iter().map(|v| v.abs()).sum::<f64>() / n as f64;
    let span = (n - 1) as f64;
    let relative_change = if level > 0.0 {
        stats.slope * span / level
    } else {
        0.0
    };
    let delta = th.min_relative_change;
    let significant = stats.p_corrected < ALPHA;
    let direction = if significant && relative_change >= delta {
        Direction::Rising
    } else if significant && relative_change <= -delta {
        Direction::Declining
    } else {
        Direction::Stable
    };
    let confidence = match direction {
        Direction::Rising | Direction::Declining => 1.0 - stats.p_corrected,
        Direction::Stable => {
            // TOST: both one-sided tests (change > -delta, change < delta) must
            // reject; the confidence is that of the weaker one.
            let se = if level > 0.0 {
                slope_se(x, stats.var_s_corrected.max(stats.var_s)) * span / level
            } else {
                0.0
            };
            if se > 0.0 {
                normal_cdf((relative_change + delta) / se)
                    .min(normal_cdf((delta - relative_change) / se))
            } else if relative_change.abs() < delta {
                1.0
            } else {
                0.0
            }
        }
    };
    let bursts = bursts(x);
    let burst_now = bursts.last() == Some(&(n - 1));
    Ok(Analysis {
        direction,
        confidence: confidence.clamp(0.0, 1.0),
        relative_change,
        stats,
        bursts,
        burst_now,
        n,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_short_and_not_finite_are_refused() {
        assert_eq!(
            analyse(&[1.0; 7], Thresholds::default()),
            Err(TrendError::TooShort(7))
        );
        let mut x = vec![1.0; 9];
        x[3] = f64::NAN;
        assert_eq!(mann_kendall(&x), Err(TrendError::NotFinite(3)));
    }

    #[test]
    fn a_constant_series_is_stable_and_confident() {
        let a = analyse(&[5.0; 20], Thresholds::default()).unwrap();
        assert_eq!(a.direction, Direction::Stable);
        assert_eq!(a.stats.s, 0.0);
        assert!(a.confidence > 0.99, "{}", a.confidence);
        assert!(a.bursts.is_empty());
    }

    #[test]
    fn a_small_significant_change_is_stable_under_the_threshold() {
        // Strictly rising, so p is tiny, but by 1 % over the window.
        let x: Vec<f64> = (0..30).map(|i| 1000.0 + i as f64 * 0.3).collect();
        let a = analyse(&x, Thresholds::default()).unwrap();
        assert!(a.stats.p < 1e-6);
        assert_eq!(a.direction, Direction::Stable);
        let b = analyse(
            &x,
            Thresholds {
                min_relative_change: 0.005,
            },
        )
        .unwrap();
        assert_eq!(b.direction, Direction::Rising);
    }

    #[test]
    fn a_spike_at_the_end_is_a_burst_not_a_trend() {
        let mut x: Vec<f64> = (0..40).map(|i| 20.0 + (i % 3) as f64).collect();
        x[39] = 80.0;
        let a = analyse(&x, Thresholds::default()).unwrap();
        assert_eq!(a.bursts, vec![39]);
        assert!(a.burst_now);
        assert_eq!(a.direction, Direction::Stable);
    }

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-15);
        assert!((normal_cdf(Z_975) - 0.975).abs() < 1e-12);
        assert!((p_two_sided(Z_975) - 0.05).abs() < 1e-12);
    }
}
