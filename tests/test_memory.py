"""Memory: the estimate grows with runs and logged points, not steps, is within 2x of XLA's peak; chunks."""

import jax
import numpy as np
import pytest

import gdjax
from gdjax.planning import MEMORY_SHARE, device_bytes


def test_bytes_per_run_grows_with_logged_points_and_data_not_steps():
    prob = gdjax.linear_regression()
    short = gdjax.prepare_sweep(prob, "adam", [1e-3], 1_000, log_every=10)
    long = gdjax.prepare_sweep(prob, "adam", [1e-3], 100_000, log_every=1_000)
    assert short.bytes_per_run() == long.bytes_per_run()  # 100 logged points each
    more_logs = gdjax.prepare_sweep(prob, "adam", [1e-3], 100_000, log_every=10)
    # 9,900 more float32 losses: the program's output and the tiles' stacked outputs, and the run's own
    grown = more_logs.bytes_per_run() - long.bytes_per_run()
    assert 3 * 4 * (10_000 - 100) <= grown <= 8 * 4 * (10_000 - 100)
    bigger = gdjax.prepare_sweep(gdjax.linear_regression(m=10_000), "adam", [1e-3], 1_000, log_every=10)
    assert bigger.bytes_per_run() >= 2 * 4 * 10_000  # the gradient's data-sized arrays: 2 float32 a run


@pytest.mark.slow  # 16 s measured on 2 busy cores
@pytest.mark.parametrize(("optimizer", "problem"), [("adam", "linear_regression"), ("sgd", "xor")])
def test_grid_too_big_runs_in_chunks_with_the_same_results(optimizer, problem):
    prob = getattr(gdjax, problem)()
    rates = np.geomspace(1e-4, 1.0, 37)
    one_device = jax.devices()[:1]
    program = gdjax.prepare_sweep(
        prob, optimizer, rates, 500, seeds=[0, 1], dtype="float64", devices=one_device
    )
    # room for 40 runs; tiles hold whole blocks of 16: 32 runs = 16 rates x 2 seeds a chunk
    limit = int(2 * (40 * program.bytes_per_run() + (prob.X.size + prob.y.size) * 8))
    chunked_program = gdjax.prepare_sweep(
        prob, optimizer, rates, 500, seeds=[0, 1], dtype="float64", devices=one_device, memory_limit=limit
    )
    assert chunked_program.chunk_size == 16
    chunked, whole = chunked_program.run(), program.run()
    np.testing.assert_array_equal(chunked.learning_rates, rates)
    np.testing.assert_array_equal(chunked.diverged_at, whole.diverged_at)
    # the same runs; a loss's sum may be vectorized differently at another grid width (rounding only)
    np.testing.assert_allclose(chunked.final_loss, whole.final_loss, rtol=1e-12)
    np.testing.assert_allclose(chunked.loss_curve, whole.loss_curve, rtol=1e-12)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-12), chunked.params, whole.params)


def test_sweep_that_cannot_fit_is_refused_saying_what_it_needs():
    with pytest.raises(
        ValueError, match=r"needs [\d,]+ bytes per run.*; 5,000 bytes are available per device"
    ):
        gdjax.sweep(gdjax.linear_regression(), "adam", [1e-3], 1000, seeds=[0, 1], memory_limit=5_000)
    with pytest.raises(ValueError, match="memory_limit must be a positive number of bytes"):
        gdjax.sweep(gdjax.xor(), "gd", [0.5], 10, memory_limit=0)


def test_default_limit_is_the_free_memory_and_the_default_suite_fits():
    assert gdjax.planning.free_memory_bytes(jax.devices()[0]) > 100 * 2**20
    program = gdjax.prepare_sweep(
        gdjax.linear_regression(), "adam", np.geomspace(1e-4, 1, 32), 100_000, seeds=range(5), log_every=100
    )
    assert program.chunk_size == 32


