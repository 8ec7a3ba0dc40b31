"""A run's bits do not depend on the grid around it: alone, or at any position of a grid of any size, chunked,
on one host device or two (this process has one per core: ``gdjax.placement``).

More host devices: tests/test_devices.py (same bits split over 3 and 4 devices).
"""

import jax
import numpy as np
import pytest

import gdjax
from gdjax.placement import RUNS_ALIGN
from gdjax.planning import MEMORY_SHARE

# (problem, optimizer, batch size, the run's learning rate, the grid's range): some grid rates diverge
CASES = [
    (gdjax.linear_regression, "gd", None, 5e-4, (1e-6, 1e-2)),
    (gdjax.linear_regression, "adam", None, 100.0, (1e-3, 100.0)),  # chaotic: any change of rounding shows
    (gdjax.linear_regression, "sgd", 10, 1e-4, (1e-6, 1e-3)),
    (gdjax.xor, "adam", None, 0.1, (1e-3, 10.0)),
    (gdjax.logistic_regression, "momentum", None, 0.5, (1e-3, 10.0)),
]
STEPS = 600


def _outputs(result, index):
    return {
        "final_loss": result.final_loss[:, index],
        "diverged_at": result.diverged_at[:, index],
        "loss_curve": result.loss_curve[:, index],
        "params": [np.asarray(leaf)[:, index] for leaf in jax.tree.leaves(result.params)],
    }


def _chunked(program, devices):
    """The sweep on ``devices``, memory for one tile of runs (``RUNS_ALIGN``) per device at a time."""
    # X, y, and the problem's target and minimum loss (two scalars)
    data = (program.problem.X.size + program.problem.y.size + 2) * np.dtype(program.dtype).itemsize
    need = program.bytes_per_run() * RUNS_ALIGN + data
    return gdjax.prepare_sweep(
        program.problem,
        program._make_optimizer,
        program.learning_rates,
        program.steps,
        seeds=program.seeds,
        log_every=program.log_every,
        dtype=program.dtype,
        batch_size=program.batch_size,
        memory_limit=int(need / MEMORY_SHARE) + 1,
        devices=devices,
    )


@pytest.mark.slow  # 30 s measured on 2 busy cores
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", range(len(CASES)), ids=[f"{c[0].__name__}-{c[1]}" for c in CASES])
def test_a_run_alone_equals_the_same_run_in_any_grid(case, dtype):
    make, optimizer, batch_size, rate, (low, high) = CASES[case]
    problem = make()
    settings = dict(steps=STEPS, seeds=[0, 1], log_every=50, dtype=dtype, batch_size=batch_size)
    alone = _outputs(gdjax.sweep(problem, optimizer, [rate], **settings), 0)
    rng = np.random.default_rng(case)
    for size in (2, 7, int(rng.integers(9, 300))):  # the last one chunked
        rates = list(np.geomspace(low, high, size - 1))
        position = int(rng.integers(0, size))
        rates.insert(position, rate)
        devices = jax.devices()[: 1 + size % 2]  # 1 or 2 host devices (one per core) for the whole grid
        whole = gdjax.prepare_sweep(problem, optimizer, rates, **settings, devices=devices)
        chunked = _chunked(whole, jax.devices()[: 2 - size % 2])  # and the other number for its chunks
        assert whole.chunk_size == size
        assert chunked.chunk_size == min(RUNS_ALIGN * chunked.mesh.size // 2, size)  # 2 seeds
        for program in (whole, chunked):
            in_grid = _outputs(program.run(), position)
            for name in ("final_loss", "diverged_at", "loss_curve"):
                np.testing.assert_array_equal(in_grid[name], alone[name], err_msg=f"{name}, {size} rates")
            for got, want in zip(in_grid["params"], alone["params"], strict=True):
                np.testing.assert_array_equal(got, want, err_msg=f"params, {size} rates")
