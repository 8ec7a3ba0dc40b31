"""What every sweep is compared against, timed in the same run.

* the textbook numpy loop: one learning rate, the textbook's own operations;
* the per-learning-rate Python loop calling a jitted single step;
* the floor: the problem's FLOP per step (XLA's count) at the fused
  multiply-add rate this device reaches in a small jitted kernel; and the
  same with its transcendental operations (exp, log, ...) at the exp rate
  reached the same way.
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

import gdjax
from bench.timing import wall_times
from gdjax.step import optimizer_for_run, watched_every_step


def may_diverge():
    """numpy's floating-point state for a loop whose divergence is a result, not a fault.

    Past its stability limit a loop's numbers overflow to inf, then nan: the
    returned parameters say so (not finite), as a sweep's ``diverged_at``
    does, and numpy's overflow and invalid-value warnings on the way add
    nothing. Set once around a whole loop (not per step, which would cost
    the timed textbook loops a context switch a step); division by zero
    still warns and every exception still raises.
    """
    return np.errstate(over="ignore", invalid="ignore")


def textbook_regression_gd(X, y, alpha, steps, theta=None):
    """The four textbook operations, looped in numpy float64: returns (theta, final cost).

    A rate past the stability limit diverges quietly to non-finite numbers (``may_diverge``).
    """
    m = X.shape[0]
    theta = np.ones(X.shape[1]) if theta is None else np.array(theta, dtype=np.float64)
    with may_diverge():
        for _ in range(steps):
            hypothesis = X @ theta
            residual = hypothesis - y
            gradient = X.T @ residual / m
            theta = theta - alpha * gradient
        residual = X @ theta - y
        return theta, residual @ residual / (2 * m)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def textbook_xor_backprop(X, y, W0, W1, alpha, steps):
    """The classic two-layer backprop loop in numpy float64: returns (W0, W1, outputs).

    ``sigmoid``'s ``exp(-z)`` overflows to inf for z < -709 (the output 0 is
    right); that and a diverging rate stay quiet (``may_diverge``).
    """
    W0, W1 = np.array(W0, dtype=np.float64), np.array(W1, dtype=np.float64)
    with may_diverge():
        for _ in range(steps):
            hidden = sigmoid(X @ W0)
            out = sigmoid(hidden @ W1)
            delta2 = (out - y) * out * (1 - out)
            delta1 = (delta2 @ W1.T) * hidden * (1 - hidden)
            W1 = W1 - alpha * hidden.T @ delta2
            W0 = W0 - alpha * X.T @ delta1
        return W0, W1, sigmoid(sigmoid(X @ W0) @ W1)


def rosenbrock_gradient(x):
    """The Rosenbrock function's gradient, by hand."""
    return np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])


def tutorial_gradient_descent(gradient, start, learn_rate, n_iter, tolerance=None):
    """The tutorial loop ``gradient_descent(gradient, start, learn_rate, n_iter)``, with the classic stop.

    Returns the final vector and the step at which ``||x_t - x_{t-1}|| < tolerance``
    first held (-1 if never, or without a tolerance). Unlike the tutorial it
    does not stop there, so the final vector is after ``n_iter`` steps, as in a sweep.
    A rate past the stability limit diverges quietly to non-finite numbers (``may_diverge``).
    """
    vector, stopped_at = np.array(start, dtype=float), -1
    with may_diverge():
        for t in range(1, n_iter + 1):
            diff = -learn_rate * gradient(vector)
            if tolerance is not None and stopped_at < 0 and np.linalg.norm(diff) < tolerance:
                stopped_at = t
            vector = vector + diff
    return vector, stopped_at


def textbook_logistic_gd(X, y, l2, alpha, steps):
    """Gradient descent on the regularised log-loss, looped in numpy float64 the textbook way: returns w.

    A rate past the stability limit diverges quietly to non-finite numbers (``may_diverge``).
    """
    m = X.shape[0]
    w = np.zeros(X.shape[1])
    with may_diverge():
        for _ in range(steps):
            probability = sigmoid(X @ w)
            gradient = X.T @ (probability - y) / m + l2 * w
            w = w - alpha * gradient
    return w


