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
   or diverged. Seeds neither optimizer brought to the target are left out
   (and counted), as a sign test leaves out ties. The paired ratio
   (submission / baseline) per seed, its median and the distribution-free
   interval of the median (``bench.metrics.median_interval``): **faster**
   where the whole interval is below 1, **slower** where above, else
   **within noise** (inconclusive). Where both are deterministic the one
   ratio decides: exact where both were observed every step, else a
   difference within the coarser observation interval is **within
   resolution**. Equal work on every pair is **the same**.

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
from bench.suites import PROBLEMS, Cell, build_suite
from gdjax.optimizers import declarations, resolve_optimizer
from gdjax.search import DEFAULT_SEARCH_SEED, check_search_space, draw_points

BASELINES = ("gd", "sgd", "momentum", "adam")
# Points each optimizer is tuned on, per problem: the suite's 32 rates a cell (8 quick) on the toy
# problems, its 16 on the networks.
N_POINTS = {"default": 32, "quick": 8}
N_NETWORK_POINTS = {"default": 16, "quick": 16}
# The networks a submission is tuned on: the default run's MLP on MNIST-1D, where the optimizers
# differ most (the quick run's softmax regression on digits with --quick).
SUBMIT_NETWORKS = {"default": ("mnist1d_mlp",), "quick": ("digits_linear",)}
NETWORK_OPTIMIZERS_LEFT_OUT = ("gd",)
TINY_STEPS = 3


def load_submission(spec: str, dtype: str = "float32") -> tuple[object, dict]:
    """(factory, checked search space) of ``module:function``; UsageError naming what is wrong.

    The factory is tried on a tiny problem (Rosenbrock, TINY_STEPS steps, two
    points of its space) before any work: it must return an
    ``optax.GradientTransformation`` and step with every hyperparameter as data.
    """
    import jax
    import optax

    from gdjax.step import optimizer_for_run

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
    try:  # as a run builds it: a stochastic optimizer gets a key of its own
        made = optimizer_for_run(factory, draw_points(space, 1)[0], jax.random.PRNGKey(0))
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
            gdjax.rosenbrock(),
            spec,
            points=draw_points(space, 2),
            steps=TINY_STEPS,
            seeds=[0],
            log_every=1,
            dtype=dtype,
        )
    except Exception as error:
        text = str(error).strip().splitlines()[0] if str(error).strip() else ""
        kind = "" if isinstance(error, ValueError | TypeError) else f"{type(error).__name__}: "  # gdjax's own
        raise UsageError(
            f"optimizer {spec!r} failed on a tiny problem (Rosenbrock, {TINY_STEPS} steps): {kind}{text}"
        ) from None
    return factory, space


