"""sweep(): every (seed, learning rate) run of an optimizer as one compiled program.

The program is ``jit(vmap_runs(scan_steps))``, every (seed, learning rate)
pair one run, batched by :func:`gdjax.runs_last.runs_last` (a vmap that keeps
the runs on the last axis, where XLA's CPU code is fastest). Learning
rates, seeds (their starting parameters and PRNG keys) and the data are its
arguments, never constants, so a new grid of the same shape reuses the
compiled program. A run whose loss goes non-finite is recorded in
``diverged_at`` and never disturbs the others.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from gdjax.optimizers import DEFAULT_BATCH_SIZE, OptimizerFactory, resolve_optimizer
from gdjax.problems import Problem
from gdjax.runs_last import elementwise_products, runs_last

DTYPES = ("float32", "float64")
RUNS_AXIS = "runs"
MAX_SEED = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What a sweep recorded, as numpy arrays with leading axes (seed, learning rate).

    Attributes:
        problem, optimizer: names.
        learning_rates: (n_lrs,) the grid, in the order given.
        seeds: (n_seeds,) the seeds, in the order given.
        steps, log_every, dtype, batch_size: the settings of the sweep
            (``batch_size`` None means full batch).
        final_loss: (n_seeds, n_lrs) loss on all data after the last step.
        best_loss: (n_seeds, n_lrs) lowest finite loss on all data among the
            start, the logged points and the end.
        diverged_at: (n_seeds, n_lrs) int, first step ``t`` at which the run
            was seen non-finite, ``t`` counting updates done (0 is the start,
            ``steps`` the end): its parameters are checked after every
            update, its loss on all data at the logged points and the end;
            -1 if it stayed finite.
        loss_curve: (n_seeds, n_lrs, steps // log_every) loss on all data
            after ``log_every``, ``2 * log_every``, ... steps.
        params: pytree of the final parameters, each leaf (n_seeds, n_lrs, ...).
        tolerance: the sweep's tolerance on the parameter change, or None.
        stopped_at: (n_seeds, n_lrs) int, with a tolerance: the first step
            ``t`` whose change ``||x_t - x_{t-1}||`` (Euclidean, over all
            parameters) was below it, where the classic stopping rule would
            have stopped the run (the sweep runs on); -1 if never; None
            without a tolerance.
        params_curve: with ``log_params``, a pytree like ``params`` whose
            leaves are (n_seeds, n_lrs, steps // log_every, ...): the
            parameters at the logged points; else None.
    """

    problem: str
    optimizer: str
    learning_rates: np.ndarray
    seeds: np.ndarray
    steps: int
    log_every: int
    dtype: str
    batch_size: int | None
    final_loss: np.ndarray
    best_loss: np.ndarray
    diverged_at: np.ndarray
    loss_curve: np.ndarray
    params: Any
    tolerance: float | None = None
    stopped_at: np.ndarray | None = None
    params_curve: Any = None

    def to_frame(self, **columns):
        """One row per (seed, learning rate), sorted by seed then learning rate.

        Args:
            **columns: extra per-run columns, each an array of shape
                (n_seeds, n_lrs), e.g. a metric computed from this result.
        """
        import pandas as pd

        n_seeds, n_lrs = self.final_loss.shape
        per_run = {
            "final_loss": self.final_loss,
            "best_loss": self.best_loss,
            "diverged_at": self.diverged_at,
            **({"stopped_at": self.stopped_at} if self.stopped_at is not None else {}),
            **columns,
        }
        frame = pd.DataFrame(
            {
                "problem": self.problem,
                "optimizer": self.optimizer,
                "dtype": self.dtype,
                "steps": self.steps,
                "log_every": self.log_every,
                "batch_size": self.batch_size if self.batch_size is not None else 0,
                "seed": np.repeat(self.seeds, n_lrs),
                "learning_rate": np.tile(self.learning_rates, n_seeds),
                **{name: np.asarray(value).reshape(n_seeds * n_lrs) for name, value in per_run.items()},
            }
        )
        return frame.sort_values(["seed", "learning_rate"], kind="stable").reset_index(drop=True)


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def _mark_divergence(diverged_at, finite, step):
    """Record ``step`` as the divergence step unless one is already recorded."""
    return jnp.where((diverged_at < 0) & ~finite, step, diverged_at)