# The textbook loops a problem can name as its reference (``Facts.reference``): (problem, rate, steps).
TEXTBOOK_LOOPS = {
    "regression_gd": lambda problem, rate, steps: textbook_regression_gd(problem.X, problem.y, rate, steps),
    "logistic_gd": lambda problem, rate, steps: textbook_logistic_gd(
        problem.X, problem.y, problem.loss.l2, rate, steps
    ),
    "xor_backprop": lambda problem, rate, steps: textbook_xor_backprop(
        problem.X, problem.y, problem.init(1)["W0"], problem.init(1)["W1"], rate, steps
    ),
    "tutorial_gd_rosenbrock": lambda problem, rate, steps: tutorial_gradient_descent(
        rosenbrock_gradient, problem.init(0), rate, steps
    ),
}


def run_textbook_loop(problem: gdjax.Problem, steps: int) -> None:
    """Run the problem's reference loop (``facts.reference``) ``steps`` steps at its ``reference_rate``.

    The reference rate is one the loop converges at: where it diverged
    instead (non-finite numbers), one RuntimeWarning says so, since its
    timing is then of overflowing arithmetic (numpy's own warnings are quiet).
    """
    if not has_textbook_loop(problem):
        raise ValueError(f"no textbook loop for problem {problem.name!r}")
    rate = problem.facts.reference_rate
    result = TEXTBOOK_LOOPS[problem.facts.reference](problem, rate, steps)
    numbers = [np.asarray(leaf, dtype=np.float64) for leaf in jax.tree.leaves(result)]
    if not all(np.all(np.isfinite(leaf)) for leaf in numbers):
        warnings.warn(
            f"the textbook loop {problem.facts.reference!r} diverged on {problem.name} at its reference "
            f"rate {rate:.3g} within {steps} steps: its timing is of overflowing arithmetic",
            RuntimeWarning,
            stacklevel=2,
        )


def has_textbook_loop(problem: gdjax.Problem) -> bool:
    rate = problem.facts.reference_rate
    return problem.facts.reference in TEXTBOOK_LOOPS and rate is not None and bool(np.isfinite(rate))


def jitted_step(problem, make_optimizer, learning_rate, dtype, batch_size=None):
    """A jitted single step of one run, its starting state, and the step's arguments.

    With a ``batch_size`` the step sees that many examples (the first ones),
    as a minibatch step of a sweep does; without, all of them. Where a sweep
    watches the loss every step (``watched_every_step``), the step returns
    its loss too, so the floor counts the work the sweep's step does.
    """
    # as a sweep builds it: a stochastic optimizer gets a key of its own (run 0's)
    optimizer = optimizer_for_run(make_optimizer, {"learning_rate": learning_rate}, jax.random.PRNGKey(0))
    extra_args = isinstance(optimizer, optax.GradientTransformationExtraArgs)  # line searches, L-BFGS
    evaluation_params = gdjax.declarations(make_optimizer).evaluation_params  # the model is not the iterate
    watched = watched_every_step(batch_size, problem.n_examples, problem.loss_takes_key, evaluation_params)
    rows = slice(batch_size)
    labels = np.issubdtype(problem.y.dtype, np.integer)  # class labels stay integers, as in a sweep
    X, y = jnp.asarray(problem.X[rows], dtype), jnp.asarray(problem.y[rows], jnp.int32 if labels else dtype)
    params = jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype), problem.init(0))

    @jax.jit
    def step(params, opt_state, X, y):
        def batch_loss(params):
            return problem.loss(params, X, y)

        value, grads = jax.value_and_grad(batch_loss)(params)
        given = dict(value=value, grad=grads, value_fn=batch_loss) if extra_args else {}
        updates, opt_state = optimizer.update(grads, opt_state, params, **given)
        return optax.apply_updates(params, updates), opt_state, *((value,) if watched else ())

    return step, (params, optimizer.init(params), X, y)


