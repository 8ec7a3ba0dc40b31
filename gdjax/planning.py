"""Memory planning: what one run holds, what a device has free, and how many points fit at once."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.extend import core

from gdjax.placement import spans_processes, tiles
from gdjax.runs_last import scan_layout
from gdjax.step import run_one

if TYPE_CHECKING:
    from gdjax.engine import SweepProgram


def _nbytes(aval) -> int:
    return int(np.prod(aval.shape, dtype=np.int64)) * aval.dtype.itemsize  # typed PRNG keys too


def _tree_bytes(tree) -> int:
    return sum(_nbytes(leaf) for leaf in jax.tree.leaves(tree))


LOOPS = frozenset({"scan", "while"})


def _inner_jaxprs(params) -> list:
    """The jaxprs in an equation's parameters (a scan's body, a cond's branches, a call's function)."""
    found = []
    for value in params.values():
        for item in value if isinstance(value, tuple | list) else (value,):
            if isinstance(item, core.ClosedJaxpr):
                found.append(item.jaxpr)
            elif isinstance(item, core.Jaxpr):
                found.append(item)
    return found


def peak_bytes(jaxpr, batched) -> tuple[int, list[bool]]:
    """(peak, which outputs are per run) of ``jaxpr`` run for one run; ``batched``: which inputs are per run.

    The peak is the most bytes that the per-run values ``jaxpr`` defines
    hold at once, each alive from its equation to its last use; its inputs
    are not counted (their owner counts them), nor are values no per-run
    input reaches (an index shared by every run, as ``runs_last`` keeps
    it). An equation with a jaxpr inside adds that one's own peak: a loop
    (``scan``, ``while``) holds its outputs (the carry, the stacked
    per-step values) while its body runs; a cond or a call writes its
    outputs from the values inside and holds the larger of the two.
    """
    per_run = {var: flag for var, flag in zip(jaxpr.invars, batched, strict=True)}

    def is_per_run(var) -> bool:
        return isinstance(var, core.Var) and per_run.get(var, False)

    last_use = {}
    for i, eqn in enumerate(jaxpr.eqns):
        for var in eqn.invars:
            if isinstance(var, core.Var):
                last_use[var] = i
    for var in jaxpr.outvars:
        if isinstance(var, core.Var):
            last_use[var] = len(jaxpr.eqns)
    size = {}
    live = peak = 0
    for i, eqn in enumerate(jaxpr.eqns):
        inner, out_flags = _inner_peak(eqn, [is_per_run(var) for var in eqn.invars])
        per_run.update(zip(eqn.outvars, out_flags, strict=True))
        out = sum(_nbytes(var.aval) for var in eqn.outvars if per_run[var])
        during = out + inner if eqn.primitive.name in LOOPS else max(out, inner)
        peak = max(peak, live + during)
        for var in eqn.outvars:
            if per_run[var] and last_use.get(var, i) > i:  # used later (an unused output is freed at once)
                size[var] = _nbytes(var.aval)
                live += size[var]
        for var in eqn.invars:
            if isinstance(var, core.Var) and var in size and last_use[var] == i:
                live -= size.pop(var)
    return peak, [is_per_run(var) for var in jaxpr.outvars]


def _inner_peak(eqn, batched: list[bool]) -> tuple[int, list[bool]]:
    """(peak of the jaxprs inside ``eqn``, which of its outputs are per run), ``batched`` its inputs'.

    A loop's carry, a cond's branches and a call's operands are followed
    where their parameters' layout is known (``scan``'s changed in jax
    0.11); elsewhere every output is per run if an input is, and the inner
    jaxprs' peaks count with every input per run.
    """
    try:
        found = _structured_peak(eqn, batched)
    except (KeyError, ValueError, TypeError, AttributeError):  # a layout not known here
        found = None
    if found is not None:
        return found
    any_per_run = any(batched)
    inner = _inner_jaxprs(eqn.params)
    peak = max((peak_bytes(sub, [any_per_run] * len(sub.invars))[0] for sub in inner), default=0)
    return peak, [any_per_run] * len(eqn.outvars)


def _structured_peak(eqn, batched: list[bool]) -> tuple[int, list[bool]] | None:
    params, name = eqn.params, eqn.primitive.name
    if name == "scan":  # a carry is per run once any step makes it so
        layout = scan_layout(params, len(batched))
        if layout is None:
            return None
        n_consts, n_carry = layout
        consts, carry = batched[:n_consts], batched[n_consts : n_consts + n_carry]
        xs = batched[n_consts + n_carry :]
        while True:
            peak, out = peak_bytes(params["jaxpr"].jaxpr, consts + carry + xs)
            grown = [a or b for a, b in zip(carry, out[:n_carry], strict=True)]
            if grown == carry:
                return peak, carry + out[n_carry:]
            carry = grown
    if name == "while":
        n_cond, n_body = params["cond_nconsts"], params["body_nconsts"]
        cond_consts, body_consts = batched[:n_cond], batched[n_cond : n_cond + n_body]
        carry = batched[n_cond + n_body :]
        while True:
            body_peak, out = peak_bytes(params["body_jaxpr"].jaxpr, body_consts + carry)
            cond_peak, (per_run_test,) = peak_bytes(params["cond_jaxpr"].jaxpr, cond_consts + carry)
            grown = [per_run_test or a or b for a, b in zip(carry, out, strict=True)]
            if grown == carry:
                return max(body_peak, cond_peak), carry
            carry = grown
    if name == "cond":  # the branch index, then the branches' operands
        walks = [peak_bytes(branch.jaxpr, batched[1:]) for branch in params["branches"]]
        out = [batched[0] or any(flags) for flags in zip(*(flags for _, flags in walks), strict=True)]
        return max(peak for peak, _ in walks), out
    inner = _inner_jaxprs(params)
    if len(inner) == 1 and len(inner[0].invars) == len(batched):  # a call: its operands are its inputs
        return peak_bytes(inner[0], batched)
    return None


def _run_shapes(program: SweepProgram) -> tuple:
    """One run's arguments (hyperparameters, parameters, key, X, y, held_out) as shapes."""
    params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], program.dtype), program._init_params)
    data = jax.eval_shape(program._data)  # the dtypes the program gets, without putting the data on a device
    return (
        {name: jax.ShapeDtypeStruct((), program.dtype) for name in program.hyperparameters},
        params,
        jax.eval_shape(lambda: jax.random.PRNGKey(0)),
        *data,
    )


