"""Run a suite: every cell timed and measured, the baselines and the floor in the same run."""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

import gdjax
from bench import baselines
from bench.metrics import convergence_frame, mean_curve, summarize
from bench.suites import PROBLEMS, STOP_TOLERANCE, Cell
from bench.timing import per_lr_step_ns, time_sweep, wall_times
from gdjax.optimizers import resolve_optimizer

TEXTBOOK_TIMED_STEPS = 2_000
PYTHON_LOOP_TIMED_STEPS = 300


class SuiteTables(NamedTuple):
    """Everything a run of the suite measured, as tables (see bench.tables.SCHEMA)."""

    timing: pd.DataFrame
    convergence: pd.DataFrame
    curves: pd.DataFrame
    summary: pd.DataFrame
    flop_rate: float
    # scikit-learn beside gdjax's SGD: None when scikit-learn is missing or the regression was not run
    sklearn: pd.DataFrame | None = None
    # steps against the condition number: None outside the default and quick profiles
    conditioning: pd.DataFrame | None = None


def _timing_row(
    cell_problem, optimizer, implementation, n_runs, steps, run_s, compile_s, flop, flop_rate, textbook_ns
):
    ns, fastest, slowest = per_lr_step_ns(run_s, n_runs, steps)
    floor_ns = flop / flop_rate * 1e9
    return {
        "problem": cell_problem,
        "optimizer": optimizer,
        "implementation": implementation,
        "n_runs": n_runs,
        "steps": steps,
        "compile_s": compile_s,
        "ns_per_lr_step": ns,
        "ns_per_lr_step_min": fastest,
        "ns_per_lr_step_max": slowest,
        "lr_steps_per_s": 1e9 / ns,
        "flop_per_lr_step": flop,
        "floor_ns_per_lr_step": floor_ns,
        "speedup_over_textbook": textbook_ns / ns,
        "ratio_to_floor": ns / floor_ns,
    }


def run_suite(
    cells: list[Cell], *, dtype: str, repeats: int, devices=None, progress: bool = True
) -> SuiteTables:
    """Run every cell, its runs split over ``devices`` (default: the default backend's); return the tables.

    The baselines and the floor run in ``dtype`` too (float64 under x64 mode, for this call only).
    """
    with jax.enable_x64(dtype == "float64"):
        return _run_cells(cells, dtype=dtype, repeats=repeats, devices=devices, progress=progress)


def _run_cells(cells, *, dtype, repeats, devices, progress) -> SuiteTables:
    bar = tqdm(total=len(cells) + 1, desc="floor", unit="sweep", disable=not progress, leave=False)
    flop_rate = baselines.measure_flop_rate(dtype, devices=devices)
    bar.update()
    problems = {name: PROBLEMS[name]() for name in dict.fromkeys(cell.problem for cell in cells)}
    textbook_ns = {}
    timing, convergence, curves, summary = [], [], [], []
    for cell in cells:
        problem = problems[cell.problem]
        n_runs = len(cell.learning_rates) * len(cell.seeds)
        bar.set_description(f"{cell.problem} {cell.optimizer} ({n_runs} runs x {cell.steps} steps)")
        if cell.problem not in textbook_ns:
            textbook_s = wall_times(
                lambda p=problem: baselines.run_textbook_loop(p, TEXTBOOK_TIMED_STEPS), repeats
            )
            textbook_ns[cell.problem] = float(np.median(textbook_s)) / TEXTBOOK_TIMED_STEPS * 1e9
            gd_flop = baselines.flops_per_step(problem, gdjax.OPTIMIZERS["gd"], dtype)
            timing.append(
                _timing_row(
                    cell.problem,
                    "gd",
                    "textbook numpy loop",
                    1,
                    TEXTBOOK_TIMED_STEPS,
                    textbook_s,
                    np.nan,
                    gd_flop,
                    flop_rate,
                    textbook_ns[cell.problem],
                )
            )
        program = gdjax.prepare_sweep(
            problem,
            cell.optimizer,
            cell.learning_rates,
            cell.steps,
            seeds=cell.seeds,
            log_every=cell.log_every,
            dtype=dtype,
            devices=devices,
            tolerance=STOP_TOLERANCE,
        )
        sweep_timing, result = time_sweep(program, repeats)
        _, make_optimizer = resolve_optimizer(cell.optimizer)
        flop = baselines.flops_per_step(problem, make_optimizer, dtype)
        timing.append(
            _timing_row(
                cell.problem,
                cell.optimizer,
                "gdjax.sweep",
                n_runs,
                cell.steps,
                sweep_timing.run_s,
                sweep_timing.compile_s,
                flop,
                flop_rate,
                textbook_ns[cell.problem],
            )
        )
        loop_s = baselines.python_loop_seconds(
            problem,
            make_optimizer,
            float(cell.learning_rates[0]),
            steps=PYTHON_LOOP_TIMED_STEPS,
            repeats=repeats,
            dtype=dtype,
        )
        timing.append(
            _timing_row(
                cell.problem,
                cell.optimizer,
                "python loop of jitted step",
                1,
                PYTHON_LOOP_TIMED_STEPS,
                loop_s,
                np.nan,
                flop,
                flop_rate,
                textbook_ns[cell.problem],
            )
        )
        cell_convergence = convergence_frame(result, problem)
        convergence.append(cell_convergence)
        row = summarize(cell_convergence, problem)
        summary.append(row)
        curves.append(mean_curve(result, row["best_learning_rate"]))
        bar.update()
    bar.close()
    sklearn = None
    if "linear_regression" in problems:
        sklearn = baselines.sklearn_comparison(
            problems["linear_regression"], repeats=repeats, dtype=dtype, devices=devices
        )
    return SuiteTables(
        timing=pd.DataFrame(timing),
        convergence=pd.concat(convergence, ignore_index=True),
        curves=pd.concat(curves, ignore_index=True),
        summary=pd.DataFrame(summary),
        flop_rate=flop_rate,
        sklearn=sklearn,
    )
