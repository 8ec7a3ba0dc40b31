"""SweepResult: what a sweep recorded, as numpy arrays with leading axes (seed, point)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

# The fields holding one value (or pytree leaf) per run, with leading axes (seed, point).
PER_RUN = (
    "final_loss", "best_loss", "diverged_at", "first_at_target", "at_target_from", "loss_curve", "params",
    "stopped_at", "params_curve",
)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """What a sweep recorded, as numpy arrays with leading axes (seed, point).

    A point is a learning rate (``n_lrs`` below is ``n_points``) or a point
    of a grid of hyperparameters (``grid``). For an optimizer that declares
    ``evaluation_params`` (``gdjax.optimizers.declarations``: schedule-free,
    averaging), every loss, metric and watch below, ``params`` and
    ``params_curve`` are at its evaluation point, not its iterate, and it is
    observed as a minibatch run is (not every step).

    Attributes:
        problem, optimizer: names. A user's optimizer factory is named by
            ``gdjax.optimizers.factory_name``: its qualified name
            (``sgd(momentum=0.9)`` for a ``functools.partial``), a lambda
            ``"custom"`` unless given a ``__name__``.
        learning_rates: (n_points,) each point's learning rate, in the order given.
        seeds: (n_seeds,) the seeds, in the order given.
        steps, log_every, dtype, batch_size: the settings of the sweep
            (``batch_size`` None means full batch).
        final_loss: (n_seeds, n_lrs) loss on all data after the last step.
        best_loss: (n_seeds, n_lrs) lowest finite loss on all data among the
            start, the logged points and the end.
        diverged_at: (n_seeds, n_lrs) int, the first observed step ``t``
            (updates done: 0 is the start, ``steps`` the end) at which the
            run had diverged by the one rule of ``gdjax.step.divergence_ceiling``:
            its loss on all data not finite, or its excess over the problem's
            minimum loss above ``DIVERGENCE_FACTOR`` (1e6) times the starting
            excess (above ``DIVERGENCE_LOSS``, 1e30, or 1e6 times the
            starting loss's size if larger, where no minimum is
            known); -1 if never. The same rule in every dtype. Observed:
            every step of a full-batch run (the gradient's own loss value),
            the start, the logged points and the end of a minibatch run (or
            of an optimizer declaring ``evaluation_params``), whose
            parameters are also checked finite after every update.
        first_at_target: (n_seeds, n_lrs) int, the first observed step whose
            loss on all data was at or below the problem's ``facts.target_loss``; -1 if none.
        at_target_from: (n_seeds, n_lrs) int, the first observed step from
            which the loss stayed at or below the target to the end (the
            start of its final stay): the steps to target of a run that
            holds it; -1 where the run ended above the target (or there is
            none). Exact for full-batch runs; for minibatch runs (and
            declared evaluation points) at the resolution of ``log_every``.
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
        metric_curves: the problem's metrics (``Problem.metrics``, e.g.
            ``test_accuracy``) at the logged points: name -> (n_seeds, n_lrs,
            steps // log_every), at the steps of ``loss_curve``; empty for a
            problem without metrics.
        final_metrics: name -> (n_seeds, n_lrs), the metrics after the last step.
        grid: name -> (n_points,): each point's value of every swept
            hyperparameter, in the order of the grid's axes.
        grid_shape: the shape of a ``grid=`` sweep (points in row-major
            order: ``final_loss.reshape(n_seeds, *grid_shape)``); None for
            ``points=`` and ``learning_rates=``.
        schedule: the learning rate's schedule ("constant" unless given).
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
    first_at_target: np.ndarray
    at_target_from: np.ndarray
    loss_curve: np.ndarray
    params: Any
    tolerance: float | None = None
    stopped_at: np.ndarray | None = None
    params_curve: Any = None
    metric_curves: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    final_metrics: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    grid: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    grid_shape: tuple[int, ...] | None = None
    schedule: str = "constant"
    # True where the optimizer declares evaluation_params: losses, metrics and params are at that point
    evaluation_point: bool = False

    def at_points(self, points) -> SweepResult:
        """This result at some points only (indices along the point axis), every seed: e.g. a grid's best."""
        import jax

        points = np.atleast_1d(points)

        def kept(leaf):
            return np.asarray(leaf)[:, points]

        def kept_tree(tree):
            return None if tree is None else jax.tree.map(kept, tree)

        return dataclasses.replace(
            self,
            learning_rates=np.asarray(self.learning_rates)[points],
            grid={name: np.asarray(values)[points] for name, values in self.grid.items()},
            grid_shape=None,
            **{name: kept_tree(getattr(self, name)) for name in PER_RUN},
            metric_curves={name: kept(values) for name, values in self.metric_curves.items()},
            final_metrics={name: kept(values) for name, values in self.final_metrics.items()},
        )

    def to_frame(self, **columns):
        """One row per (seed, point), sorted by seed then the swept hyperparameters.

        A column per swept hyperparameter (``learning_rate``, ``momentum``,
        ...) holds the point's value, one per problem metric its value
        after the last step.

        Args:
            **columns: extra per-run columns, each an array of shape
                (n_seeds, n_lrs), e.g. a metric computed from this result.
        """
        import pandas as pd

        n_seeds, n_lrs = self.final_loss.shape
        grid = self.grid or {"learning_rate": self.learning_rates}
        per_run = {
            "final_loss": self.final_loss,
            "best_loss": self.best_loss,
            "diverged_at": self.diverged_at,
            "first_at_target": self.first_at_target,
            "at_target_from": self.at_target_from,
            **({"stopped_at": self.stopped_at} if self.stopped_at is not None else {}),
            **self.final_metrics,
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
                "schedule": self.schedule,
                "seed": np.repeat(self.seeds, n_lrs),
                **{name: np.tile(values, n_seeds) for name, values in grid.items()},
                **{name: np.asarray(value).reshape(n_seeds * n_lrs) for name, value in per_run.items()},
            }
        )
        return frame.sort_values(["seed", *grid], kind="stable").reset_index(drop=True)
