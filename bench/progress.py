"""Progress on stderr: one plain line per piece of work, with the seconds since the run began.

Plain lines rather than a redrawn bar: they read the same in a terminal, a
pipe, a CI log or a terminal that reports no size, and each line says what
the run is doing now and how far it is.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """``progress(phase, detail, done=i, total=n)`` prints ``[  12.3 s] phase i/n: detail`` on stderr."""

    def __init__(self, stream=None):
        self.stream = stream
        self.start = time.monotonic()

    def __call__(self, phase: str, detail: str = "", *, done: int | None = None, total: int | None = None):
        count = f" {done}/{total}" if total is not None else ""
        line = f"[{time.monotonic() - self.start:7.1f} s] {phase}{count}" + (f": {detail}" if detail else "")
        print(line, file=self.stream or sys.stderr, flush=True)

    def phase(self, phase: str):
        """A callable saying one detail at a time of ``phase`` (for loops that know no total)."""
        return lambda detail: self(phase, detail)


def silent(*args, **kwargs) -> None:
    """The progress of a run that says nothing (library calls, tests)."""


def closing_summary(tables, folder) -> str:
    """What a finished run found, per problem, and where to read more (printed on stdout).

    Per problem: the optimizer that needed the least work (examples seen) to
    reach the target on fresh seeds at its best point, else the lowest final
    loss; for the networks the best test accuracy. Each with its sweep's
    time per run-step over the floor (the step's FLOP at the measured rate).
    """
    ratio = {
        (row.problem, row.optimizer): row.ratio_to_floor
        for row in tables.timing.itertuples()
        if row.implementation == "gdjax.sweep"
    }
    lines = []
    if tables.tuned is not None and len(tables.tuned):
        for problem, rows in tables.tuned.groupby("problem", sort=False):
            work = rows["examples_to_target_median"].where(rows["reached_fraction"] > 0, float("inf"))
            if work.min() < float("inf"):
                best = rows.loc[work.idxmin()]
                found = (
                    f"{best.optimizer} at rate {best.learning_rate:.3g} reaches the target with the least "
                    f"work: {best.steps_to_target_median:,.0f} steps, "
                    f"{best.examples_to_target_median:,.0f} examples"
                )
            else:
                best = rows.loc[rows["final_loss_median"].idxmin()]
                found = (
                    f"no optimizer reaches the target on half its seeds; lowest final loss "
                    f"{best.final_loss_median:.4g}: "
                    f"{best.optimizer} at rate {best.learning_rate:.3g}"
                )
            lines.append(f"{problem}: {found}{_floor(ratio, problem, best.optimizer)}")
    if tables.networks is not None:
        for problem, rows in tables.networks.summary.groupby("problem", sort=False):
            best = rows.loc[rows["test_accuracy_mean"].idxmax()]
            reached = (
                f", {best.steps_to_target_median:,.0f} steps to {best.target_test_accuracy:.0%}"
                if best.reached_fraction > 0
                else f", never at {best.target_test_accuracy:.0%}"
            )
            lines.append(
                f"{problem}: best test accuracy {best.optimizer} at rate {best.best_learning_rate:.3g}: "
                f"{best.test_accuracy_mean:.3f} (sd {best.test_accuracy_std:.3f}, {best.n_fresh_seeds} fresh "
                f"seeds){reached}{_floor(ratio, problem, best.optimizer)}"
            )
    lines.append(f"summary: {folder / 'summary.md'}  report: {folder / 'report.md'}")
    return "\n".join(lines)


def _floor(ratio: dict, problem: str, optimizer: str) -> str:
    value = ratio.get((problem, optimizer))
    return f"; sweep {value:.3g}x the floor" if value is not None and value == value else ""
