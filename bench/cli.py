"""The command line: `python -m bench [options]` runs a suite; `python -m bench check NEW [--against REF]`.

Bad input gets one line on stderr and exit status 2, before anything runs
or is written.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np

import gdjax
from bench import INTERRUPTED
from bench.devices import device_tag
from bench.progress import Progress, closing_summary
from bench.suites import KNOWN_PROBLEMS, LOG_EVERY, PROBLEMS, SUITE_OPTIMIZERS, build_suite
from bench.tables import (
    GRID_TABLES,
    MACHINE_TABLES,
    NETWORK_TABLES,
    OPTIONAL_RUN_TABLES,
    RUN_TABLES,
    SCHEMA_VERSION,
    TableError,
    check,
    read_table,
    recover_folder,
    replace_files,
    table_csv,
    write_folder,
)
from gdjax.schedules import SCHEDULES

DEFAULT_OUT = Path("results")
JOIN_TIMEOUT_S = 300  # seconds a process waits for the others to join (JAX's default too)


class UsageError(Exception):
    """Bad command-line input; main() prints it as one line and exits 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that takes no abbreviations (``--lr`` is not ``--lrs``) and reports every bad value at once.

    A value its type refuses is noted (its argument then parses as None)
    and parsing goes on; ``checks(args)`` then adds what cannot be done
    together. argparse's own complaints (unknown or missing arguments) end
    parsing, with the notes so far.
    """

    def __init__(self, checks=None, **kwargs):
        super().__init__(allow_abbrev=False, **kwargs)
        self.checks = checks

    def parse_args(self, args=None, namespace=None):
        self.refused: list[str] = []
        for action in self._actions:
            if callable(action.type) and not getattr(action.type, "noting", False):
                action.type = self._noting(action, action.type)
        parsed = super().parse_args(args, namespace)
        if self.checks is not None:
            self.refused += self.checks(parsed)
        if self.refused:
            raise UsageError("; ".join(self.refused))
        return parsed

    def _noting(self, action, convert):
        def noting(text):
            try:
                return convert(text)
            except argparse.ArgumentTypeError as refusal:
                reason = str(refusal)
            except (TypeError, ValueError):
                reason = f"{text!r} is not allowed"
            self.refused.append(f"argument {'/'.join(action.option_strings) or action.dest}: {reason}")
            return None

        noting.noting = True
        noting.__name__ = getattr(convert, "__name__", "value")
        return noting

    def error(self, message):
        raise UsageError("; ".join([*getattr(self, "refused", []), message]))


def _one_of(allowed):
    """A type taking one of ``allowed``: a bad choice is noted like any bad value, parsing goes on."""

    def one_of(text: str) -> str:
        if text not in allowed:
            raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(allowed)})")
        return text

    return one_of


def _problem_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in KNOWN_PROBLEMS and ":" not in name]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown problem {', '.join(map(repr, unknown)) or repr(text)}; "
            f"allowed: {', '.join(KNOWN_PROBLEMS)}, or module:function"
        )
    return names


def _problems(args) -> dict:
    """The problems to run, by name: --problems (built-in or module:function) and the --data file."""
    import gdjax
    from bench.suites import resolve_problem

    names = args.problems if args.problems is not None else [] if args.data else list(PROBLEMS)
    problems = {}
    try:
        for name in names:
            problems[name] = resolve_problem(name)
        if args.data is not None:
            problem = gdjax.regression_from_csv(
                args.data, args.target, standardize=args.standardize, add_bias=args.bias
            )
            if problem.name in problems or problem.name in KNOWN_PROBLEMS:
                raise ValueError(f"--data {args.data}: its name {problem.name!r} is a problem's already")
            problems[problem.name] = problem
    except ValueError as error:
        raise UsageError(str(error)) from None
    return problems


def _optimizers(text: str) -> list[str]:
    from gdjax.optimizers import resolve_optimizer

    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"no optimizer in {text!r}")
    for name in names:
        try:
            resolve_optimizer(name)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return names


def _learning_rates(text: str) -> np.ndarray:
    """Comma-separated values (`1e-3,1e-2`) or a log-spaced range LOW:HIGH:COUNT (`1e-6:1e-2:32`)."""
    allowed = "positive finite numbers, comma-separated, or LOW:HIGH:COUNT"
    try:
        if ":" in text:
            low, high, count = text.split(":")
            low, high, count = float(low), float(high), int(count)
            if count < 1 or not (0 < low <= high < np.inf):
                raise ValueError
            return np.geomspace(low, high, count)
        rates = np.array([float(value) for value in text.split(",")])
    except ValueError:
        raise argparse.ArgumentTypeError(f"learning rates {text!r} are not {allowed}") from None
    if not np.all(np.isfinite(rates) & (rates > 0)):
        raise argparse.ArgumentTypeError(f"learning rates {text!r} are not {allowed}")
    return rates


GRID_FORMS = (
    "NAME=a,b,c; NAME=LOW:HIGH:COUNT (log-spaced); NAME=lin:LOW:HIGH:COUNT (linear); "
    "NAME=1-log:LOW:HIGH:COUNT (1 - values log-spaced from 1 - LOW to 1 - HIGH: momentum-like, below 1)"
)


def _grid_axis(text: str) -> tuple[str, np.ndarray]:
    """One --grid axis: ``NAME=VALUES`` in one of GRID_FORMS."""
    name, equals, values = text.partition("=")
    name = name.strip()
    try:
        if not equals or not name.isidentifier():
            raise ValueError
        form = values.split(":")[0] if values.count(":") == 3 else ""
        if form:
            values = values[len(form) + 1 :]
        if ":" in values:
            low, high, count = values.split(":")
            low, high, count = float(low), float(high), int(count)
            if count < 1 or not low <= high:
                raise ValueError
            if form == "lin":
                return name, np.linspace(low, high, count)
            if form == "1-log" and high < 1:
                return name, 1 - np.geomspace(1 - low, 1 - high, count)
            if form == "" and low > 0 and np.isfinite(high):
                return name, np.geomspace(low, high, count)
            raise ValueError
        array = np.array([float(value) for value in values.split(",")])
        if not np.all(np.isfinite(array)):
            raise ValueError
        return name, array
    except ValueError:
        raise argparse.ArgumentTypeError(f"--grid {text!r} is not one of: {GRID_FORMS}") from None


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(value) for value in text.split(",") if value.strip())
    except ValueError:
        seeds = ()
    if not seeds or any(not 0 <= seed < 2**31 for seed in seeds):
        raise argparse.ArgumentTypeError(
            f"seeds {text!r}: give at least one integer in [0, 2**31 - 1], comma-separated"
        )
    return seeds


def _natural(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 0")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return value


def _run_parser() -> argparse.ArgumentParser:
    import gdjax

    parser = _Parser(
        checks=_inconsistencies,
        prog="python -m bench",
        description="Run the gdjax benchmark suite; write results/<device-tag>[-profile]/. Progress goes to "
        "stderr, a closing summary to stdout.",
        epilog="other commands: `python -m bench check FOLDER [--against REFERENCE]` checks a results "
        "folder (against another's tables); `python -m bench compare A B` compares two results folders "
        "(speed and convergence, compare.md and compare.png); `python -m bench devices` compares this "
        "machine's devices; `python -m bench submit module:function` benchmarks your own optimizer against "
        "the baselines. `python -m bench COMMAND --help` for each.",
    )
    parser.add_argument(
        "--problems",
        type=_problem_names,
        help=f"comma-separated: {', '.join(KNOWN_PROBLEMS)}, or module:function returning a gdjax.Problem "
        f"(default: {', '.join(PROBLEMS)}, with the networks, grids and conditioning of the profile; only "
        "the --data problem when --data is given)",
    )
    data = parser.add_argument_group("your own data: a least-squares regression from a CSV file")
    data.add_argument("--data", type=Path, metavar="FILE.csv", help="a CSV file with a header row")
    data.add_argument("--target", metavar="COLUMN", help="the column to predict; the others are features")
    data.add_argument("--standardize", action="store_true", help="features to mean 0, standard deviation 1")
    data.add_argument("--bias", action="store_true", help="add a column of ones (an intercept)")
    parser.add_argument(
        "--optimizers",
        type=_optimizers,
        default=list(SUITE_OPTIMIZERS),
        help=f"comma-separated: {', '.join(gdjax.OPTIMIZERS)}, or optax:NAME (e.g. optax:adamw; give --lrs)",
    )
    parser.add_argument("--lrs", type=_learning_rates, help="a,b,c or LOW:HIGH:COUNT (log-spaced)")
    parser.add_argument(
        "--grid",
        type=_grid_axis,
        action="append",
        metavar="NAME=VALUES",
        help="sweep a hyperparameter of the optimizers (momentum, b1, weight_decay, ...) or of the schedule "
        "(warmup_steps, decay_rate, ...) too, every combination as one program; repeat for more axes: "
        f"{GRID_FORMS}; learning_rate=... is --lrs",
    )
    parser.add_argument(
        "--schedule",
        type=_one_of(list(SCHEDULES)),
        metavar="{" + ",".join(SCHEDULES) + "}",
        default="constant",
        help="the learning rate's schedule, its peak the grid's rate (gdjax.schedules; default constant)",
    )
    parser.add_argument("--seeds", type=_seeds, help="comma-separated integers")
    parser.add_argument("--steps", type=_positive_int, help="steps per run (default: textbook counts)")
    parser.add_argument(
        "--log-every",
        type=_positive_int,
        metavar="N",
        help=f"steps between logged points (default {LOG_EVERY}, fewer steps for fast problems; full-batch "
        "steps to target are exact whatever it is)",
    )
    parser.add_argument(
        "--dtype", type=_one_of(gdjax.DTYPES), metavar="{" + ",".join(gdjax.DTYPES) + "}", default="float32"
    )
    parser.add_argument("--device", default=None, help="JAX platform: cpu, gpu, ... (default: JAX's)")
    parser.add_argument(
        "--repeats", type=_positive_int, default=None, help="timed repeats (default 3, quick 1)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="parent folder (default results/)")
    parser.add_argument(
        "--quick", action="store_true", help="small profile for CI, every problem and optimizer"
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="the default suite with the networks' GPU-sized grid (64 rates x 10 seeds x 230 epochs, "
        "the CNN too): hours on a CPU; networks-summary.csv of a default run estimates how many",
    )
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="do not use gdjax's compile cache (JAX's own settings, e.g. JAX_COMPILATION_CACHE_DIR, still "
        "apply); by default compiled programs are kept in JAX's persistent cache (gdjax.use_compile_cache: "
        "~/.cache/gdjax/jax, or JAX_COMPILATION_CACHE_DIR) and a second run loads them; metadata.json says "
        "how many compiles it served",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="rerun everything: ignore what an interrupted run of the same command finished",
    )
    several = parser.add_argument_group(
        "several processes (jax.distributed): start the same command once per process; "
        "the runs are split over every process's devices and process 0 writes the results"
    )
    several.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    several.add_argument("--num-processes", type=_positive_int, metavar="N")
    several.add_argument("--process-id", type=_natural, metavar="I", help="0 .. N-1")
    return parser


def _join_processes(args) -> None:
    """Join the run of several processes that --coordinator, --num-processes and --process-id describe."""
    if args.coordinator is None:
        return
    host, port = _coordinator_address(args.coordinator)
    # JAX's runtime ends the process (SIGABRT, a C++ stack trace) when it cannot
    # join; check what can be checked first, so that the common mistakes get one line.
    if args.process_id == 0:
        with socket.socket() as probe:
            try:
                probe.bind(("", port))
            except OSError as error:
                reason = error.strerror
                raise UsageError(f"--coordinator port {port} cannot be used here ({reason})") from None
    else:
        _wait_for_coordinator(host, port)
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU devices of several processes
    jax.distributed.initialize(
        args.coordinator, args.num_processes, args.process_id, initialization_timeout=JOIN_TIMEOUT_S
    )


def _plan(cells, problems, dtype, device) -> None:
    """Plan every cell's sweep as it will run, on every device of ``device``'s platform; nothing is traced.

    Refuses, before anything is computed, a hyperparameter or schedule the
    optimizer lacks, a value out of range, too many steps, and a sweep whose
    single point does not fit in the devices' memory (ValueError).
    """
    import jax

    from bench.suites import one_seed_where_deterministic

    for cell in cells:
        problem = problems[cell.problem]
        cell = one_seed_where_deterministic(cell, not gdjax.seeds_matter(problem, cell.optimizer))
        with jax.enable_x64(dtype == "float64"):
            gdjax.prepare_sweep(
                problem, cell.optimizer, steps=cell.steps, seeds=cell.seeds, log_every=cell.log_every,
                **cell.sweep_points(), schedule=cell.schedule,
                dtype=dtype, devices=jax.devices(device.platform),
            )  # fmt: skip


def _coordinator_address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--coordinator must be HOST:PORT with a port in 1..65535; got {text!r}")
    return host, int(port)


def _wait_for_coordinator(host: str, port: int) -> None:
    """Wait until process 0's coordinator accepts connections, at most JOIN_TIMEOUT_S seconds."""
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while True:
        try:
            with socket.create_connection((host, port), timeout=5):
                return
        except OSError as error:
            if time.monotonic() > deadline:
                raise UsageError(
                    f"no coordinator answered at {host}:{port} in {JOIN_TIMEOUT_S} s ({error}); "
                    "start process 0 with the same --coordinator"
                ) from None
            time.sleep(0.5)


