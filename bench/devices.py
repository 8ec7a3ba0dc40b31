"""What a device buys: the same sweeps timed on every device configuration this machine has.

`python -m bench devices` times, in one run, each (problem, optimizer) sweep
of ``COMPARISON_LEARNING_RATES`` rates on one CPU device, on all local CPU
devices, and likewise on the GPU when there is one; then the scaling series:
time against the number of learning rates, and against the data size.
Rows from other machines already in the tables are kept (see :func:`merge`).
"""

from __future__ import annotations

import re
from typing import NamedTuple

import jax
import numpy as np
import pandas as pd

import gdjax
from bench.progress import silent
from bench.suites import LEARNING_RATE_RANGES, PROBLEMS, SUITE_OPTIMIZERS
from bench.timing import per_lr_step_ns, time_sweep

# The textbook problems (with data); Rosenbrock's two parameters and no data say little about a device.
COMPARED_PROBLEMS = ("linear_regression", "xor")
COMPARISON_LEARNING_RATES = {"default": 4096, "quick": 64}
COMPARISON_STEPS = {"default": 1000, "quick": 50}
# Scaling: time against the number of learning rates (textbook problems,
# plain GD) and against the number of examples and features (regression, GD,
# SCALING_EXAMPLES_RATES rates). Step counts keep each timed call near a
# fixed amount of work, within [MIN_STEPS, MAX_STEPS].
SCALING_LEARNING_RATES = {"default": tuple(4**k for k in range(9)), "quick": (1, 8, 64)}
SCALING_EXAMPLES = {"default": (100, 1_000, 10_000, 100_000, 1_000_000), "quick": (100, 1_000)}
SCALING_FEATURES = (1, 16)
SCALING_EXAMPLES_RATES = 64
LR_STEPS_PER_CALL = {"default": 2**24, "quick": 2**14}
EXAMPLE_STEPS_PER_CALL = {"default": 2**30, "quick": 2**20}
MIN_STEPS, MAX_STEPS = 10, 20_000


class DeviceTables(NamedTuple):
    """This run's rows of devices.csv and scaling.csv (see bench.tables.SCHEMA)."""

    devices: pd.DataFrame
    scaling: pd.DataFrame


def device_groups() -> list[list]:
    """The device sets to compare: for each platform present, one device, then all of them."""
    groups = []
    for platform in ("cpu", "gpu", "tpu"):
        try:
            local = jax.local_devices(backend=platform)
        except RuntimeError:
            continue
        groups.append(local[:1])
        if len(local) > 1:
            groups.append(local)
    return groups


def device_tag(device) -> str:
    """A folder name for the device: 'cpu', or the platform and kind, e.g. 'gpu-nvidia-h200'."""
    kind = re.sub(r"[^a-z0-9]+", "-", device.device_kind.lower()).strip("-")
    return device.platform if kind in ("", device.platform) else f"{device.platform}-{kind}"


