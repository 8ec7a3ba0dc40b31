"""Where the runs go: the devices they are split over and the tiles each device runs them in."""

from __future__ import annotations

import os
import warnings

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh

RUNS_AXIS = "runs"

# XLA's CPU backend shows one device however many cores there are, and runs
# a fused elementwise loop (most of a sweep) on one core: the regression
# sweep of 4,096 rates took 15.6 ns per LR-step on one device and 6.8 ns on
# two (2 cores). So gdjax asks JAX for one CPU device per core when it is
# imported, unless the user said how many (this variable, XLA_FLAGS, or
# jax_num_cpu_devices); GDJAX_CPU_DEVICES=1 opts out.
CPU_DEVICES_VARIABLE = "GDJAX_CPU_DEVICES"
HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
_unrequested_cores = 0  # cores gdjax could not ask for: JAX had started before gdjax was imported


def request_cpu_devices() -> None:
    """Ask JAX for one CPU device per core this process may use (``os.sched_getaffinity``), before it starts.

    Nothing is changed where the user chose: ``GDJAX_CPU_DEVICES=N``, an
    ``XLA_FLAGS`` with ``--xla_force_host_platform_device_count``, or
    ``jax_num_cpu_devices`` already set. If JAX's backends had started
    already, the first sweep on a CPU says once what to set instead.
    """
    global _unrequested_cores
    chosen = os.environ.get(CPU_DEVICES_VARIABLE, "").strip()
    if HOST_DEVICES_FLAG in os.environ.get("XLA_FLAGS", "") or jax.config.jax_num_cpu_devices != -1:
        return
    if chosen:
        try:
            wanted = int(chosen)
        except ValueError:
            wanted = 0
        if wanted < 1:
            warnings.warn(
                f"gdjax: {CPU_DEVICES_VARIABLE}={chosen!r} is not a number of CPU devices >= 1; ignored",
                RuntimeWarning,
                stacklevel=2,
            )
            return
    else:
        wanted = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if wanted == 1 and not chosen:
        return
    try:
        jax.config.update("jax_num_cpu_devices", wanted)
    except RuntimeError:  # JAX's backends have started: too late to change the number of devices
        _unrequested_cores = wanted


def say_if_cores_unused(mesh: Mesh) -> None:
    """Once a process: say how to use every core when a sweep runs on one CPU device of several cores."""
    global _unrequested_cores
    if _unrequested_cores > 1 and mesh.size == 1 and mesh.devices.flat[0].platform == "cpu":
        warnings.warn(
            f"gdjax: this sweep runs on 1 CPU device while {_unrequested_cores} cores are available (JAX "
            "had started before gdjax was imported). Import gdjax before running any JAX operation, or "
            f"set XLA_FLAGS={HOST_DEVICES_FLAG}={_unrequested_cores} before Python starts; "
            f"{CPU_DEVICES_VARIABLE}=1 silences this.",
            RuntimeWarning,
            stacklevel=3,
        )
        _unrequested_cores = 0


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


def tiles(n_runs: int, mesh: Mesh, itemsize: int, runs_first: bool = False) -> tuple[int, int]:
    """(tiles per device, runs per tile) for ``n_runs`` runs split over ``mesh``.

    On a CPU a tile is a whole number of ``RUNS_ALIGN`` runs, and one of at
    least 4 KiB of values per row an odd number of them (an odd number of
    cache lines in float32): an array with the runs last steps through
    memory in rows of one tile's values, and rows a multiple of 4 KiB apart
    (1,024 or 2,048 float32 runs) fall in the same cache sets: the XOR step,
    which reads and writes some 30 such rows per run, ran 1.5-1.8x slower.
    An odd number of blocks spreads the rows over the sets.

    Runs batched ``runs_first`` (a network's, by ``jax.vmap``) come in tiles
    of exactly ``RUNS_ALIGN``: XLA blocks a batched matrix product by the
    number of runs, so a run in a tile of 48 rounded its logged loss 1 ulp
    apart from the same run in a tile of 16 (the MNIST-style MLP, float32 and
    float64). With one tile size every run computes the same program.
    """
    per_device = -(-n_runs // mesh.size)
    if mesh.devices.flat[0].platform != "cpu":
        return 1, per_device
    if runs_first:
        return -(-per_device // RUNS_ALIGN), RUNS_ALIGN
    n_tiles = -(-per_device // CPU_RUNS_PER_TILE)
    tile = -(-per_device // n_tiles)
    blocks = -(-tile // RUNS_ALIGN)
    if blocks * RUNS_ALIGN * itemsize >= ALIASING_STRIDE:
        blocks |= 1
    return n_tiles, blocks * RUNS_ALIGN


def default_devices(n_runs: int) -> list:
    """The devices of JAX's default backend; on one host's CPU, only as many as get a whole block of runs.

    A device's runs are padded to whole blocks of ``RUNS_ALIGN``, so a
    small grid split over more devices only adds padding (the results are
    the same on any number of devices).
    """
    devices = jax.devices()
    if devices[0].platform != "cpu" or jax.process_count() > 1:
        return devices
    return devices[: max(1, min(len(devices), n_runs // RUNS_ALIGN))]


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
