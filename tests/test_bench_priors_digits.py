"""The priors benchmark reports paired differences the way benchmarks/README.md says: the 95% interval is
Student's paired t interval (checked against scipy's ttest_rel), and its verdict follows the interval."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

ROOT = Path(__file__).resolve().parent.parent


def load_bench():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        spec = importlib.util.spec_from_file_location("bench_priors_digits", ROOT / "benchmarks" / "bench_priors_digits.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    return mod


def runs(values, key="test_neg_log_px"):
    return [{key: float(v)} for v in values]


def test_paired_interval_is_scipys_paired_t_interval():
    bench = load_bench()
    rng = np.random.default_rng(0)
    ref = 90 + rng.normal(0, 0.3, size=5)
    row = ref - 0.3 + rng.normal(0, 0.2, size=5)
    got = bench.paired(runs(ref), runs(row), "test_neg_log_px")
    ci = stats.ttest_rel(ref, row).confidence_interval(0.95)
    assert got["mean"] == pytest.approx(float(np.mean(ref - row)))
    assert got["ci95"] == pytest.approx([ci.low, ci.high])


@pytest.mark.parametrize("shift, verdict", [(1.0, "better"), (-1.0, "worse"), (0.0, "no measurable difference")])
def test_verdict_follows_the_interval(shift, verdict):
    bench = load_bench()
    ref = np.array([90.0, 91.0, 90.5, 90.2])
    row = ref - shift + np.array([0.05, -0.05, 0.02, -0.02])
    assert bench.paired(runs(ref), runs(row), "test_neg_log_px")["verdict"] == verdict


def test_choice_is_made_on_validation_not_test():
    bench = load_bench()
    def row(name, family, val, test):
        r = {"name": name, "family": family, "runs": [{"val_neg_log_px": val, "test_neg_log_px": test,
                                                        "time_to_best": 1.0}]}
        r["summary"] = {k: {"mean": r["runs"][0][k]} for k in ("val_neg_log_px", "test_neg_log_px", "time_to_best")}
        return r
    rows = [row("ref", "standard", 95.0, 90.0), row("a", "mixture", 94.0, 91.0), row("b", "mixture", 94.5, 89.0)]
    assert bench.analyse(rows)["mixture"] == "a"   # best on validation, though "b" is best on test
