"""Theory beside measurement: GD's and the heavy ball's predicted limits and optima against grids."""

import numpy as np
import pytest

import gdjax
from gdjax.theory import curvature

TARGET = 1e-10  # of the starting loss


def test_curvature_of_the_quadratic_and_the_textbook_regression():
    quadratic = curvature(gdjax.quadratic(100.0))
    np.testing.assert_allclose([quadratic.L, quadratic.mu], [100.0, 1.0], rtol=1e-12)
    problem = gdjax.linear_regression()
    eigenvalues = np.linalg.eigvalsh(problem.X.T @ problem.X / problem.n_examples)
    regression = curvature(problem)
    np.testing.assert_allclose([regression.L, regression.mu], eigenvalues[[-1, 0]], rtol=1e-9)
    assert round(regression.kappa) == 12945
    np.testing.assert_allclose(regression.heavy_ball_optimum, (1.197e-3, 0.9655), rtol=1e-3)
    assert regression.gd_optimal_rate / regression.gd_stability_limit == pytest.approx(1 - 7.7e-5, abs=1e-6)
    with pytest.raises(ValueError, match="not constant"):
        curvature(gdjax.xor())


def _numpy_heavy_ball_steps(matrix, x0, rate, beta, target, steps):
    """The textbook loop: v = g + beta v; x = x - rate v; the first step whose loss is <= target."""
    x, v = np.array(x0, dtype=np.float64), np.zeros(2)
    for t in range(1, steps + 1):
        v = matrix @ x + beta * v
        x = x - rate * v
        if 0.5 * x @ matrix @ x <= target:
            return t
    return -1


def _first_at_or_below(curves, target):
    reached = curves <= target
    return np.where(reached.any(axis=-1), reached.argmax(axis=-1) + 1, -1)


def test_the_heavy_balls_fastest_cell_and_stability_boundary_match_theory_on_a_grid():
    problem = gdjax.quadratic(100.0)
    theory = curvature(problem)
    rates, betas = np.geomspace(1e-3, 1, 32), np.linspace(0, 0.99, 32)
    grid = {"learning_rate": rates, "momentum": betas}
    start = float(problem.loss(np.asarray(problem.init(0)), problem.X, problem.y))
    res = gdjax.sweep(problem, "momentum", grid=grid, steps=2000, log_every=1, dtype="float64")
    steps = _first_at_or_below(res.loss_curve[0], TARGET * start).reshape(32, 32)
    fastest = np.unravel_index(np.argmin(np.where(steps > 0, steps, np.iinfo(int).max)), steps.shape)
    best_rate, best_beta = theory.heavy_ball_optimum
    nearest = (np.argmin(np.abs(np.log(rates / best_rate))), np.argmin(np.abs(betas - best_beta)))
    assert abs(fastest[0] - nearest[0]) <= 1
    assert abs(fastest[1] - nearest[1]) <= 1
    # the grid's counts are a numpy loop's, cell for cell (two cells checked)
    matrix = problem.X[0].reshape(2, 2)
    for i, j in (fastest, (3, 7)):
        expected = _numpy_heavy_ball_steps(
            np.asarray(matrix), problem.init(0), rates[i], betas[j], TARGET * start, 2000
        )
        assert steps[i, j] == expected

    long = gdjax.sweep(problem, "momentum", grid=grid, steps=3000, dtype="float64")
    diverged = ((long.diverged_at >= 0) | ~(long.final_loss <= start)).reshape(32, 32)
    for j, beta in enumerate(betas):
        stable = np.flatnonzero(~diverged[:, j])
        below_limit = np.flatnonzero(rates < theory.heavy_ball_limit(beta))
        assert abs(stable.max() - below_limit.max()) <= 1, (
            beta,
            rates[stable.max()],
            theory.heavy_ball_limit(beta),
        )


def test_gd_and_the_heavy_ball_at_their_optima_against_the_predicted_speedup():
    problem = gdjax.quadratic(100.0)
    theory = curvature(problem)
    start = float(problem.loss(np.asarray(problem.init(0)), problem.X, problem.y))
    gd = gdjax.sweep(problem, "gd", [theory.gd_optimal_rate], steps=2000, log_every=1, dtype="float64")
    rate, beta = theory.heavy_ball_optimum
    ball = gdjax.sweep(
        problem, "momentum", points=[{"learning_rate": rate, "momentum": beta}], steps=2000, log_every=1,
        dtype="float64",
    )  # fmt: skip
    gd_steps = _first_at_or_below(gd.loss_curve[0, 0], TARGET * start)
    ball_steps = _first_at_or_below(ball.loss_curve[0, 0], TARGET * start)
    assert (gd_steps, ball_steps) == (576, 83)  # ../shared/TEXTBOOK.md's numpy loops
    # the double eigenvalue at the optimum: fewer steps than the asymptotic ratio predicts, not more
    assert 1 < gd_steps / ball_steps < theory.predicted_speedup
