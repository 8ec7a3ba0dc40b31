"""What every sweep is compared against, timed in the same run.

* the textbook numpy loop: one learning rate, the textbook's own operations;
* the per-learning-rate Python loop calling a jitted single step;
* the floor: the problem's FLOP per step (XLA's count) at the fused
  multiply-add rate this device reaches in a small jitted kernel.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import NamedSharding, PartitionSpec

import gdjax
from bench.timing import wall_times


def textbook_regression_gd(X, y, alpha, steps, theta=None):
    """The four textbook operations, looped in numpy float64: returns (theta, final cost)."""
    m = X.shape[0]
    theta = np.ones(X.shape[1]) if theta is None else np.array(theta, dtype=np.float64)
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
    """The classic two-layer backprop loop in numpy float64: returns (W0, W1, outputs)."""
    W0, W1 = np.array(W0, dtype=np.float64), np.array(W1, dtype=np.float64)
    for _ in range(steps):
        hidden = sigmoid(X @ W0)
        out = sigmoid(hidden @ W1)
        delta2 = (out - y) * out * (1 - out)
        delta1 = (delta2 @ W1.T) * hidden * (1 - hidden)
        W1 = W1 - alpha * hidden.T @ delta2
        W0 = W0 - alpha * X.T @ delta1
    return W0, W1, sigmoid(sigmoid(X @ W0) @ W1)


def run_textbook_loop(problem: gdjax.Problem, steps: int) -> None:
    """Run the problem's textbook numpy loop for ``steps`` steps at its classic learning rate."""
    if problem.name == "linear_regression":
        textbook_regression_gd(problem.X, problem.y, 5e-4, steps)
    elif problem.name == "xor":
        start = problem.init(1)
        textbook_xor_backprop(problem.X, problem.y, start["W0"], start["W1"], 0.5, steps)
    else:
        raise ValueError(f"no textbook loop for problem {problem.name!r}")


def jitted_step(problem, make_optimizer, learning_rate, dtype):
    """A jitted single step of one run, its starting state, and the step's arguments."""
    optimizer = make_optimizer(learning_rate)
    X, y = jnp.asarray(problem.X, dtype), jnp.asarray(problem.y, dtype)
    params = jax.tree.map(lambda leaf: jnp.asarray(leaf, dtype), problem.init(0))

    @jax.jit
    def step(params, opt_state, X, y):
        grads = jax.grad(problem.loss)(params, X, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    return step, (params, optimizer.init(params), X, y)


def python_loop_seconds(problem, make_optimizer, learning_rate, *, steps, repeats, dtype):
    """Seconds of each repeat of a Python loop of ``steps`` jitted single steps (one learning rate)."""
    step, (params, opt_state, X, y) = jitted_step(problem, make_optimizer, learning_rate, dtype)

    def loop():
        p, s = params, opt_state
        for _ in range(steps):
            p, s = step(p, s, X, y)
        jax.block_until_ready(p)

    return wall_times(loop, repeats)


def flops_per_step(problem, make_optimizer, dtype) -> float:
    """FLOP of one optimizer step of one run, as XLA's cost analysis counts them."""
    step, arguments = jitted_step(problem, make_optimizer, 1e-3, dtype)
    analysis = step.lower(*arguments).compile().cost_analysis()
    if isinstance(analysis, list):  # older JAX returned one dict per computation
        analysis = analysis[0]
    return float(analysis["flops"])


def _fma_chain(x, a, b, iterations):
    return lax.fori_loop(0, iterations, lambda _, x: x * a + b, x)


def measure_flop_rate(
    dtype="float32", *, devices=None, sizes=(16_384, 262_144), flop_per_size=2e9, repeats=3
):
    """The best rate (FLOP/s) of a jitted multiply-add chain, run on every one of ``devices`` at once.

    Each device updates its own vector of ``size`` elements; each multiply-add
    counts 2 FLOP. The best size and repeat is taken: the floor is what these
    devices can do at best, together, as a sweep split over them does.
    """
    mesh = gdjax.runs_mesh(devices)
    spec = PartitionSpec(mesh.axis_names[0])
    best = 0.0
    for size in sizes:
        iterations = max(1, int(flop_per_size / (2 * size)))
        chain = functools.partial(_fma_chain, iterations=iterations)
        kernel = jax.jit(jax.shard_map(chain, mesh=mesh, in_specs=(spec, None, None), out_specs=spec))
        x = jax.device_put(jnp.ones(size * mesh.size, dtype), NamedSharding(mesh, spec))
        a, b = jnp.asarray(0.999, dtype), jnp.asarray(1e-3, dtype)
        compiled = kernel.lower(x, a, b).compile()
        seconds = min(wall_times(lambda: jax.block_until_ready(compiled(x, a, b)), repeats))  # noqa: B023
        best = max(best, 2 * size * mesh.size * iterations / seconds)
    return best
