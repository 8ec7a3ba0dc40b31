"""Speed benchmarks (pytest-benchmark): timed by ``nox -s perf``, run once untimed in the tests.

Never pass/fail on time. Each benchmark warms up (compile + one run) outside
the timed region, then times a wrapper that blocks on the result, and puts
ns per (learning rate x step) and the ratio to a textbook numpy loop,
measured in the same run, in ``extra_info``.
"""

import time

import jax
import numpy as np
import pytest
from references import textbook_regression_gd, textbook_xor_backprop

import gdjax
from bench.baselines import jitted_step

N_STEPS = 10_000
TEXTBOOK_STEPS = 2_000


def _textbook_ns_per_step(problem_name):
    """Median of 3 timings of the numpy textbook loop, one learning rate."""
    timings = []
    for _ in range(3):
        if problem_name == "linear_regression":
            prob = gdjax.linear_regression()
            start = time.perf_counter()
            textbook_regression_gd(prob.X, prob.y, 5e-4, TEXTBOOK_STEPS)
        else:
            prob, params = gdjax.xor(), gdjax.xor().init(1)
            start = time.perf_counter()
            textbook_xor_backprop(prob.X, prob.y, params["W0"], params["W1"], 0.5, TEXTBOOK_STEPS)
        timings.append(time.perf_counter() - start)
    return float(np.median(timings)) / TEXTBOOK_STEPS * 1e9


@pytest.mark.parametrize("n_lrs", [4096])
@pytest.mark.parametrize(
    ("make_problem", "low", "high"), [(gdjax.linear_regression, 1e-6, 6e-4), (gdjax.xor, 1e-2, 10.0)]
)
def test_sweep_speed(benchmark, make_problem, low, high, n_lrs):
    prob = make_problem()
    program = gdjax.prepare_sweep(prob, "gd", np.geomspace(low, high, n_lrs), N_STEPS)
    start = time.perf_counter()
    compiled = program.compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(program.execute(compiled))  # warm-up

    benchmark.pedantic(lambda: jax.block_until_ready(program.execute(compiled)), rounds=5, iterations=1)

    if benchmark.stats is not None:  # None under --benchmark-disable
        ns = benchmark.stats.stats.median / (n_lrs * N_STEPS) * 1e9
        textbook = _textbook_ns_per_step(prob.name)
        benchmark.extra_info.update(
            ns_per_lr_step=round(ns, 2),
            ns_per_lr_step_min=round(benchmark.stats.stats.min / (n_lrs * N_STEPS) * 1e9, 2),
            ns_per_lr_step_max=round(benchmark.stats.stats.max / (n_lrs * N_STEPS) * 1e9, 2),
            textbook_ns_per_step=round(textbook, 1),
            speedup_over_textbook=round(textbook / ns, 1),
            compile_s=round(compile_s, 3),
            device=str(jax.devices()[0]),
        )


@pytest.mark.parametrize("name", sorted(gdjax.OPTIMIZERS))
@pytest.mark.parametrize("make_problem", [gdjax.linear_regression, gdjax.xor])
def test_step_speed(benchmark, make_problem, name):
    """One jitted step of one run, called from Python: the dispatch-bound baseline."""
    step, (params, opt_state, X, y) = jitted_step(make_problem(), gdjax.OPTIMIZERS[name], 1e-4, "float32")
    jax.block_until_ready(step(params, opt_state, X, y))  # warm-up: compile
    benchmark(lambda: jax.block_until_ready(step(params, opt_state, X, y)))


@pytest.mark.parametrize(("n_lrs", "steps"), [(16, 1_000), (4096, 1_000), (16, 100_000), (4096, 100_000)])
def test_compile_time(benchmark, n_lrs, steps):
    """Ahead-of-time compile of the regression sweep: should not grow with the grid or the steps."""
    program = gdjax.prepare_sweep(gdjax.linear_regression(), "adam", np.geomspace(1e-4, 1, n_lrs), steps)
    benchmark.pedantic(program.compile, setup=jax.clear_caches, rounds=3, iterations=1)
