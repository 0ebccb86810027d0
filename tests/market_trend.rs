//! Trend detection against golden values computed with pymannkendall
//! (`scripts/trend_goldens.py` writes `tests/fixtures/trends/*.json`).

#![allow(clippy::unwrap_used)]

use strategist::market::trend::{Direction, Thresholds, analyse, mann_kendall};

fn fixtures() -> Vec<serde_json::Value> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/trends");
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "json") {
            out.push(serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap());
        }
    }
    assert!(out.len() >= 8, "fixtures missing: {}", out.len());
    out
}

fn close(name: &str, what: &str, got: f64, want: f64) {
    let tol = 1e-9_f64.max(want.abs() * 1e-9);
    assert!(
        (got - want).abs() <= tol,
        "{name}.{what}: got {got}, pymannkendall {want}"
    );
}

#[test]
fn mann_kendall_matches_pymannkendall() {
    for f in fixtures() {
        let name = f["name"].as_str().unwrap();
        let x: Vec<f64> = f["x"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let mk = mann_kendall(&x).unwrap();
        let o = &f["original"];
        close(name, "s", mk.s, o["s"].as_f64().unwrap());
        close(name, "var_s", mk.var_s, o["var_s"].as_f64().unwrap());
        close(name, "z", mk.z, o["z"].as_f64().unwrap());
        close(name, "tau", mk.tau, o["tau"].as_f64().unwrap());
        close(name, "slope", mk.slope, o["slope"].as_f64().unwrap());
        close(
            name,
            "intercept",
            mk.intercept,
            o["intercept"].as_f64().unwrap(),
        );
        // pymannkendall computes 2·(1 - cdf), which loses digits in the tail; ours
        // uses erfc: compare absolutely.
        assert!((mk.p - o["p"].as_f64().unwrap()).abs() < 1e-12, "{name}.p");
        let h = &f["hamed_rao"];
        close(
            name,
            "hr.var_s",
            mk.var_s_corrected,
            h["var_s"].as_f64().unwrap(),
        );
        close(name, "hr.z", mk.z_corrected, h["z"].as_f64().unwrap());
        assert!(
            (mk.p_corrected - h["p"].as_f64().unwrap()).abs() < 1e-12,
            "{name}.hr.p"
        );
    }
}

#[test]
fn directions_on_the_golden_series() {
    for f in fixtures() {
        let name = f["name"].as_str().unwrap();
        let x: Vec<f64> = f["x"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let a = analyse(&x, Thresholds::default()).unwrap();
        let want = match name {
            "rising_noisy" | "short_rising_n8" | "trends_weekly_52" => Direction::Rising,
            "declining_noisy" => Direction::Declining,
            // ties_heavy rises significantly but by less than 10 % over the window.
            _ => Direction::Stable,
        };
        assert_eq!(a.direction, want, "{name}: {a:?}");
        assert!((0.0..=1.0).contains(&a.confidence), "{name}");
        if want != Direction::Stable {
            assert!(a.confidence > 0.95, "{name}: {}", a.confidence);
        }
        if name == "burst_weekly" {
            assert_eq!(a.bursts, vec![47], "{name}");
        }
    }
}

/// Benchmark (ignored by default): analysis time for 10,000 keyword series of 90
/// points. `cargo test --release --test market_trend -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_ten_thousand_series_of_ninety_points() {
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 1000) as f64 / 10.0
    };
    let series: Vec<Vec<f64>> = (0..10_000)
        .map(|k| {
            let slope = (k % 7) as f64 * 0.1 - 0.3;
            (0..90)
                .map(|i| 50.0 + slope * i as f64 + next() / 5.0)
                .collect()
        })
        .collect();
    let t = std::time::Instant::now();
    let mut rising = 0;
    for x in &series {
        if analyse(x, Thresholds::default()).unwrap().direction == Direction::Rising {
            rising += 1;
        }
    }
    let el = t.elapsed();
    println!(
        "trend analysis: 10000 series x 90 points in {:.3} s ({:.1} us per series), {rising} rising",
        el.as_secs_f64(),
        el.as_secs_f64() * 1e6 / 10_000.0
    );
    assert!(rising > 0);
}
