"""Tuning spaces: which hyperparameters an optimizer is tuned over, on which scales; the points drawn.

A space is ``{name: (scale, low, high)}`` with the learning rate among the
names and each other name an argument of the optimizer's factory. Scales:

- ``"log"``: log-uniform on [low, high] (0 < low < high), for rates;
- ``"linear"``: uniform on [low, high];
- ``"log1m"``: ``1 - beta`` log-uniform, for momentum-like values in
  [low, high] with high < 1: 0.9, 0.99 and 0.999 are equally far apart.

Every optimizer is tuned by the same rule (``draw_points``): the same number
of points whatever the space's dimension, a Latin hypercube drawn from a
seed that does not depend on the optimizer (so two optimizers with the same
space get the very same points), mapped onto each name's scale. The names are
taken in one order (the learning rate, then the others sorted), so a space
written in any order draws the same points. A space is
one range per name for every problem, as a user's optimizer would be tuned
in practice; a best point at the edge of what was drawn is flagged by the
harness.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real as numbers_Real

import numpy as np

from gdjax.hyperparameters import LEARNING_RATE, PASSED_BY_ENGINE, _arguments, _may_be_axis

SCALES = ("log", "linear", "log1m")
# The registered optimizers' spaces, wide enough for every problem of the suite: the best rates of the
# default run's grids lie from 1.7e-4 (sgd on the raw regression) to 17 (gd on XOR), each optimizer's
# well inside its range here.
_SGD_RATES = ("log", 1e-5, 1e2)
SEARCH_SPACES: dict[str, dict[str, tuple[str, float, float]]] = {
    "gd": {LEARNING_RATE: _SGD_RATES},
    "sgd": {LEARNING_RATE: _SGD_RATES},
    "momentum": {LEARNING_RATE: ("log", 1e-6, 1e1), "momentum": ("log1m", 0.5, 0.99)},
    "nesterov": {LEARNING_RATE: ("log", 1e-6, 1e1), "momentum": ("log1m", 0.5, 0.99)},
    "adam": {LEARNING_RATE: ("log", 1e-4, 1e1)},
}
DEFAULT_SEARCH_SEED = 0


def check_search_space(space, factory=None, optimizer: str = "the optimizer") -> dict[str, tuple]:
    """``space`` as ``{name: (scale, low, high)}``, the learning rate first; ValueError naming what is wrong.

    With ``factory``, every name other than the learning rate must be a
    numeric argument of it (a factory taking ``**kwargs`` takes any name).
    """
    where = f"search space of {optimizer}"
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"{where} must be a non-empty dict {{name: (scale, low, high)}}; got {space!r}")
    if LEARNING_RATE not in space:
        raise ValueError(f"{where} must include {LEARNING_RATE!r}; got {', '.join(map(str, space))}")
    arguments = _arguments(factory) if factory is not None else None
    checked = {}
    for name in sorted(space, key=lambda name: (name != LEARNING_RATE, str(name))):  # an order of its own
        entry = space[name]
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{where}: names must be argument names; got {name!r}")
        if name != LEARNING_RATE and arguments is not None:
            parameter = arguments.get(name)
            if parameter is None or name in PASSED_BY_ENGINE or not _may_be_axis(parameter):
                numeric = [n for n, p in arguments.items() if _may_be_axis(p) and n not in PASSED_BY_ENGINE]
                raise ValueError(
                    f"{where}: {name!r} is not a numeric argument of the factory; its arguments: "
                    f"{', '.join([LEARNING_RATE, *numeric])}"
                )
        if not (isinstance(entry, tuple | list) and len(entry) == 3 and entry[0] in SCALES):
            raise ValueError(
                f"{where}: {name!r} must be (scale, low, high) with scale one of {', '.join(SCALES)}; "
                f"got {entry!r}"
            )
        scale, low, high = entry
        finite_numbers = all(
            isinstance(v, numbers_Real) and not isinstance(v, bool | np.bool_) for v in (low, high)
        )
        if not finite_numbers or not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(f"{where}: {name!r} needs finite numbers low < high; got {entry!r}")
        if scale == "log" and low <= 0:
            raise ValueError(f"{where}: {name!r} on scale 'log' needs 0 < low; got {entry!r}")
        if scale == "log1m" and not (low >= 0 and high < 1):
            raise ValueError(f"{where}: {name!r} on scale 'log1m' needs 0 <= low < high < 1; got {entry!r}")
        if name == LEARNING_RATE and low <= 0:
            raise ValueError(f"{where}: the learning rate must be positive; got {entry!r}")
        checked[name] = (scale, float(low), float(high))
    return checked


def unit_points(n_points: int, dimension: int, seed: int = DEFAULT_SEARCH_SEED) -> np.ndarray:
    """(n_points, dimension) Latin hypercube in [0, 1): a point in each of n equal strata of every column."""
    if isinstance(n_points, bool) or not isinstance(n_points, int | np.integer) or n_points < 1:
        raise ValueError(f"the number of points must be a positive integer; got {n_points!r}")
    rng = np.random.default_rng(seed)
    n_points = int(n_points)
    strata = np.stack([rng.permutation(n_points) for _ in range(dimension)], axis=1)
    return (strata + rng.random((n_points, dimension))) / n_points


def to_scale(unit: np.ndarray, scale: str, low: float, high: float) -> np.ndarray:
    """Values in [low, high] on ``scale`` for ``unit`` values in [0, 1]."""
    if scale == "log":
        return np.exp(np.log(low) + unit * (np.log(high) - np.log(low)))
    if scale == "log1m":
        return 1 - np.exp(np.log1p(-low) + unit * (np.log1p(-high) - np.log1p(-low)))
    return low + unit * (high - low)


def draw_points(space, n_points: int, seed: int = DEFAULT_SEARCH_SEED) -> list[dict[str, float]]:
    """``n_points`` points of ``space`` (``sweep(points=...)``): the same rule and budget for every optimizer.

    Examples:
        >>> points = draw_points({"learning_rate": ("log", 1e-4, 1.0), "b1": ("log1m", 0.5, 0.99)}, 4)
        >>> len(points), sorted(points[0])
        (4, ['b1', 'learning_rate'])
    """
    space = check_search_space(space)
    unit = unit_points(n_points, len(space), seed)
    columns = {name: to_scale(unit[:, i], *space[name]) for i, name in enumerate(space)}
    return [{name: float(values[i]) for name, values in columns.items()} for i in range(n_points)]
