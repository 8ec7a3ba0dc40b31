"""What a person reads: summary.md and the PNG plots."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from bench.devices import SCALING_EXAMPLES_RATES
from bench.lessons import COST_LESSON_RATES, Lessons, fitted_line
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


BEST_RATE_HEADER = [
    "problem",
    "optimizer",
    "best lr",
    "tuning: points x seeds",
    "seeds at target",
    "steps to target (median)",
    "final loss (median)",
    "diverged runs of the grid",
]
SPEED_HEADER = [
    "problem",
    "optimizer",
    "implementation",
    "what is timed",
    "runs",
    "compile s",
    "ns / LR-step",
    "speedup over textbook loop",
    "ratio to floor",
    "ratio to floor + exp",
]


def _point_note(others: str, schedule: str) -> str:
    """A point's other hyperparameters and the schedule, where there are any."""
    notes = [*others.split(";"), *([f"{schedule} schedule"] if schedule != "constant" else [])]
    notes = [note for note in notes if note]
    return f" ({', '.join(notes)})" if notes else ""


def _best_text(rate, others, row) -> str:
    """The best point, flagged where it is on its grid's edge or was chosen by final loss (none at target)."""
    flags = [
        *(["on the grid's edge"] if row.best_on_edge else []),
        *(["no point at target: lowest final loss"] if row.best_by == "final_loss" else []),
    ]
    return _fmt(rate) + _point_note(others, row.schedule) + (f" **[{'; '.join(flags)}]**" if flags else "")


def _at_target(row) -> str:
    """How many seeds reached the target; one run where seeds change nothing (said, not a percentage)."""
    if not row.seeds_matter:
        return ("yes" if row.reached_fraction == 1 else "no") + " (n = 1: seeds change nothing)"
    return f"{row.reached_fraction:.0%} of {row.n_seeds}"


def _steps(value, digits=None) -> str:
    """A step count (a median may end in .5), or never."""
    if isinstance(value, float) and np.isnan(value):
        return "-"
    return "never" if value == np.inf else f"{value:,.6g}"


def _best_rate_table(summary: pd.DataFrame) -> str:
    rows = [
        [
            row.problem,
            row.optimizer,
            _best_text(row.best_learning_rate, row.best_hyperparameters, row),
            f"{row.tuning_points} x {row.n_seeds}",
            _at_target(row),
            _steps(row.steps_to_target_median)
            + (f" (every {row.target_resolution})" if row.target_resolution > 1 else ""),
            _fmt(row.final_loss_median, 6),
            f"{row.diverged_runs} of {row.tuning_points * row.n_seeds}",
        ]
        for row in summary.sort_values(["problem", "optimizer"]).itertuples()
    ]
    return _markdown_table(BEST_RATE_HEADER, rows)


def _speed_table(timing: pd.DataFrame) -> str:
    rows = [
        [
            row.problem,
            row.optimizer,
            row.implementation,
            row.includes,
            str(row.n_runs),
            _fmt(row.compile_s),
            f"{_fmt(row.ns_per_lr_step)} [{_fmt(row.ns_per_lr_step_min)}, {_fmt(row.ns_per_lr_step_max)}]",
            _fmt(row.speedup_over_textbook),
            _fmt(row.ratio_to_floor),
            _fmt(row.ratio_to_floor_with_transcendentals),
        ]
        for row in timing.sort_values(["problem", "optimizer", "implementation"]).itertuples()
    ]
    return _markdown_table(SPEED_HEADER, rows)


def _heading_line(metadata: dict) -> str:
    return (
        f"{metadata['date_utc']} on {metadata['device_count']} x {metadata['device_kind']} "
        f"({metadata['cpu_model']}); {metadata['profile']} profile, {metadata['dtype']}, seeds "
        f"{metadata['seeds']}; jax {metadata['versions']['jax']}, optax {metadata['versions']['optax']}, "
        f"gdjax {metadata['versions']['gdjax']}. Floor: {metadata['floor_gflop_per_s']:.3g} GFLOP/s and "
        f"{metadata['floor_gexp_per_s']:.3g} G exp/s (jitted multiply-add and exp kernels, this run). "
        "Columns: see docs/results-format.md."
    )


TARGETS = (
    "Targets: least-squares regressions (the textbook's, standardised or not, or a CSV file's) within "
    "1% of the least-squares cost; logistic regression within 0.01% of its exact minimum (Newton's "
    "method); XOR loss ≤ 0.01 (all four outputs on the right side of 0.5); Rosenbrock loss ≤ 1e-9 "
    "(within about 7e-5 of (1, 1)). A problem of your own (module:function) declares its target in "
    "its gdjax.Facts; without one its best point is the one of lowest final loss, flagged. A run is "
    "at the target only if it stays there to the end. Diverged, in every dtype: the loss not finite, "
    "or its excess over the known minimum above 1e6 times the starting excess (above max(1e30, 1e6 x "
    "|starting loss|) where no "
    "minimum is known)."
)