def _change_norm(new, old) -> jax.Array:
    """Euclidean norm of ``new - old`` over every leaf of the parameters."""
    squares = [jnp.sum((a - b) ** 2) for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(old), strict=True)]
    return jnp.sqrt(sum(squares))


def _run_one(
    learning_rate,
    params,
    key,
    X,
    y,
    *,
    loss,
    make_optimizer,
    steps,
    log_every,
    batch_size,
    tolerance=None,
    log_params=False,
):
    """One run: ``steps`` updates from ``params``, the loss logged every ``log_every``.

    Divergence is watched through the parameters after every step, and
    through the loss on all data at the logged points and the end. Checking
    the loss itself every step would cost a second reduction over the data
    per step: 3.7x the time of a regression sweep on the CPU. With a
    ``tolerance``, the first step whose parameter change is below it is
    recorded (the run goes on); with ``log_params``, the parameters at the
    logged points too.
    """
    optimizer = make_optimizer(learning_rate)
    n_examples = X.shape[0]

    def step(carry, t):
        (params, opt_state, diverged_at, order), stopped_at = carry
        if batch_size is None:
            X_batch, y_batch = X, y
        else:
            batches_per_epoch = n_examples // batch_size
            epoch, batch = t // batches_per_epoch, t % batches_per_epoch
            order = lax.cond(
                batch == 0,
                lambda: jax.random.permutation(jax.random.fold_in(key, epoch), n_examples).astype(jnp.int32),
                lambda: order,
            )
            rows = lax.dynamic_slice(order, (batch * batch_size,), (batch_size,))
            X_batch, y_batch = X[rows], y[rows]
        grads = jax.grad(loss)(params, X_batch, y_batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        diverged_at = _mark_divergence(diverged_at, _all_finite(new_params), t + 1)
        if tolerance is not None:
            settled = _change_norm(new_params, params) < tolerance
            stopped_at = jnp.where((stopped_at < 0) & settled, t + 1, stopped_at)
        return ((new_params, opt_state, diverged_at, order), stopped_at), None

    def logged_block(carry, first_step):
        carry, _ = lax.scan(step, carry, first_step + jnp.arange(log_every, dtype=jnp.int32))
        (params, opt_state, diverged_at, order), stopped_at = carry
        logged_loss = loss(params, X, y)
        diverged_at = _mark_divergence(diverged_at, jnp.isfinite(logged_loss), first_step + log_every)
        logged = {"loss": logged_loss, **({"params": params} if log_params else {})}
        return ((params, opt_state, diverged_at, order), stopped_at), logged

    n_logs, tail = divmod(steps, log_every)
    initial_loss = loss(params, X, y)
    carry = (params, optimizer.init(params), jnp.int32(-1), jnp.arange(n_examples, dtype=jnp.int32))
    carry, logged = lax.scan(
        logged_block, (carry, jnp.int32(-1)), jnp.arange(n_logs, dtype=jnp.int32) * log_every
    )
    if tail:
        carry, _ = lax.scan(step, carry, n_logs * log_every + jnp.arange(tail, dtype=jnp.int32))
    (params, _, diverged_at, _), stopped_at = carry
    loss_curve = logged["loss"]
    final_loss = loss(params, X, y)
    diverged_at = _mark_divergence(diverged_at, jnp.isfinite(final_loss), steps)
    seen = jnp.concatenate([initial_loss[None], loss_curve, final_loss[None]])
    best_loss = jnp.min(jnp.where(jnp.isfinite(seen), seen, jnp.inf))
    outputs = {
        "final_loss": final_loss,
        "best_loss": best_loss,
        "diverged_at": diverged_at,
        "loss_curve": loss_curve,
        "params": params,
    }
    if tolerance is not None:
        outputs["stopped_at"] = stopped_at
    if log_params:
        outputs["params_curve"] = logged["params"]
    return outputs


@functools.partial(
    jax.jit,
    static_argnames=(
        "loss", "make_optimizer", "steps", "log_every", "batch_size", "tolerance", "log_params", "mesh",
        "tile",
    ),
)  # fmt: skip
def _sweep_program(
    learning_rates,
    init_params,
    keys,
    X,
    y,
    *,
    loss,
    make_optimizer,
    steps,
    log_every,
    batch_size,
    tolerance,
    log_params,
    mesh,
    tile,
):
    """Every run's outputs, runs first; learning_rates, init_params leaves and keys have one row per run.

    The (seed, learning rate) grid comes flattened into one axis of runs,
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
        _run_one,
        loss=loss,
        make_optimizer=make_optimizer,
        steps=steps,
        log_every=log_every,
        batch_size=batch_size,
        tolerance=tolerance,
        log_params=log_params,
    )
    every_run = runs_last(run, (True, True, True, False, False))

    def per_run(learning_rates, params, keys, X, y):  # runs first in and out; each tile's runs last inside
        n_tiles = learning_rates.shape[0] // tile

        def tiles(leaf):
            return jnp.moveaxis(leaf.reshape(n_tiles, tile, *leaf.shape[1:]), 1, -1)

        def untiled(leaf):
            return jnp.moveaxis(leaf, -1, 1).reshape(n_tiles * tile, *leaf.shape[1:-1])

        out = lax.map(
            lambda runs: every_run(*runs, X, y), jax.tree.map(tiles, (learning_rates, params, keys))
        )
        return jax.tree.map(untiled, out)

    if mesh.size > 1:
        split, whole = PartitionSpec(RUNS_AXIS), PartitionSpec()
        # check_vma=False: the scan carries start unsplit (e.g. diverged_at = -1) and become per-device
        per_run = jax.shard_map(
            per_run, mesh=mesh, in_specs=(split, split, split, whole, whole), out_specs=split, check_vma=False
        )
    return per_run(learning_rates, init_params, keys, X, y)


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


def _tiles(n_runs: int, mesh: Mesh, itemsize: int) -> tuple[int, int]:
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


def _check_count(name: str, value, *, low: int = 1, high: int | None = None) -> int:
    allowed = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be {allowed}; got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    return int(value)


def _check_dtype(dtype) -> str:
    try:
        name = np.dtype(dtype).name
    except Exception:  # numpy raises TypeError, ValueError, even SyntaxError for odd strings
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    with jax.enable_x64(name == "float64"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # JAX's own truncation warning; we raise instead
        if jnp.zeros((), name).dtype != name:  # never silently downgrade float64 to float32
            raise ValueError(f"dtype {name} is not available with this JAX ({jax.default_backend()} backend)")
    return name


def _check_learning_rates(learning_rates, dtype: str) -> np.ndarray:
    try:
        rates = np.atleast_1d(np.asarray(learning_rates, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"learning_rates must be positive finite numbers; got {learning_rates!r}") from None
    if rates.ndim != 1 or rates.size == 0:
        raise ValueError(
            f"learning_rates must be a non-empty 1-D sequence of numbers; got shape {rates.shape}"
        )
    bad = rates[~(np.isfinite(rates) & (rates > 0))]
    if bad.size:
        raise ValueError(f"learning_rates must be positive and finite; got {float(bad[0])!r}")
    info = np.finfo(dtype)
    if np.any(rates > info.max):
        raise ValueError(
            f"learning_rates must be at most {info.max:.3g} in {dtype}; got {float(rates.max())!r}"
        )
    if np.any(rates.astype(dtype) == 0):
        raise ValueError(
            f"learning_rates must be at least {info.smallest_subnormal:.3g} in {dtype} (less rounds to 0); "
            f"got {float(rates.min())!r}"
        )
    return rates


def _check_tolerance(tolerance) -> float | None:
    if tolerance is None:
        return None
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float | np.integer | np.floating):
        raise TypeError(f"tolerance must be a positive finite number or None; got {tolerance!r}")
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive finite number or None; got {tolerance!r}")
    return float(tolerance)


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def _check_seeds(seeds) -> np.ndarray:
    values = np.atleast_1d(np.asarray(seeds))
    if values.size == 0 or values.ndim != 1:
        raise ValueError(f"seeds must be a non-empty 1-D sequence of integers; got {seeds!r}")
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"seeds must be integers in [0, {MAX_SEED}]; got {seeds!r}")
    if values.min() < 0 or values.max() > MAX_SEED:
        raise ValueError(f"seeds must be integers in [0, {MAX_SEED}]; got {seeds!r}")
    return values.astype(np.int64)


def _stack_init(problem: Problem, seeds: np.ndarray, init_params) -> Any:
    """Starting parameters for every seed, leaves float64 with leading axis n_seeds."""
    if init_params is None:
        per_seed = [problem.init(int(s)) for s in seeds]
        return jax.tree.map(lambda *leaves: np.stack([np.asarray(x, np.float64) for x in leaves]), *per_seed)
    reference = problem.init(int(seeds[0]))
    given = jax.tree.map(lambda x: np.asarray(x, np.float64), init_params)
    if jax.tree.structure(given) != jax.tree.structure(reference) or any(
        a.shape != np.shape(b)
        for a, b in zip(jax.tree.leaves(given), jax.tree.leaves(reference), strict=True)
    ):
        shapes = jax.tree.map(np.shape, reference)
        raise ValueError(
            f"init_params must match the problem's parameters {shapes}; got {jax.tree.map(np.shape, given)}"
        )
    if not all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(given)):
        raise ValueError("init_params must be finite")
    return jax.tree.map(lambda x: np.broadcast_to(x, (seeds.size, *x.shape)), given)


@dataclasses.dataclass(frozen=True)
class SweepProgram:
    """A validated sweep, ready to lower, compile and run.

    ``sweep()`` is ``prepare_sweep(...).run()``. A harness that times compile
    and execution apart uses ``compile()`` (ahead of time) and
    ``execute(compiled)`` (returns device arrays to block on), then
    ``result(outputs)``.
    """

    problem: Problem
    optimizer: str
    learning_rates: np.ndarray
    seeds: np.ndarray
    steps: int
    log_every: int
    dtype: str
    batch_size: int | None
    _make_optimizer: OptimizerFactory
    _init_params: Any
    mesh: Mesh
    chunk_size: int  # learning rates per chunk in run(); len(learning_rates) when all fit at once
    tolerance: float | None = None
    log_params: bool = False

    def _x64(self):
        """The x64 mode this sweep runs under, set for its duration only."""
        return jax.enable_x64(self.dtype == "float64")

    @functools.cached_property
    def _tile(self) -> tuple[int, int]:
        """(tiles per device, runs per tile) (``_tiles``); the runs are padded to whole tiles."""
        return _tiles(len(self.seeds) * len(self.learning_rates), self.mesh, np.dtype(self.dtype).itemsize)

    @functools.cached_property
    def _arguments(self) -> tuple:
        """The program's arguments, one row per run, put on the device once (first used under ``_x64()``).

        Run ``i`` is seed ``i // n_lrs`` and learning rate ``i % n_lrs``; the
        last run is repeated to fill whole tiles on every device.
        """
        n_tiles, tile = self._tile
        n_runs = len(self.seeds) * len(self.learning_rates)
        run = np.minimum(np.arange(self.mesh.size * n_tiles * tile), n_runs - 1)
        seed_of_run, rate_of_run = np.divmod(run, len(self.learning_rates))
        as_dtype = functools.partial(jnp.asarray, dtype=self.dtype)
        keys = np.stack([np.asarray(jax.random.PRNGKey(int(s))) for s in self.seeds])
        arguments = (
            as_dtype(self.learning_rates[rate_of_run]),
            jax.tree.map(lambda leaf: as_dtype(np.asarray(leaf)[seed_of_run]), self._init_params),
            jnp.asarray(keys[seed_of_run]),
            as_dtype(self.problem.X),
            as_dtype(self.problem.y),
        )
        if not _spans_processes(self.mesh):
            return arguments
        # Several processes (jax.distributed): each holds the same host values;
        # the program takes them as global arrays, whole on every device.
        whole = NamedSharding(self.mesh, PartitionSpec())
        return jax.tree.map(lambda a: jax.make_array_from_process_local_data(whole, np.asarray(a)), arguments)

    def _static(self) -> dict:
        return {
            "loss": self.problem.loss,
            "make_optimizer": self._make_optimizer,
            "steps": self.steps,
            "log_every": self.log_every,
            "batch_size": self.batch_size,
            "tolerance": self.tolerance,
            "log_params": self.log_params,
            "mesh": self.mesh,
            "tile": self._tile[1],
        }

    def lower(self) -> jax.stages.Lowered:
        """The traced, lowered program (ahead-of-time API)."""
        with self._x64():
            return _sweep_program.lower(*self._arguments, **self._static())

    def compile(self) -> jax.stages.Compiled:
        """The compiled program (ahead-of-time API; JAX may reuse one compiled earlier in this process)."""
        with self._x64():
            return self.lower().compile()

    def execute(self, compiled: jax.stages.Compiled | None = None) -> dict:
        """Run the program (``compiled``, or the cached jit); returns device arrays."""
        with self._x64():
            arguments = self._arguments
            if compiled is None:
                return _sweep_program(*arguments, **self._static())
            return compiled(*arguments)

    def result(self, outputs: dict) -> SweepResult:
        """Copy device outputs to host numpy arrays and wrap them (every process gets every run)."""
        n_seeds, n_lrs = len(self.seeds), len(self.learning_rates)
        with self._x64():
            host = jax.tree.map(
                lambda leaf: _to_host(leaf)[: n_seeds * n_lrs].reshape(n_seeds, n_lrs, *leaf.shape[1:]),
                outputs,
            )
        return self._wrap(host)

    def _wrap(self, host: dict) -> SweepResult:
        """A result of this sweep's settings holding ``host``'s arrays, leading axes (seed, learning rate)."""
        return SweepResult(
            problem=self.problem.name,
            optimizer=self.optimizer,
            learning_rates=self.learning_rates,
            seeds=self.seeds,
            steps=self.steps,
            log_every=self.log_every,
            dtype=self.dtype,
            batch_size=self.batch_size,
            tolerance=self.tolerance,
            **host,
        )

    def bytes_per_run(self) -> int:
        """Estimated device memory of one run: parameters, optimizer state, logged losses, one step's values.

        The step's working set is the sum of the values in the jaxpr of the
        loss's value and gradient on one batch, and of the products of the
        contractions written out elementwise (``runs_last``): an upper bound that grows
        with the data, while the logged losses grow with steps // log_every,
        never with steps.
        """
        with self._x64():
            params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], self.dtype), self._init_params)
            state = jax.eval_shape(self._make_optimizer(1.0).init, params)
            rows = self.batch_size or self.problem.n_examples
            batch = [
                jax.ShapeDtypeStruct((rows, *a.shape[1:]), self.dtype)
                for a in (self.problem.X, self.problem.y)
            ]
            jaxpr = jax.make_jaxpr(jax.value_and_grad(self.problem.loss))(params, *batch)
        itemsize = np.dtype(self.dtype).itemsize
        working = sum(_nbytes(v.aval) for eqn in jaxpr.eqns for v in eqn.outvars)
        working += itemsize * sum(elementwise_products(eqn) for eqn in jaxpr.eqns)
        n_logs = self.steps // self.log_every
        logged = n_logs * (itemsize + (_tree_bytes(params) if self.log_params else 0))
        return 2 * _tree_bytes(params) + _tree_bytes(state) + working + logged + 4 * itemsize

    def run(self) -> SweepResult:
        """Run the sweep; a grid too large for the devices' memory runs in chunks of learning rates."""
        n_lrs = len(self.learning_rates)
        if self.chunk_size >= n_lrs:
            return self.result(self.execute())
        parts = []
        for start in range(0, n_lrs, self.chunk_size):
            rates = self.learning_rates[start : start + self.chunk_size]
            padded = np.concatenate(
                [rates, np.repeat(rates[-1:], self.chunk_size - len(rates))]
            )  # same shape
            part = dataclasses.replace(self, learning_rates=padded).run()
            kept = len(rates)
            parts.append(jax.tree.map(lambda leaf, kept=kept: leaf[:, :kept], _per_run_arrays(part)))
        joined = jax.tree.map(lambda *leaves: np.concatenate(leaves, axis=1), *parts)
        return self._wrap(joined)


def _spans_processes(mesh: Mesh) -> bool:
    """Whether ``mesh`` has devices of other processes (a ``jax.distributed`` run)."""
    return any(device.process_index != jax.process_index() for device in mesh.devices.flat)


def _to_host(leaf) -> np.ndarray:
    """A numpy copy of ``leaf``; one spread over several processes is gathered from all of them."""
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return multihost_utils.process_allgather(leaf, tiled=True)
    return np.asarray(leaf)


def _nbytes(aval) -> int:
    return int(np.prod(aval.shape, dtype=np.int64)) * np.dtype(aval.dtype).itemsize


def _tree_bytes(tree) -> int:
    return sum(_nbytes(leaf) for leaf in jax.tree.leaves(tree))


def _per_run_arrays(result: SweepResult) -> dict:
    names = ("final_loss", "best_loss", "diverged_at", "loss_curve", "params", "stopped_at", "params_curve")
    return {name: getattr(result, name) for name in names if getattr(result, name) is not None}


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


def _learning_rates_per_chunk(program: SweepProgram, memory_limit: int | None) -> int:
    """How many learning rates (with every seed) fit in one execution; refuse when not even one does."""
    devices = list(program.mesh.devices.flat)
    if memory_limit is None:
        memory_limit = min(free_memory_bytes(device) for device in program.mesh.local_devices)
        if _spans_processes(program.mesh):  # every process must cut the same chunks: plan for the tightest
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
        n_tiles, tile = _tiles(n_rates * n_seeds, program.mesh, itemsize)
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


def prepare_sweep(
    problem: Problem,
    optimizer,
    learning_rates: Sequence[float] | np.ndarray,
    steps: int,
    *,
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
    steps = _check_count("steps", steps)
    if log_every is None:
        log_every = max(1, steps // 100)
    log_every = _check_count("log_every", log_every, high=steps)
    dtype = _check_dtype(dtype)
    rates = _check_learning_rates(learning_rates, dtype)
    seed_values = _check_seeds(seeds)
    if batch_size is None and isinstance(optimizer, str):
        batch_size = DEFAULT_BATCH_SIZE.get(optimizer)
    if batch_size is not None:
        batch_size = _check_count("batch_size", batch_size, high=problem.n_examples)
    init = _stack_init(problem, seed_values, init_params)
    mesh = runs_mesh(devices)
    program = SweepProgram(
        problem,
        name,
        rates,
        seed_values,
        steps,
        log_every,
        dtype,
        batch_size,
        make_optimizer,
        init,
        mesh,
        len(rates),
        _check_tolerance(tolerance),
        _check_flag("log_params", log_params),
    )
    return dataclasses.replace(program, chunk_size=_learning_rates_per_chunk(program, memory_limit))


def sweep(
    problem: Problem,
    optimizer,
    learning_rates: Sequence[float] | np.ndarray,
    steps: int,
    *,
    seeds: Sequence[int] | np.ndarray = (0,),
    log_every: int | None = None,
    dtype: str = "float32",
    batch_size: int | None = None,
    init_params=None,
    devices=None,
    memory_limit: int | None = None,
    tolerance: float | None = None,
    log_params: bool = False,
) -> SweepResult:
    """Run ``optimizer`` on ``problem`` for every (seed, learning rate) pair, in one compiled program.

    Args:
        problem: a :class:`Problem`, e.g. ``linear_regression()`` or ``xor()``.
        optimizer: a name in ``OPTIMIZERS`` or a callable
            ``learning_rate -> optax.GradientTransformation``.
        learning_rates: positive finite numbers, shape (n_lrs,).
        steps: number of updates per run, >= 1.
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
            split need not be even); default every device of JAX's default
            backend. The results are the same on one device or many.
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
    """
    return prepare_sweep(
        problem,
        optimizer,
        learning_rates,
        steps,
        seeds=seeds,
        log_every=log_every,
        dtype=dtype,
        batch_size=batch_size,
        init_params=init_params,
        devices=devices,
        memory_limit=memory_limit,
        tolerance=tolerance,
        log_params=log_params,
    ).run()