def _device(platform_name: str | None):
    """This process's first device of ``platform_name`` (default: JAX's default backend)."""
    import jax

    if platform_name is None:
        return jax.local_devices()[0]
    try:
        return jax.local_devices(backend=platform_name)[0]
    except RuntimeError:
        available = sorted({device.platform for device in jax.devices()} | {"cpu"})
        raise UsageError(
            f"device {platform_name!r} is not available; available: {', '.join(available)}"
        ) from None


def _check_writable(out: Path, folder: Path) -> None:
    """Refuse, before anything runs, an output path that is a file, is missing (parent too), or is read-only.

    ``out`` is the --out folder, ``folder`` the device folder inside it.
    ``out`` itself may be missing: it is created, but only inside a folder
    that exists, so a mistyped path is not silently made.
    """
    for path in (out, folder):
        if path.exists() and not path.is_dir():
            raise UsageError(f"output path {path} is a file; give a folder with --out")
    if not out.exists() and not out.parent.is_dir():
        raise UsageError(f"output folder {out} does not exist, nor does {out.parent}")
    nearest = next(path for path in (folder, out, out.parent) if path.is_dir())
    try:
        with tempfile.TemporaryFile(dir=nearest):
            pass
    except OSError as error:
        raise UsageError(f"output folder {nearest} is not writable ({error.strerror})") from None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _metadata(argv, device, tag, profile, dtype, cells, tables, repeats, compile_cache) -> dict:
    import jax

    versions = {
        name: package_metadata.version(name)
        for name in ("gdjax", "jax", "jaxlib", "optax", "numpy", "pandas")
    }
    versions["python"] = platform.python_version()
    return {
        "schema_version": SCHEMA_VERSION,
        "device_tag": tag,
        "device_kind": device.device_kind,
        "platform": device.platform,
        "device_count": len(jax.devices(device.platform)),
        "process_count": jax.process_count(),
        # the precision of the models' own dots and convolutions (jax_default_matmul_precision; "default"
        # may be TF32 on a GPU, bfloat16 on a TPU); the sums the engine inserts are float32 adds or wider
        "matmul_precision": str(jax.config.jax_default_matmul_precision or "default"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "versions": versions,
        "git_commit": _git_commit(),
        "command_line": "python -m bench " + shlex.join(argv),
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "profile": profile,
        "dtype": dtype,
        "seeds": sorted({seed for cell in cells for seed in cell.seeds}),
        "steps": {cell.problem: cell.steps for cell in cells},
        "schedule": cells[0].schedule,
        "grid": {name: list(values) for name, values in cells[0].grid},  # axes beside the learning rate
        "repeats": repeats,
        "floor_gflop_per_s": tables.flop_rate / 1e9,
        "floor_gexp_per_s": tables.exp_rate / 1e9,
        # a compile served by the cache is a load: compile_s of timing.csv is then load time
        "compile_cache": compile_cache,
    }


def _inconsistencies(args) -> list[str]:
    """What the run's arguments ask that cannot be done together, every item at once."""
    refused = []
    if (args.data is None) != (args.target is None):
        refused.append("--data and --target go together: the CSV file and the column to predict")
    if args.data is None and (args.standardize or args.bias):
        refused.append("--standardize and --bias apply to --data; give --data FILE.csv --target COLUMN")
    if args.quick and args.full:
        refused.append("give --quick or --full, not both")
    given = [args.coordinator, args.num_processes, args.process_id]
    if any(value is None for value in given) and any(value is not None for value in given):
        refused.append("--coordinator, --num-processes and --process-id go together; give all three")
    elif args.process_id is not None and not 0 <= args.process_id < args.num_processes:
        refused.append(f"--process-id must be in 0 .. {args.num_processes - 1}; got {args.process_id}")
    if args.coordinator is not None:
        try:
            _coordinator_address(args.coordinator)
        except UsageError as error:
            refused.append(str(error))
    grid = [axis for axis in args.grid or [] if axis is not None]  # None: an axis refused already
    axes = [name for name, _ in grid]
    if len(set(axes)) < len(axes):
        refused.append("--grid: each hyperparameter once")
    rates = dict(grid).get("learning_rate")
    if rates is not None and args.lrs is not None:
        refused.append("give the learning rates once: --lrs or --grid learning_rate=...")
    elif rates is not None and not np.all(np.isfinite(rates) & (rates > 0)):
        refused.append(f"--grid learning_rate: the rates must be positive finite numbers; got {rates}")
    if args.log_every is not None and args.steps is not None and args.log_every > args.steps:
        refused.append(f"--log-every {args.log_every} is more than --steps {args.steps}")
    return refused


def run(argv: list[str]) -> int:
    args = _run_parser().parse_args(argv)
    writes = not args.process_id  # None (one process) or 0
    if writes:  # before joining, so that a bad --out stops every process at once
        _check_writable(args.out, args.out)
    _join_processes(args)
    device = _device(args.device)
    problems = _problems(args)
    grid = dict(args.grid or [])
    if "learning_rate" in grid:
        args.lrs = grid.pop("learning_rate")
    custom = any(value is not None for value in (args.lrs, args.seeds, args.steps, args.log_every)) or (
        list(problems) != list(PROBLEMS)
        or args.optimizers != list(SUITE_OPTIMIZERS)
        or bool(grid)
        or args.schedule != "constant"
    )
    profile = "custom" if custom else "quick" if args.quick else "full" if args.full else "default"
    tag = device_tag(device)
    # one folder per device, profile and dtype: a float64 run never replaces the float32 one
    folder = args.out / "-".join(
        [
            tag,
            *([profile] if profile != "default" else []),
            *([args.dtype] if args.dtype != "float32" else []),
        ]
    )
    if writes:
        _check_writable(args.out, folder)
    try:
        cells = build_suite(
            list(problems),
            args.optimizers,
            quick=args.quick,
            learning_rates=args.lrs,
            seeds=args.seeds,
            steps=args.steps,
            grid=grid,
            schedule=args.schedule,
            log_every=args.log_every,
        )
        _plan(cells, problems, args.dtype, device)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if writes:
        recover_folder(folder)
    repeats = args.repeats or (1 if args.quick else 3)
    cache_folder = None if args.no_compile_cache else gdjax.use_compile_cache()
    progress = Progress()

    import jax
    import pandas as pd

    from bench.baselines import FloorRates
    from bench.cache import RunCache
    from bench.conditioning import conditioning_table
    from bench.grids import cells_from_convergence, run_grids
    from bench.lessons import run_lessons
    from bench.networks import NETWORK_REPEATS, run_networks
    from bench.profiles import performance_profiles, profile_plots
    from bench.report import grid_plots, lesson_plots, network_plots, plots, report_markdown, summary_markdown
    from bench.runner import run_suite

    # One process keeps what it finishes; several would have to agree on what to skip, so they do not.
    partial = args.out / f".{folder.name}.partial" if writes and jax.process_count() == 1 else None
    cache = RunCache(partial, fresh=args.fresh)
    with jax.default_device(device):
        devices = jax.devices(device.platform)
        tables = run_suite(
            cells, dtype=args.dtype, repeats=repeats, devices=devices, problems=problems, cache=cache,
            progress=progress,
        )  # fmt: skip
        steps = {cell.problem: cell.steps for cell in cells}
        progress("lessons", "the classic lessons' runs (stability limit, standardisation, paths)")
        lessons = run_lessons(tables.summary, steps, dtype=args.dtype, devices=devices, problems=problems)
        if profile != "custom":
            progress("conditioning", "steps to target against the condition number")
            conditioning = cache.get(
                {
                    "piece": "conditioning",
                    "profile": profile,
                    "dtype": args.dtype,
                    "devices": list(map(str, devices)),
                },
                # the full profile's textbook part is the default one
                lambda: conditioning_table(
                    "quick" if profile == "quick" else "default", dtype=args.dtype, devices=devices
                ),
            )
            tables = tables._replace(conditioning=conditioning)
            networks = cache.get(
                {
                    "piece": "networks",
                    "profile": profile,
                    "dtype": args.dtype,
                    "devices": [str(d) for d in devices],
                },
                lambda: run_networks(
                    profile,
                    dtype=args.dtype,
                    repeats=NETWORK_REPEATS,
                    rates=FloorRates(tables.flop_rate, tables.exp_rate),
                    devices=devices,
                    progress=progress.phase("networks"),
                ),
            )
            tables = tables._replace(
                timing=pd.concat([tables.timing, networks.timing], ignore_index=True), networks=networks
            )
            progress("grids", "the heatmaps over two hyperparameters, with theory")
            grids = cache.get(
                {
                    "piece": "grids",
                    "profile": profile,
                    "dtype": args.dtype,
                    "devices": [str(d) for d in devices],
                },
                lambda: run_grids(profile, dtype=args.dtype, devices=devices),
            )
            tables = tables._replace(grids=grids)
        elif len(cells[0].grid) == 1:  # a custom run over (rate x one more axis): its heatmap
            tables = tables._replace(grids=cells_from_convergence(tables.convergence, tables.summary))
    served = gdjax.compile_cache.compile_cache_served()
    compile_cache = None if cache_folder is None else {"folder": str(cache_folder), **served}
    meta = _metadata(argv, device, tag, profile, args.dtype, cells, tables, repeats, compile_cache)
    if not writes:
        print(f"process {args.process_id}: done; process 0 writes {folder}/")
        return 0
    progress("writing", f"tables, plots and reports into {folder}/")
    networks_summary = tables.networks.summary if tables.networks is not None else None
    profiles = performance_profiles(tables.tuned, networks_summary)
    images = {**plots(tables), **lesson_plots(lessons), **profile_plots(profiles)}
    if tables.networks is not None:
        images.update(network_plots(tables.networks))
    if tables.grids is not None:
        images.update(grid_plots(tables.grids))
    files = {
        name: table_csv(name, getattr(tables, name.removesuffix(".csv"))).encode() for name in RUN_TABLES
    }
    for name in OPTIONAL_RUN_TABLES:
        frame = getattr(tables, name.removesuffix(".csv"))
        if frame is not None:
            files[name] = table_csv(name, frame).encode()
    if tables.networks is not None:
        frames = (tables.networks.convergence, tables.networks.summary, tables.networks.curves)
        for name, frame in zip(NETWORK_TABLES, frames, strict=True):
            files[name] = table_csv(name, frame).encode()
    if tables.grids is not None and len(tables.grids.theory):  # the profiles' heatmaps (bench.grids)
        for name, frame in zip(GRID_TABLES, (tables.grids.cells, tables.grids.theory), strict=True):
            files[name] = table_csv(name, frame).encode()
    files["profiles.csv"] = table_csv("profiles.csv", profiles).encode()
    files["summary.md"] = summary_markdown(tables, meta, sorted(images)).encode()
    files["report.md"] = report_markdown(tables, meta, sorted(images)).encode()
    files["metadata.json"] = (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode()
    files.update(images)
    write_folder(folder, files)
    cache.clear()
    resumed = f"; {cache.loaded} finished pieces of an interrupted run reused" if cache.loaded else ""
    progress("done", f"wrote {len(files)} files into {folder}/{resumed}")
    print(closing_summary(tables, folder))
    return 0


def devices_command(argv: list[str]) -> int:
    parser = _Parser(
        prog="python -m bench devices",
        description="Compare this machine's devices and how the cost scales with grid and data size; "
        "write devices.csv, scaling.csv, devices.md and plots into --out, keeping other machines' rows.",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: results)")
    parser.add_argument("--repeats", type=_positive_int, help="timed repeats per sweep (default 3)")
    parser.add_argument("--quick", action="store_true", help="small grids and data, for a smoke test")
    args = parser.parse_args(argv)
    _check_writable(args.out, args.out)
    previous = {
        name: read_table(args.out / name) if (args.out / name).exists() else None for name in MACHINE_TABLES
    }

    from bench.devices import merge, run_devices
    from bench.report import devices_markdown, scaling_plots

    machine = f"{_cpu_model()} ({os.cpu_count()} cores)"
    measured = run_devices(machine, quick=args.quick, repeats=args.repeats or (1 if args.quick else 3))
    devices = merge(previous["devices.csv"], measured.devices)
    scaling = merge(previous["scaling.csv"], measured.scaling)
    images = scaling_plots(scaling)
    tables_now = {"devices.csv": devices, "scaling.csv": scaling}
    files = {name: table_csv(name, frame).encode() for name, frame in tables_now.items()}
    files["devices.md"] = devices_markdown(devices, sorted(images)).encode()
    files.update(images)
    replace_files(args.out, files)
    print(f"wrote {', '.join(str(args.out / name) for name in sorted(files))}")
    return 0


def check_command(argv: list[str]) -> int:
    parser = _Parser(
        prog="python -m bench check",
        description="Check a results folder's tables; compare its convergence with another's.",
    )
    parser.add_argument("folder", type=Path)
    parser.add_argument("--against", type=Path, help="reference results folder (e.g. the committed one)")
    args = parser.parse_args(argv)
    differences = check(args.folder, args.against or args.folder)
    for line in differences[:50]:
        print(line)
    if differences:
        print(f"{len(differences)} difference(s) beyond tolerance", file=sys.stderr)
        return 1
    print(f"ok: {args.folder} " + (f"agrees with {args.against}" if args.against else "is well formed"))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["check"]:
            return check_command(argv[1:])
        if argv[:1] == ["devices"]:
            return devices_command(argv[1:])
        if argv[:1] == ["submit"]:
            from bench.submit import submit_command

            return submit_command(argv[1:])
        if argv[:1] == ["compare"]:
            from bench.compare import compare_command

            return compare_command(argv[1:])
        return run(argv)
    except (UsageError, TableError) as error:
        print(f"bench: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
    except OSError as error:
        print(
            f"bench: error: could not write results: {error}; the previous results are intact",
            file=sys.stderr,
        )
        return 2