def summary_markdown(tables: SuiteTables, metadata: dict, figures: list[str]) -> str:
    """summary.md: the best learning rates, steps to target, final loss, speed against the baselines."""
    summary = tables.summary.sort_values(["problem", "optimizer"])
    stability = [
        f"- {row.problem}, {row.optimizer}: predicted limit 2/λmax = {_fmt(row.predicted_stability_limit)}, "
        f"largest learning rate of the grid with no diverged seed = {_fmt(row.largest_finite_learning_rate)}"
        for row in summary.itertuples()
        if not np.isnan(row.predicted_stability_limit)
    ]
    parts = [
        f"# gdjax benchmark: {metadata['device_tag']}",
        "",
        _heading_line(metadata),
        "",
        "## Best learning rate per optimizer",
        "",
        _best_rate_table(summary),
        "",
        TARGETS,
        "",
        *_standardization_lines(summary),
        *stability,
        "",
        "## Speed (ns per learning-rate step: median [min, max] of the repeats)",
        "",
        _speed_table(tables.timing),
        "",
        *_tuned_section(tables.tuned),
        *_sklearn_section(tables.sklearn, tables.summary["problem"]),
        *_conditioning_section(tables.conditioning),
        "## Plots",
        "",
        *[f"![{name}]({name})" for name in figures],
        "",
    ]
    return "\n".join(parts)


def _rows_of(frame: pd.DataFrame, problem: str) -> pd.DataFrame:
    return frame[frame["problem"] == problem]


def report_markdown(tables: SuiteTables, metadata: dict, figures: list[str]) -> str:
    """report.md: per problem, its plots side by side, then its tables (best rate, tuned, speed)."""
    parts = [f"# gdjax report: {metadata['device_tag']}", "", _heading_line(metadata), "", TARGETS, ""]
    problems = list(dict.fromkeys(tables.summary["problem"]))
    parts += [
        "Problems: " + ", ".join(f"[{name}](#{name.replace(':', '').lower()})" for name in problems),
        "",
    ]
    for problem in problems:
        drawn = [name for name in sorted(figures) if name.removesuffix(".png").split("-", 1)[-1] == problem]
        pairs = [drawn[i : i + 2] for i in range(0, len(drawn), 2)]
        images = "".join(
            "<tr>"
            + "".join(f'<td><img src="{name}" width="420" alt="{name}"></td>' for name in pair)
            + "</tr>"
            for pair in pairs
        )
        parts += [
            f"## {problem}",
            "",
            f"<table>{images}</table>" if images else "",
            "",
            "**Best learning rate of the grid**",
            "",
            _best_rate_table(_rows_of(tables.summary, problem)),
            "",
        ]
        if tables.tuned is not None:
            parts += [
                "**Tuned: the best rate on fresh seeds**",
                "",
                _tuned_table(_rows_of(tables.tuned, problem)),
                "",
            ]
        parts += ["**Speed**", "", _speed_table(_rows_of(tables.timing, problem)), ""]
    parts += networks_section(tables.networks)
    parts += grids_section(tables.grids)
    networks_drawn = [name for name in sorted(figures) if name.startswith("accuracy-")]
    parts += [f'<img src="{name}" width="420" alt="{name}">' for name in networks_drawn]
    profiles_drawn = [name for name in sorted(figures) if name.startswith("profile-")]
    if profiles_drawn:
        parts += [
            "",
            "## Performance profiles",
            "",
            "Per optimizer, the fraction of problems brought to the target within tau times the least work "
            "of any optimizer compared (Dolan and Moré; profiles.csv says which problems and optimizers).",
            "",
            *[f'<img src="{name}" width="420" alt="{name}">' for name in profiles_drawn],
        ]
    parts += ["", TUNED_NOTE, ""]
    return "\n".join(parts)


def _standardization_lines(summary: pd.DataFrame) -> list[str]:
    """How many steps plain GD saves on the textbook regression when its feature is standardised."""
    gd = summary[summary["optimizer"] == "gd"].set_index("problem")
    if not {"linear_regression", "linear_regression_standardized"} <= set(gd.index):
        return []
    raw, scaled = gd.loc["linear_regression"], gd.loc["linear_regression_standardized"]
    return [
        f"Standardising the feature: plain GD reaches the target in {_steps(scaled.steps_to_target_median)} "
        f"steps (best rate {_fmt(scaled.best_learning_rate)}) instead of "
        f"{_steps(raw.steps_to_target_median)} (best rate {_fmt(raw.best_learning_rate)}); the textbook "
        "runs 100,000.",
        "",
    ]


def _tuned_section(tuned: pd.DataFrame | None) -> list[str]:
    if tuned is None:
        return []
    return [
        "## Tuned comparison: the best rate rerun on fresh seeds",
        "",
        TUNED_NOTE,
        "",
        _tuned_table(tuned),
        "",
    ]


