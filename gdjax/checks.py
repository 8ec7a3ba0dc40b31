"""The checks a sweep's arguments pass at the Python boundary, before any tracing."""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gdjax.problems import Problem

DTYPES = ("float32", "float64")
MAX_SEED = 2**31 - 1


def check_count(name: str, value, *, low: int = 1, high: int | None = None) -> int:
    allowed = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be {allowed}; got {value!r} ({type(value).__name__})")
    if value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    return int(value)


def check_dtype(dtype) -> str:
    try:
        name = np.dtype(dtype).name
    except Exception:  # numpy raises TypeError, ValueError, even SyntaxError for odd strings
        name = None
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {dtype!r}")
    with jax.enable_x64(name == "float64"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # JAX's own truncation warning; we raise instead
        if jnp.zeros((), name).dtype != name:  # never silently downgrade float64 to float32
            raise ValueError(f"dtype {name} is not available with this JAX ({jax.default_backend()} backend)")
    return name


def check_learning_rates(learning_rates, dtype: str, name: str = "learning_rates") -> np.ndarray:
    try:
        rates = np.atleast_1d(np.asarray(learning_rates, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be positive finite numbers; got {learning_rates!r}") from None
    if rates.ndim != 1 or rates.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence of numbers; got shape {rates.shape}")
    bad = rates[~(np.isfinite(rates) & (rates > 0))]
    if bad.size:
        raise ValueError(f"{name} must be positive and finite; got {float(bad[0])!r}")
    info = np.finfo(dtype)
    if np.any(rates > info.max):
        raise ValueError(f"{name} must be at most {info.max:.3g} in {dtype}; got {float(rates.max())!r}")
    if np.any(rates.astype(dtype) == 0):
        raise ValueError(
            f"{name} must be at least {info.smallest_subnormal:.3g} in {dtype} (less rounds to 0); "
            f"got {float(rates.min())!r}"
        )
    return rates


def check_tolerance(tolerance) -> float | None:
    if tolerance is None:
        return None
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float | np.integer | np.floating):
        raise TypeError(f"tolerance must be a positive finite number or None; got {tolerance!r}")
    if not (np.isfinite(tolerance) and tolerance > 0):
        raise ValueError(f"tolerance must be a positive finite number or None; got {tolerance!r}")
    return float(tolerance)


def check_flag(name: str, value) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_labels(y, name: str = "problem.y") -> None:
    """Integer targets (class labels) reach the loss as int32: refuse any that int32 cannot hold."""
    y = np.asarray(y)
    if np.issubdtype(y.dtype, np.integer) and y.size:
        low, high = np.iinfo(np.int32).min, np.iinfo(np.int32).max
        if y.min() < low or y.max() > high:
            raise ValueError(
                f"{name} holds integers (class labels, passed as int32) outside [{low}, {high}]: "
                f"{int(y.min())}..{int(y.max())}; give float targets for a regression"
            )


def check_seeds(seeds) -> np.ndarray:
    values = np.atleast_1d(np.asarray(seeds))
    if values.size == 0 or values.ndim != 1:
        raise ValueError(f"seeds must be a non-empty 1-D sequence of integers; got {seeds!r}")
    if not np.issubdtype(values.dtype, np.integer):
        raise TypeError(f"seeds must be integers in [0, {MAX_SEED}]; got {seeds!r}")
    if values.min() < 0 or values.max() > MAX_SEED:
        raise ValueError(f"seeds must be integers in [0, {MAX_SEED}]; got {seeds!r}")
    return values.astype(np.int64)


def stack_init(problem: Problem, seeds: np.ndarray, init_params) -> Any:
    """Starting parameters for every seed, leaves float64 with leading axis n_seeds."""
    if init_params is None:
        per_seed = [problem.init(int(s)) for s in seeds]
        return jax.tree.map(lambda *leaves: np.stack([np.asarray(x, np.float64) for x in leaves]), *per_seed)
    reference = problem.init(int(seeds[0]))
    given = jax.tree.map(lambda x: np.asarray(x, np.float64), init_params)
    if jax.tree.structure(given) != jax.tree.structure(reference) or any(
        a.shape != np.shape(b)
        for a, b in zip(jax.tree.leaves(given), jax.tree.leaves(reference), strict=True)
    ):
        shapes = jax.tree.map(np.shape, reference)
        raise ValueError(
            f"init_params must match the problem's parameters {shapes}; got {jax.tree.map(np.shape, given)}"
        )
    if not all(np.all(np.isfinite(leaf)) for leaf in jax.tree.leaves(given)):
        raise ValueError("init_params must be finite")
    return jax.tree.map(lambda x: np.broadcast_to(x, (seeds.size, *x.shape)), given)
