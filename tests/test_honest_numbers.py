"""Numbers a reviewer accepts: a target that holds, edges flagged, n = 1, intervals that cover, one rule."""

import jax
import numpy as np
import pandas as pd
import pytest

import gdjax
from bench.metrics import best_point, convergence_frame, median_interval, summarize
from bench.report import _tuned_table
from bench.runner import run_suite
from bench.suites import build_suite
from bench.tables import compare_published
from bench.tuned import FRESH_SEEDS


def _numpy_losses(loss_and_grad, x, rate, steps, momentum=0.0):
    """Loss after every step 0..steps of the heavy ball (GD at momentum 0), looped in numpy float64."""
    velocity, losses = np.zeros_like(x), []
    np.seterr(over="ignore")  # the diverging runs overflow float64 on purpose, as the sweep's do
    for _ in range(steps):
        loss, gradient = loss_and_grad(x)
        losses.append(loss)
        velocity = gradient + momentum * velocity
        x = x - rate * velocity
    losses.append(loss_and_grad(x)[0])
    return np.array(losses)


def _first_and_stay(losses, target):
    """(first step at or below target, start of the final stay there); -1 where none."""
    at = losses <= target
    first = int(np.argmax(at)) if at.any() else -1
    if not at[-1]:
        return first, -1
    above = np.flatnonzero(~at)
    return first, int(above[-1]) + 1 if len(above) else 0


@pytest.mark.slow  # 11 s measured on 2 busy cores
def test_exact_steps_to_target_equal_a_numpy_loop_on_the_textbook_regression():
    problem = gdjax.linear_regression()
    X, y, m = problem.X, problem.y, problem.n_examples

    def loss_and_grad(theta):
        residual = X @ theta - y
        return residual @ residual / (2 * m), X.T @ residual / m

    rates = [5e-4, 4.5e-4]
    with jax.enable_x64(True):
        res = gdjax.sweep(problem, "gd", rates, 50_000, log_every=1_000, dtype="float64")
    for column, rate in enumerate(rates):
        losses = _numpy_losses(loss_and_grad, np.ones(2), rate, 50_000)
        first, stay = _first_and_stay(losses, problem.facts.target_loss)
        assert 1_000 < stay < 50_000  # a monotone descent: the first hit starts the stay
        assert (res.first_at_target[0, column], res.at_target_from[0, column]) == (first, stay)


def test_an_oscillating_run_that_touches_the_target_is_not_at_target_until_it_stays():
    """The heavy ball at momentum 0.95 on x**2 / 2 passes through the target long before it stays there."""
    facts = gdjax.Facts(minimum_loss=0.0, target_loss=1e-4)
    problem = gdjax.function_problem(lambda x: 0.5 * jax.numpy.sum(x**2), [1.0], facts=facts)
    losses = _numpy_losses(lambda x: (0.5 * float(x @ x), x), np.array([1.0]), 0.5, 600, momentum=0.95)
    first, stay = _first_and_stay(losses, 1e-4)
    assert 0 < first < stay - 50  # it touched and left
    with jax.enable_x64(True):
        res = gdjax.sweep(problem, "momentum", grid={"learning_rate": [0.5], "momentum": [0.95]}, steps=600,
                          dtype="float64")  # fmt: skip
    assert (res.first_at_target[0, 0], res.at_target_from[0, 0]) == (first, stay)


def test_a_point_that_touched_the_target_once_does_not_beat_one_that_stayed():
    """Ranked by seeds that stayed at the target, then median steps, then median final loss (target 0.25)."""
    frame = pd.DataFrame(
        {
            "learning_rate": [0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.4],
            "hyperparameters": "",
            "first_at_target": [10, 10, 400, 500, 90, 100, 50, 20],
            # 0.1 touched the target at step 10, then left it; 0.4 stayed on one seed only
            "steps_to_target": [-1, -1, 400, 500, 90, 100, 50, -1],
            "final_loss": [0.3, 0.3, 0.2, 0.2, 0.24, 0.24, 0.01, 0.3],
            "diverged_at": -1,
        }
    )
    assert best_point(frame) == (0.3, "")  # fewest steps of the points whose every seed stayed
    assert best_point(frame[frame["learning_rate"] != 0.3]) == (0.2, "")
    assert best_point(frame[frame["learning_rate"].isin([0.1, 0.4])]) == (0.4, "")  # one seed of two stayed
    # no point reached it: the lowest median final loss (a diverged run counts as infinite)
    never = frame.assign(steps_to_target=-1, diverged_at=[-1, -1, 5, -1, -1, -1, -1, -1])
    assert best_point(never) == (0.4, "")


