"""Sessions: tests (the pass/fail run), bench (the main job), perf (speed benchmarks), lint."""

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


@nox.session(default=False)
def perf(session: nox.Session) -> None:
    """Speed benchmarks with pytest-benchmark, timed (never pass/fail on time)."""
    session.install("-e", ".[test,bench]")
    session.run("pytest", "tests/test_speed.py", "--benchmark-enable", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