def _run_bytes(program: SweepProgram) -> tuple[int, int]:
    """(bytes each run held keeps, bytes each run of the tile being run adds): see ``device_bytes``."""
    with program._x64():
        shapes = _run_shapes(program)
    settings = program.run_settings()
    leaves, structure = jax.tree.flatten(shapes)
    return _traced_run_bytes(program.dtype, structure, tuple(leaves), tuple(settings.items()))


@functools.lru_cache(maxsize=256)  # a sweep called again with new rates or seeds is not traced again
def _traced_run_bytes(dtype: str, structure, leaves: tuple, settings: tuple) -> tuple[int, int]:
    with jax.enable_x64(dtype == "float64"):
        rate, params, key, *data = jax.tree.unflatten(structure, leaves)
        settings = dict(settings)
        run = functools.partial(run_one, **settings)
        # the tile's distinct keys, shared: its minibatch orders and their shuffling are the tile's
        batch_keys = (jax.ShapeDtypeStruct((1, *key.shape), key.dtype), jax.ShapeDtypeStruct((), np.int32))
        closed, outputs = jax.make_jaxpr(run, return_shape=True)(rate, params, key, *data, batch_keys)
    per_run, shared = jax.tree.leaves((rate, params, key)), jax.tree.leaves((data, batch_keys))
    jaxpr, batched = closed.jaxpr, [True] * len(per_run) + [False] * len(shared)
    try:  # without the values nothing uses (gd's example order), as XLA compiles it; JAX's own pass
        from jax.interpreters import partial_eval

        jaxpr, used = partial_eval.dce_jaxpr(jaxpr, [True] * len(jaxpr.outvars), instantiate=True)
        if len(jaxpr.invars) < len(batched):
            batched = [flag for flag, kept in zip(batched, used, strict=True) if kept]
    except Exception:  # a JAX without it: every value counts, an estimate a little higher
        jaxpr = closed.jaxpr
    inputs = _tree_bytes((rate, params, key))
    # the program's arguments and their copy in tiles; every tile's outputs, stacked, and their copy
    # with the runs first (the program's outputs)
    held = 2 * inputs + 2 * _tree_bytes(outputs)
    # a tile holds a minibatch order (n_examples int32) for each of its runs (one a distinct seed)
    orders = 4 * data[0].shape[0] if settings["batch_size"] is not None else 0
    return held, peak_bytes(jaxpr, batched)[0] + orders


