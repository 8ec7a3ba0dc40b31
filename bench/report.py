"""What a person reads: summary.md and the PNG plots."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from bench.devices import SCALING_EXAMPLES_RATES
from bench.runner import SuiteTables


def _fmt(value, digits=3) -> str:
    if isinstance(value, float) and np.isnan(value):
        return "-"
    return f"{value:.{digits}g}"


def _mean_std(mean, std, digits=3) -> str:
    return "-" if np.isnan(mean) else f"{_fmt(mean, digits)} ± {_fmt(std, 2)}"


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(tables: SuiteTables, metadata: dict, figures: list[str]) -> str:
    """summary.md: the best learning rates, steps to target, final loss, speed against the baselines."""
    summary = tables.summary.sort_values(["problem", "optimizer"])
    convergence_rows = [
        [
            row.problem,
            row.optimizer,
            _fmt(row.best_learning_rate),
            f"{row.reached_fraction:.0%} of {row.n_seeds}",
            _mean_std(row.steps_to_target_mean, row.steps_to_target_std, 4),
            _mean_std(row.final_loss_mean, row.final_loss_std, 6),
            str(row.diverged_runs),
        ]
        for row in summary.itertuples()
    ]
    timing = tables.timing.sort_values(["problem", "optimizer", "implementation"])
    timing_rows = [
        [
            row.problem,
            row.optimizer,
            row.implementation,
            str(row.n_runs),
            _fmt(row.compile_s),
            f"{_fmt(row.ns_per_lr_step)} [{_fmt(row.ns_per_lr_step_min)}, {_fmt(row.ns_per_lr_step_max)}]",
            _fmt(row.speedup_over_textbook),
            _fmt(row.ratio_to_floor),
        ]
        for row in timing.itertuples()
    ]
    stability = [
        f"- {row.problem}, {row.optimizer}: predicted limit 2/λmax = {_fmt(row.predicted_stability_limit)}, "
        f"largest learning rate of the grid with no diverged seed = {_fmt(row.largest_finite_learning_rate)}"
        for row in summary.itertuples()
        if not np.isnan(row.predicted_stability_limit)
    ]
    parts = [
        f"# gdjax benchmark: {metadata['device_tag']}",
        "",
        f"{metadata['date_utc']} on {metadata['device_count']} x {metadata['device_kind']} "
        f"({metadata['cpu_model']}); {metadata['profile']} profile, {metadata['dtype']}, seeds "
        f"{metadata['seeds']}; jax {metadata['versions']['jax']}, optax {metadata['versions']['optax']}, "
        f"gdjax {metadata['versions']['gdjax']}. Floor: {metadata['floor_gflop_per_s']:.3g} GFLOP/s "
        "(jitted multiply-add kernel, this run). Columns: see README.",
        "",
        "## Best learning rate per optimizer",
        "",
        _markdown_table(
            [
                "problem",
                "optimizer",
                "best lr",
                "seeds at target",
                "steps to target",
                "final loss",
                "diverged runs (grid)",
            ],
            convergence_rows,
        ),
        "",
        "Targets: regression within 1% of the least-squares cost; XOR loss ≤ 0.01 (all four outputs on "
        "the right side of 0.5).",
        "",
        *stability,
        "",
        "## Speed (ns per learning-rate step: median [min, max] of the repeats)",
        "",
        _markdown_table(
            [
                "problem",
                "optimizer",
                "implementation",
                "runs",
                "compile s",
                "ns / LR-step",
                "speedup over textbook loop",
                "ratio to floor",
            ],
            timing_rows,
        ),
        "",
        "## Plots",
        "",
        *[f"![{name}]({name})" for name in figures],
        "",
    ]
    return "\n".join(parts)


def _finish(figure, xlabel: str, ylabel: str, title: str) -> bytes:
    """Log-log axes, labels and legend; the figure as PNG bytes (the figure is closed)."""
    import matplotlib.pyplot as plt

    axes = figure.axes[0]
    axes.set(xscale="log", yscale="log", xlabel=xlabel, ylabel=ylabel, title=title)
    axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


# A final loss above this is drawn as diverged (x): in float64 a run can blow up to
# 1e300 and stay finite, beyond what a log axis can draw.
BLOWN_UP_LOSS = 1e30


def plots(tables: SuiteTables) -> dict[str, bytes]:
    """curves-<problem>.png (loss against step at each optimizer's best rate) and
    sensitivity-<problem>.png (final loss against learning rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {}
    for problem, curves in tables.curves.groupby("problem"):
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        for optimizer, curve in curves.groupby("optimizer"):
            rate = curve["learning_rate"].iloc[0]
            axes.plot(curve["step"], curve["loss_mean"], label=f"{optimizer} (lr {rate:.3g})")
            axes.fill_between(curve["step"], curve["loss_min"], curve["loss_max"], alpha=0.2)
        images[f"curves-{problem}.png"] = _finish(
            figure,
            "step",
            "loss (mean over seeds; band: min-max)",
            f"{problem}: loss at each optimizer's best learning rate",
        )
    for problem, runs in tables.convergence.groupby("problem"):
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        for optimizer, grid in runs.groupby("optimizer"):
            by_rate = grid.groupby("learning_rate")
            median = by_rate["final_loss"].median()
            shown = median.where(median <= BLOWN_UP_LOSS)
            line = axes.plot(median.index, shown, marker=".", label=optimizer)[0]
            diverged = by_rate["diverged_at"].apply(lambda d: bool((d >= 0).any())) | shown.isna()
            rates = diverged[diverged].index
            if len(rates):
                kept = runs["final_loss"].where(runs["final_loss"] <= BLOWN_UP_LOSS)
                axes.scatter(rates, np.full(len(rates), kept.max() * 3), marker="x", color=line.get_color())
        images[f"sensitivity-{problem}.png"] = _finish(
            figure,
            "learning rate",
            "final loss (median over seeds)",
            f"{problem}: sensitivity to the learning rate (x: a seed diverged)",
        )
    return images


def _device_label(row, machines: int) -> str:
    label = f"{row.device} x{row.device_count}"
    return f"{label} ({row.machine})" if machines > 1 else label


def devices_markdown(devices: pd.DataFrame, figures: list[str]) -> str:
    """devices.md: the device comparison of every machine measured, and the scaling plots."""
    rows = [
        [
            row.machine,
            _device_label(row, machines=1),
            row.problem,
            row.optimizer,
            f"{_fmt(row.ns_per_lr_step)} [{_fmt(row.ns_per_lr_step_min)}, {_fmt(row.ns_per_lr_step_max)}]",
            _fmt(row.lr_steps_per_s),
            _fmt(row.speedup_over_one_cpu),
        ]
        for row in devices.itertuples()
    ]
    header = ["machine", "devices", "problem", "optimizer", "ns/LR-step [min, max]", "LR-steps/s", "speedup"]
    runs = sorted(set(devices["n_runs"]))
    return "\n".join(
        [
            "# Devices compared",
            "",
            f"Each sweep: {', '.join(map(str, runs))} learning rates, one seed, float32; "
            "speedup is over one CPU device of the same machine, measured in the same run "
            "(`python -m bench devices`; tables devices.csv and scaling.csv).",
            "",
            _markdown_table(header, rows),
            "",
            *[f"![{name}]({name})" for name in figures],
            "",
        ]
    )


def scaling_plots(scaling: pd.DataFrame) -> dict[str, bytes]:
    """scaling-learning-rates.png and scaling-examples.png: cost per LR-step against grid and data size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    machines = scaling["machine"].nunique()
    images = {}
    series = {  # x column, y column, one line per, x label, y label, what was run
        "learning_rates": (
            "n_runs", "ns_per_lr_step", "problem",
            "learning rates in the sweep", "ns per LR-step", "plain GD, textbook problems",
        ),
        "examples": (
            "n_examples", "ns_per_lr_example_step", "n_features",
            "examples", "ns per LR-step per example", f"plain GD, regression, {SCALING_EXAMPLES_RATES} rates",
        ),
    }  # fmt: skip
    for name, (x, y, line_key, xlabel, ylabel, what) in series.items():
        rows = scaling[scaling["series"] == name]
        if rows.empty:
            continue
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        for _, line in rows.groupby(["machine", "device", "device_count", line_key]):
            line = line.sort_values(x)
            first = next(line.itertuples())
            key = f"{line_key.replace('_', ' ')} {getattr(first, line_key)}"
            label = f"{_device_label(first, machines)}, {key}"
            axes.plot(line[x], line[y], marker=".", label=label)
        images[f"scaling-{name.replace('_', '-')}.png"] = _finish(
            figure, xlabel, ylabel, f"{what}: cost against {xlabel}"
        )
    return images