def _frame(rates, steps, others=""):
    return pd.DataFrame(
        {
            "problem": "p",
            "optimizer": "gd",
            "schedule": "constant",
            "batch_size": 0,
            "learning_rate": rates,
            "hyperparameters": others,
            "steps_to_target": steps,
            "first_at_target": steps,
            "target_resolution": 1,
            "final_loss": 1.0,
            "best_loss": 1.0,
            "diverged_at": -1,
        }
    )


def test_a_best_rate_on_the_edge_of_its_grid_is_flagged():
    problem = gdjax.linear_regression()
    top = summarize(_frame([0.1, 0.2, 0.3], [900, 500, 100]), problem)
    middle = summarize(_frame([0.1, 0.2, 0.3], [900, 100, 500]), problem)
    assert (top["best_learning_rate"], top["best_on_edge"]) == (0.3, True)
    assert (middle["best_learning_rate"], middle["best_on_edge"]) == (0.2, False)
    # on the edge of another axis: momentum 0.99 is the top of its axis
    grid = pd.concat(
        [_frame([0.1, 0.2, 0.3], [900, s, 500], f"momentum={b!r}") for b, s in ((0.5, 300), (0.99, 100))]
    )
    assert summarize(grid, problem)["best_on_edge"]
    # nothing reached the target: the best is the lowest final loss, and says so
    assert summarize(_frame([0.1, 0.2, 0.3], [-1, -1, -1]), problem)["best_by"] == "final_loss"


@pytest.mark.slow  # 9 s measured on 2 busy cores
def test_seeds_matter_only_where_a_seed_changes_something():
    regression, xor = gdjax.linear_regression(), gdjax.xor()
    assert not gdjax.seeds_matter(regression, "gd")
    assert not gdjax.seeds_matter(gdjax.rosenbrock(), "sgd")  # one example: every minibatch is the data
    assert gdjax.seeds_matter(regression, "sgd")  # minibatch order
    assert gdjax.seeds_matter(xor, "gd")  # the start
    assert gdjax.seeds_matter(regression, "optax:noisy_sgd")  # the optimizer's own noise
    # and where they do not, they indeed change nothing
    res = gdjax.sweep(regression, "momentum", [1e-4, 3e-4], 500, seeds=(0, 1, 7))
    assert np.array_equal(res.final_loss[0], res.final_loss[1])
    assert np.array_equal(res.final_loss[0], res.final_loss[2])


@pytest.mark.slow  # 26 s measured on 2 busy cores
def test_a_deterministic_cell_runs_one_seed_and_reports_n_1():
    problems, rates = ["linear_regression", "xor"], [1e-4, 5e-4, 1.0]
    cells = build_suite(problems, ["gd"], learning_rates=rates, seeds=(0, 1, 2), steps=2_000)
    tables = run_suite(cells, dtype="float32", repeats=1)
    summary = tables.summary.set_index("problem")
    tuned = tables.tuned.set_index("problem")
    assert summary.loc["linear_regression", "n_seeds"] == 1
    assert not summary.loc["linear_regression", "seeds_matter"]
    assert summary.loc["xor", "n_seeds"] == 3
    assert summary.loc["xor", "seeds_matter"]
    assert tuned.loc["linear_regression", "n_seeds"] == 1
    assert np.isnan(tuned.loc["linear_regression", "final_loss_ci_low"])
    assert tuned.loc["xor", "n_seeds"] == len(FRESH_SEEDS)
    # seconds to target: the steps at the cell's measured time per run-step (its runs advance together)
    sweeps = tables.timing[tables.timing["implementation"] == "gdjax.sweep"].set_index("problem")
    np.testing.assert_allclose(
        tuned["seconds_to_target_median"],
        tuned["steps_to_target_median"] * sweeps.loc[tuned.index, "ns_per_lr_step"] * 1e-9,
    )
    assert set(tables.convergence[tables.convergence["problem"] == "linear_regression"]["seed"]) == {0}
    text = _tuned_table(tables.tuned)
    (line,) = [line for line in text.splitlines() if "| linear_regression |" in line]
    assert "n = 1: seeds change nothing" in line
    assert "%" not in line


