"""Resume: what an interrupted run finished, kept until the run completes.

Each finished piece of a run (the floor, each cell, the tables after the
cells) is pickled under ``<out>/.<folder>.partial/`` as it finishes, keyed
by a hash of its configuration and the library version (the versions of
gdjax, JAX, optax and numpy, and a hash of gdjax's and the harness's own
source). Run the same command again and the pieces found are loaded, not
rerun; a changed option or a changed library misses the cache. The folder
is removed once the results are written; ``--fresh`` removes it first.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax
import numpy as np

import gdjax

_SOURCES = (Path(gdjax.__file__).parent, Path(__file__).parent)


def library_version() -> dict:
    """The packages' versions and a hash of gdjax's and bench's source files."""
    source = hashlib.sha256()
    for folder in _SOURCES:
        for path in sorted(folder.glob("*.py")):
            source.update(path.name.encode() + path.read_bytes())
    versions = {name: metadata.version(name) for name in ("gdjax", "jax", "jaxlib", "optax", "numpy")}
    return {**versions, "source": source.hexdigest()}


def problem_fingerprint(problem: gdjax.Problem, seeds) -> str:
    """A hash of what defines a problem: name, data, starting points, the loss's code and its facts."""
    digest = hashlib.sha256(problem.name.encode())
    facts = problem.facts  # the target and minimum are inputs of every run
    declared = (facts.minimum_loss, facts.target_loss, facts.curvature, facts.reference, facts.reference_rate)
    digest.update(repr((*declared, facts.seeded_start)).encode())  # floats' repr is exact
    for leaf in jax.tree.leaves(facts.optimum):
        digest.update(np.ascontiguousarray(leaf, dtype=np.float64).tobytes())
    for array in (
        problem.X,
        problem.y,
        *(np.asarray(leaf) for s in seeds for leaf in jax.tree.leaves(problem.init(s))),
    ):
        digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
    loss = getattr(problem.loss, "f", problem.loss)  # a function problem's own f
    code = getattr(loss, "__code__", None)
    digest.update(repr(getattr(loss, "__qualname__", repr(loss))).encode())
    if code is not None:
        digest.update(code.co_code + repr(code.co_consts).encode())
    for cell in getattr(loss, "__closure__", None) or ():  # what a factory's f captured, e.g. a matrix
        try:
            digest.update(np.ascontiguousarray(cell.cell_contents, dtype=np.float64).tobytes())
        except (TypeError, ValueError):
            digest.update(repr(cell.cell_contents).encode())
    return digest.hexdigest()


class RunCache:
    """Pieces of one run, by configuration; ``folder=None`` keeps nothing (every piece is computed)."""

    def __init__(self, folder: Path | None, *, fresh: bool = False):
        self.folder = folder
        self.version = library_version() if folder is not None else None
        self.loaded = 0
        if folder is not None and fresh:
            shutil.rmtree(folder, ignore_errors=True)

    def get(self, config: dict, compute: Callable[[], Any]) -> Any:
        """The piece ``config`` describes: loaded if an earlier attempt finished it, else computed, kept."""
        if self.folder is None:
            return compute()
        text = json.dumps({"config": config, "version": self.version}, sort_keys=True, default=repr)
        path = self.folder / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.pkl"
        if path.is_file():
            try:
                with open(path, "rb") as handle:
                    value = pickle.load(handle)
                self.loaded += 1
                return value
            except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
                pass  # a damaged entry is computed again
        value = compute()
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=self.folder, suffix=".tmp", delete=False) as handle:
            pickle.dump(value, handle)
        os.replace(handle.name, path)  # whole or absent, never half written
        return value

    def clear(self) -> None:
        """Forget the pieces: the run they belong to is complete."""
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