def _folder_name(spec: str, profile: str, dtype: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", spec.replace(":", "."))  # the whole name: no two collide
    return "-".join(
        [
            "submit",
            name,
            *([profile] if profile != "default" else []),
            *([dtype] if dtype != "float32" else []),
        ]
    )


def _cells(optimizers, spaces, problems, profile: str) -> list[Cell]:
    """The suite's cells (its steps, seeds and logging) with each optimizer's drawn points for rates."""
    cells = []
    for cell in build_suite(list(problems), optimizers, quick=profile == "quick", learning_rates=[1.0]):
        points = draw_points(spaces[cell.optimizer], N_POINTS[profile])
        rates = np.array([point["learning_rate"] for point in points])
        cells.append(cell._replace(learning_rates=rates, points=tuple(tuple(p.items()) for p in points)))
    return cells


def per_seed_work(fresh: pd.DataFrame, gradients_per_step: dict[str, int]) -> pd.DataFrame:
    """work.csv: a row per (problem, optimizer, fresh seed): the work to target and its resolution.

    ``fresh``: the fresh seeds' rows (``bench.tuned``'s and ``bench.networks``'):
    ``steps_to_target`` (-1: never), ``examples_to_target``, ``target_resolution``
    (steps between observations), ``examples_a_step``, and for the toy
    problems ``diverged_at`` (reached: stayed at the target, never diverged).
    Work: examples seen x the optimizer's gradient evaluations a step, inf
    where not reached; resolution: the work between two observations.
    """
    from bench.metrics import reached

    # the networks' rows have no divergence column (NaN beside the toy problems'): never diverged
    stayed = reached(fresh.assign(diverged_at=fresh.get("diverged_at", -1)).fillna({"diverged_at": -1}))
    factor = fresh["optimizer"].map(gradients_per_step).fillna(1).astype(float)
    return pd.DataFrame(
        {
            "problem": fresh["problem"],
            "optimizer": fresh["optimizer"],
            "seed": fresh["seed"],
            "work": np.where(stayed, fresh["examples_to_target"].astype(float) * factor, np.inf),
            "target_resolution": fresh["target_resolution"],
            "resolution": fresh["target_resolution"] * fresh["examples_a_step"] * factor,
        }
    )


def _ratios(new: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Paired ratios new / base: equal work 1 (0 and 0 too); only the baseline never at the target 0,
    only new inf."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(new == base, 1.0, new / base)
    return np.where(np.isfinite(new) & np.isinf(base), 0.0, ratio)


def _pair(new: pd.DataFrame, base: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rows of each side on the shared fresh seeds; a side with one run (its seeds change nothing)
    is paired with every seed of the other."""
    if len(new) == 1 and len(base) > 1:
        return new.iloc[np.zeros(len(base), int)], base
    if len(base) == 1 and len(new) > 1:
        return new, base.iloc[np.zeros(len(new), int)]
    seeds = new.index.intersection(base.index)
    return new.loc[seeds], base.loc[seeds]


def paired_verdicts(work: pd.DataFrame, submitted: str, baselines) -> pd.DataFrame:
    """paired.csv: per problem and baseline, the paired ratio of the work to target over shared fresh seeds.

    Seeds neither optimizer brought to the target tell nothing about which is
    faster: they are counted (``n_neither``) and left out of the ratio, as a
    sign test leaves out ties. Where both have one run, the one ratio is the
    comparison (exact where both were observed every step; a difference
    within the coarser observation interval is "within resolution").
    """
    from bench.metrics import median_interval

    rows = []
    for problem, runs in work.groupby("problem", sort=True):
        by_seed = {name: frame.set_index("seed") for name, frame in runs.groupby("optimizer")}
        for baseline in baselines:
            if submitted not in by_seed or baseline not in by_seed:
                continue
            new, base = _pair(by_seed[submitted], by_seed[baseline])
            if new.empty:
                continue  # no shared fresh seeds
            deterministic = len(by_seed[submitted]) == 1 and len(by_seed[baseline]) == 1
            neither = np.isinf(new["work"].to_numpy()) & np.isinf(base["work"].to_numpy())
            pair_new, pair_base = new["work"].to_numpy()[~neither], base["work"].to_numpy()[~neither]
            ratio = _ratios(pair_new, pair_base)
            exact = (
                deterministic
                and bool((new["target_resolution"] == 1).all())
                and bool((base["target_resolution"] == 1).all())
            )
            median = low = high = np.nan
            if not len(ratio):
                verdict = "neither reached the target"
            elif deterministic:
                median = low = high = float(ratio[0])
                coarse = float(max(new["resolution"].iloc[0], base["resolution"].iloc[0]))
                if (
                    not exact
                    and np.isfinite(pair_new[0] + pair_base[0])
                    and abs(pair_new - pair_base)[0] < coarse
                ):
                    verdict = "within resolution"
                else:
                    verdict = "faster" if median < 1 else "slower" if median > 1 else "the same"
            else:
                median, low, high = median_interval(ratio)
                if np.array_equal(pair_new, pair_base):
                    verdict = "the same"  # on every seed
                elif np.isnan(low):
                    verdict = "too few seeds to say"
                else:
                    verdict = "faster" if high < 1 else "slower" if low > 1 else "within noise"
            rows.append(
                {
                    "problem": problem,
                    "optimizer": baseline,
                    "n_pairs": len(ratio),
                    "n_neither": int(neither.sum()),
                    "exact": exact,
                    "submitted_work_median": float(np.median(new["work"])),
                    "baseline_work_median": float(np.median(base["work"])),
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
    _, space = load_submission(args.optimizer, args.dtype)
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
    from bench.profiles import profile_plots
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
            networks=SUBMIT_NETWORKS[profile],
            points={
                name: draw_points(spaces[name], N_NETWORK_POINTS[profile]) for name in network_optimizers
            },
        )
    progress("writing", f"tables, comparison.md and plots into {folder}/")
    work = per_seed_work(pd.concat([tables.fresh, networks.fresh], ignore_index=True), per_step)
    paired = paired_verdicts(work, args.optimizer, BASELINES)
    profiles = work_profiles(work, optimizers)
    images = profile_plots(profiles, highlight=args.optimizer)
    budget = tuning_budget(pd.concat([tables.convergence, networks.convergence], ignore_index=True))
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
    files["work.csv"] = table_csv("work.csv", work).encode()
    files["paired.csv"] = table_csv("paired.csv", paired).encode()
    files["profiles.csv"] = table_csv("profiles.csv", profiles).encode()
    files["comparison.md"] = comparison_markdown(
        args.optimizer, meta, tables.tuned, networks.summary, work, paired, budget, sorted(images)
    ).encode()
    files["metadata.json"] = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    files.update(images)
    write_folder(folder, files)
    progress("done", f"wrote {len(files)} files into {folder}/ in {meta['submission']['wall_s']:.0f} s")
    print(f"{folder / 'comparison.md'}")
    return 0


def work_profiles(work: pd.DataFrame, optimizers) -> pd.DataFrame:
    """profiles.csv: the performance profile (``bench.profiles``) of the median work to target in work.csv
    (examples x gradient evaluations a step), over the problems every optimizer ran."""
    from bench.profiles import performance_profiles

    medians = work.groupby(["problem", "optimizer"], sort=False)["work"].median().reset_index()
    as_tuned = medians.assign(
        examples_to_target_median=medians["work"],
        steps_to_target_median=np.nan,
        seconds_to_target_median=np.nan,
    )
    profiles = performance_profiles(as_tuned, optimizers=optimizers)
    return profiles[profiles["quantity"] == "examples"].assign(quantity="work").reset_index(drop=True)


def tuning_budget(convergence: pd.DataFrame) -> pd.DataFrame:
    """(problem, optimizer, points, seeds) counted in the tuning runs (convergence.csv, networks.csv)."""
    counted = convergence.groupby(["problem", "optimizer"], sort=False).agg(
        runs=("seed", "size"), seeds=("seed", "nunique")
    )
    return counted.assign(points=counted["runs"] // counted["seeds"]).reset_index()


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
    from bench.metrics import parse_point

    return ", ".join([f"lr {rate:.3g}", *(f"{k} {v:.3g}" for k, v in parse_point(others).items())])


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
        + "\n\nA cell: the verdict, then the median over the fresh seeds of the paired ratio (your work /"
        " the baseline's on the same seed) and its 95% interval; a ratio of 0 means only the baseline never"
        " reached the target on that seed, inf only yours. Seeds neither reached are left out (`paired.csv`"
        " counts them). Within noise means inconclusive at these seeds, not equal. About 23 verdicts at 95%"
        " each, uncorrected for their number: one of them may be wrong by chance."
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
            point, on_edge = _point_text(best["learning_rate"], best["hyperparameters"]), best["best_on_edge"]
            result, tie_break = f"loss {best['final_loss_median']:.4g}", best["final_loss_median"]
        else:
            best = networks_summary[
                (networks_summary["problem"] == problem) & (networks_summary["optimizer"] == optimizer)
            ].iloc[0]
            point = _point_text(best["best_learning_rate"], best["best_hyperparameters"])
            on_edge = best["best_on_edge"]
            result = f"test accuracy {best['test_accuracy_mean']:.3f} ± {best['test_accuracy_std']:.3f}"
            tie_break = -best["test_accuracy_mean"]
        rows.append(
            {
                "problem": problem,
                "optimizer": optimizer,
                "best_point": point,
                "on_edge": bool(on_edge),
                "fresh_seeds": len(runs),
                "reached": float(np.isfinite(runs["work"]).mean()),
                "work": median,
                "low": low,
                "high": high,
                "result": result,
                "key": (median, tie_break),
            }
        )
    frame = pd.DataFrame(rows)
    frame["rank"] = [
        1 + int(sum(other < key for other in frame.loc[frame["problem"] == problem, "key"]))
        for problem, key in zip(frame["problem"], frame["key"], strict=True)
    ]
    return frame.drop(columns="key")


def comparison_markdown(spec, meta, tuned, networks_summary, work, paired, budget, images) -> str:
    """comparison.md: the verdicts, the search spaces and the budget counted, each problem's ranking, the
    profile and the run."""
    from bench.report import _markdown_table

    submission = meta["submission"]
    rows = problem_rows(work, tuned, networks_summary)
    problems = list(dict.fromkeys(rows["problem"]))
    quick = meta["profile"] == "submit-quick"
    lines = [
        f"# {spec} against {', '.join(BASELINES)}" + (" (quick profile: a smoke test)" if quick else ""),
        "",
        *(
            [
                "**The quick profile** (`--quick`: 3,000 steps, 8 points, digits for the network) checks "
                "that the submission runs end to end; its verdicts reflect the short budget, not the "
                "optimizer. Run without `--quick` for the comparison.",
                "",
            ]
            if quick
            else []
        ),
        "Every optimizer was tuned over its own search space with the same budget: on each problem the same "
        "number of points (counted below), a Latin hypercube drawn from seed "
        f"{submission['search_seed']} whatever the optimizer, on the suite's tuning seeds (one where an "
        "optimizer's seeds change nothing); each best point was rerun on the same fresh seeds for every "
        "optimizer (n = 1 where seeds change nothing). gd is not run on the network: a full-batch step an "
        "epoch is far from its target in the suite's few epochs (the default run leaves it out too). "
        "Work to target: examples seen x gradient evaluations "
        "a step, until the start of the final stay at the target; never: the seed did not stay at the "
        "target, or diverged. Protocol: `bench/submit.py`; columns: `docs/results-format.md`; every seed's "
        "work: `work.csv`.",
        "",
        "## Verdicts: work to target, paired by fresh seed",
        "",
        verdicts_table(paired, problems),
        "",
        "## Search spaces and the budget (tuning points x seeds, counted in the tuning tables)",
        "",
    ]
    counted = budget.set_index(["optimizer", "problem"])
    body = [
        [
            name,
            _space_text(space),
            str(submission["gradients_per_step"][name]),
            *(
                f"{counted.loc[(name, problem), 'points']} x {counted.loc[(name, problem), 'seeds']}"
                if (name, problem) in counted.index
                else "not run"
                for problem in problems
            ),
        ]
        for name, space in submission["search_spaces"].items()
    ]
    header = ["optimizer", "space", "gradient evaluations a step", *problems]
    lines += [_markdown_table(header, body), ""]
    lines += ["## Per problem (rank 1: least median work to target; ties by final loss or test accuracy)", ""]
    for problem in problems:
        table = rows[rows["problem"] == problem].sort_values("rank", kind="stable")
        lines += [f"### {problem}", ""]
        body = [
            [
                str(row.rank),
                f"**{row.optimizer}**" if row.optimizer == spec else row.optimizer,
                row.best_point + (" (edge)" if row.on_edge else ""),
                str(row.fresh_seeds),
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
    lines += [
        "## Performance profile (median work to target, over the problems every optimizer ran)",
        "",
        *(f"![{name}]({name})" for name in images),
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
