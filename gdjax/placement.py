"""Where the runs go: the devices they are split over and the tiles each device runs them in."""

from __future__ import annotations

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

RUNS_AXIS = "runs"


# On a CPU, the runs of one device are run a tile at a time (each tile all its
# steps), so that a step's arrays stay in the core's cache: the regression
# sweep of 65,536 rates took 42 ns per learning-rate step in one piece and
# 10 ns in tiles of 2,048 runs (2 cores, float32); fewer runs per tile cost
# more fixed work per step. A GPU runs all its runs at once.
CPU_RUNS_PER_TILE = 2048
ALIASING_STRIDE = 4096  # bytes: rows this far apart share the cache's sets
# A CPU tile is a whole number of this many runs: XLA's CPU loops then have no
# scalar remainder, whose code (another vector width, or none, or no fused
# multiply-add) would give the runs there other last bits than the rest:
# XOR with Adam in float64 ended a run 1 ulp apart alone and in a grid of 7.
RUNS_ALIGN = 16


def tiles(n_runs: int, mesh: Mesh, itemsize: int) -> tuple[int, int]:
    """(tiles per device, runs per tile) for ``n_runs`` runs split over ``mesh``.

    On a CPU a tile is a whole number of ``RUNS_ALIGN`` runs, and one of at
    least 4 KiB of values per row an odd number of them (an odd number of
    cache lines in float32): an array with the runs last steps through
    memory in rows of one tile's values, and rows a multiple of 4 KiB apart
    (1,024 or 2,048 float32 runs) fall in the same cache sets: the XOR step,
    which reads and writes some 30 such rows per run, ran 1.5-1.8x slower.
    An odd number of blocks spreads the rows over the sets.
    """
    per_device = -(-n_runs // mesh.size)
    if mesh.devices.flat[0].platform != "cpu":
        return 1, per_device
    n_tiles = -(-per_device // CPU_RUNS_PER_TILE)
    tile = -(-per_device // n_tiles)
    blocks = -(-tile // RUNS_ALIGN)
    if blocks * RUNS_ALIGN * itemsize >= ALIASING_STRIDE:
        blocks |= 1
    return n_tiles, blocks * RUNS_ALIGN


def runs_mesh(devices=None) -> Mesh:
    """A one-axis mesh over ``devices`` (default: every device of JAX's default backend)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices or not all(isinstance(device, jax.Device) for device in devices):
        raise ValueError(f"devices must be a non-empty sequence of jax devices; got {devices!r}")
    return Mesh(np.array(devices), (RUNS_AXIS,))


def spans_processes(mesh: Mesh) -> bool:
    """Whether ``mesh`` has devices of other processes (a ``jax.distributed`` run)."""
    return any(device.process_index != jax.process_index() for device in mesh.devices.flat)


def to_host(leaf) -> np.ndarray:
    """A numpy copy of ``leaf``; one spread over several processes is gathered from all of them."""
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return multihost_utils.process_allgather(leaf, tiled=True)
    return np.asarray(leaf)
