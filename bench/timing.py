"""The timing protocol: ahead-of-time compile, a warm-up run, then timed repeats blocking on the result."""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import numpy as np

import gdjax
from gdjax.runs_last import fast_path_agrees


class SweepTiming(NamedTuple):
    """Seconds spent compiling a sweep and running it (each repeat), and the compiled program."""

    compile_s: float
    run_s: tuple[float, ...]
    compiled: Any = None  # what ran: a sweep of the same shape can run it (SweepProgram.execute)

    @property
    def median_s(self) -> float:
        return float(np.median(self.run_s))


def wall_times(fn, repeats: int) -> list[float]:
    """Seconds taken by ``fn()`` in each of ``repeats`` calls, after one untimed warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def per_lr_step_ns(run_s, n_runs: int, steps: int) -> tuple[float, float, float]:
    """Median, fastest and slowest of the repeats ``run_s`` (seconds) as ns per LR-step."""
    per_lr_step = np.asarray(run_s) / (n_runs * steps) * 1e9
    return float(np.median(per_lr_step)), float(per_lr_step.min()), float(per_lr_step.max())


def time_sweep(program: gdjax.SweepProgram, repeats: int) -> tuple[SweepTiming, gdjax.SweepResult]:
    """Compile ``program`` ahead of time, then time ``repeats`` runs after a warm-up.

    Returns the timing and the result of the warm-up run (the runs are
    deterministic, so any of them gives the same result).
    """
    fast_path_agrees()  # the engine's self-test, once a process: not part of the first sweep's compile time
    jax.clear_caches()  # else JAX may hand back an executable compiled earlier in this process
    start = time.perf_counter()
    compiled = program.compile()
    compile_s = time.perf_counter() - start
    outputs = jax.block_until_ready(program.execute(compiled))  # the warm-up run
    result = program.result(outputs)
    run_s = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(program.execute(compiled))
        run_s.append(time.perf_counter() - start)
    return SweepTiming(compile_s, tuple(run_s), compiled), result