def _regression(m):
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(m), rng.standard_normal(m)])
    return gdjax.linear_regression(X=X, y=X @ [1.0, 3.0] + rng.standard_normal(m))


def _measured_peak(program) -> int:
    """XLA's peak for one device of ``program``: arguments, outputs and temporaries (none donated).

    On the CPU ``memory_stats()`` is None, but ``memory_analysis()`` is
    filled, and matches the process's RSS growth while the program runs
    (regression, 1e5 examples: gd 256 runs 206 MB of each; gd 4,096 runs
    1,658.4 against 1,658.6 MB; SGD 4,096 runs 4,957 against 4,964 MB).
    """
    stats = program.compile().memory_analysis()
    return (
        stats.argument_size_in_bytes
        + stats.output_size_in_bytes
        + stats.temp_size_in_bytes
        - stats.alias_size_in_bytes
    )


# (examples, optimizer, batch size, runs): one tile (16, 256 runs) or two (4,096 runs on one device).
# SGD's tile holds an order of the examples a run (n_examples int32), reshuffled once per distinct
# seed every epoch. Estimate / XLA's peak for these cases (jax 0.10): 1.0-1.5.
ESTIMATE_CASES = [
    (1_000, "gd", None, 4096),
    (1_000, "sgd", 1, 256),
    (10_000, "sgd", 100, 4096),
    (10_000, "adam", None, 16),
    # compiles of 10-60 s (runs_last writes a sum over the examples as about 2 sqrt(examples) adds)
    pytest.param(100_000, "sgd", 100, 4096, marks=pytest.mark.slow),
    pytest.param(1_000_000, "adam", None, 4096, marks=pytest.mark.slow),
]


@pytest.mark.slow  # 13 s measured on 2 busy cores
@pytest.mark.parametrize(("m", "optimizer", "batch_size", "n_runs"), ESTIMATE_CASES)
def test_estimate_is_within_2x_of_the_compiled_peak(m, optimizer, batch_size, n_runs):
    program = gdjax.prepare_sweep(
        _regression(m),
        optimizer,
        np.geomspace(1e-4, 1e-1, n_runs),
        100,
        batch_size=batch_size,
        devices=jax.devices()[:1],
        memory_limit=2**50,
    )
    assert program.chunk_size == n_runs
    ratio = device_bytes(program, n_runs) / _measured_peak(program)
    assert 0.5 <= ratio <= 2, f"estimate / measured = {ratio:.2f}"


@pytest.mark.slow  # 5 s measured on 2 busy cores
def test_estimate_is_per_device_when_the_runs_are_split():
    if len(jax.devices()) < 2:
        pytest.skip("needs 2 devices")
    program = gdjax.prepare_sweep(
        _regression(10_000), "adam", np.geomspace(1e-4, 1e-1, 4096), 100, devices=jax.devices()[:2],
        memory_limit=2**50,
    )  # fmt: skip
    ratio = device_bytes(program, 4096) / _measured_peak(program)
    assert 0.5 <= ratio <= 2, f"estimate / measured = {ratio:.2f}"


@pytest.mark.slow  # 7 s measured on 2 busy cores
def test_grid_that_needs_it_is_chunked_and_its_chunks_fit():
    problem, rates = _regression(10_000), np.geomspace(1e-4, 1e-1, 4096)
    whole = gdjax.prepare_sweep(problem, "sgd", rates, 100, devices=jax.devices()[:1], memory_limit=2**50)
    limit = 200 * 2**20  # the whole grid: some 650 MB (measured), SGD's order and its reshuffling a run
    assert device_bytes(whole, len(rates)) > limit
    program = gdjax.prepare_sweep(problem, "sgd", rates, 100, devices=jax.devices()[:1], memory_limit=limit)
    assert program.n_chunks > 1
    assert device_bytes(program, program.chunk_size) <= limit * MEMORY_SHARE
    assert _measured_peak(program) <= limit