TUNED_NOTE = (
    "Each optimizer's point was picked on the grid's seeds (tuning budget: points x seeds), then rerun "
    "on seeds 1000..1009, which the tuning never saw, the same seeds for every optimizer (paired). Where "
    "seeds change nothing (fixed start, full batch) the tuning run at the best point is reported, n = 1, "
    "without an interval. "
    "Medians with 95% order-statistic intervals ([2nd, 9th] of 10 values, coverage 97.9% for any "
    "distribution); a seed that never reached the target counts as never. Steps to target: the start "
    "of the run's final stay at or below the target, exact for full batch, at the logging interval "
    "for minibatches. Tuneability: the width of the rate range around the best within 2x of its "
    "steps to target (or of its excess final loss, where not every seed reached the target)."
)


def _median_and_interval(median, low, high, digits, text=_fmt) -> str:
    if np.isnan(median):
        return "-"
    interval = "" if np.isnan(low) else f" [{text(low, digits)}, {text(high, digits)}]"
    return f"{text(median, digits)}{interval}"


def _tuned_table(tuned: pd.DataFrame) -> str:
    rows = [
        [
            row.problem,
            row.optimizer,
            _best_text(row.learning_rate, row.hyperparameters, row),
            f"{row.tuning_points} x {row.tuning_seeds}",
            _at_target(row) + (f" ({row.diverged_seeds} diverged)" if row.diverged_seeds else ""),
            _median_and_interval(
                row.steps_to_target_median,
                row.steps_to_target_ci_low,
                row.steps_to_target_ci_high,
                4,
                _steps,
            )
            + (f" (every {row.target_resolution})" if row.target_resolution > 1 else ""),
            _median_and_interval(row.final_loss_median, row.final_loss_ci_low, row.final_loss_ci_high, 6),
            f"{row.tuneability_decades:.2g} ({_fmt(row.tuneable_lr_low)} to {_fmt(row.tuneable_lr_high)})",
        ]
        for row in tuned.sort_values(["problem", "optimizer"]).itertuples()
    ]
    header = [
        "problem",
        "optimizer",
        "lr",
        "tuning: points x seeds",
        "fresh seeds at target",
        "steps to target: median [95% CI]",
        "final loss: median [95% CI]",
        "tuneability: decades (rates)",
    ]
    return _markdown_table(header, rows)


# The problem the scikit-learn comparison runs on (bench.runner), standardised.
SKLEARN_PROBLEM = "linear_regression"


def _sklearn_section(sklearn: pd.DataFrame | None, problems) -> list[str]:
    """scikit-learn beside gdjax; where there is no table, the true reason why (``problems``: the run's)."""
    heading = ["## scikit-learn beside gdjax (regression, feature standardised)", ""]
    if sklearn is None:
        return [*heading, _sklearn_skipped(problems), ""]
    rows = [
        [
            row.implementation,
            _fmt(row.learning_rate),
            _fmt(float(row.epochs)),
            str(row.runs),
            _fmt(row.seconds),
            _fmt(row.final_loss, 7),
            _fmt(row.loss_ratio_to_least_squares, 6),
        ]
        for row in sklearn.itertuples()
    ]
    header = ["implementation", "lr", "epochs", "runs", "seconds", "final loss", "/ least squares"]
    return [*heading, _markdown_table(header, rows), ""]


def _sklearn_skipped(problems) -> str:
    """Why a run has no scikit-learn table: the textbook regression was not in it, or no scikit-learn."""
    if SKLEARN_PROBLEM not in set(problems):
        return (
            f"Not run: the comparison with scikit-learn runs on the textbook regression ({SKLEARN_PROBLEM}) "
            "only, which this run did not include; nothing to compare."
        )
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return "Skipped: scikit-learn is not installed (pip install scikit-learn)."
    return "Skipped: this run has no scikit-learn table (its cached results were made without scikit-learn)."


def _finish(
    figure, xlabel: str, ylabel: str, title: str, scales=("log", "log"), *, legend=None, title_pad=None
) -> bytes:
    """Axes scales (default log-log), labels and legend; the figure as PNG bytes (the figure is closed).

    ``legend``: keyword arguments of ``axes.legend`` (default: matplotlib's best place inside);
    ``title_pad``: points between the axes and the title (room for marks above the axes).
    """

    axes = figure.axes[0]
    # a log axis needs a positive value: every loss 0 (an exact minimum) or NaN (all diverged) has none
    positive = (axes.dataLim.x1 > 0, axes.dataLim.y1 > 0)  # x1, y1: the largest values (-inf if none)
    scales = tuple(scale if has else "linear" for scale, has in zip(scales, positive, strict=True))
    axes.set(xscale=scales[0], yscale=scales[1], xlabel=xlabel, ylabel=ylabel)
    axes.set_title(title, pad=title_pad)
    axes.legend(**(legend or {}))
    return _png(figure)


# Outside the axes, right of them: where a legend covers nothing drawn (the paths' contours).
LEGEND_OUTSIDE = {
    "loc": "upper left",
    "bbox_to_anchor": (1.02, 1.0),
    "borderaxespad": 0.0,
    "fontsize": "small",
}

