"""Sessions: tests (the pass/fail run), bench (the main job), perf (speed benchmarks), lint."""

import os
import shutil
from pathlib import Path

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint", "results"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """Correctness tests and doctests; benchmarks run once, untimed."""
    session.install("-e", ".[test,bench]")
    session.run("pip", "freeze", silent=False)
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """The default benchmark suite; writes results/<device-tag>/ (args go to `python -m bench`)."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "bench", *session.posargs)


@nox.session(default=False)
def devices(session: nox.Session) -> None:
    """Compare this machine's devices and the scaling series; merges into results/devices.csv, scaling.csv."""
    session.install("-e", ".[bench]")
    session.run("python", "-m", "bench", "devices", *session.posargs)


@nox.session
def results(session: nox.Session) -> None:
    """Regenerate the quick profile and check it against the committed results/<device-tag>-quick/."""
    session.install("-e", ".[bench]")
    out = Path(session.create_tmp()) / "results"
    shutil.rmtree(out, ignore_errors=True)
    session.run("python", "-m", "bench", "--quick", "--out", str(out))
    (folder,) = out.iterdir()
    committed = Path("results") / folder.name
    against = ["--against", str(committed)] if committed.is_dir() else []
    if not against:
        session.warn(f"no committed {committed}/ to compare with; checking the schema only")
    session.run("python", "-m", "bench", "check", str(folder), *against)


PERF_ARGS = ["pytest", "tests/test_speed.py", "--benchmark-enable", "--benchmark-columns=min,median,max"]


def _all_cores_env() -> dict:
    """One XLA host device per core, as the harness uses (set before JAX starts)."""
    return {"XLA_FLAGS": f"--xla_force_host_platform_device_count={os.cpu_count()}"}


@nox.session(default=False)
def perf(session: nox.Session) -> None:
    """Speed benchmarks (pytest-benchmark), timed and saved under .benchmarks/; never pass/fail on time."""
    session.install("-e", ".[test,bench]")
    session.run(*PERF_ARGS, "--benchmark-autosave", *session.posargs, env=_all_cores_env())


@nox.session(default=False)
def perf_compare(session: nox.Session) -> None:
    """The speed benchmarks against the last saved `nox -s perf` run: fails on a median slowdown over 20%."""
    session.install("-e", ".[test,bench]")
    session.run(
        *PERF_ARGS,
        "--benchmark-compare",
        "--benchmark-compare-fail=median:20%",
        *session.posargs,
        env=_all_cores_env(),
    )


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
