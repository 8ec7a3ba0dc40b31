"""Sessions: tests (the pass/fail run), bench (the main job), perf (speed benchmarks), lint."""

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests", "lint"]
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
def perf(session: nox.Session) -> None:
    """Speed benchmarks with pytest-benchmark, timed (never pass/fail on time)."""
    session.install("-e", ".[test,bench]")
    session.run("pytest", "tests/test_speed.py", "--benchmark-enable", "-p", "no:doctest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint and format check."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