# One look per series, in drawing order: each later series is drawn narrower, broken and on top of the
# ones before, with markers of its own placed elsewhere along the line, so that series that coincide
# (gd and sgd on Rosenbrock: no data to sample, the same runs) or overlap (gd and momentum on the
# standardised regression) all stay visible.
SERIES_LOOKS = (
    {"linestyle": "-", "linewidth": 3.2, "marker": "o", "markersize": 7.5},
    {"linestyle": "--", "linewidth": 2.4, "marker": "s", "markersize": 6.0},
    {"linestyle": "-.", "linewidth": 1.7, "marker": "^", "markersize": 5.5},
    {"linestyle": ":", "linewidth": 1.7, "marker": "D", "markersize": 4.0},
    {"linestyle": (0, (6, 2, 1, 2, 1, 2)), "linewidth": 1.2, "marker": "v", "markersize": 4.0},
)


def _look(index: int, *, spaced_markers: bool = True) -> dict:
    """Line keywords of the ``index``-th series drawn (colour C<index>, as matplotlib's cycle).

    ``spaced_markers``: markers every ~12% of the axes' diagonal, each series' offset from the
    others' (for curves of many points); else one on every point (a point per learning rate).
    """
    look = dict(SERIES_LOOKS[index % len(SERIES_LOOKS)], color=f"C{index}", zorder=2 + 0.1 * index)
    if spaced_markers:
        look["markevery"] = (0.02 + 0.03 * (index % 4), 0.12)
    return look


def _coinciding(series: dict[str, np.ndarray]) -> dict[str, list[str]]:
    """For each series, the others equal to it (same shape, equal to 1e-9 relative): drawn on one another."""
    same = {name: [] for name in series}
    names = list(series)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            a, b = np.asarray(series[first], float), np.asarray(series[second], float)
            if a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=0.0, equal_nan=True):
                same[first].append(second)
                same[second].append(first)
    return same


def _same_note(others: list[str]) -> str:
    return f"; same curve as {', '.join(others)}" if others else ""


