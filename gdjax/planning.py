"""Memory planning: what one run holds, what a device has free, and how many learning rates fit at once."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import jax
import numpy as np
from jax.experimental import multihost_utils

from gdjax.placement import spans_processes, tiles
from gdjax.runs_last import elementwise_products
from gdjax.step import optimizer_for_run

if TYPE_CHECKING:
    from gdjax.engine import SweepProgram


def _nbytes(aval) -> int:
    return int(np.prod(aval.shape, dtype=np.int64)) * aval.dtype.itemsize  # typed PRNG keys too


def _tree_bytes(tree) -> int:
    return sum(_nbytes(leaf) for leaf in jax.tree.leaves(tree))


def bytes_per_run(program: SweepProgram) -> int:
    """Estimated device memory of one run: parameters, optimizer state, logged losses, one step's values.

    The step's working set is the sum of the values in the jaxpr of the
    loss's value and gradient on one batch, and of the products of the
    contractions written out elementwise (``runs_last``): an upper bound
    that grows with the data, while the logged losses grow with
    steps // log_every, never with steps.
    """
    with program._x64():
        one_run = lambda x: jax.ShapeDtypeStruct(x.shape[1:], program.dtype)  # noqa: E731
        params = jax.tree.map(one_run, program._init_params)
        key = jax.ShapeDtypeStruct((2,), np.uint32)

        def make_state(params, key):
            return optimizer_for_run(program._make_optimizer, 1.0, key).init(params)

        state = jax.eval_shape(make_state, params, key)
        rows = program.batch_size or program.problem.n_examples
        batch = [jax.ShapeDtypeStruct((rows, *a.shape[1:]), a.dtype) for a in program._data()]
        keys = (key,) if program.problem.loss_takes_key else ()
        jaxpr = jax.make_jaxpr(jax.value_and_grad(program.problem.loss))(params, *batch, *keys)
    itemsize = np.dtype(program.dtype).itemsize
    working = sum(_nbytes(v.aval) for eqn in jaxpr.eqns for v in eqn.outvars)
    working += itemsize * sum(elementwise_products(eqn) for eqn in jaxpr.eqns)
    n_logs = program.steps // program.log_every
    logged = n_logs * (itemsize + (_tree_bytes(params) if program.log_params else 0))
    return 2 * _tree_bytes(params) + _tree_bytes(state) + working + logged + 4 * itemsize


def free_memory_bytes(device) -> int:
    """Bytes ``device`` has free: its allocator's limit less what is in use, or a share of free host RAM."""
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    host_devices = len([d for d in jax.devices(device.platform) if d.process_index == device.process_index])
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") // host_devices


# Share of a device's free memory a sweep plans to use: XLA's own buffers and
# the host copy of the results need room too.
MEMORY_SHARE = 0.5


def learning_rates_per_chunk(program: SweepProgram, memory_limit: int | None) -> int:
    """How many learning rates (with every seed) fit in one execution; refuse when not even one does."""
    devices = list(program.mesh.devices.flat)
    if memory_limit is None:
        memory_limit = min(free_memory_bytes(device) for device in program.mesh.local_devices)
        if spans_processes(program.mesh):  # every process must cut the same chunks: plan for the tightest
            with jax.enable_x64(True):  # bytes overflow int32
                memory_limit = int(np.min(multihost_utils.process_allgather(np.int64(memory_limit))))
    elif isinstance(memory_limit, bool) or not isinstance(memory_limit, int | np.integer) or memory_limit < 1:
        raise ValueError(f"memory_limit must be a positive number of bytes; got {memory_limit!r}")
    per_run = program.bytes_per_run()
    itemsize = np.dtype(program.dtype).itemsize
    data = (program.problem.X.size + program.problem.y.size) * itemsize
    budget = int(memory_limit * MEMORY_SHARE) - data
    n_seeds = len(program.seeds)
    fitting = min(max(budget, 0) // per_run * len(devices) // n_seeds, len(program.learning_rates))

    def runs_held(n_rates):  # per device, with the padding to whole tiles
        n_tiles, tile = tiles(n_rates * n_seeds, program.mesh, itemsize)
        return n_tiles * tile

    while fitting >= 1 and runs_held(fitting) * per_run > budget:
        fitting -= 1
    if fitting < 1:
        raise ValueError(
            f"this sweep needs {per_run:,} bytes per run, {runs_held(1)} runs a device at a time (its "
            f"{n_seeds} seeds, padded to a whole tile) and {data:,} bytes of data per device; "
            f"{memory_limit:,} bytes are available per device (planning on {MEMORY_SHARE:.0%}): "
            "use fewer seeds, fewer logged points or less data"
        )
    return fitting
