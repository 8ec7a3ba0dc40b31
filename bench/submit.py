"""``python -m bench submit module:function``: your optimizer across the default suite, beside the baselines.

The protocol, the same for the submission and for gd, sgd, momentum and adam:

1. **Tune** every optimizer over its own search space (``gdjax.search``:
   the submission's declared ``SEARCH_SPACE``, the baselines'
   ``SEARCH_SPACES``) with the same budget: ``N_POINTS`` points of a Latin
   hypercube drawn from one seed (whatever the space's dimension, whatever
   the optimizer), on the profile's tuning seeds, one compiled program per
   problem and optimizer. The best point is the suite's: the least steps to
   target on the tuning seeds (``bench.metrics.point_ranking``); on the
   networks the best mean validation accuracy (``bench.networks``).
2. **Rerun** each best point on the same fresh seeds for every optimizer
   (``bench.tuned.FRESH_SEEDS``; the networks' ``FRESH_SEEDS``), seeds the
   tuning never saw; where an optimizer's seeds change nothing on a problem
   (``gdjax.seeds_matter``) it has one run, n = 1.
3. **Compare**, per problem and baseline, the work to target on each shared
   fresh seed: examples seen times gradient evaluations a step (a SAM-like
   optimizer declares 2), infinite where the seed never reached the target
   or diverged. The paired ratio (submission / baseline) per seed, its
   median and the distribution-free interval of the median
   (``bench.metrics.median_interval``): **faster** where the whole interval
   is below 1, **slower** where above, else **within noise**. Where both
   are deterministic the one ratio is exact. A seed neither reached counts
   as a tie (ratio 1). Equal work on every pair is **the same**.

The networks run the minibatch optimizers (no gd: a full-batch step an
epoch is far from any target in the default run's epochs). Every optimizer
on the toy problems steps on all the data except sgd (one example a step).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd

import gdjax
from bench.cli import DEFAULT_OUT, UsageError, _check_writable, _device, _metadata, _Parser, _plan
from bench.suites import LOG_EVERY, LOG_EVERY_OF, PROBLEMS, QUICK_STEPS, SEEDS, TEXTBOOK_STEPS, Cell
from gdjax.optimizers import declarations, resolve_optimizer
from gdjax.search import DEFAULT_SEARCH_SEED, check_search_space, draw_points

BASELINES = ("gd", "sgd", "momentum", "adam")
# Points each optimizer is tuned on, per problem: the suite's 32 rates a cell (8 quick) on the toy
# problems, its 16 on the networks.
N_POINTS = {"default": 32, "quick": 8}
N_NETWORK_POINTS = {"default": 16, "quick": 16}
NETWORK_OPTIMIZERS_LEFT_OUT = ("gd",)
TINY_STEPS = 3


def load_submission(spec: str) -> tuple[object, dict]:
    """(factory, checked search space) of ``module:function``; UsageError naming what is wrong.

    The factory is tried on a tiny problem (Rosenbrock, TINY_STEPS steps, two
    points of its space) before any work: it must return an
    ``optax.GradientTransformation`` and step with every hyperparameter as data.
    """
    import optax

    if ":" not in spec or spec.startswith("optax:"):
        raise UsageError(f"give your optimizer as module:function (e.g. my_optimizer:make_opt); got {spec!r}")
    try:
        _, factory = resolve_optimizer(spec)
        declared = declarations(spec)
    except ValueError as error:
        raise UsageError(str(error)) from None
    module, _, function = spec.partition(":")
    if declared.search_space is None:
        raise UsageError(
            f"optimizer {spec!r} declares no search space: add SEARCH_SPACE = {{'learning_rate': "
            f"('log', 1e-5, 1.0), ...}} to {module} (or set {function}.search_space); scales: log, linear, "
            "log1m"
        )
    try:
        space = check_search_space(declared.search_space, factory, spec)
    except ValueError as error:
        raise UsageError(str(error)) from None
    point = draw_points(space, 1)[0]
    try:
        made = factory(point.pop("learning_rate"), **point)
    except Exception as error:
        raise UsageError(
            f"optimizer {spec!r}: {function}(...) failed: {type(error).__name__}: {error}"
        ) from None
    if not isinstance(made, optax.GradientTransformation):
        raise UsageError(
            f"optimizer {spec!r}: {function}(learning_rate, ...) must return an optax.GradientTransformation;"
            f" got {type(made).__name__}"
        )
    try:
        gdjax.sweep(
            gdjax.rosenbrock(), spec, points=draw_points(space, 2), steps=TINY_STEPS, seeds=[0], log_every=1
        )
    except Exception as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        kind = "" if isinstance(error, ValueError | TypeError) else f"{type(error).__name__}: "  # gdjax's own
        raise UsageError(
            f"optimizer {spec!r} failed on a tiny problem (Rosenbrock, {TINY_STEPS} steps): {kind}{text}"
        ) from None
    return factory, space


def _folder_name(spec: str, profile: str, dtype: str) -> str:
    module, _, function = spec.partition(":")
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"{module.rsplit('.', 1)[-1]}.{function}")
    return "-".join(
        [
            "submit",
            name,
            *([profile] if profile != "default" else []),
            *([dtype] if dtype != "float32" else []),
        ]
    )


def _cells(optimizers, spaces, problems, profile: str) -> list[Cell]:
    cells = []
    for problem in problems:
        steps = (QUICK_STEPS if profile == "quick" else TEXTBOOK_STEPS)[problem]
        for optimizer in optimizers:
            points = draw_points(spaces[optimizer], N_POINTS[profile])
            cells.append(
                Cell(
                    problem,
                    optimizer,
                    np.array([point["learning_rate"] for point in points]),
                    SEEDS[profile],
                    steps,
                    min(LOG_EVERY_OF.get(problem, LOG_EVERY), steps),
                    points=tuple(tuple(point.items()) for point in points),
                )
            )
    return cells


def per_seed_work(fresh: pd.DataFrame, gradients_per_step: dict[str, int]) -> pd.DataFrame:
    """(problem, optimizer, seed, work): examples to target x gradient evaluations a step; inf: not reached.

    ``fresh``: rows per fresh seed with ``examples_to_target`` (-1: never) and, for
    the toy problems, ``diverged_at`` and ``steps_to_target`` (reached: stayed at the target, never diverged).
    """
    examples = fresh["examples_to_target"].astype(float)
    reached = examples >= 0
    if "diverged_at" in fresh:
        reached &= fresh["diverged_at"].fillna(-1) < 0
    factor = fresh["optimizer"].map(gradients_per_step).fillna(1).astype(float)
    work = np.where(reached, examples * factor, np.inf)
    return pd.DataFrame(
        {"problem": fresh["problem"], "optimizer": fresh["optimizer"], "seed": fresh["seed"], "work": work}
    )


def _ratios(new: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Paired ratios new / base; both never at the target: 1 (a tie); only the baseline: 0; only new: inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = new / base
    ratio = np.where(np.isinf(new) & np.isinf(base), 1.0, ratio)
    return np.where(np.isfinite(new) & np.isinf(base), 0.0, ratio)


def paired_verdicts(work: pd.DataFrame, submitted: str, baselines) -> pd.DataFrame:
    """paired.csv: per problem and baseline, the paired ratio of the work to target over shared fresh seeds.

    A side with one run (its seeds change nothing) is paired with each of the
    other's seeds; where both have one, the ratio is exact.
    """
    from bench.metrics import median_interval

    rows = []
    for problem, runs in work.groupby("problem", sort=True):
        new = runs[runs["optimizer"] == submitted].set_index("seed")["work"]
        for baseline in baselines:
            base = runs[runs["optimizer"] == baseline].set_index("seed")["work"]
            if new.empty or base.empty:
                continue
            exact = len(new) == 1 and len(base) == 1
            if len(new) == 1 or len(base) == 1:
                seeds = base.index if len(new) == 1 else new.index
                pair_new = np.broadcast_to(new.to_numpy(), len(seeds)) if len(new) == 1 else new.to_numpy()
                pair_base = (
                    np.broadcast_to(base.to_numpy(), len(seeds)) if len(base) == 1 else base.to_numpy()
                )
            else:
                seeds = new.index.intersection(base.index)
                pair_new, pair_base = new[seeds].to_numpy(), base[seeds].to_numpy()
            ratio = _ratios(pair_new, pair_base)
            if exact:
                median = low = high = float(ratio[0])
            else:
                median, low, high = median_interval(ratio)
            neither = bool(np.all(np.isinf(pair_new) & np.isinf(pair_base)))
            if neither:
                verdict = "neither reached the target"
            elif np.array_equal(pair_new, pair_base):
                verdict = "the same"  # on every seed
            elif exact:
                verdict = "faster" if median < 1 else "slower" if median > 1 else "the same"
            elif np.isnan(low):
                verdict = "too few seeds to say"
            else:
                verdict = "faster" if high < 1 else "slower" if low > 1 else "within noise"
            rows.append(
                {
                    "problem": problem,
                    "optimizer": baseline,
                    "n_pairs": 1 if exact else len(ratio),
                    "exact": exact,
                    "submitted_work_median": float(np.median(pair_new)),
                    "baseline_work_median": float(np.median(pair_base)),
                    "work_ratio_median": median,
                    "work_ratio_ci_low": low,
                    "work_ratio_ci_high": high,
                    "verdict": verdict,
                }
            )
    return pd.DataFrame(rows)


def submit_command(argv: list[str]) -> int:
    parser = _Parser(
        prog="python -m bench submit",
        description="Run the default suite (toy problems and networks) for your optimizer beside gd, sgd, "
        "momentum and adam, each tuned over its search space with the same budget, then fresh seeds at each "
        "best point; write the tables and comparison.md (ranks, work to target, performance profile and a "
        "paired verdict per problem) into --out/submit-<module>.<function>/.",
    )
    parser.add_argument(
        "optimizer",
        help="module:function, a factory (learning_rate, **hyperparameters) -> optax.GradientTransformation "
        "whose module declares SEARCH_SPACE (imported from the current folder or the installed packages)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: results)")
    parser.add_argument(
        "--quick", action="store_true", help="the quick profile: fewer steps, points and seeds"
    )
    parser.add_argument("--dtype", choices=gdjax.DTYPES, default="float32", help="default float32")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    profile = "quick" if args.quick else "default"
    folder = args.out / _folder_name(args.optimizer, profile, args.dtype)
    _check_writable(args.out, folder)
    _, space = load_submission(args.optimizer)
    optimizers = [*BASELINES, args.optimizer]
    spaces = {name: check_search_space(declarations(name).search_space) for name in BASELINES}
    spaces[args.optimizer] = space
    per_step = {name: declarations(name).gradients_per_step for name in optimizers}
    problems = {name: make() for name, make in PROBLEMS.items()}
    cells = _cells(optimizers, spaces, problems, profile)
    device = _device(None)
    try:
        _plan(cells, problems, args.dtype, device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return _run(args, folder, optimizers, spaces, per_step, problems, cells, device, started, argv)


def _run(args, folder, optimizers, spaces, per_step, problems, cells, device, started, argv) -> int:
    import jax

    from bench.baselines import FloorRates
    from bench.networks import NETWORK_REPEATS, run_networks
    from bench.profiles import performance_profiles, profile_plots
    from bench.progress import Progress
    from bench.runner import run_suite
    from bench.tables import NETWORK_TABLES, RUN_TABLES, recover_folder, table_csv, write_folder

    recover_folder(folder)
    profile = "quick" if args.quick else "default"
    progress = Progress()
    cache_folder = gdjax.use_compile_cache()
    with jax.default_device(device):
        devices = jax.devices(device.platform)
        tables = run_suite(
            cells, dtype=args.dtype, repeats=1, devices=devices, problems=problems, progress=progress
        )
        network_optimizers = [name for name in optimizers if name not in NETWORK_OPTIMIZERS_LEFT_OUT]
        networks = run_networks(
            profile,
            dtype=args.dtype,
            repeats=NETWORK_REPEATS,
            rates=FloorRates(tables.flop_rate, tables.exp_rate),
            devices=devices,
            progress=progress.phase("networks"),
            optimizers=network_optimizers,
            points={
                name: draw_points(spaces[name], N_NETWORK_POINTS[profile]) for name in network_optimizers
            },
        )
    progress("writing", f"tables, comparison.md and plots into {folder}/")
    work = per_seed_work(pd.concat([tables.fresh, networks.fresh], ignore_index=True), per_step)
    paired = paired_verdicts(work, args.optimizer, BASELINES)
    profiles = performance_profiles(tables.tuned, networks.summary, optimizers=optimizers)
    images = profile_plots(profiles[profiles["quantity"] == "examples"])
    served = gdjax.compile_cache.compile_cache_served()
    compile_cache = None if cache_folder is None else {"folder": str(cache_folder), **served}
    tables = tables._replace(timing=pd.concat([tables.timing, networks.timing], ignore_index=True))
    meta = _metadata(
        ["submit", *argv],
        device,
        folder.name,
        f"submit-{profile}",
        args.dtype,
        cells,
        tables,
        1,
        compile_cache,
    )
    meta["submission"] = {
        "optimizer": args.optimizer,
        "search_spaces": {name: {k: list(v) for k, v in space.items()} for name, space in spaces.items()},
        "points_per_problem": N_POINTS[profile],
        "points_per_network": N_NETWORK_POINTS[profile],
        "search_seed": DEFAULT_SEARCH_SEED,
        "gradients_per_step": per_step,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    files = {
        name: table_csv(name, getattr(tables, name.removesuffix(".csv"))).encode() for name in RUN_TABLES
    }
    frames = (networks.convergence, networks.summary, networks.curves)
    files.update(
        {name: table_csv(name, frame).encode() for name, frame in zip(NETWORK_TABLES, frames, strict=True)}
    )
    files["paired.csv"] = table_csv("paired.csv", paired).encode()
    files["profiles.csv"] = table_csv("profiles.csv", profiles).encode()
    files["comparison.md"] = comparison_markdown(
        args.optimizer, meta, tables.tuned, networks.summary, work, paired, sorted(images)
    ).encode()
    files["metadata.json"] = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    files.update(images)
    write_folder(folder, files)
    progress("done", f"wrote {len(files)} files into {folder}/ in {meta['submission']['wall_s']:.0f} s")
    print(f"{folder / 'comparison.md'}")
    return 0


def _work_text(value: float) -> str:
    return "never" if np.isinf(value) else "-" if np.isnan(value) else f"{value:,.0f}"


def _ratio_text(row) -> str:
    if row.verdict == "neither reached the target":
        return "neither reached"
    if row.exact:
        return f"**{row.verdict}**, exact: {row.work_ratio_median:.3g}"
    interval = (
        ""
        if np.isnan(row.work_ratio_ci_low)
        else f" [{row.work_ratio_ci_low:.3g}, {row.work_ratio_ci_high:.3g}]"
    )
    return f"**{row.verdict}**: {row.work_ratio_median:.3g}{interval}"


def _space_text(space: dict) -> str:
    return ", ".join(f"{name} {scale} [{low:g}, {high:g}]" for name, (scale, low, high) in space.items())


def _point_text(rate: float, others: str) -> str:
    return ", ".join(
        [
            f"lr {rate:.3g}",
            *(f"{k} {float(v):.3g}" for k, v in (i.split("=") for i in others.split(";") if i)),
        ]
    )


def verdicts_table(paired: pd.DataFrame, problems=None) -> str:
    """The verdicts as a Markdown table: a row per problem (``problems``' order), a column per baseline."""
    from bench.networks import NETWORKS
    from bench.report import _markdown_table

    if problems is None:  # the suite's order: the toy problems, then the networks
        order = [*PROBLEMS, *NETWORKS, *sorted(paired["problem"])]
        problems = sorted(set(paired["problem"]), key=order.index)
    rows = []
    for problem in problems:
        cells = []
        for baseline in BASELINES:
            match = paired[(paired["problem"] == problem) & (paired["optimizer"] == baseline)]
            cells.append(_ratio_text(match.iloc[0]) if len(match) else "not run")
        rows.append([problem, *cells])
    return (
        _markdown_table(["problem", *(f"vs {b}" for b in BASELINES)], rows)
        + "\n\nA cell: the verdict, the median paired ratio and its 95% interval (a ratio of 0: the baseline"
        " never reached the target on that seed, inf: the submission never did, 1: neither did)."
    )


def problem_rows(work: pd.DataFrame, tuned: pd.DataFrame, networks_summary: pd.DataFrame) -> pd.DataFrame:
    """Per (problem, optimizer): best point, edge flag, fresh seeds, fraction reached, work median, interval;
    the result beside it (median final loss; networks: test accuracy), and its rank by work (1: least)."""
    from bench.metrics import median_interval

    rows = []
    for (problem, optimizer), runs in work.groupby(["problem", "optimizer"], sort=False):
        median, low, high = median_interval(runs["work"].to_numpy())
        toy = tuned[(tuned["problem"] == problem) & (tuned["optimizer"] == optimizer)]
        if len(toy):
            best = toy.iloc[0]
            point, edge = _point_text(best["learning_rate"], best["hyperparameters"]), best["best_on_edge"]
            result, secondary = f"loss {best['final_loss_median']:.4g}", best["final_loss_median"]
        else:
            best = networks_summary[
                (networks_summary["problem"] == problem) & (networks_summary["optimizer"] == optimizer)
            ].iloc[0]
            point = _point_text(best["best_learning_rate"], best["best_hyperparameters"])
            edge = best["best_on_edge"]
            result = f"test accuracy {best['test_accuracy_mean']:.3f} ± {best['test_accuracy_std']:.3f}"
            secondary = -best["test_accuracy_mean"]
        rows.append(
            {
                "problem": problem,
                "optimizer": optimizer,
                "best point": point,
                "on edge": bool(edge),
                "fresh seeds": len(runs),
                "reached": float(np.isfinite(runs["work"]).mean()),
                "work": median,
                "low": low,
                "high": high,
                "result": result,
                "key": (median, secondary),
            }
        )
    frame = pd.DataFrame(rows)
    frame["rank"] = [
        1 + int(sum(other < key for other in frame.loc[frame["problem"] == problem, "key"]))
        for problem, key in zip(frame["problem"], frame["key"], strict=True)
    ]
    return frame.drop(columns="key")


def comparison_markdown(spec, meta, tuned, networks_summary, work, paired, images) -> str:
    """comparison.md: the verdicts, the search spaces, each problem's ranking, the profile and the run."""
    from bench.report import _markdown_table

    submission = meta["submission"]
    rows = problem_rows(work, tuned, networks_summary)
    problems = list(dict.fromkeys(rows["problem"]))
    lines = [
        f"# {spec} against {', '.join(BASELINES)}",
        "",
        f"Every optimizer was tuned over its own search space with the same budget: "
        f"{submission['points_per_problem']} points a problem ({submission['points_per_network']} on the "
        f"networks), a Latin hypercube drawn from seed {submission['search_seed']}, on the tuning seeds "
        f"{', '.join(map(str, meta['seeds']))}; each best point was rerun on the same fresh seeds for every "
        "optimizer (n = 1 where seeds change nothing). Work to target: examples seen x gradient "
        "evaluations a step; never: the median seed did not stay at the target or diverged. The verdict "
        "comes from the "
        "paired ratio (submission / baseline) on each fresh seed: its median and 95% distribution-free "
        "interval; faster or slower only where the whole interval is on one side of 1. "
        "Protocol: `bench/submit.py`; columns: `docs/results-format.md`.",
        "",
        "## Verdicts: work to target, paired ratio (below 1: the submission needed less)",
        "",
    ]
    lines += [verdicts_table(paired, problems), ""]
    lines += ["## Search spaces", ""]
    lines += [
        _markdown_table(
            ["optimizer", "space", "gradient evaluations a step"],
            [[name, _space_text(space), str(submission["gradients_per_step"][name])]
             for name, space in submission["search_spaces"].items()],
        ),
        "",
        "## Per problem (rank 1: least work to target; ties by final loss or test accuracy)",
        "",
    ]  # fmt: skip
    for problem in problems:
        table = rows[rows["problem"] == problem].sort_values("rank", kind="stable")
        lines += [f"### {problem}", ""]
        body = [
            [
                str(row.rank),
                f"**{row.optimizer}**" if row.optimizer == spec else row.optimizer,
                row._3 + (" (edge)" if row._4 else ""),
                str(row._5),
                f"{row.reached:.0%}",
                _work_text(row.work)
                + ("" if np.isnan(row.low) else f" [{_work_text(row.low)}, {_work_text(row.high)}]"),
                row.result,
            ]
            for row in table.itertuples()
        ]
        header = [
            "rank",
            "optimizer",
            "best point",
            "fresh seeds",
            "reached",
            "work to target [95%]",
            "result",
        ]
        lines += [_markdown_table(header, body), ""]
    lines += ["## Performance profile", ""]
    lines += [f"![{name}]({name})" for name in images]
    lines += [
        "",
        "## The run",
        "",
        f"- `{meta['command_line']}`, {meta['date_utc']}, git {meta['git_commit'][:12]}",
        f"- {meta['cpu_model']} ({meta['cpu_count']} cores), {meta['device_count']} {meta['platform']} "
        f"device(s), {meta['dtype']}; jax {meta['versions']['jax']}, optax {meta['versions']['optax']}",
        f"- whole run: {submission['wall_s']:.0f} s, compiles included",
        "",
    ]
    return "\n".join(lines)
