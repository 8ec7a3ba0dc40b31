"""Bring your own problem: a CSV regression, a module:function, and the new built-in problems' optima."""

import numpy as np
import pandas as pd
import pytest
from references import textbook_regression_gd

import gdjax
from bench import tables
from bench.baselines import textbook_logistic_gd
from bench.cli import main
from bench.suites import SUITE_OPTIMIZERS, build_suite

SMALL_CSV = "tests/data/small_regression.csv"
QUICK_FLAGS = ["--lrs", "1e-3:1:6", "--steps", "500", "--seeds", "0", "--repeats", "1"]


def test_csv_regression_is_the_least_squares_of_its_columns():
    problem = gdjax.regression_from_csv(SMALL_CSV, "price", add_bias=True)
    frame = pd.read_csv(SMALL_CSV)
    np.testing.assert_array_equal(problem.X[:, 0], 1.0)
    np.testing.assert_array_equal(problem.X[:, 1:], frame[["size", "age"]].to_numpy())
    np.testing.assert_array_equal(problem.y, frame["price"].to_numpy())
    assert problem.name == "small_regression"
    theta = problem.facts.optimum
    np.testing.assert_allclose(theta, np.linalg.lstsq(problem.X, problem.y, rcond=None)[0])
    res = gdjax.sweep(problem, "gd", [1e-3, 5e-3], steps=400, dtype="float64")
    for column, rate in enumerate([1e-3, 5e-3]):
        expected, _ = textbook_regression_gd(problem.X, problem.y, rate, 400)
        np.testing.assert_allclose(res.params[0, column], expected, rtol=1e-10)


def test_standardize_scales_the_features_and_keeps_the_added_bias():
    problem = gdjax.regression_from_csv(SMALL_CSV, "price", standardize=True, add_bias=True)
    np.testing.assert_array_equal(problem.X[:, 0], 1.0)
    np.testing.assert_allclose(problem.X[:, 1:].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(problem.X[:, 1:].std(axis=0), 1.0)


@pytest.mark.slow  # 16 s measured on 2 busy cores
def test_csv_end_to_end_from_the_command_line(tmp_path):
    argv = ["--data", SMALL_CSV, "--target", "price", "--bias", "--standardize", *QUICK_FLAGS]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    (folder,) = tmp_path.iterdir()
    summary = tables.read_table(folder / "summary.csv")
    assert set(summary["problem"]) == {"small_regression"}
    assert set(summary["optimizer"]) == set(SUITE_OPTIMIZERS)
    # standardised, X.T X / m is the identity: GD at rate 1 is at the minimum in one step
    gd = summary.set_index("optimizer").loc["gd"]
    assert gd["reached_fraction"] == 1.0
    convergence = tables.read_table(folder / "convergence.csv")
    assert (convergence["problem"] == "small_regression").all()


@pytest.mark.parametrize(
    ("content", "target", "message"),
    [
        ("size,price\n1,2\n2,3\n", "cost", "no column 'cost'; columns: size, price"),
        ("size,price\n1,2\n2,cheap\n", "price", "column 'price', data row 2: 'cheap' is not a finite number"),
        ("size,price\n1,2\n,3\n", "price", "column 'size', data row 2: an empty cell is not a finite number"),
        ("size,price\n1,2\n2,NaN\n", "price", "column 'price', data row 2: 'NaN' is not a finite number"),
        ("", "price", "not a readable CSV file (it is empty)"),
        ("size,price\n", "price", "no data rows under the header"),
        ("price\n1\n2\n", "price", "needs at least one feature column besides the target 'price'"),
        ("size,price\n1,2\n3,4,5,6\n", "price", "not a readable CSV file (Error tokenizing data"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "price", "not a readable CSV file ('utf-8' codec can't decode"),
    ],
)
def test_bad_csv_file_gets_one_line_naming_the_fault_and_nothing_is_written(
    content, target, message, tmp_path, capsys
):
    data = tmp_path / "data.csv"
    data.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = tmp_path / "out"
    assert main(["--data", str(data), "--target", target, *QUICK_FLAGS, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"bench: error: {data}: {message}")
    assert err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--data", "nowhere.csv", "--target", "y"], "nowhere.csv: no such file"),
        (["--data", SMALL_CSV], "--data and --target go together"),
        (["--standardize"], "--standardize and --bias apply to --data"),
        (["--problems", "own_problem:not_a_problem"], "must return a gdjax.Problem; got str"),
        (["--problems", "own_problem:broken"], "broken() failed: RuntimeError: no data today"),
        (["--problems", "own_problem:missing"], "own_problem has no function 'missing'"),
        (["--problems", "no_such_module:make"], "cannot import 'no_such_module'"),
        (["--problems", "own_problem:shifted_bowl"], "no default number of steps for own_problem:shifted"),
        (["--problems", "own_problem:shifted_bowl", "--steps", "9"], "no default learning rates for gd"),
        (["--data", SMALL_CSV, "--target", "price", "--lrs", "0.1"], "no default number of steps"),
    ],
)
def test_bad_own_problem_gets_one_line_and_exit_2(argv, message, tmp_path, capsys):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # 20 s measured on 2 busy cores
def test_module_function_problem_runs_beside_a_built_in_one(tmp_path):
    argv = ["--problems", "own_problem:shifted_bowl,linear_regression", "--optimizers", "gd", *QUICK_FLAGS]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    (folder,) = tmp_path.iterdir()
    summary = tables.read_table(folder / "summary.csv").set_index("problem")
    assert set(summary.index) == {"own_problem:shifted_bowl", "linear_regression"}
    # no known target: ranked by final loss; GD at rate 0.25 lands on (3, -1) (the bowl's curvature is 2)
    assert summary.loc["own_problem:shifted_bowl", "final_loss_median"] < 1e-10
    timing = tables.read_table(folder / "timing.csv")
    assert "textbook numpy loop" not in set(
        timing[timing["problem"] == "own_problem:shifted_bowl"].implementation
    )