def _png(figure) -> bytes:
    """The figure as PNG bytes, with no software tag (the same bytes every run); the figure is closed."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def plots(tables: SuiteTables) -> dict[str, bytes]:
    """curves-<problem>.png (loss against step at each optimizer's best rate) and
    sensitivity-<problem>.png (final loss against learning rate)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {}
    for problem, curves in tables.curves.groupby("problem"):
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        by_optimizer = dict(list(curves.groupby("optimizer")))
        same = _coinciding(
            {name: curve[["step", "loss_mean"]].to_numpy(float) for name, curve in by_optimizer.items()}
        )
        for index, (optimizer, curve) in enumerate(by_optimizer.items()):
            rate = curve["learning_rate"].iloc[0]
            # markers spaced along the line need a point to start from (matplotlib fails on none)
            look = _look(index, spaced_markers=bool(np.isfinite(curve["loss_mean"].to_numpy(float)).any()))
            label = f"{optimizer} (lr {rate:.3g}{_same_note(same[optimizer])})"
            axes.plot(curve["step"], curve["loss_mean"], label=label, **look)
            axes.fill_between(
                curve["step"],
                curve["loss_min"],
                curve["loss_max"],
                alpha=0.15,
                color=look["color"],
                linewidth=0,
            )
        images[f"curves-{problem}.png"] = _finish(
            figure,
            "step",
            "loss (mean over seeds; band: min-max)",
            f"{problem}: loss at each optimizer's best learning rate",
        )
    for problem, runs in tables.convergence.groupby("problem"):
        images[f"sensitivity-{problem}.png"] = _sensitivity_plot(problem, runs)
    return images


def _sensitivity_plot(problem: str, runs: pd.DataFrame) -> bytes:
    """Final loss against learning rate, one line per optimizer.

    A rate where a seed diverged has no loss drawn: an x marks it along the top edge of the axes,
    just above it (the next optimizer's a row higher; the rows labelled "diverged"), placed in axes
    fractions so that the diverged runs' enormous or infinite losses never set the loss axis.
    """
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    medians, diverged_rates = {}, {}
    for optimizer, grid in runs.groupby("optimizer"):
        by_rate = grid.groupby("learning_rate")
        diverged = by_rate["diverged_at"].apply(lambda d: bool((d >= 0).any()))  # the one rule
        medians[optimizer] = by_rate["final_loss"].median().where(~diverged)
        diverged_rates[optimizer] = diverged[diverged].index.to_numpy(float)
    same = _coinciding({name: np.column_stack([m.index, m]) for name, m in medians.items()})
    rows = 0
    for index, (optimizer, median) in enumerate(medians.items()):
        look = _look(index, spaced_markers=False)
        axes.plot(median.index, median, label=optimizer + _same_note(same[optimizer]), **look)
        rates = diverged_rates[optimizer]
        if len(rates):  # x in data, y in axes fractions: a row at the top edge, whatever the losses
            height = DIVERGED_ROW_FIRST + DIVERGED_ROW_STEP * rows
            axes.scatter(
                rates,
                np.full(len(rates), height),
                marker="x",
                s=28,
                color=look["color"],
                transform=axes.get_xaxis_transform(),
                clip_on=False,
                zorder=3,
            )
            rows += 1
    if rows:
        axes.annotate(
            "diverged",
            xy=(0.0, DIVERGED_ROW_FIRST + DIVERGED_ROW_STEP * (rows - 1) / 2),
            xycoords="axes fraction",
            xytext=(-5, 0),
            textcoords="offset points",
            ha="right",
            va="center",
            fontsize="small",
        )
    return _finish(
        figure,
        "learning rate",
        "final loss (median over seeds)",
        f"{problem}: sensitivity to the learning rate" + (" (x: a seed diverged)" if rows else ""),
        title_pad=8 + 9 * rows,
    )


# The rows of diverged marks along a sensitivity plot's top edge, just above it (clear of a legend
# inside), in fractions of the axes' height: the first row's height and the step to the next.
DIVERGED_ROW_FIRST = 1.025
DIVERGED_ROW_STEP = 0.035


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


def lesson_plots(lessons: Lessons) -> dict[str, bytes]:
    """fit-linear_regression.png (data, fitted lines, least squares), paths-<problem>.png (loss
    contours with each optimizer's path) and cost-linear_regression.png (GD's cost at three rates)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {}
    regression = lessons.problems.get("linear_regression")
    fits = {opt: res for (name, opt), res in lessons.paths.items() if name == "linear_regression"}
    if regression is not None and fits:
        figure, axes = plt.subplots(figsize=(6.4, 4.6))
        x = regression.X[:, 1]
        axes.scatter(x, regression.y, s=8, color="0.6", label="data")
        for optimizer, res in sorted(fits.items()):
            theta = res.params[0, 0]
            rate = res.learning_rates[0]
            axes.plot(x, regression.X @ theta, label=f"{optimizer} (lr {rate:.3g}): {fitted_line(theta)}")
        exact = regression.facts.optimum
        axes.plot(x, regression.X @ exact, "k--", label=f"least squares: {fitted_line(exact)}")
        images["fit-linear_regression.png"] = _finish(
            figure, "x", "y", "regression: each optimizer's fit at its best rate", scales=("linear", "linear")
        )
    for name, known in lessons.optima.items():
        images[f"paths-{name}.png"] = _paths_plot(lessons, name, known)
    if lessons.cost is not None:
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        steps = (np.arange(lessons.cost.loss_curve.shape[-1]) + 1) * lessons.cost.log_every
        for column, label in enumerate(COST_LESSON_RATES):
            curve = lessons.cost.loss_curve[0, column]
            diverged_at = lessons.cost.diverged_at[0, column]
            # drawn until it diverged
            shown = np.where((diverged_at < 0) | (steps < diverged_at), curve, np.nan)
            axes.plot(steps, shown, label=f"lr {lessons.cost.learning_rates[column]:.3g}: {label}")
        stayed = lessons.cost.diverged_at[0] < 0
        if stayed.any():  # the diverging run leaves through the top
            kept = lessons.cost.loss_curve[0, stayed]
            axes.set_yscale("log")
            axes.set_ylim(0.5 * kept.min(), 1e3 * kept[:, 0].max())
        images["cost-linear_regression.png"] = _finish(
            figure, "step", "cost J", "plain GD on the regression: track the cost to tune the rate"
        )
    return images


def _paths_plot(lessons: Lessons, name: str, known) -> bytes:
    """The loss's contours with each optimizer's path, framed on the well-behaved part of the paths.

    The frame holds the start, the minimum and the paths that never rise above the start's loss
    (``_path_frame``): a path that swings uphill (Adam's steps at a large rate, SGD's noise) may
    leave it, clipped and said so in its label and the title, instead of setting axes that squash
    the valley. The legend stands outside the axes, off the contours.
    """
    import jax
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    problem = lessons.problems[name]
    paths = {opt: res for (problem_name, opt), res in lessons.paths.items() if problem_name == name}
    start = np.asarray(problem.init(0), dtype=np.float64)
    drawn = {
        opt: np.vstack([start, np.asarray(res.params_curve)[0, 0].reshape(-1, 2)])
        for opt, res in sorted(paths.items())
    }
    marked = [] if known is None else [np.asarray(known, dtype=np.float64)]  # none for a problem of your own

    def loss_at(points):
        with jax.enable_x64(True):
            return np.asarray(jax.vmap(lambda theta: problem.loss(theta, problem.X, problem.y))(points))

    low, high = _path_frame(loss_at, start, marked, list(drawn.values()))
    grid = np.meshgrid(*(np.linspace(lo, hi, 200) for lo, hi in zip(low, high, strict=True)))
    loss = loss_at(np.stack([g.ravel() for g in grid], axis=1)).reshape(grid[0].shape)
    figure, axes = plt.subplots(figsize=(6.4, 4.8))
    floor = max(loss.min(), 1e-12)
    levels = np.geomspace(floor * 1.01, loss.max(), 25)
    axes.contour(*grid, loss, levels=levels, norm=LogNorm(), cmap="Greys", linewidths=0.6)
    same = _coinciding(drawn)
    clipped = []
    # the longest path (SGD's noise, a zigzag) lowest, so that the smooth ones stay visible over it
    scale = np.asarray(high) - np.asarray(low)
    length = {
        opt: np.nansum(np.linalg.norm(np.diff(path, axis=0) / scale, axis=1)) for opt, path in drawn.items()
    }
    for index, (optimizer, path) in enumerate(drawn.items()):
        rate = paths[optimizer].learning_rates[0]
        finite = path[np.all(np.isfinite(path), axis=1)]
        leaves = bool(np.any((finite < low) | (finite > high)))
        clipped += [optimizer] if leaves else []
        label = f"{optimizer} (lr {rate:.3g}{_same_note(same[optimizer])})" + (
            "\n  clipped: leaves the frame" if leaves else ""
        )
        look = _look(index, spaced_markers=False)
        every = max(1, len(path) // PATH_MARKERS)
        look.update(
            linewidth=0.6 * look["linewidth"],
            markevery=((index * every) // len(SERIES_LOOKS), every),  # each path's marks elsewhere
            alpha=0.85,
            zorder=2 + sorted(length.values(), reverse=True).index(length[optimizer]) * 0.1,
        )
        axes.plot(path[:, 0], path[:, 1], label=label, **look)
    axes.plot(*start, "ko", label="start", zorder=4)
    for minimum in marked:
        axes.plot(*minimum, "k*", markersize=12, label="minimum", zorder=4)
    axes.set_xlim(low[0], high[0])
    axes.set_ylim(low[1], high[1])
    labels = ("bias", "slope") if name == "linear_regression" else ("x0", "x1")
    title = f"{name}: each optimizer's path at its best rate"
    if clipped:
        title += f"\n(framed on the paths never above the start's loss; {', '.join(clipped)} clipped)"
    return _finish(figure, *labels, title, scales=("linear", "linear"), legend=LEGEND_OUTSIDE)


# A paths plot's frame: this fraction of its points' extent around them.
PATH_FRAME_PAD = 0.15
# Markers along each drawn path (a path's points are its logged steps, evenly spaced in steps).
PATH_MARKERS = 8


def _path_frame(loss_at, start, marked, paths) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) corners of a paths plot, padded: the start, the known minimum (``marked``) and the
    well-behaved paths, those whose loss never rises above the start's (``loss_at(points)``: the loss
    at each of (n, 2) points). Where no path is, the points of every path no higher than the start.

    The excursions of the others (a swing uphill, noise) are what a frame need not hold.
    """
    start_loss = loss_at(start[None])[0]
    ceiling = start_loss + 1e-6 * abs(
        start_loss
    )  # above the start's beyond rounding (sums batched otherwise)
    losses = [loss_at(path) for path in paths]
    below = [np.isfinite(loss) & (loss <= ceiling) for loss in losses]
    calm = [path for path, ok in zip(paths, below, strict=True) if ok.all()]
    kept = calm or [path[ok] for path, ok in zip(paths, below, strict=True)]
    kept = np.vstack([start, *marked, *kept])
    low, high = kept.min(axis=0), kept.max(axis=0)
    pad = PATH_FRAME_PAD * np.maximum(high - low, 1e-3)
    return low - pad, high + pad


def _conditioning_section(conditioning: pd.DataFrame | None) -> list[str]:
    """Steps to the quadratic's minimum: one row per condition number, one column per optimizer."""
    if conditioning is None:
        return []
    steps = conditioning.pivot(index="condition_number", columns="optimizer", values="steps_to_target")
    rows = [
        [_fmt(float(k)), *(str(int(v)) if v >= 0 else "not reached" for v in steps.loc[k])]
        for k in steps.index
    ]
    return [
        "## Condition number (gdjax.quadratic, steps to 1e-10 of the starting loss at each best rate)",
        "",
        _markdown_table(["condition number", *steps.columns], rows),
        "",
    ]


def network_plots(networks) -> dict[str, bytes]:
    """accuracy-<problem>.png (test accuracy against epoch at each optimizer's best rate, fresh seeds)
    and accuracy-lr-<problem>.png (final validation and test accuracy against learning rate, tuning)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {}
    for problem, curves in networks.curves.groupby("problem"):
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        for optimizer, curve in curves.groupby("optimizer"):
            rate = curve["learning_rate"].iloc[0]
            axes.plot(
                curve["epoch"], curve["test_accuracy_mean"], marker=".", label=f"{optimizer} (lr {rate:.3g})"
            )
            axes.fill_between(
                curve["epoch"], curve["test_accuracy_min"], curve["test_accuracy_max"], alpha=0.2
            )
        target = networks.summary.loc[networks.summary["problem"] == problem, "target_test_accuracy"].iloc[0]
        axes.axhline(target, color="grey", linestyle=":", label=f"target {target:.0%}")
        images[f"accuracy-{problem}.png"] = _finish(
            figure,
            "epoch (passes over the training set)",
            "test accuracy (mean over fresh seeds; band: min-max)",
            f"{problem}: test accuracy at each optimizer's best rate",
            scales=("linear", "linear"),
        )
    for problem, runs in networks.convergence.groupby("problem"):
        figure, axes = plt.subplots(figsize=(6.4, 4.2))
        for optimizer, grid in runs.groupby("optimizer"):
            by_rate = grid.groupby("learning_rate")
            line = axes.plot(
                by_rate["validation_accuracy"].mean(), marker=".", label=f"{optimizer} validation"
            )[0]
            axes.plot(by_rate["test_accuracy"].mean(), linestyle="--", color=line.get_color(), label="test")
        images[f"accuracy-lr-{problem}.png"] = _finish(
            figure,
            "learning rate",
            "final accuracy (mean over tuning seeds)",
            f"{problem}: accuracy against learning rate (solid: validation, dashed: test)",
            scales=("log", "linear"),
        )
    return images


NETWORKS_HEADER = [
    "problem",
    "optimizer",
    "batch",
    "epochs",
    "best lr (validation)",
    "test accuracy, fresh seeds",
    "95% interval",
    "seeds at target",
    "steps to target (median)",
    "epochs",
    "seconds",
    "us / run-step",
]


def networks_table(summary: pd.DataFrame) -> str:
    """The networks' results as a Markdown table (report.md, and the README's from the committed CSV)."""
    rows = []
    for row in summary.sort_values(["problem", "optimizer"]).itertuples():
        rows.append(
            [
                row.problem,
                row.optimizer,
                str(row.batch_size or "all"),
                _fmt(row.epochs),
                _fmt(row.best_learning_rate) + (" (edge)" if row.best_on_edge else ""),
                _mean_std(row.test_accuracy_mean, row.test_accuracy_std),
                f"[{_fmt(row.test_accuracy_ci_low)}, {_fmt(row.test_accuracy_ci_high)}]",
                f"{row.reached_fraction:.0%} of {row.n_fresh_seeds} (target {row.target_test_accuracy:.0%})",
                _fmt(row.steps_to_target_median),
                _fmt(row.epochs_to_target_median),
                _fmt(row.seconds_to_target_median),
                _fmt(row.ns_per_run_step / 1e3),
            ]
        )
    return _markdown_table(NETWORKS_HEADER, rows)


NETWORKS_NOTE = (
    "Each optimizer's rate is chosen on the validation split ({points} rates x {seeds} tuning seeds), "
    "then rerun on {fresh} fresh seeds: test accuracy after the last step (mean ± standard deviation, "
    "95% Student-t interval of the mean). Every optimizer runs the same epochs; gd steps on the whole "
    "training set. Steps to target: the median over the fresh seeds of the first logged step from which "
    "the test accuracy stays at or above the target (a seed that never got there counts as never: inf), "
    "at the logging interval's resolution (log_every in networks-summary.csv); seconds = those steps x "
    "the sweep's time per run-step (logging included). An (edge) best rate may lie outside the grid."
)


def networks_section(networks) -> list[str]:
    """report.md's networks section: how the numbers were made, then the table."""
    if networks is None:
        return []
    first = networks.summary.iloc[0]
    note = NETWORKS_NOTE.format(
        points=int(first.tuning_points), seeds=int(first.tuning_seeds), fresh=int(first.n_fresh_seeds)
    )
    return ["## Networks: MNIST-1D and digits", "", note, "", networks_table(networks.summary), ""]


