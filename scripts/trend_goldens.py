#!/usr/bin/env python3
"""Writes tests/fixtures/trends/*.json: golden Mann-Kendall results computed with
pymannkendall (the reference implementation), which tests/market_trend.rs compares
src/market/trend.rs against.

    pip install pymannkendall
    python3 scripts/trend_goldens.py

The series are seeded and rounded (Google Trends values are integers), so the
inputs in the JSON are exact and rerunning the script reproduces the files.
"""
import json
import os

import numpy as np
import pymannkendall as mk

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "trends")


def series():
    rng = np.random.default_rng(20261130)
    t = np.arange(90)
    yield "rising_noisy", np.round(30 + 0.4 * t + rng.normal(0, 6, 90))
    yield "declining_noisy", np.round(80 - 0.3 * t + rng.normal(0, 5, 90))
    yield "flat_noise", np.round(50 + rng.normal(0, 4, 90))
    # Trends-like: integers on 0..100 with many ties.
    yield "ties_heavy", np.clip(np.round(40 + 0.05 * t + rng.normal(0, 2, 90)), 0, 100)
    # AR(1) with phi = 0.8: autocorrelation that fools the plain test.
    ar = np.zeros(90)
    for i in range(1, 90):
        ar[i] = 0.8 * ar[i - 1] + rng.normal(0, 3)
    yield "ar1_no_trend", np.round(50 + ar, 2)
    yield "short_rising_n8", np.array([10, 12, 11, 15, 14, 18, 20, 19], dtype=float)
    burst = np.round(20 + rng.normal(0, 1.5, 52))
    burst[47] = 60
    yield "burst_weekly", burst
    yield "trends_weekly_52", np.clip(np.round(55 + 0.6 * np.arange(52) + rng.normal(0, 5, 52)), 0, 100)


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, x in series():
        o = mk.original_test(x)
        h = mk.hamed_rao_modification_test(x)
        doc = {
            "name": name,
            "reference": f"pymannkendall {getattr(mk, '__version__', '?')}",
            "x": [float(v) for v in x],
            "original": {
                "s": float(o.s), "var_s": float(o.var_s), "z": float(o.z), "p": float(o.p),
                "tau": float(o.Tau), "slope": float(o.slope), "intercept": float(o.intercept),
                "trend": o.trend,
            },
            "hamed_rao": {"var_s": float(h.var_s), "z": float(h.z), "p": float(h.p), "trend": h.trend},
        }
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(name, o.trend, round(o.p, 4), h.trend, round(h.p, 4))


if __name__ == "__main__":
    main()
