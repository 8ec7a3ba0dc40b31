"""Sessions: tests (the pass/fail run), bench (the main job), compat (the version matrix), perf, lint.

tests, bench, results and perf install the pinned environment that
generated results/ (.ci/constraints-pinned.txt); compat runs the engine's
tests and a quick harness run on each leg of the version matrix.
"""

import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "slow", "lint", "results"]
nox.options.reuse_existing_virtualenvs = True

PINNED = ".ci/constraints-pinned.txt"  # Python 3.11's newest JAX (0.10.2) and what it ran with
LOWEST = ".ci/constraints-lowest.txt"  # the lowest versions pyproject.toml declares
# (Python, constraints or None for the newest that pip picks); the pinned leg is `nox -s tests`
VERSION_MATRIX = [("3.11", LOWEST), ("3.12", None), ("3.13", None)]
COMPAT_TESTS = [
    "tests/test_compat.py",
    "tests/test_invariance.py",
    "tests/test_devices.py",
    "tests/test_runs_last.py",
    "tests/test_engine.py",
    "tests/test_references.py",
    "tests/test_optimizers.py",
    "tests/test_networks.py",
    "tests/test_grids.py",
    "tests/test_theory.py",
    "tests/test_evaluation_point.py",
]
VERSIONS = "import sys, jax, jaxlib, numpy, optax, pandas; print('python', sys.version.split()[0], *(f'{m.__name__} {m.__version__}' for m in (jax, jaxlib, numpy, optax, pandas)), sep=', ')"  # noqa: E501


def _install(session: nox.Session, extras: str, constraints: str | None = PINNED) -> None:
    """Install gdjax with ``extras`` under ``constraints`` (a pip constraints file, if any); log versions."""
    session.install("-e", f".[{extras}]", *(["-c", constraints] if constraints else []))
    session.run("python", "-c", VERSIONS, silent=False)


def _quick_run(session: nox.Session, *, compare: bool) -> None:
    """Run the quick profile into a temporary folder; check its schema (and the tables, if ``compare``)."""
    out = Path(session.create_tmp()) / "results"
    shutil.rmtree(out, ignore_errors=True)
    session.run("python", "-m", "bench", "--quick", "--out", str(out))
    (folder,) = out.iterdir()
    committed = Path("results") / folder.name
    against = ["--against", str(committed)] if compare and committed.is_dir() else []
    if compare and not against:  # nothing to compare is a failure, not a quiet schema check
        session.error(f"no committed {committed}/ to compare with: commit this device's quick results first")
    session.run("python", "-m", "bench", "check", str(folder), *against)


@nox.session
def tests(session: nox.Session) -> None:
    """The developer's loop: correctness tests and doctests, the long reference runs aside (`nox -s slow`).

    In the pinned environment; benchmarks run once, untimed. One pytest
    worker per core (pytest-xdist): most of the time goes to compiling,
    which XLA does on one core. Arguments replace the marker selection:
    `nox -s tests -- tests/test_engine.py` runs that file whole.
    """
    _install(session, "test,bench")
    session.run("pytest", "--numprocesses=auto", *(session.posargs or ["-m", "not slow"]))


@nox.session
def slow(session: nox.Session) -> None:
    """The long reference runs (marked `slow`) that `nox -s tests` leaves out; CI runs both."""
    _install(session, "test,bench")
    session.run("pytest", "--numprocesses=auto", "-m", "slow", *session.posargs)


@nox.session(default=False)
@nox.parametrize(("python", "constraints"), VERSION_MATRIX, ids=["3.11-lowest", "3.12-newest", "3.13-newest"])
def compat(session: nox.Session, constraints: str | None) -> None:
    """One leg of the version matrix: the engine and reference tests, then a quick harness run (schema only).

    The tables are compared on the pinned environment alone (`nox -s results`):
    chaotic cells (Adam at large rates) differ in the last bits across JAX versions.
    """
    _install(session, "test,bench", constraints)
    session.run("pytest", "--numprocesses=auto", *COMPAT_TESTS, *session.posargs)
    session.run("pytest", "-m", "not slow", "tests/test_corpus.py", *session.posargs)  # its quick cases
    _quick_run(session, compare=False)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """The default benchmark suite; writes results/<device-tag>/ (args go to `python -m bench`)."""
    _install(session, "bench")
    session.run("python", "-m", "bench", *session.posargs)
    if not session.posargs:  # results/cpu/ rewritten: the pages' figures follow it (tests/test_readme.py)
        session.run("python", "-m", "bench.readme")


@nox.session(default=False)
def devices(session: nox.Session) -> None:
    """Compare this machine's devices and the scaling series; merges into results/devices.csv, scaling.csv."""
    _install(session, "bench")
    session.run("python", "-m", "bench", "devices", *session.posargs)
    # the default suite's results of every other device in results/ (e.g. results/gpu-nvidia-h200/),
    # side by side with this CPU's: results/compare-cpu-<tag>/compare.md
    for other in sorted(Path("results").glob("*/metadata.json")):
        tag = other.parent.name
        if tag != "cpu" and not tag.startswith("cpu-") and Path("results/cpu").is_dir():
            out = f"results/compare-cpu-{tag}"
            session.run("python", "-m", "bench", "compare", "results/cpu", str(other.parent), "--out", out)


@nox.session
def results(session: nox.Session) -> None:
    """Regenerate the quick profile and check it against the committed results/<device-tag>-quick/."""
    _install(session, "bench")
    _quick_run(session, compare=True)


PERF_ARGS = ["pytest", "tests/test_speed.py", "--benchmark-enable", "--benchmark-columns=min,median,max"]


@nox.session(default=False)
def perf(session: nox.Session) -> None:
    """Speed benchmarks (pytest-benchmark), timed and saved under .benchmarks/; never pass/fail on time."""
    _install(session, "test,bench")
    session.run(*PERF_ARGS, "--benchmark-autosave", *session.posargs)


@nox.session(default=False)
def perf_compare(session: nox.Session) -> None:
    """The speed benchmarks against the last saved `nox -s perf` run: fails on a median slowdown over 20%."""
    _install(session, "test,bench")
    session.run(
        *PERF_ARGS,
        "--benchmark-compare",
        "--benchmark-compare-fail=median:20%",
        *session.posargs,
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