def grid_plots(grids) -> dict[str, bytes]:
    """grid-<problem>-<optimizer>.png: steps to target over (learning rate x the second axis).

    One square per grid point, whatever the axes' spacing (the ticks name the
    values). Diverged cells are crossed, cells that never reached the target
    left blank, the best cell starred; where no cell reached a target the
    colour is the final loss. On a quadratic loss with a constant rate, the
    heavy ball's predicted stability limit 2 (1 + beta) / L is drawn as a line
    and its predicted optimum (lr*, beta*) as a circle (gdjax.theory). A grid
    with one value on an axis has no picture.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    images = {}
    for (problem, optimizer), cells in grids.cells.groupby(["problem", "optimizer"], sort=False):
        rates, values = np.unique(cells["learning_rate"]), np.unique(cells["value"])
        if len(rates) < 2 or len(values) < 2:
            continue
        shape = (len(rates), len(values))
        ordered = cells.sort_values(["learning_rate", "value"])
        steps = ordered["steps_to_target_median"].to_numpy(float).reshape(shape).T
        diverged = ordered["diverged_fraction"].to_numpy(float).reshape(shape).T > 0
        reached = np.isfinite(steps).any()
        if not reached:  # no cell reached a target (or there is none): the final loss
            steps = ordered["final_loss_median"].to_numpy(float).reshape(shape).T
        shown = np.where(np.isfinite(steps) & (steps > 0) & ~diverged, steps, np.nan)
        figure, axes = plt.subplots(figsize=(6.4, 4.6))
        columns, rows = np.arange(len(rates)), np.arange(len(values))
        mesh = axes.pcolormesh(
            np.append(columns, len(rates)) - 0.5,
            np.append(rows, len(values)) - 0.5,
            shown,
            norm=LogNorm() if np.isfinite(shown).any() else None,
            cmap="viridis_r",
            shading="flat",
        )
        label = "steps to target (median over seeds)" if reached else "final loss (median over seeds)"
        figure.colorbar(mesh, ax=axes, label=label)
        grid_x, grid_y = np.meshgrid(columns, rows)
        axes.scatter(
            grid_x[diverged], grid_y[diverged], marker="x", s=10, color="firebrick", label="diverged"
        )
        best = cells[cells["best"]]
        if len(best):
            at = (
                np.searchsorted(rates, best["learning_rate"].iloc[0]),
                np.searchsorted(values, best["value"].iloc[0]),
            )
            what = (
                f"fastest: {_fmt(best['steps_to_target_median'].iloc[0])} steps"
                if reached
                else "lowest final loss"
            )
            edge = " (on the edge)" if best["best_on_edge"].iloc[0] else ""
            axes.scatter(*at, marker="*", s=160, color="white", edgecolors="black", label=what + edge)
        axis = cells["axis"].iloc[0]
        constant = (cells["schedule"] == "constant").all() if "schedule" in cells else True
        if optimizer == "momentum" and axis == "momentum" and constant:
            _draw_heavy_ball_theory(axes, problem, rates, values)
        for set_ticks, set_labels, grid in ((axes.set_xticks, axes.set_xticklabels, rates),
                                            (axes.set_yticks, axes.set_yticklabels, values)):  # fmt: skip
            ticks = np.unique(np.linspace(0, len(grid) - 1, min(len(grid), 6)).round().astype(int))
            set_ticks(ticks)
            set_labels([_fmt(float(grid[i])) for i in ticks])
        axes.set_xlim(-0.5, len(rates) - 0.5)
        axes.set_ylim(-0.5, len(values) - 0.5)
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize="small")
        seeds = int(cells["n_seeds"].iloc[0])
        title = f"{problem}, {optimizer} ({seeds} seed{'s' if seeds > 1 else ''})"
        axes.set(xlabel="learning rate (one column per grid value)", ylabel=axis, title=title)
        images[f"grid-{problem}-{optimizer}.png"] = _png(figure)
    return images


def _draw_heavy_ball_theory(axes, problem: str, rates: np.ndarray, values: np.ndarray) -> None:
    """The heavy ball's predicted limit and optimum in a heatmap's grid coordinates."""
    from bench.grids import PROBLEMS
    from gdjax.theory import curvature

    try:
        theory = curvature(PROBLEMS[problem]())
    except (KeyError, ValueError):  # a problem of one's own, or a loss that is not quadratic
        return
    columns, rows = np.arange(len(rates)), np.arange(len(values))

    def column_of(rate):
        return np.interp(np.log(rate), np.log(rates), columns, left=np.nan, right=np.nan)

    betas = np.linspace(values[0], values[-1], 100)
    limit = column_of(theory.heavy_ball_limit(betas))
    axes.plot(
        limit, np.interp(betas, values, rows), color="black", linestyle="--", label="predicted limit 2(1+β)/L"
    )
    rate, beta = theory.heavy_ball_optimum
    axes.scatter(
        [column_of(rate)],
        [np.interp(beta, values, rows, left=np.nan, right=np.nan)],
        marker="o",
        s=80,
        facecolors="none",
        edgecolors="black",
        label=f"predicted optimum ({rate:.3g}, {beta:.3g})",
    )


THEORY_HEADER = ["problem", "κ", "quantity", "at momentum", "predicted", "measured", "grid steps apart"]


def theory_table(theory: pd.DataFrame) -> str:
    """theory.csv as a Markdown table (report.md, and the README's from the committed CSV)."""
    rows = [
        [row.problem, _fmt(row.kappa, 5), row.quantity, _fmt(row.momentum), _fmt(row.predicted, 4),
         _fmt(row.measured, 4), _fmt(row.cells_apart, 2)]
        for row in theory.itertuples()
    ]  # fmt: skip
    return _markdown_table(THEORY_HEADER, rows)


GRIDS_NOTE = (
    "Each picture is one compiled sweep over a grid of (learning rate x a second hyperparameter): steps to "
    "the problem's target per cell (median over seeds), diverged cells crossed, the best cell starred. The "
    "profiles' heatmaps watch the loss every step (exact counts of the final stay at the target) and cross "
    "a cell whose run diverged by convergence.csv's one rule (diverged_at; a run growing slowly past the "
    "stability limit may not diverge within the heatmap's steps); a custom --grid run's cells come from "
    "its convergence.csv, and its star is summary.csv's best point. On a quadratic loss at a constant rate "
    "the heavy ball's predicted stability limit and optimum are drawn beside the measurement "
    "(gdjax.theory); the optimum is asymptotic, and finite-time counts favour a slightly larger momentum."
)


def grids_section(grids) -> list[str]:
    """report.md's heatmaps section: how they were made, the pictures, then theory against measurement."""
    if grids is None:
        return []
    pictures = [
        f'<img src="grid-{problem}-{optimizer}.png" width="420" alt="{problem} {optimizer}">'
        for problem, optimizer in dict.fromkeys(
            zip(grids.cells["problem"], grids.cells["optimizer"], strict=True)
        )
    ]
    theory = [theory_table(grids.theory), ""] if len(grids.theory) else []
    return ["## Grids over two hyperparameters, and theory", "", GRIDS_NOTE, "", *pictures, "", *theory]