def test_the_median_interval_covers_skewed_positive_data_at_n_10():
    """Lognormal (sigma 1.5) samples of 10: the order-statistic interval covers the true median >= 90%."""
    rng = np.random.default_rng(0)
    samples = rng.lognormal(mean=2.0, sigma=1.5, size=(4_000, 10))
    intervals = np.array([median_interval(sample)[1:] for sample in samples])
    covered = (intervals[:, 0] <= np.exp(2.0)) & (np.exp(2.0) <= intervals[:, 1])
    assert covered.mean() >= 0.90
    assert covered.mean() == pytest.approx(0.9785, abs=0.01)  # 1 - 2 P(Binomial(10, 1/2) <= 1)
    assert np.all(intervals > 0)  # never below zero, unlike a mean's t interval on such data
    # steps to target where 3 of 10 seeds never got there: the median is still finite, its top is never
    median, low, high = median_interval([120, 80, 95, 300, np.inf, 110, np.inf, 90, 150, np.inf])
    assert (median, low, high) == (135.0, 90.0, np.inf)
    assert np.isnan(median_interval([1.0, 2.0, 3.0])[1])  # n = 3: no 95% interval exists


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_divergence_is_one_rule_in_every_dtype(dtype):
    """GD at 0.9x, 1.02x and 1.1x the stability limit, 3,000 steps: the same runs diverge, by the rule."""
    problem = gdjax.linear_regression()
    limit = 2 / problem.facts.curvature[0]
    with jax.enable_x64(dtype == "float64"):
        res = gdjax.sweep(problem, "gd", [0.9 * limit, 1.02 * limit, 1.1 * limit], 3_000, dtype=dtype)
    diverged_at = res.diverged_at[0]
    assert diverged_at[0] == -1
    assert diverged_at[1] > 0
    assert diverged_at[2] > 0
    # by the rule: the excess over the minimum first above 1e6 times the starting excess (float64 loop)
    X, y, m = problem.X, problem.y, problem.n_examples

    def loss_and_grad(theta):
        residual = X @ theta - y
        return residual @ residual / (2 * m), X.T @ residual / m

    for column, share in ((1, 1.02), (2, 1.1)):
        losses = _numpy_losses(loss_and_grad, np.ones(2), share * limit, 3_000)
        excess = losses - problem.facts.minimum_loss
        expected = int(np.argmax(excess > 1e6 * excess[0]))
        assert abs(diverged_at[column] - expected) <= 1


def test_the_divergence_rule_without_a_known_minimum_is_an_absolute_loss():
    problem = gdjax.function_problem(lambda x: jax.numpy.sum(x**2), [1.0])  # nothing declared
    res = gdjax.sweep(problem, "gd", [0.4, 1.5], 200)  # 1.5: x -> -2x, the loss x 4 a step
    assert res.diverged_at[0, 0] == -1
    assert res.diverged_at[0, 1] == int(np.ceil(np.log(1e30) / np.log(4)))  # first loss above 1e30


def test_a_users_problem_declares_its_target_and_the_harness_reads_it():
    facts = gdjax.Facts(minimum_loss=0.0, optimum=np.array([3.0]), target_loss=1e-6)
    problem = gdjax.function_problem(lambda x: jax.numpy.sum((x - 3.0) ** 2), [0.0], name="mine", facts=facts)
    res = gdjax.sweep(problem, "gd", [0.1, 0.3], 100)
    frame = convergence_frame(res, problem)
    assert (frame["target_loss"] == 1e-6).all()
    assert (frame["steps_to_target"] > 0).all()
    np.testing.assert_allclose(frame["param_distance"], np.abs(res.params[0, :, 0] - 3.0))
    assert best_point(frame)[0] == 0.3


def test_check_compares_the_published_tables():
    reference = pd.DataFrame(
        {
            "problem": ["p", "p"],
            "optimizer": ["gd", "adam"],
            "best_learning_rate": [0.1, 0.01],
            "best_hyperparameters": "",
            "best_on_edge": False,
            "best_by": "steps_to_target",
            "n_seeds": 1,
            "reached_fraction": 1.0,
            "diverged_runs": 0,
            "steps_to_target_median": [100.0, 1000.0],
            "target_resolution": 1,
        }
    )
    assert compare_published("summary.csv", reference, reference) == []
    slower = reference.assign(steps_to_target_median=[100.0, 1020.0])  # 2% more steps
    other_rate = reference.assign(best_learning_rate=[0.1, 0.02])
    assert compare_published("summary.csv", slower, reference) == [
        "summary.csv: steps_to_target_median differs for ('p', 'adam'): 1020.0 vs reference 1000.0"
    ]
    assert "best_learning_rate differs" in compare_published("summary.csv", other_rate, reference)[0]
    assert "only in the reference table" in compare_published("summary.csv", reference[:1], reference)[0]
