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

import gdjax
from bench import baselines
from bench.baselines import jitted_step
from bench.timing import wall_times

TEXTBOOK_STEPS = 2_000
GRIDS = [(256, 10_000), (4096, 10_000), (65_536, 1_000)]  # (learning rates, steps)


@pytest.fixture(scope="module")
def floor_rates():
    """The multiply-add and exp rates of all local devices, measured once for the module."""
    return baselines.measure_floor_rates("float32", devices=jax.devices())


def _compile_and_benchmark(benchmark, program, rounds: int) -> float:
    """Compile ``program`` (timed), run it once untimed (warm-up), then benchmark its execution; compile s."""
    start = time.perf_counter()
    compiled = program.compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(program.execute(compiled))  # warm-up
    benchmark.pedantic(lambda: jax.block_until_ready(program.execute(compiled)), rounds=rounds, iterations=1)
    return compile_s


@pytest.mark.slow  # 23 s measured on 2 busy cores
@pytest.mark.parametrize(("n_lrs", "steps"), GRIDS)
@pytest.mark.parametrize(
    ("make_problem", "low", "high"), [(gdjax.linear_regression, 1e-6, 6e-4), (gdjax.xor, 1e-2, 10.0)]
)
def test_sweep_speed(benchmark, make_problem, low, high, n_lrs, steps, floor_rates):
    prob = make_problem()
    program = gdjax.prepare_sweep(prob, "gd", np.geomspace(low, high, n_lrs), steps)
    compile_s = _compile_and_benchmark(benchmark, program, rounds=5)

    if benchmark.stats is not None:  # None under --benchmark-disable
        per_lr_step = n_lrs * steps / 1e9
        ns = benchmark.stats.stats.median / per_lr_step
        textbook_s = wall_times(lambda: baselines.run_textbook_loop(prob, TEXTBOOK_STEPS), 3)
        textbook_ns = float(np.median(textbook_s)) / TEXTBOOK_STEPS * 1e9
        cost = baselines.step_cost(prob, gdjax.OPTIMIZERS["gd"], "float32")
        floor_ns, full_floor_ns = baselines.floor_ns(cost, floor_rates)
        benchmark.extra_info.update(
            ns_per_lr_step=round(ns, 2),
            ns_per_lr_step_min=round(benchmark.stats.stats.min / per_lr_step, 2),
            ns_per_lr_step_max=round(benchmark.stats.stats.max / per_lr_step, 2),
            textbook_ns_per_step=round(textbook_ns, 1),
            speedup_over_textbook=round(textbook_ns / ns, 1),
            floor_ns_per_lr_step=round(floor_ns, 2),
            ratio_to_floor=round(ns / floor_ns, 2),
            transcendentals_per_step=cost.transcendentals,
            floor_with_transcendentals_ns=round(full_floor_ns, 2),
            ratio_to_floor_with_transcendentals=round(ns / full_floor_ns, 2),
            compile_s=round(compile_s, 3),
            devices=len(jax.devices()),
        )


MOMENTUM_RATES = np.geomspace(1e-6, 1e-3, 64)
GRID_STEPS = 2_000


@pytest.mark.parametrize(
    "points",
    [
        {"grid": {"learning_rate": MOMENTUM_RATES, "momentum": np.linspace(0, 0.99, 64)}},
        {"learning_rates": np.geomspace(1e-6, 1e-3, 4096)},
    ],
    ids=["grid-64x64", "one-axis-4096"],
)
def test_grid_speed(benchmark, points):
    """A 64 x 64 (rate, momentum) grid against a 4,096-rate one-axis sweep of momentum, per point-step."""
    program = gdjax.prepare_sweep(gdjax.linear_regression(), "momentum", steps=GRID_STEPS, **points)
    _compile_and_benchmark(benchmark, program, rounds=5)
    if benchmark.stats is not None:
        per_point_step = program.n_points * GRID_STEPS / 1e9
        benchmark.extra_info.update(
            ns_per_point_step=round(benchmark.stats.stats.median / per_point_step, 2),
            ns_per_point_step_min=round(benchmark.stats.stats.min / per_point_step, 2),
            ns_per_point_step_max=round(benchmark.stats.stats.max / per_point_step, 2),
        )


