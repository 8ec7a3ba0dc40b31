"""What a new user meets first: errors that say what was wrong and what is allowed, quiet intended
divergence, the true reason a table is missing, and plots whose series all stay visible."""

import dataclasses
import functools
import warnings
from pathlib import Path
from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

import gdjax
from bench import baselines, report
from bench import tables as bench_tables
from bench.cli import main
from bench.lessons import Lessons
from bench.runner import SuiteTables
from bench.suites import resolve_problem
from gdjax.optimizers import factory_name, resolve_optimizer

COMMITTED = Path(__file__).parent.parent / "results" / "cpu-quick"


# 1. Library errors and names


def test_function_problem_with_a_dict_start_says_what_is_allowed_and_how_to_pass_a_pytree():
    with pytest.raises(TypeError) as raised:
        gdjax.function_problem(lambda p: jnp.sum(p["w"] ** 2), {"w": np.ones(2), "b": 0.0})
    message = str(raised.value)
    assert "dtype object" not in message
    assert "x0 must hold real numbers (integer or float) in one array; got a dict (keys 'w', 'b')" in message
    assert "of any shape (e.g. (-1.5, 2.0)" in message
    assert "gdjax.Problem(name, X, y, loss, init)" in message


def test_a_ragged_start_is_named_as_what_it_is():
    with pytest.raises(TypeError, match=r"got a list of ndarray, float \(not one rectangular array"):
        gdjax.function_problem(lambda x: jnp.sum(x**2), [np.ones(2), 3.0])


def _pytree_loss(params, X, y):
    return jnp.sum((params["w"] - 3.0) ** 2) + params["b"] ** 2


