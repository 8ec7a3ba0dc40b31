"""scikit-learn beside gdjax: rows and agreeing losses when installed; skipped, not broken, when not."""

import sys

import numpy as np
import pytest

import gdjax
from bench import baselines
from bench.report import summary_markdown
from bench.runner import run_suite
from bench.suites import build_suite

# Stated tolerance: each SGD ends within 1% of the least-squares cost, so they agree within about 1%.
SGD_LOSS_RTOL = 1e-2


@pytest.mark.slow  # 6 s measured on 2 busy cores
def test_sklearn_rows_are_there_and_final_losses_agree():
    problem = gdjax.linear_regression()
    frame = baselines.sklearn_comparison(problem, repeats=1, dtype="float64").set_index("implementation")
    assert list(frame.index) == [
        "scikit-learn LinearRegression",
        "scikit-learn SGDRegressor",
        "gdjax.sweep sgd",
    ]
    exact = gdjax.linear_regression(problem.X, problem.y, standardize=True).facts.minimum_loss
    np.testing.assert_allclose(frame.loc["scikit-learn LinearRegression", "final_loss"], exact, rtol=1e-10)
    for implementation in ("scikit-learn SGDRegressor", "gdjax.sweep sgd"):
        assert 1 <= frame.loc[implementation, "loss_ratio_to_least_squares"] <= 1 + SGD_LOSS_RTOL
    sgd = frame.loc[["scikit-learn SGDRegressor", "gdjax.sweep sgd"], "final_loss"]
    np.testing.assert_allclose(sgd.iloc[0], sgd.iloc[1], rtol=SGD_LOSS_RTOL)
    assert frame.loc["gdjax.sweep sgd", "epochs"] == frame.loc["scikit-learn SGDRegressor", "epochs"]
    assert (frame["seconds"] > 0).all()


def test_standardized_regression_keeps_the_bias_column():
    data = gdjax.linear_regression(standardize=True)
    np.testing.assert_array_equal(data.X[:, 0], 1.0)
    np.testing.assert_allclose([data.X[:, 1].mean(), data.X[:, 1].std()], [0.0, 1.0], atol=1e-12)


def test_without_sklearn_the_suite_runs_and_says_it_skipped(monkeypatch):
    for name in [module for module in sys.modules if module == "sklearn" or module.startswith("sklearn.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sklearn", None)  # import sklearn now raises ImportError
    assert baselines.sklearn_comparison(gdjax.linear_regression(), repeats=1, dtype="float32") is None
    cells = build_suite(["linear_regression"], ["gd"], learning_rates=[1e-4], seeds=[0], steps=50)
    tables = run_suite(cells, dtype="float32", repeats=1)
    assert tables.sklearn is None
    metadata = {
        "device_tag": "cpu",
        "date_utc": "now",
        "device_count": 1,
        "device_kind": "cpu",
        "cpu_model": "a CPU",
        "profile": "custom",
        "dtype": "float32",
        "seeds": [0],
        "versions": {"jax": "x", "optax": "x", "gdjax": "x"},
        "floor_gflop_per_s": tables.flop_rate / 1e9,
        "floor_gexp_per_s": tables.exp_rate / 1e9,
    }
    assert "Skipped: scikit-learn is not installed" in summary_markdown(tables, metadata, [])