@pytest.mark.slow  # 11 s measured on 2 busy cores
@pytest.mark.parametrize(
    ("make_problem", "low", "high"), [(gdjax.linear_regression, 1e-6, 6e-4), (gdjax.xor, 1e-2, 10.0)]
)
def test_sweep_call_speed(benchmark, make_problem, low, high):
    """``gdjax.sweep()`` as a user calls it (jit cache, chunks, copy to numpy); compare test_sweep_speed."""
    prob, rates, steps = make_problem(), np.geomspace(low, high, 4096), 10_000
    gdjax.sweep(prob, "gd", rates, steps)  # warm-up: compile
    benchmark.pedantic(lambda: gdjax.sweep(prob, "gd", rates, steps), rounds=5, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info.update(
            ns_per_lr_step=round(benchmark.stats.stats.median / (len(rates) * steps) * 1e9, 2),
            devices=len(jax.devices()),
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


@pytest.mark.slow  # 52 s measured on 2 busy cores (untimed, under --benchmark-disable)
@pytest.mark.parametrize("n_runs", [64, 256])
def test_network_sweep_speed(benchmark, n_runs, floor_rates):
    """The MNIST-1D MLP (adam, batches of 100, float32), logging only at the end, against a Python loop
    of the same jitted optax step (one run) and the floor: issue 16's speed question, per run-step.

    The sweep's time holds the loss on all 3,500 training examples at the start and the loss and
    metrics on 5,000 at the end: about 9% of its arithmetic beside 350 steps. The floor counts the
    steps alone, so ``marginal_ns_per_run_step`` also times the same sweep with twice the steps:
    (its median - this median) / the steps added, the step's own cost.
    """
    pytest.importorskip("mnist1d")
    prob = gdjax.mnist1d("mlp")
    steps = 350  # 10 epochs
    rates = np.geomspace(1e-4, 1e-2, n_runs)
    program = gdjax.prepare_sweep(prob, "adam", rates, steps, batch_size=100, log_every=steps)
    compile_s = _compile_and_benchmark(benchmark, program, rounds=3)

    if benchmark.stats is not None:  # None under --benchmark-disable
        per_run_step = n_runs * steps / 1e9
        ns = benchmark.stats.stats.median / per_run_step
        longer = gdjax.prepare_sweep(prob, "adam", rates, 2 * steps, batch_size=100, log_every=2 * steps)
        compiled = longer.compile()
        longer_s = wall_times(lambda: jax.block_until_ready(longer.execute(compiled)), 3)
        marginal_ns = (float(np.median(longer_s)) - benchmark.stats.stats.median) / per_run_step
        loop_s, cost = baselines.loop_seconds_and_cost(
            prob, gdjax.OPTIMIZERS["adam"], 1e-3, steps=300, repeats=3, dtype="float32", batch_size=100
        )
        loop_ns = float(np.median(loop_s)) / 300 * 1e9
        floor_ns, _ = baselines.floor_ns(cost, floor_rates)
        benchmark.extra_info.update(
            ns_per_run_step=round(ns),
            ns_per_run_step_min=round(benchmark.stats.stats.min / per_run_step),
            ns_per_run_step_max=round(benchmark.stats.stats.max / per_run_step),
            python_loop_ns_per_step=round(loop_ns),
            speedup_over_python_loop=round(loop_ns / ns, 2),
            floor_ns_per_run_step=round(floor_ns),
            ratio_to_floor=round(ns / floor_ns, 2),
            marginal_ns_per_run_step=round(marginal_ns),
            marginal_ratio_to_floor=round(marginal_ns / floor_ns, 2),
            marginal_speedup_over_python_loop=round(loop_ns / marginal_ns, 2),
            compile_s=round(compile_s, 3),
            devices=program.mesh.size,
        )