def test_the_pytree_advice_runs():
    """The way the message gives for a pytree of parameters: a Problem whose init returns the pytree."""
    problem = gdjax.Problem(
        "pytree_bowl", np.zeros((1, 0)), np.zeros(1), _pytree_loss, lambda seed: {"w": np.zeros(2), "b": 1.0}
    )
    res = gdjax.sweep(problem, "gd", [0.25], steps=40, dtype="float64")
    np.testing.assert_allclose(res.params["w"][0, 0], [3.0, 3.0], atol=1e-6)
    assert res.final_loss[0, 0] < 1e-10


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "front_door_problems.py").write_text("def returns_float():\n    return 3.5\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "front_door_problems"


def test_a_module_function_returning_a_float_names_function_type_and_what_is_allowed(user_module):
    with pytest.raises(ValueError, match=r"must return a gdjax\.Problem") as raised:
        resolve_problem(f"{user_module}:returns_float")
    message = str(raised.value)
    assert "returns_float() must return a gdjax.Problem; got float 3.5" in message
    assert "Allowed: a function of no arguments returning a gdjax.Problem" in message
    assert "gdjax.function_problem(f, x0)" in message


def test_the_command_line_says_it_in_one_line_and_exits_2(user_module, tmp_path, capsys):
    argv = ["--problems", f"{user_module}:returns_float", "--steps", "5", "--lrs", "0.1"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench: error: problem 'front_door_problems:returns_float': returns_float()")
    assert err.count("\n") == 1


def test_a_lambda_optimizer_is_custom_in_the_frame_not_lambda():
    res = gdjax.sweep(gdjax.quadratic(), lambda learning_rate: optax.sgd(learning_rate), [0.1], steps=3)
    assert res.optimizer == "custom"
    assert set(res.to_frame()["optimizer"]) == {"custom"}


def _clipped_sgd(learning_rate):
    return optax.chain(optax.clip(1.0), optax.sgd(learning_rate))


def _make_factory():
    def nested(learning_rate):
        return optax.sgd(learning_rate)

    return nested


class _Factory:
    def __call__(self, learning_rate):
        return optax.sgd(learning_rate)


def _named_lambda():
    factory = lambda learning_rate: optax.sgd(learning_rate)  # noqa: E731
    factory.__name__ = "my_sgd"
    return factory


@pytest.mark.parametrize(
    ("factory", "name"),
    [
        (_clipped_sgd, "_clipped_sgd"),
        (_make_factory(), "nested"),
        (functools.partial(optax.sgd, momentum=0.9), "sgd(momentum=0.9)"),
        (
            functools.partial(lambda learning_rate, b1: optax.adam(learning_rate, b1), b1=0.5),
            "custom(b1=0.5)",
        ),
        (_Factory(), "_Factory"),
        (_named_lambda(), "my_sgd"),
        (optax.adamw, "adamw"),
    ],
)
def test_a_factory_is_named_by_what_it_is(factory, name):
    assert factory_name(factory) == name
    assert resolve_optimizer(factory) == (name, factory)


def test_a_gradient_transformation_gets_told_to_pass_a_factory():
    with pytest.raises(TypeError, match=r"must be a factory learning_rate -> optax\.GradientTransformation"):
        gdjax.sweep(gdjax.quadratic(), optax.sgd(0.1), [0.1], steps=3)


# 2. Intended divergence stays quiet; a real fault does not


def test_diverging_textbook_loops_are_quiet_and_say_so_in_their_numbers():
    regression, xor, logistic = gdjax.linear_regression(), gdjax.xor(), gdjax.logistic_regression()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        theta, cost = baselines.textbook_regression_gd(regression.X, regression.y, 1e-2, 3000)
        vector, _ = baselines.tutorial_gradient_descent(
            baselines.rosenbrock_gradient, (-1.5, 2.0), 0.05, 2000
        )
        start = xor.init(1)
        *_, outputs = baselines.textbook_xor_backprop(xor.X, xor.y, start["W0"], start["W1"], 1e6, 50)
        w = baselines.textbook_logistic_gd(logistic.X, logistic.y, 1e-2, 1e5, 200)
    assert not np.all(np.isfinite(theta))
    assert not np.isfinite(cost)
    assert not np.all(np.isfinite(vector))
    # huge weights: exp(-z) overflowed (z < -709) inside the sigmoids, quietly, and the outputs saturated
    assert np.all((outputs >= 0) & (outputs <= 1))
    assert (outputs == 0).any()
    assert not np.all(np.isfinite(w))


def test_a_reference_loop_that_diverges_is_one_warning_in_words():
    problem = gdjax.linear_regression()
    problem = problem._replace(facts=dataclasses.replace(problem.facts, reference_rate=1e-2))
    with pytest.warns(RuntimeWarning) as caught:
        baselines.run_textbook_loop(problem, 3000)
    assert len(caught) == 1
    assert "textbook loop 'regression_gd' diverged on linear_regression at its reference rate 0.01" in str(
        caught[0].message
    )


def test_a_converging_reference_loop_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        baselines.run_textbook_loop(gdjax.linear_regression(), 2000)


def test_a_real_fault_in_a_textbook_loop_still_raises():
    with pytest.raises(ValueError, match="could not be broadcast"):
        baselines.textbook_regression_gd(np.ones((3, 2)), np.ones(4), 1e-3, 5)


# 3. summary.md says why there is no scikit-learn table


def _committed_tables(problems) -> tuple[SuiteTables, dict]:
    def read(name):
        frame = bench_tables.read_table(COMMITTED / name)
        return frame[frame["problem"].isin(problems)].reset_index(drop=True)

    tables = SuiteTables(
        read("timing.csv"), read("convergence.csv"), read("curves.csv"), read("summary.csv"), 1, 1
    )
    return tables, bench_tables.read_metadata(COMMITTED)


def test_a_run_without_the_textbook_regression_says_scikit_learn_was_not_run_not_missing():
    tables, metadata = _committed_tables(["logistic_regression"])  # as a CSV run: no linear_regression
    summary = report.summary_markdown(tables, metadata, [])
    assert "not installed" not in summary
    assert (
        "Not run: the comparison with scikit-learn runs on the textbook regression (linear_regression)"
        in (summary)
    )


def test_with_the_regression_and_no_scikit_learn_it_says_not_installed(monkeypatch):
    tables, metadata = _committed_tables(["linear_regression"])
    monkeypatch.setitem(__import__("sys").modules, "sklearn", None)  # import sklearn now raises ImportError
    assert "Skipped: scikit-learn is not installed" in report.summary_markdown(tables, metadata, [])


# 4. Plots: every series visible, axes set by what is meant to be seen


@pytest.fixture
def figures(monkeypatch):
    """The figures the plotting functions finish, drawn (as saving would) and kept open for inspection."""
    kept = []

    def keep(figure):
        figure.canvas.draw()
        kept.append(figure)
        return b""

    monkeypatch.setattr(report, "_png", keep)
    yield kept
    import matplotlib.pyplot as plt

    for figure in kept:
        plt.close(figure)


def _curves(losses: dict[str, np.ndarray]) -> pd.DataFrame:
    if not losses:
        return pd.DataFrame(columns=["problem", "optimizer", "learning_rate", "step", "loss_mean"])
    return pd.concat(
        [
            pd.DataFrame(
                {"problem": "p", "optimizer": name, "learning_rate": 0.1, "step": np.arange(1, len(loss) + 1),
                 "loss_mean": loss, "loss_min": loss, "loss_max": loss}
            )
            for name, loss in losses.items()
        ]
    )  # fmt: skip


def _convergence(rows) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"problem": "p", "optimizer": opt, "learning_rate": lr, "seed": 0, "final_loss": loss,
             "diverged_at": diverged}
            for opt, lr, loss, diverged in rows
        ]
    )  # fmt: skip


