"""Memory: the estimate grows with runs and logged points, not steps; a grid too big runs in chunks."""

import jax
import numpy as np
import pytest

import gdjax


def test_bytes_per_run_grows_with_logged_points_and_data_not_steps():
    prob = gdjax.linear_regression()
    short = gdjax.prepare_sweep(prob, "adam", [1e-3], 1_000, log_every=10)
    long = gdjax.prepare_sweep(prob, "adam", [1e-3], 100_000, log_every=1_000)
    assert short.bytes_per_run() == long.bytes_per_run()  # 100 logged points each
    more_logs = gdjax.prepare_sweep(prob, "adam", [1e-3], 100_000, log_every=10)
    assert more_logs.bytes_per_run() - long.bytes_per_run() == 4 * (10_000 - 100)
    bigger = gdjax.prepare_sweep(gdjax.linear_regression(m=10_000), "adam", [1e-3], 1_000, log_every=10)
    assert bigger.bytes_per_run() > 50 * short.bytes_per_run()  # the residuals of 10,000 examples


@pytest.mark.parametrize(("optimizer", "problem"), [("adam", "linear_regression"), ("sgd", "xor")])
def test_grid_too_big_runs_in_chunks_with_the_same_results(optimizer, problem):
    prob = getattr(gdjax, problem)()
    rates = np.geomspace(1e-4, 1.0, 37)
    program = gdjax.prepare_sweep(prob, optimizer, rates, 500, seeds=[0, 1], dtype="float64")
    # room for 40 runs a device; tiles hold whole blocks of 16: 32 runs = 16 rates x 2 seeds a chunk
    limit = int(2 * (40 * program.bytes_per_run() + (prob.X.size + prob.y.size) * 8))
    chunked_program = gdjax.prepare_sweep(
        prob, optimizer, rates, 500, seeds=[0, 1], dtype="float64", memory_limit=limit
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
