"""sweep(): every (seed, point) run of an optimizer as one compiled program.

A point is a set of hyperparameter values (a learning rate, or a point of a
grid over any of the optimizer's and the schedule's numeric arguments: see
``gdjax.hyperparameters``). The program is ``jit(vmap_runs(scan_steps))``,
every (seed, point) pair one run, batched by :func:`gdjax.runs_last.runs_last`
(a vmap that keeps the runs on the last axis, where XLA's CPU code is
fastest) or ``jax.vmap`` (see ``RUNS_FIRST_FROM``). The hyperparameters,
seeds (their starting parameters and PRNG keys) and the data are its
arguments, never constants, so a new grid of the same shape reuses the
compiled program. A run whose loss goes non-finite is recorded in
``diverged_at`` and never disturbs the others.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gdjax import planning
from gdjax.checks import (
    check_count,
    check_dtype,
    check_flag,
    check_labels,
    check_seeds,
    check_tolerance,
    stack_init,
)
from gdjax.hyperparameters import data_hyperparameters, sweep_points
from gdjax.optimizers import DEFAULT_BATCH_SIZE, OptimizerFactory, declarations, resolve_optimizer
from gdjax.placement import (
    RUNS_AXIS,
    default_devices,
    runs_mesh,
    say_if_cores_unused,
    spans_processes,
    tiles,
    to_host,
)
from gdjax.problems import Problem
from gdjax.result import SweepResult
from gdjax.runs_last import runs_last
from gdjax.step import noise_argument, run_one

# A run with this many parameters or more (a network's weight matrices) does its work in matrix
# products between per-run values, which XLA's CPU backend runs fastest batched with the runs first,
# as jax.vmap lays them out: the MNIST-1D MLP (15,210 parameters) took 354 us a run-step under
# runs_last's layout and 238 us so. Smaller models (XOR's 16, a regression's 2) keep runs_last.
RUNS_FIRST_FROM = 256
MAX_STEPS = 2**31 - 1  # steps are counted in int32 inside the compiled program


@functools.partial(
    jax.jit,
    static_argnames=(
        "loss", "loss_takes_key", "make_optimizer", "steps", "log_every", "batch_size", "tolerance",
        "log_params", "metrics", "schedule", "evaluation_params", "mesh", "tile", "runs_first",
    ),
)  # fmt: skip
def _sweep_program(
    hyper,
    init_params,
    keys,
    tile_keys,
    X,
    y,
    held_out,
    known,
    *,
    loss,
    loss_takes_key,
    make_optimizer,
    steps,
    log_every,
    batch_size,
    tolerance,
    log_params,
    metrics,
    schedule,
    evaluation_params,
    mesh,
    tile,
    runs_first,
):
    """Every run's outputs, runs first; hyper's and init_params' leaves and keys have one row per run.

    ``tile_keys`` is ``(keys, count)`` of every tile, (tiles, tile, 2) and
    (tiles,): its runs' distinct keys and how many (``run_one``'s
    ``batch_keys``), so a tile shuffles its minibatches once per seed.

    The (seed, point) grid comes flattened into one axis of runs,
    padded to whole tiles of ``tile`` runs on every device of ``mesh``
    (``SweepProgram._arguments``): nesting two vmaps gave XLA batch shapes
    such as (1, 4096) that made the regression step about 6x slower on the
    CPU, and a grid built inside the program would let XLA see that a
    one-rate grid has one rate, and compile its runs otherwise than in a
    grid. The runs go first in and out of the program and last inside it
    (``runs_last``), a tile at a time. With a ``mesh`` of several devices
    the runs are split over them with ``shard_map``, each device running
    its share of the same program; the data is replicated.
    """
    run = functools.partial(
        run_one,
        loss=loss,
        loss_takes_key=loss_takes_key,
        make_optimizer=make_optimizer,
        steps=steps,
        log_every=log_every,
        batch_size=batch_size,
        tolerance=tolerance,
        log_params=log_params,
        metrics=metrics,
        schedule=schedule,
        evaluation_params=evaluation_params,
    )
    if runs_first:  # jax.vmap's own layout: a model's matrix products batched with the runs first
        every_run = jax.vmap(run, in_axes=(0, 0, 0, None, None, None, None, None))
    else:
        every_run = runs_last(run, (True, True, True, False, False, False, False, False))

    def per_run(hyper, params, keys, tile_keys, X, y, held_out, known):  # runs first in and out
        n_tiles = keys.shape[0] // tile

        def as_tiles(leaf):  # (n_tiles, tile, ...), or (n_tiles, ..., tile) with the runs last inside
            tiled = leaf.reshape(n_tiles, tile, *leaf.shape[1:])
            return tiled if runs_first else jnp.moveaxis(tiled, 1, -1)

        def untiled(leaf):
            leaf = leaf if runs_first else jnp.moveaxis(leaf, -1, 1)
            return leaf.reshape(n_tiles * tile, *leaf.shape[2:])

        out = lax.map(
            lambda runs: every_run(*runs[0], X, y, held_out, known, runs[1]),
            (jax.tree.map(as_tiles, (hyper, params, keys)), tile_keys),
        )
        return jax.tree.map(untiled, out)

    if mesh.size > 1:
        split, whole = PartitionSpec(RUNS_AXIS), PartitionSpec()
        # check_vma=False: the scan carries start unsplit (e.g. diverged_at = -1) and become per-device
        per_run = jax.shard_map(
            per_run,
            mesh=mesh,
            in_specs=(split, split, split, split, whole, whole, whole, whole),
            out_specs=split,
            check_vma=False,
        )
    return per_run(hyper, init_params, keys, tile_keys, X, y, held_out, known)


@dataclasses.dataclass(frozen=True)
class SweepProgram:
    """A validated sweep, ready to lower, compile and run.

    ``sweep()`` is ``prepare_sweep(...).run()``, which is
    ``result(execute(compile()))``: a harness that times compile and
    execution apart calls the three itself and runs exactly what ``sweep()``
    runs. A grid too large for the devices' memory runs in chunks of
    ``chunk_size`` points (with every seed), all of one shape, so one
    compiled program runs them all. ``hyperparameters`` holds every value
    the runs get as data, a (n_points,) array each: the axes (``grid``),
    the schedule's parameters and the optimizer's float defaults.
    ``evaluation_params`` is the optimizer's declared evaluation point
    (``gdjax.optimizers.declarations``), None where its model is its iterate.
    """

    problem: Problem
    optimizer: str
    hyperparameters: dict[str, np.ndarray]
    axes: tuple[str, ...]  # the names of the hyperparameters swept, in the grid's order
    grid_shape: tuple[int, ...] | None  # the grid's shape (row-major points); None for a list of points
    schedule: str
    seeds: np.ndarray
    steps: int
    log_every: int
    dtype: str
    batch_size: int | None
    _make_optimizer: OptimizerFactory
    _init_params: Any
    mesh: Mesh
    chunk_size: int  # points per execution; n_points when all fit at once
    tolerance: float | None = None
    log_params: bool = False
    padded_to: tuple[int, int] | None = None  # (tiles per device, runs per tile) of another program: rerun()
    evaluation_params: Callable | None = None  # (opt_state, params) -> the params evaluated: run_one

    def _x64(self):
        """The x64 mode this sweep runs under, set for its duration only."""
        return jax.enable_x64(self.dtype == "float64")

    @property
    def learning_rates(self) -> np.ndarray:
        """(n_points,) each point's learning rate (the schedule's peak)."""
        return self.hyperparameters["learning_rate"]

    @property
    def grid(self) -> dict[str, np.ndarray]:
        """The swept hyperparameters: name -> (n_points,) each point's value."""
        return {name: self.hyperparameters[name] for name in self.axes}

    @property
    def n_points(self) -> int:
        return len(self.learning_rates)

    @property
    def n_chunks(self) -> int:
        return -(-self.n_points // self.chunk_size)

    @functools.cached_property
    def _tile(self) -> tuple[int, int]:
        """(tiles per device, runs per tile) of one chunk (``tiles``); its runs are padded to whole tiles."""
        if self.padded_to is not None:
            return self.padded_to
        itemsize = np.dtype(self.dtype).itemsize
        return tiles(len(self.seeds) * self.chunk_size, self.mesh, itemsize, self.runs_first)

    def _data(self) -> tuple:
        """(X, y, held_out, known), floats as the sweep's dtype and integers (class labels) as int32.

        ``known``: the problem's target and minimum loss (``Facts``), NaN where unknown.
        """

        def as_data(value):
            labels = np.issubdtype(np.asarray(value).dtype, np.integer)
            return jnp.asarray(value, jnp.int32 if labels else self.dtype)

        held_out = {name: as_data(value) for name, value in (self.problem.held_out or {}).items()}
        facts = self.problem.facts
        known = {name: as_data(float(getattr(facts, name))) for name in ("target_loss", "minimum_loss")}
        return as_data(self.problem.X), as_data(self.problem.y), held_out, known

    @functools.cached_property
    def _arguments(self) -> list[tuple]:
        """Every chunk's arguments, one row per run, put on the devices once (first used under ``_x64()``).

        Run ``i`` of chunk ``c`` is seed ``i // chunk_size`` and point
        ``c * chunk_size + i % chunk_size``; past the grid's last point each
        seed repeats its last point, and the chunk's last run fills whole
        tiles on every device. The starting points, keys and data are put
        once and shared by the chunks.
        """
        n_tiles, tile = self._tile
        n_seeds, n_points = len(self.seeds), self.n_points
        as_dtype = functools.partial(jnp.asarray, dtype=self.dtype)
        keys = np.stack([np.asarray(jax.random.PRNGKey(int(s))) for s in self.seeds])
        run = np.minimum(np.arange(self.mesh.size * n_tiles * tile), n_seeds * self.chunk_size - 1)
        seed_of_run, rate_in_chunk = np.divmod(run, self.chunk_size)
        whole = NamedSharding(self.mesh, PartitionSpec())

        def put(value):  # several processes (jax.distributed): one global array, whole on every device
            if not spans_processes(self.mesh):
                return value
            return jax.make_array_from_process_local_data(whole, np.asarray(value))

        starts = jax.tree.map(lambda leaf: as_dtype(np.asarray(leaf)[seed_of_run]), self._init_params)
        tile_keys = _distinct_keys(keys[seed_of_run].reshape(-1, tile, keys.shape[-1]))
        shared = jax.tree.map(put, (starts, jnp.asarray(keys[seed_of_run]), tile_keys, *self._data()))
        chunks = []
        for first in range(0, n_points, self.chunk_size):
            kept = min(self.chunk_size, n_points - first)
            point_of_run = first + np.minimum(rate_in_chunk, kept - 1)
            hyper = {
                name: put(as_dtype(values[point_of_run])) for name, values in self.hyperparameters.items()
            }
            chunks.append((hyper, *shared))
        return chunks

    def run_settings(self) -> dict:
        """The keyword arguments of ``gdjax.step.run_one`` for one run of this sweep."""
        return {
            "loss": self.problem.loss,
            "loss_takes_key": self.problem.loss_takes_key,
            "make_optimizer": self._make_optimizer,
            "steps": self.steps,
            "log_every": self.log_every,
            "batch_size": self.batch_size,
            "tolerance": self.tolerance,
            "log_params": self.log_params,
            "metrics": self.problem.metrics,
            "schedule": self.schedule,
            "evaluation_params": self.evaluation_params,
        }

    @property
    def runs_first(self) -> bool:
        """Whether ``jax.vmap`` batches the runs (runs first), not ``runs_last``: see ``RUNS_FIRST_FROM``."""
        return (
            sum(np.prod(np.shape(leaf)[1:]) for leaf in jax.tree.leaves(self._init_params)) >= RUNS_FIRST_FROM
        )

    def _static(self) -> dict:
        return {
            **self.run_settings(),
            "mesh": self.mesh,
            "tile": self._tile[1],
            "runs_first": self.runs_first,
        }

    def lower(self) -> jax.stages.Lowered:
        """The traced, lowered program every chunk runs (ahead-of-time API)."""
        with self._x64():
            return _sweep_program.lower(*self._arguments[0], **self._static())

    def compile(self) -> jax.stages.Compiled:
        """The compiled program every chunk runs (ahead-of-time API; JAX may reuse one compiled earlier)."""
        with self._x64():
            return self.lower().compile()

    def execute(self, compiled: jax.stages.Compiled | None = None) -> list[dict]:
        """Run every chunk (with ``compiled``, or the cached jit); returns each chunk's device arrays.

        Every chunk's outputs stay on the devices until ``result()``: what a
        harness times. ``run()`` copies each chunk to the host before the next.
        """
        return list(self._executions(compiled))

    def _executions(self, compiled=None):
        """Each chunk's device outputs, one chunk at a time."""
        with self._x64():  # the arguments are made in the sweep's dtype
            chunks = self._arguments
        for arguments in chunks:
            with self._x64():
                if compiled is None:
                    yield _sweep_program(*arguments, **self._static())
                else:
                    yield compiled(*arguments)

    def result(self, outputs) -> SweepResult:
        """The chunks' device outputs (an iterable) as host numpy arrays, joined (every process gets all)."""
        n_seeds, n_points = len(self.seeds), self.n_points

        def per_run(leaf):  # (n_seeds, chunk_size, ...) of one chunk's padded runs
            kept = to_host(leaf)[: n_seeds * self.chunk_size]
            return kept.reshape(n_seeds, self.chunk_size, *leaf.shape[1:])

        with self._x64():
            parts = [jax.tree.map(per_run, chunk) for chunk in outputs]
        joined = jax.tree.map(lambda *leaves: np.concatenate(leaves, axis=1)[:, :n_points], *parts)
        return SweepResult(
            problem=self.problem.name,
            optimizer=self.optimizer,
            learning_rates=self.learning_rates,
            grid=self.grid,
            grid_shape=self.grid_shape,
            schedule=self.schedule,
            seeds=self.seeds,
            steps=self.steps,
            log_every=self.log_every,
            dtype=self.dtype,
            batch_size=self.batch_size,
            tolerance=self.tolerance,
            evaluation_point=self.evaluation_params is not None,
            **joined,
        )

    def bytes_per_run(self) -> int:
        """Estimated device memory of one run (``planning.bytes_per_run``)."""
        return planning.bytes_per_run(self)

    def put(self) -> None:
        """Put every chunk's arguments on the devices now (``execute()`` does on first use)."""
        with self._x64():
            jax.block_until_ready(self._arguments)

    def rerun(self, learning_rates=None, seeds=(0,), *, grid=None, points=None) -> SweepProgram:
        """This sweep on other points (the same names) and seeds, at most as many runs, padded to its shape.

        The compiled program of this sweep runs it (``execute(compiled)``), with
        no new compile: e.g. the best point of a grid rerun on fresh seeds.
        Each run's results are the ones it has alone (a run's bits do not
        depend on its grid). The runs start at ``problem.init(seed)``. Refused
        (ValueError) where the grid does not fit in one execution of this
        sweep's shape.
        """
        n_tiles, tile = self._tile
        rerun = prepare_sweep(
            self.problem,
            self._make_optimizer,
            learning_rates,
            self.steps,
            grid=grid,
            points=points,
            schedule=self.schedule,
            seeds=seeds,
            log_every=self.log_every,
            dtype=self.dtype,
            batch_size=self.batch_size,
            devices=list(self.mesh.devices.flat),
            memory_limit=None,
            tolerance=self.tolerance,
            log_params=self.log_params,
        )
        if len(rerun.seeds) * rerun.n_points > self.mesh.size * n_tiles * tile:
            raise ValueError(
                f"a rerun of {len(rerun.seeds)} seeds x {rerun.n_points} points does not fit in "
                f"this sweep's {self.mesh.size * n_tiles * tile} runs"
            )
        if set(rerun.axes) != set(self.axes) or set(rerun.hyperparameters) != set(self.hyperparameters):
            raise ValueError(
                f"a rerun must sweep what this sweep does ({', '.join(self.axes)}); "
                f"got {', '.join(rerun.axes)}"
            )
        return dataclasses.replace(
            rerun,
            optimizer=self.optimizer,
            chunk_size=rerun.n_points,
            padded_to=(n_tiles, tile),
            evaluation_params=self.evaluation_params,
        )

    def run(self) -> SweepResult:
        """Run the sweep: compile (or reuse) its program and run every chunk, copied to the host in turn."""
        return self.result(self._executions())


def _distinct_keys(tiled_keys: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """(keys, count) of every tile of (tiles, tile, 2) keys: its distinct keys first, in order; how many."""
    distinct, counts = np.zeros_like(tiled_keys), np.zeros(len(tiled_keys), np.int32)
    for i, keys in enumerate(tiled_keys):
        _, first = np.unique(keys, axis=0, return_index=True)
        counts[i] = len(first)
        distinct[i, : len(first)] = keys[np.sort(first)]
    return jnp.asarray(distinct), jnp.asarray(counts)


def seeds_matter(problem: Problem, optimizer, batch_size: int | None = None) -> bool:
    """Whether runs of ``optimizer`` on ``problem`` differ by seed.

    They do where the start depends on the seed (``problem.facts.seeded_start``),
    minibatches are drawn (``batch_size``, default the optimizer's), the loss
    is stochastic, or the optimizer draws noise of its own (``noise_argument``);
    otherwise every seed runs the same numbers, and one seed says all.
    """
    name, make_optimizer = resolve_optimizer(optimizer)
    if batch_size is None and isinstance(optimizer, str):
        batch_size = DEFAULT_BATCH_SIZE.get(name)
    return (
        problem.facts.seeded_start
        or (batch_size is not None and problem.n_examples > 1)
        or problem.loss_takes_key
        or noise_argument(make_optimizer) is not None
    )


def prepare_sweep(
    problem: Problem,
    optimizer,
    learning_rates: Sequence[float] | np.ndarray | None = None,
    steps: int | None = None,
    *,
    grid: dict[str, Sequence[float]] | None = None,
    points: Sequence[dict[str, float]] | None = None,
    schedule: str = "constant",
    seeds: Sequence[int] | np.ndarray = (0,),
    log_every: int | None = None,
    dtype: str = "float32",
    batch_size: int | None = None,
    init_params=None,
    devices=None,
    memory_limit: int | None = None,
    tolerance: float | None = None,
    log_params: bool = False,
) -> SweepProgram:
    """Validate a sweep's arguments (before any tracing) and return its program.

    Arguments as for :func:`sweep`.
    """
    if not isinstance(problem, Problem):
        raise TypeError(
            f"problem must be a gdjax Problem (e.g. gdjax.linear_regression()); got {type(problem).__name__}"
        )
    name, make_optimizer = resolve_optimizer(optimizer)
    evaluation_params = declarations(optimizer).evaluation_params  # None: the model is the iterate
    steps = check_count("steps", steps, high=MAX_STEPS)
    if log_every is None:
        log_every = max(1, steps // 100)
    log_every = check_count("log_every", log_every, high=steps)
    dtype = check_dtype(dtype)
    values, grid_shape = sweep_points(learning_rates, grid, points, dtype)
    seed_values = check_seeds(seeds)
    if batch_size is None and isinstance(optimizer, str):
        batch_size = DEFAULT_BATCH_SIZE.get(optimizer)
    if batch_size is not None:
        batch_size = check_count("batch_size", batch_size, high=problem.n_examples)
    check_labels(problem.y)
    for part, data in (problem.held_out or {}).items():  # not `name`: that is the optimizer's
        check_labels(data, f"problem.held_out[{part!r}]")
    init = stack_init(problem, seed_values, init_params)
    hyperparameters = data_hyperparameters(name, make_optimizer, values, schedule, steps, init, dtype)
    n_points = len(values["learning_rate"])
    if devices is None:
        devices = default_devices(len(seed_values) * n_points)
    mesh = runs_mesh(devices)
    say_if_cores_unused(mesh)
    program = SweepProgram(
        problem,
        name,
        hyperparameters,
        tuple(values),
        grid_shape,
        schedule,
        seed_values,
        steps,
        log_every,
        dtype,
        batch_size,
        make_optimizer,
        init,
        mesh,
        n_points,
        check_tolerance(tolerance),
        check_flag("log_params", log_params),
        evaluation_params=evaluation_params,
    )
    return dataclasses.replace(program, chunk_size=planning.points_per_chunk(program, memory_limit))


def sweep(*args, **kwargs) -> SweepResult:
    """Run ``optimizer`` on ``problem`` for every (seed, point) pair, in one compiled program.

    A point is a learning rate (``learning_rates``) or a set of
    hyperparameter values (``grid`` or ``points``); give exactly one of the
    three. Every value is data in the program: new values of the same
    shape do not recompile, and a run's results do not depend on the grid
    around it.

    Args:
        problem: a :class:`Problem`, e.g. ``linear_regression()`` or ``xor()``.
        optimizer: a name in ``OPTIMIZERS``, ``"optax:NAME"`` for any optax
            optimizer, or a callable ``learning_rate -> optax.GradientTransformation``
            (taking any other hyperparameters as keyword arguments).
        learning_rates: positive finite numbers, shape (n_lrs,): the
            one-axis sweep, ``grid={"learning_rate": learning_rates}``.
        steps: number of updates per run, >= 1.
        grid: ``{name: values}``: every point of the Cartesian product, in
            row-major order (the last axis fastest). ``learning_rate`` must
            be one of the names; the others are numeric arguments of the
            optimizer's factory (e.g. ``momentum``, ``b1``, ``weight_decay``)
            or the schedule's parameters. An unknown name, a flag such as
            ``nesterov`` and an argument that sets a shape are refused.
        points: ``[{name: value}, ...]``: a list of points with the same
            names (random search), run as given.
        schedule: the learning rate's schedule, one of
            ``gdjax.schedules.SCHEDULES`` ("constant", "cosine",
            "warmup_cosine", "exponential", "inverse_time"); the point's
            learning rate is its peak and its parameters may be axes.
        seeds: integers in [0, 2**31 - 1]; each gives a starting point
            (``problem.init(seed)``) and the minibatch order.
        log_every: steps between logged losses, 1 <= log_every <= steps;
            default ``max(1, steps // 100)``.
        dtype: "float32" (default) or "float64"; float64 runs under x64 mode
            for the sweep's duration only.
        batch_size: examples per step, reshuffled every epoch; None means the
            whole data set (``"sgd"`` defaults to 1).
        init_params: one parameter pytree used as the start of every run,
            instead of ``problem.init(seed)``.
        devices: the devices the runs are split over (any number; the
            split need not be even); default the devices of JAX's default
            backend (on a CPU, one per core: see ``gdjax.placement``), as
            many as get 16 runs each. The results are the same on one
            device or many.
        memory_limit: bytes each device may use; default what it has free
            (host devices share the machine's free memory). A grid that
            would not fit runs in chunks of learning rates (same results);
            one whose seeds do not fit even one learning rate at a time is
            refused with what it needs and what there is.
        tolerance: a positive number: record in ``stopped_at`` the first step
            whose parameter change ``||x_t - x_{t-1}||`` fell below it (the
            classic stopping rule), without stopping any run. Costs one more
            reduction over the parameters a step; a new value recompiles.
        log_params: also record the parameters every ``log_every`` steps
            (``params_curve``), for drawing paths. Memory: n_seeds x n_lrs x
            (steps // log_every) x the parameter count x 4 or 8 bytes (float32
            or float64), on the device and again on the host.

    Returns:
        A :class:`SweepResult`.

    Examples:
        >>> import gdjax
        >>> res = gdjax.sweep(gdjax.linear_regression(), "gd", [1e-4, 5e-4], steps=1000, seeds=[0, 1])
        >>> res.final_loss.shape, res.loss_curve.shape
        ((2, 2), (2, 2, 100))
        >>> res = gdjax.sweep(gdjax.quadratic(10.0), "momentum", grid={"learning_rate": [0.01, 0.1],
        ...                   "momentum": [0.5, 0.9, 0.99]}, steps=100)
        >>> res.final_loss.shape, res.grid_shape, res.grid["momentum"][:4]
        ((1, 6), (2, 3), array([0.5 , 0.9 , 0.99, 0.5 ]))
    """
    return prepare_sweep(*args, **kwargs).run()


sweep.__signature__ = inspect.signature(prepare_sweep).replace(return_annotation=SweepResult)  # one signature