def test_identical_curves_are_both_drawn_visibly_and_said_to_coincide(figures):
    same = np.geomspace(10, 1e-3, 30)
    rows = [("gd", lr, 1.0, -1) for lr in (0.1, 0.2)] + [("sgd", lr, 1.0, -1) for lr in (0.1, 0.2)]
    tables = SuiteTables(None, _convergence(rows), _curves({"gd": same, "sgd": same.copy()}), None, 1, 1)
    report.plots(tables)
    for axes in (figures[0].axes[0], figures[1].axes[0]):  # the curves, then the sensitivity
        gd, sgd = axes.get_lines()[:2]
        assert gd.get_linestyle() != sgd.get_linestyle()
        assert gd.get_marker() != sgd.get_marker()
        assert gd.get_linewidth() > sgd.get_linewidth()  # the wider one underneath
        assert sgd.get_zorder() > gd.get_zorder()
        labels = [text.get_text() for text in axes.get_legend().get_texts()]
        assert any("gd" in label and "same curve as sgd" in label for label in labels)
        assert any(label.startswith("sgd") and "same curve as gd" in label for label in labels)


def test_a_curve_with_no_finite_loss_is_drawn_without_failing(figures):
    """Every rate of a cell diverged: its best point's curve is all NaN, and has no point to mark."""
    rows = [("gd", 0.1, np.nan, 2), ("adam", 0.1, 1.0, -1)]
    curves = _curves({"adam": np.geomspace(10, 1, 5), "gd": np.full(5, np.nan)})
    report.plots(SuiteTables(None, _convergence(rows), curves, None, 1, 1))
    assert len(figures) == 2


@pytest.mark.parametrize("diverged_loss", [1e15, np.inf, np.nan])
def test_diverged_runs_are_marked_at_the_top_edge_not_at_an_enormous_loss(figures, diverged_loss):
    rows = [("gd", lr, loss, -1) for lr, loss in ((1e-3, 5.0), (1e-2, 1.0), (1e-1, 0.5))]
    rows += [("gd", 1.0, diverged_loss, 7), ("adam", 1e-2, 0.1, -1), ("adam", 10.0, diverged_loss, 3)]
    report.plots(SuiteTables(None, _convergence(rows), _curves({}), None, 1, 1))
    (figure,) = figures
    axes = figure.axes[0]
    assert axes.get_ylim()[1] < 50  # the losses drawn reach 5: the axis is theirs, not 1e15's
    (adam_marks, gd_marks) = axes.collections
    for marks, rate in ((adam_marks, 10.0), (gd_marks, 1.0)):
        (offset,) = marks.get_offsets()
        assert offset[0] == rate
        assert offset[1] >= 1.0  # at the top edge or a row above it, in axes fractions
        assert marks.get_offset_transform() == axes.get_xaxis_transform()
    assert any(text.get_text() == "diverged" for text in axes.texts)


def test_paths_are_framed_on_the_valley_with_an_excursion_clipped_and_the_legend_outside(figures):
    problem = gdjax.quadratic(10.0)  # start (1, 1), minimum 0 at the origin
    calm = np.linspace([1.0, 1.0], [0.0, 0.0], 50)
    swinging = calm.copy()
    swinging[3] = [1.0, 40.0]  # one swing far uphill
    lessons = Lessons(
        paths={
            ("quadratic", "adam"): SimpleNamespace(params_curve=swinging[None, None], learning_rates=[0.5]),
            ("quadratic", "gd"): SimpleNamespace(params_curve=calm[None, None], learning_rates=[0.1]),
        },
        cost=None,
        problems={"quadratic": problem},
        optima={"quadratic": np.zeros(2)},
    )
    report.lesson_plots(lessons)
    (figure,) = figures
    axes = figure.axes[0]
    assert axes.get_ylim()[1] < 2  # framed on start, minimum and the calm points, not on the swing to 40
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert any(label.startswith("adam") and "clipped" in label for label in labels)
    assert not any(label.startswith("gd") and "clipped" in label for label in labels)
    assert "adam clipped" in axes.get_title()
    figure.canvas.draw()
    legend_box = axes.get_legend().get_window_extent()
    assert legend_box.x0 >= axes.get_window_extent().x1  # right of the axes: it covers no contour