def python_loop_seconds(problem, make_optimizer, learning_rate, *, steps, repeats, dtype, batch_size=None):
    """Seconds of each repeat of a Python loop of ``steps`` jitted single steps (one learning rate)."""
    return loop_seconds_and_cost(
        problem,
        make_optimizer,
        learning_rate,
        steps=steps,
        repeats=repeats,
        dtype=dtype,
        batch_size=batch_size,
    )[0]


def loop_seconds_and_cost(problem, make_optimizer, learning_rate, *, steps, repeats, dtype, batch_size=None):
    """(``python_loop_seconds``, ``step_cost``) of one jitted step, compiled once for both."""
    step, (params, opt_state, X, y) = jitted_step(problem, make_optimizer, learning_rate, dtype, batch_size)
    compiled = step.lower(params, opt_state, X, y).compile()

    def loop():
        p, s = params, opt_state
        for _ in range(steps):
            p, s, *_ = compiled(p, s, X, y)
        jax.block_until_ready(p)

    return wall_times(loop, repeats), _cost(compiled)


class StepCost(NamedTuple):
    """The work of one optimizer step of one run, as XLA's cost analysis counts it."""

    flop: float
    transcendentals: float  # exp, log, tanh, ...: each one op, each far dearer than a multiply-add


def step_cost(problem, make_optimizer, dtype, batch_size=None) -> StepCost:
    """FLOP and transcendental operations of one optimizer step of one run (XLA's cost analysis).

    ``batch_size``: examples a step sees (None: all), as in the sweep measured.
    """
    step, arguments = jitted_step(problem, make_optimizer, 1e-3, dtype, batch_size)
    return _cost(step.lower(*arguments).compile())


def _cost(compiled) -> StepCost:
    analysis = compiled.cost_analysis()
    if isinstance(analysis, list):  # older JAX returned one dict per computation
        analysis = analysis[0]
    return StepCost(float(analysis["flops"]), float(analysis.get("transcendentals", 0.0)))


class FloorRates(NamedTuple):
    """The best rates these devices reached together, in jitted kernels: the floor's yardsticks."""

    flop_per_s: float  # multiply-add chain, 2 FLOP each
    exp_per_s: float  # exp chain


def floor_ns(cost: StepCost, rates: FloorRates) -> tuple[float, float]:
    """ns of one step's FLOP at the multiply-add rate; and with its transcendentals at the exp rate added."""
    flop_ns = cost.flop / rates.flop_per_s * 1e9
    return flop_ns, flop_ns + cost.transcendentals / rates.exp_per_s * 1e9


# Multiply-adds per element and iteration of the floor's kernel. With one, the
# kernel loads and stores a value per multiply-add and measured 72-88 GFLOP/s on
# 2 cores, a rate the regression sweep beat by 1.6x; with 4 or 8 it measured
# 180-210 GFLOP/s, near the cores' peak (2 x 8-wide FMA units).
FMA_PER_ELEMENT = 8


def _fma_chain(x, a, b, iterations):
    def body(_, x):
        for _ in range(FMA_PER_ELEMENT):
            x = x * a + b
        return x

    return lax.fori_loop(0, iterations, body, x)


def _exp_chain(x, a, b, iterations):
    del a, b
    return lax.fori_loop(0, iterations, lambda _, x: jnp.exp(-x), x)  # stays in (0, 1]


def _best_rate(chain, ops_per_element, dtype, devices, sizes, ops_per_size, repeats) -> float:
    """The best rate (ops/s) of ``chain`` updating a vector on every one of ``devices`` at once.

    Each device updates its own vector of ``size`` elements. The best size and
    repeat is taken: the floor is what these devices can do at best,
    together, as a sweep split over them does.
    """
    mesh = gdjax.runs_mesh(devices)
    spec = PartitionSpec(mesh.axis_names[0])
    best = 0.0
    for size in sizes:
        iterations = max(1, int(ops_per_size / (ops_per_element * size)))
        body = functools.partial(chain, iterations=iterations)
        kernel = jax.jit(jax.shard_map(body, mesh=mesh, in_specs=(spec, None, None), out_specs=spec))
        x = jax.device_put(jnp.ones(size * mesh.size, dtype), NamedSharding(mesh, spec))
        a, b = jnp.asarray(0.999, dtype), jnp.asarray(1e-3, dtype)
        compiled = kernel.lower(x, a, b).compile()
        seconds = min(wall_times(lambda: jax.block_until_ready(compiled(x, a, b)), repeats))  # noqa: B023
        best = max(best, ops_per_element * size * mesh.size * iterations / seconds)
    return best