def _steps_for(work_per_step: int, budget: int) -> int:
    return int(np.clip(budget // work_per_step, MIN_STEPS, MAX_STEPS))


def _timed(problem, optimizer, learning_rates, steps, devices, repeats) -> dict:
    program = gdjax.prepare_sweep(problem, optimizer, learning_rates, steps, log_every=steps, devices=devices)
    timing, _ = time_sweep(program, repeats)
    median, low, high = per_lr_step_ns(timing.run_s, len(learning_rates), steps)
    return {
        "n_runs": len(learning_rates),
        "steps": steps,
        "compile_s": timing.compile_s,
        "ns_per_lr_step": median,
        "ns_per_lr_step_min": low,
        "ns_per_lr_step_max": high,
        "lr_steps_per_s": 1e9 / median,
    }


def scaling_regression(n_examples: int, n_features: int, seed: int = 0) -> gdjax.Problem:
    """A regression of standardised Gaussian features (plus a bias column), for the size series."""
    rng = np.random.default_rng(seed)
    X = np.hstack([np.ones((n_examples, 1)), rng.standard_normal((n_examples, n_features))])
    y = X @ rng.standard_normal(n_features + 1) + 0.1 * rng.standard_normal(n_examples)
    return gdjax.linear_regression(X.astype(np.float32), y.astype(np.float32))


def _gd_rates(problem_name: str, count: int) -> np.ndarray:
    return np.geomspace(*LEARNING_RATE_RANGES[problem_name, "gd"], count)


def _group_columns(machine: str, devices: list) -> dict:
    return {"machine": machine, "device": device_tag(devices[0]), "device_count": len(devices)}


def run_devices(machine: str, *, quick: bool, repeats: int, progress=silent) -> DeviceTables:
    """Time the comparison and the scaling series on every device group; return this run's rows."""
    profile = "quick" if quick else "default"
    groups = device_groups()
    problems = {name: PROBLEMS[name]() for name in COMPARED_PROBLEMS}
    comparison_rates = COMPARISON_LEARNING_RATES[profile]
    jobs = [
        ("compare", group, name, optimizer)
        for group in groups
        for name in problems
        for optimizer in SUITE_OPTIMIZERS
    ]
    # The scaling series run on each platform's full set of devices, as a sweep does by default.
    full_groups = [
        group for group in groups if len(group) == len(jax.local_devices(backend=group[0].platform))
    ]
    jobs += [("rates", group, name, "gd") for group in full_groups for name in problems]
    jobs += [("examples", group, "linear_regression", "gd") for group in full_groups]
    comparison, scaling = [], []
    for number, (kind, group, name, optimizer) in enumerate(jobs, 1):
        columns = _group_columns(machine, group)
        progress(
            "series",
            f"{kind} {columns['device']} x{len(group)} {name} {optimizer}",
            done=number,
            total=len(jobs),
        )
        if kind == "compare":
            low, high = LEARNING_RATE_RANGES[name, optimizer]
            rates = np.geomspace(low, high, comparison_rates)
            row = _timed(problems[name], optimizer, rates, COMPARISON_STEPS[profile], group, repeats)
            comparison.append({**columns, "problem": name, "optimizer": optimizer, **row})
        elif kind == "rates":
            problem = problems[name]
            for count in SCALING_LEARNING_RATES[profile]:
                steps = _steps_for(count, LR_STEPS_PER_CALL[profile])
                row = _timed(problem, "gd", _gd_rates(name, count), steps, group, repeats)
                scaling.append(
                    {**columns, "series": "learning_rates", "problem": name, "optimizer": "gd",
                     "n_examples": problem.n_examples, "n_features": problem.X.shape[1], **row}
                )  # fmt: skip
        else:
            for n_features in SCALING_FEATURES:
                for n_examples in SCALING_EXAMPLES[profile]:
                    problem = scaling_regression(n_examples, n_features)
                    rates = np.geomspace(1e-3, 0.5, SCALING_EXAMPLES_RATES)
                    steps = _steps_for(SCALING_EXAMPLES_RATES * n_examples, EXAMPLE_STEPS_PER_CALL[profile])
                    row = _timed(problem, "gd", rates, steps, group, repeats)
                    scaling.append(
                        {**columns, "series": "examples", "problem": name, "optimizer": "gd",
                         "n_examples": n_examples, "n_features": n_features + 1, **row}
                    )  # fmt: skip
    devices = pd.DataFrame(comparison)
    one_cpu = devices[(devices["device"] == "cpu") & (devices["device_count"] == 1)]
    baseline = one_cpu.set_index(["problem", "optimizer"])["ns_per_lr_step"]
    cells = pd.MultiIndex.from_frame(devices[["problem", "optimizer"]])
    devices["speedup_over_one_cpu"] = baseline.reindex(cells).to_numpy() / devices["ns_per_lr_step"]
    scaling = pd.DataFrame(scaling)
    scaling["ns_per_lr_example_step"] = scaling["ns_per_lr_step"] / scaling["n_examples"]
    return DeviceTables(devices, scaling)


def merge(previous: pd.DataFrame | None, new: pd.DataFrame) -> pd.DataFrame:
    """``new`` plus the rows of ``previous`` from other machines (this machine's old rows are replaced)."""
    if previous is None or previous.empty:
        return new
    kept = previous[~previous["machine"].isin(set(new["machine"]))]
    return pd.concat([kept, new], ignore_index=True)