@pytest.mark.parametrize("separable", [False, True])
def test_logistic_minimum_is_where_the_gradient_vanishes_and_sklearn_agrees(separable):
    problem = gdjax.logistic_regression(separable=separable)
    w = problem.facts.optimum
    probability = 1 / (1 + np.exp(-(problem.X @ w)))
    gradient = problem.X.T @ (probability - problem.y) / problem.n_examples + problem.loss.l2 * w
    assert np.linalg.norm(gradient) < 1e-12
    sklearn = pytest.importorskip("sklearn.linear_model")
    # scikit-learn minimises C * sum(log-loss) + ||w||**2 / 2: the same minimum for C = 1 / (l2 m)
    model = sklearn.LogisticRegression(
        C=1 / (problem.loss.l2 * problem.n_examples), fit_intercept=False, tol=1e-12, max_iter=10_000
    ).fit(problem.X, problem.y)
    np.testing.assert_allclose(model.coef_[0], w, atol=1e-6)
    assert separable == bool(np.all((problem.X @ gdjax.problems.LOGISTIC_TRUE_WEIGHTS > 0) == problem.y))


def test_logistic_gd_sweep_equals_the_textbook_loop():
    problem = gdjax.logistic_regression()
    rates = [0.1, 1.0, 5.0]
    res = gdjax.sweep(problem, "gd", rates, steps=300, dtype="float64")
    for column, rate in enumerate(rates):
        expected = textbook_logistic_gd(problem.X, problem.y, problem.loss.l2, rate, 300)
        np.testing.assert_allclose(res.params[0, column], expected, rtol=1e-10)


@pytest.mark.slow  # 8 s measured on 2 busy cores
@pytest.mark.parametrize(
    ("name", "make_problem"),
    [
        ("logistic_regression", gdjax.logistic_regression),
        ("logistic_regression_separable", lambda: gdjax.logistic_regression(separable=True)),
        ("linear_regression_standardized", lambda: gdjax.linear_regression(standardize=True)),
    ],
)
def test_new_problem_minimum_is_reached_by_an_optimizer_of_the_default_grid(name, make_problem):
    problem = make_problem()
    best = {}
    for cell in build_suite([name], list(SUITE_OPTIMIZERS)):
        res = gdjax.sweep(problem, cell.optimizer, cell.learning_rates, cell.steps, dtype="float64")
        best[cell.optimizer] = np.nanmin(np.linalg.norm(res.params[0] - problem.facts.optimum, axis=-1))
    assert min(best.values()) < 1e-8, best


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"l2": 0.0}, "l2 must be a finite number > 0"), ({"m": 0}, "m must be an integer >= 1")],
)
def test_logistic_regression_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        gdjax.logistic_regression(**kwargs)


@pytest.mark.slow  # 6 s measured on 2 busy cores
def test_separable_logistic_regression_is_asked_for_by_name(tmp_path):
    argv = ["--problems", "logistic_regression_separable", "--optimizers", "gd", "--steps", "500"]
    assert main([*argv, "--seeds", "0", "--repeats", "1", "--out", str(tmp_path)]) == 0
    (folder,) = tmp_path.iterdir()
    summary = tables.read_table(folder / "summary.csv").set_index("optimizer")
    assert summary.loc["gd", "problem"] == "logistic_regression_separable"
    assert summary.loc["gd", "reached_fraction"] == 1.0
