"""Performance profiles (Dolan and More, 2002) of a run's optimizers: profiles.csv and its plots.

For a set of optimizers S and problems P, let t(p, s) be the work optimizer s
needs to reach problem p's target (inf where it did not). The performance
ratio is r(p, s) = t(p, s) / min over s' in S of t(p, s'), and optimizer s's
profile is

    rho_s(tau) = |{p in P : r(p, s) <= tau}| / |P|,

the fraction of problems it solves within a factor tau of the best optimizer
on each. rho_s(1) is the fraction on which s is the best (ties count for
each); rho_s rises to the fraction of P that s solved. Here P holds the
problems every optimizer of S ran and at least one solved: a problem none
solved would lower every profile alike and is counted apart
(``unsolved_problems``), as are problems some optimizer did not run (the
networks have no gd; ``not_compared_problems``). The ratios are relative to
the best of S: add or remove an optimizer and every profile may change, so
a profile names the set it compared.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# quantity -> (tuned.csv's column, networks-summary.csv's column): the work to target, a median over
# fresh seeds, inf where half or more of them never reached the target
MEASURES = {
    "gradient_evaluations": ("steps_to_target_median", "gradient_evaluations_to_target_median"),
    "examples": ("examples_to_target_median", "examples_to_target_median"),
    "seconds": ("seconds_to_target_median", "seconds_to_target_median"),
}
MEASURE_LABELS = {
    "gradient_evaluations": "gradient evaluations (steps, one gradient of its batch each)",
    "examples": "examples (steps x examples a step)",
    "seconds": "seconds (steps x measured time a step)",
    "work": "examples x gradient evaluations a step (python -m bench submit's work.csv)",
}


def work_to_target(tuned: pd.DataFrame, networks_summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """The work each (problem, optimizer) needed, one row per quantity: columns quantity, problem,
    optimizer, work (inf: not solved; NaN: not measured)."""
    frames = []
    for source, frame in (("tuned", tuned), ("networks", networks_summary)):
        if frame is None:
            continue
        for quantity, columns in MEASURES.items():
            column = columns[0] if source == "tuned" else columns[1]
            frames.append(
                pd.DataFrame(
                    {
                        "quantity": quantity,
                        "problem": frame["problem"].astype(str),
                        "optimizer": frame["optimizer"].astype(str),
                        "work": pd.to_numeric(frame[column], errors="coerce").astype(float),
                    }
                )
            )
    work = pd.concat(frames, ignore_index=True)
    repeated = work.duplicated(["quantity", "problem", "optimizer"])
    if repeated.any():
        row = work[repeated].iloc[0]
        raise ValueError(f"problem {row.problem!r}, optimizer {row.optimizer!r} has more than one row")
    return work


def performance_profiles(
    tuned: pd.DataFrame,
    networks_summary: pd.DataFrame | None = None,
    *,
    optimizers: list[str] | None = None,
) -> pd.DataFrame:
    """profiles.csv: each optimizer's performance profile for each quantity of work.

    Args:
        tuned: tuned.csv's rows (steps, examples and seconds to target over fresh seeds).
        networks_summary: networks-summary.csv's rows, or None; its problems join tuned.csv's.
        optimizers: the optimizers compared (default: every optimizer of either table).

    Returns:
        One row per (quantity, optimizer, breakpoint tau): tau = 1 and each distinct finite ratio
        of the optimizer's work to the least on a problem; rho the fraction of problems within tau;
        with the counts of optimizers compared, problems profiled, problems none solved and
        problems not compared (not run or not measured by every optimizer, or work 0). Where no
        problem is profiled, each optimizer has one row, tau = 1 and rho NaN.
    """
    work = work_to_target(tuned, networks_summary)
    compared = list(optimizers) if optimizers is not None else sorted(set(work["optimizer"]))
    if not compared:
        raise ValueError("no optimizer to compare")
    rows = []
    for quantity in MEASURES:
        table = (
            work[work["quantity"] == quantity]
            .pivot(index="problem", columns="optimizer", values="work")
            .reindex(columns=compared)
        )
        best = table.min(axis=1)  # NaN only where every optimizer's work is NaN
        complete = table.notna().all(axis=1) & ~(best <= 0)
        unsolved = complete & ~np.isfinite(best)
        profiled = table[complete & ~unsolved]
        ratios = profiled.div(best[profiled.index], axis=0)
        counts = {
            "n_optimizers": len(compared),
            "n_problems": len(profiled),
            "unsolved_problems": int(unsolved.sum()),
            "not_compared_problems": int((~complete).sum()),
        }
        for optimizer in compared:
            ratio = ratios[optimizer].to_numpy(float)
            taus = np.unique(np.concatenate([[1.0], ratio[np.isfinite(ratio)]]))
            for tau in taus:
                rho = np.count_nonzero(ratio <= tau) / len(ratio) if len(ratio) else np.nan
                rows.append({"quantity": quantity, "optimizer": optimizer, "tau": tau, "rho": rho, **counts})
    return pd.DataFrame(rows)


def profile_plots(frame: pd.DataFrame, highlight: str | None = None) -> dict[str, bytes]:
    """profile-<quantity>.png (e.g. profile-gradient-evaluations.png): rho against tau, one step line per
    optimizer, tau on a log axis; the title names the problems and the optimizers compared. ``highlight``:
    an optimizer drawn thicker, with the legend beside the axes so that it hides no line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.report import _png

    images = {}
    for quantity, rows in frame.groupby("quantity", sort=False):
        first = rows.iloc[0]
        if not first["n_problems"]:
            continue
        taus = rows["tau"].to_numpy(float)
        right = max(2.0, float(taus.max()) * 1.5)  # the last value holds to the right: tau -> inf
        figure, axes = plt.subplots(figsize=(9.0 if highlight else 6.4, 4.2))
        for optimizer, line in rows.groupby("optimizer", sort=True):
            line = line.sort_values("tau")
            x = np.append(line["tau"].to_numpy(float), right)
            y = np.append(line["rho"].to_numpy(float), line["rho"].iloc[-1])
            solved = y[-1]
            width = 3.0 if optimizer == highlight else 1.5
            axes.step(x, y, where="post", linewidth=width, label=f"{optimizer} (solved {solved:.0%})")
        label = MEASURE_LABELS.get(quantity, quantity)
        left_out = [
            f"{int(first[column])} {what}"
            for column, what in (
                ("unsolved_problems", "solved by none"),
                ("not_compared_problems", "not run by all"),
            )
            if first[column]
        ]
        note = f"; left out: {', '.join(left_out)}" if left_out else ""
        axes.set(
            xscale="log",
            xlim=(1, right),
            ylim=(-0.02, 1.02),
            xlabel="tau (work / the least work of any optimizer compared on the problem)",
            ylabel="rho: fraction of problems within tau",
            title=f"Work to target: {label}\n"
            f"{int(first['n_problems'])} problems, {int(first['n_optimizers'])} optimizers compared{note}",
        )
        if highlight:
            axes.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        else:
            axes.legend(loc="lower right")
        images[f"profile-{quantity.replace('_', '-')}.png"] = _png(figure)
    return images