def device_bytes(program: SweepProgram, n_runs: int) -> int:
    """Estimated peak memory of each device when one execution runs ``n_runs`` runs of ``program``.

    The runs are split over the program's devices and padded to whole
    tiles (``tiles``). A device holds the data once; every run's arguments
    and outputs (its logged losses, and parameters with ``log_params``),
    twice; and the working set of the runs of one tile (a CPU device runs
    its tiles one after another, a GPU all its runs at once): the values a
    run's program holds at once at its peak (:func:`peak_bytes` of its
    jaxpr), e.g. a step's optimizer state and gradients, the data-sized
    residuals of a full-batch loss, and with minibatches the examples'
    order (``n_examples`` integers; a tile shuffles once per distinct seed).
    """
    return _device_bytes(program, n_runs, data_bytes(program), *_run_bytes(program))


# With several tiles a device's program runs its tiles in a loop, and XLA (CPU, jax 0.10) shares fewer
# buffers between the loops nested in it: its peak working set per run measured 1.0-2.0x the one-tile
# one (the regression's full-batch gradient: 4 data-sized arrays a run against 2; SGD's reshuffling:
# 8 against 6), planned at the middle.
SEVERAL_TILES_WORKING = 1.5


def _device_bytes(program: SweepProgram, n_runs: int, data: int, held: int, working: int) -> int:
    n_tiles, tile = tiles(n_runs, program.mesh, np.dtype(program.dtype).itemsize, program.runs_first)
    if n_tiles > 1:
        working = int(working * SEVERAL_TILES_WORKING)
    return data + n_tiles * tile * held + tile * working


def data_bytes(program: SweepProgram) -> int:
    """Bytes of the data (X, y and the held-out sets) a device holds, floats in the sweep's dtype."""
    with program._x64():
        return _tree_bytes(jax.eval_shape(program._data))


def bytes_per_run(program: SweepProgram) -> int:
    """Estimated device memory of one run: its arguments and outputs, and its working set.

    What each run adds to :func:`device_bytes` while all runs fit in one
    tile. The working set grows with the data (a full batch's residuals)
    or with the examples' order (minibatches), the logged losses with
    steps // log_every, never with steps.
    """
    held, working = _run_bytes(program)
    return held + working


def free_memory_bytes(device, sharing: int = 1) -> int:
    """Bytes ``device`` has free: its allocator's limit less what is in use, or free host RAM / ``sharing``.

    ``sharing``: the host devices a sweep uses on this process (they share its RAM).
    """
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES") // sharing


# Share of a device's free memory a sweep plans to use: XLA's own buffers and
# the host copy of the results need room too.
MEMORY_SHARE = 0.5


def points_per_chunk(program: SweepProgram, memory_limit: int | None) -> int:
    """How many points (with every seed) fit in one execution; refuse when not even one does."""
    if memory_limit is None:
        local = program.mesh.local_devices
        memory_limit = min(free_memory_bytes(device, len(local)) for device in local)
        if spans_processes(program.mesh):  # every process must cut the same chunks: plan for the tightest
            with jax.enable_x64(True):  # bytes overflow int32
                memory_limit = int(np.min(multihost_utils.process_allgather(np.int64(memory_limit))))
    elif isinstance(memory_limit, bool) or not isinstance(memory_limit, int | np.integer) or memory_limit < 1:
        raise ValueError(f"memory_limit must be a positive number of bytes; got {memory_limit!r}")
    held, working = _run_bytes(program)
    data = data_bytes(program)
    planned = int(memory_limit * MEMORY_SHARE)
    n_seeds = len(program.seeds)

    def runs_held(n_rates):  # per device, with the padding to whole tiles
        n_tiles, tile = tiles(
            n_rates * n_seeds, program.mesh, np.dtype(program.dtype).itemsize, program.runs_first
        )
        return n_tiles * tile

    def need(n_rates):
        return _device_bytes(program, n_rates * n_seeds, data, held, working)

    # every run held costs at least ``held``: count down from the most rates that leaves room for
    fitting = min(max(planned - data, 0) // max(held, 1) * program.mesh.size // n_seeds, program.n_points)
    while fitting >= 1 and need(fitting) > planned:
        fitting -= 1
    if fitting < 1:
        raise ValueError(
            f"this sweep needs {held + working:,} bytes per run ({working:,} of them while its tile runs), "
            f"{runs_held(1)} runs a device at a time (its {n_seeds} seeds, padded to a whole tile) and "
            f"{data:,} bytes of data per device, {need(1):,} bytes in all; {memory_limit:,} bytes are "
            f"available per device (planning on {MEMORY_SHARE:.0%}): use fewer seeds, fewer logged points "
            "(a larger log_every: --log-every on the command line) or less data"
        )
    return fitting