def measure_flop_rate(dtype="float32", *, devices=None, sizes=(2048, 16_384, 262_144), repeats=3) -> float:
    """The best rate (FLOP/s) of a jitted multiply-add chain (2 FLOP each) on ``devices`` together."""
    return _best_rate(_fma_chain, 2 * FMA_PER_ELEMENT, dtype, devices, sizes, 2e9, repeats)


def measure_floor_rates(dtype="float32", *, devices=None, repeats=3) -> FloorRates:
    """The multiply-add rate and the exp rate (one exp, and a negation, per element and iteration)."""
    return FloorRates(
        measure_flop_rate(dtype, devices=devices, repeats=repeats),
        _best_rate(_exp_chain, 1, dtype, devices, (16_384, 262_144), 2e8, repeats),
    )


# gdjax's SGD beside scikit-learn's: learning rates of the one sweep gdjax runs.
SKLEARN_SGD_RATES = np.geomspace(1e-4, 1.0, 17)


def sklearn_comparison(
    problem: gdjax.Problem, *, repeats: int, dtype: str, devices=None
) -> pd.DataFrame | None:
    """scikit-learn's LinearRegression and SGDRegressor beside gdjax's SGD on the same standardised data.

    SGDRegressor runs with its defaults (no penalty, so all three minimise the
    same cost); gdjax's SGD (one example a step, reshuffled every epoch) runs
    as many epochs as SGDRegressor took, over SKLEARN_SGD_RATES in one sweep,
    and its best rate is reported. Final losses are the textbook cost on the
    standardised data. Returns None when scikit-learn is not installed.
    """
    try:
        from sklearn.linear_model import LinearRegression, SGDRegressor
    except ImportError:
        return None
    from bench.timing import time_sweep

    data = gdjax.linear_regression(problem.X, problem.y, standardize=True)
    features, y = data.X[:, 1:], data.y
    m = data.n_examples

    def cost(prediction) -> float:
        residual = prediction - y
        return float(residual @ residual / (2 * m))

    rows = []
    for name, make in [
        ("LinearRegression", LinearRegression),
        ("SGDRegressor", lambda: SGDRegressor(penalty=None, random_state=0)),
    ]:
        model = make().fit(features, y)
        seconds = wall_times(lambda make=make: make().fit(features, y), repeats)
        epochs = getattr(model, "n_iter_", np.nan)
        rate = model.eta0 if name == "SGDRegressor" else np.nan
        rows.append((f"scikit-learn {name}", rate, epochs, 1, seconds, cost(model.predict(features))))
    epochs = int(rows[-1][2])
    program = gdjax.prepare_sweep(data, "sgd", SKLEARN_SGD_RATES, epochs * m, dtype=dtype, devices=devices)
    timing, result = time_sweep(program, repeats)
    best = int(np.nanargmin(np.where(np.isfinite(result.final_loss[0]), result.final_loss[0], np.nan)))
    rows.append(
        (
            "gdjax.sweep sgd",
            SKLEARN_SGD_RATES[best],
            epochs,
            len(SKLEARN_SGD_RATES),
            timing.run_s,
            float(result.final_loss[0, best]),
        )
    )
    optimum = rows[0][-1]
    return pd.DataFrame(
        [
            {
                "implementation": implementation,
                "learning_rate": rate,
                "epochs": epochs,
                "runs": runs,
                "seconds": float(np.median(seconds)),
                "final_loss": loss,
                "loss_ratio_to_least_squares": loss / optimum,
            }
            for implementation, rate, epochs, runs, seconds, loss in rows
        ]
    )
