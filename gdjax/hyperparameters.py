"""A sweep's points (a grid, a list, or learning rates alone) and which hyperparameters are data.

Every point of a sweep is a set of hyperparameter values: the learning rate
and any numeric argument of the optimizer's factory or of the learning-rate
schedule. They reach the compiled program as arrays, one value per run, and
the factory is called inside the traced run with them, so new values of the
same shape never recompile. So that a grid point and a one-axis run of the
same values agree bit for bit (a Python constant and a traced value can
round differently), a value you give is data wherever you give it: the
float keywords of a ``functools.partial`` factory (the 0.9 of the
registered ``"momentum"``, ``functools.partial(optax.sgd, momentum=0.9)``)
are passed as data in every sweep, like an axis. An argument you leave at
its signature's default (Adam's b1, b2, eps) stays a constant: passed as
data, Adam's ``b1 ** t`` becomes per run, 1.75x the time of a 2-parameter
problem's step, and XLA rounded it differently when the runs were split
over two devices (a run's bits would then depend on its grid).
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from gdjax.checks import check_learning_rates
from gdjax.schedules import SCHEDULES, check_schedule_values, schedule_defaults
from gdjax.step import optimizer_for_run

LEARNING_RATE = "learning_rate"  # the factory's first argument, whatever the factory calls it
PASSED_BY_ENGINE = {"key", "seed"}  # a stochastic optimizer's own key (gdjax.step.optimizer_for_run)


def sweep_points(learning_rates, grid, points, dtype: str) -> tuple[dict[str, np.ndarray], tuple | None]:
    """``({name: (n_points,) float64 values}, grid shape or None)`` from exactly one of the three forms.

    ``grid`` is the Cartesian product of its axes in row-major order (the
    last axis varies fastest); ``points`` a list of dicts with the same
    names; ``learning_rates`` the one-axis case.
    """
    given = [name for name, value in (("learning_rates", learning_rates), ("grid", grid), ("points", points))
             if value is not None]  # fmt: skip
    if len(given) != 1:
        raise ValueError(
            "give exactly one of learning_rates=[...], grid={name: values} or points=[{name: value}, ...]; "
            f"got {', '.join(given) or 'none'}"
        )
    if learning_rates is not None:
        rates = check_learning_rates(learning_rates, dtype)
        return {LEARNING_RATE: rates}, None
    if grid is not None:
        if not isinstance(grid, Mapping) or not grid:
            raise TypeError(f"grid must be a non-empty dict {{name: values}}; got {grid!r}")
        axes = {name: _axis_values(f"grid[{name!r}]", values) for name, values in grid.items()}
        product = np.array(list(itertools.product(*axes.values())), dtype=np.float64)
        values = dict(zip(axes, product.T, strict=True))
        shape = tuple(len(axis) for axis in axes.values())
    else:
        if isinstance(points, Mapping | str) or not isinstance(points, Sequence) or not points:
            raise TypeError(f"points must be a non-empty list of dicts {{name: value}}; got {points!r}")
        names = list(points[0]) if isinstance(points[0], Mapping) else None
        if names is None or any(not isinstance(p, Mapping) or set(p) != set(names) for p in points):
            raise ValueError(f"points must be dicts with the same names; got {points!r}")
        values = {name: _axis_values(f"points[...][{name!r}]", [p[name] for p in points]) for name in names}
        shape = None
    if LEARNING_RATE not in values:
        raise ValueError(f"a grid or points must include {LEARNING_RATE!r}; got {', '.join(values)}")
    for name in values:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"hyperparameter names must be argument names; got {name!r}")
    where = "grid['learning_rate']" if grid is not None else "points[...]['learning_rate']"
    values[LEARNING_RATE] = check_learning_rates(values[LEARNING_RATE], dtype, where)
    return values, shape


def _axis_values(where: str, values) -> np.ndarray:
    if (
        isinstance(values, str | bytes | Mapping)
        or np.ndim(values) != 1
        or any(isinstance(value, bool | np.bool_) for value in np.asarray(values, dtype=object))
    ):
        raise TypeError(f"{where} must be a non-empty 1-D sequence of numbers (no flags); got {values!r}")
    try:
        array = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError):
        raise TypeError(f"{where} must be finite numbers; got {values!r}") from None
    if array.size == 0:
        raise ValueError(f"{where} must be a non-empty 1-D sequence of numbers; got {values!r}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where} must be finite; got {values!r}")
    return array


def _arguments(factory) -> dict[str, inspect.Parameter] | None:
    """The factory's arguments after its first (the learning rate); None where it takes any keyword."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())
    except (TypeError, ValueError):
        return {}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name: p for p in parameters[1:] if p.kind is not inspect.Parameter.VAR_POSITIONAL}


def _is_float(value) -> bool:
    return isinstance(value, float | np.floating) and not isinstance(value, bool)


def _may_be_axis(parameter: inspect.Parameter) -> bool:
    """Numeric arguments (a number or None by default, or none given) may be axes; flags and masks not."""
    default = parameter.default
    return (
        default is inspect.Parameter.empty
        or default is None
        or (isinstance(default, int | float | np.number) and not isinstance(default, bool))
    )


def data_hyperparameters(
    optimizer: str, factory, values: dict[str, np.ndarray], schedule: str, steps: int, params, dtype: str
) -> dict[str, np.ndarray]:
    """Every hyperparameter the runs get as data: the points' ``values``, the schedule's and the defaults.

    Refuses (ValueError) an unknown name, a name of a non-numeric argument,
    and an argument that cannot be data (one that sets a shape or a Python
    branch: found by tracing the optimizer once with it as data). A float
    default that cannot be data stays a constant.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {schedule!r}")
    n_points = len(values[LEARNING_RATE])
    scheduled = schedule_defaults(schedule, steps)
    arguments = _arguments(factory)
    shapes = jax.tree.map(lambda leaf: jax.ShapeDtypeStruct(np.shape(leaf)[1:], dtype), params)
    trial = functools.partial(_cannot_be_data, factory, schedule, dtype, shapes)

    def known() -> str:  # the names a refusal lists: numeric arguments that can be data
        candidates = [
            name for name, p in (arguments or {}).items() if _may_be_axis(p) and name not in PASSED_BY_ENGINE
        ]
        return ", ".join(
            sorted([LEARNING_RATE, *scheduled, *(n for n in candidates if not trial((LEARNING_RATE, n)))])
        )

    for name in values:
        if name == LEARNING_RATE:
            continue
        if name in scheduled and arguments is not None and name in arguments:
            raise ValueError(
                f"{name!r} is both a parameter of schedule {schedule!r} and an argument of optimizer "
                f"{optimizer!r}: sweep it with schedule='constant', or wrap the optimizer"
            )
        if name in scheduled or arguments is None:
            continue
        if name not in arguments or name in PASSED_BY_ENGINE or not _may_be_axis(arguments[name]):
            reason = "not a numeric hyperparameter of" if name in arguments else "not an argument of"
            raise ValueError(
                f"{name!r} is {reason} optimizer {optimizer!r} with schedule {schedule!r}; "
                f"its hyperparameters: {known()}"
            )
    data = {**{name: np.full(n_points, value) for name, value in scheduled.items()}, **values}
    check_schedule_values(schedule, {name: data[name] for name in scheduled})
    defaults = {  # the float keywords a functools.partial gives (gdjax.OPTIMIZERS["momentum"]'s 0.9)
        name: float(value)
        for name, value in (getattr(factory, "keywords", None) or {}).items()
        if name not in data and name not in PASSED_BY_ENGINE and _is_float(value)
    }
    for name in sorted(values, key=lambda name: name != LEARNING_RATE):  # the learning rate first
        error = trial((LEARNING_RATE, name) if name != LEARNING_RATE else (LEARNING_RATE,))
        if error and name == LEARNING_RATE:  # the rate is data in every sweep: the optimizer itself fails
            raise ValueError(f"optimizer {optimizer!r} failed to build, start or step when traced: {error}")
        if error:
            raise ValueError(
                f"{name!r} of optimizer {optimizer!r} cannot be data (a value that sets a shape or a Python "
                f"branch); the optimizer failed with it traced: {error}"
            )
    kept = [name for name in defaults if not trial((LEARNING_RATE, name))]
    if trial((*data, *kept)):
        kept = []
    return {**data, **{name: np.full(n_points, defaults[name]) for name in kept}}


def _cannot_be_data(factory, schedule: str, dtype: str, shapes, names: tuple[str, ...]) -> str | None:
    """None where the optimizer builds, starts and steps with ``names`` as traced scalars; else the error."""
    leaves, structure = jax.tree.flatten(shapes)
    return _traced_error(factory, schedule, dtype, structure, tuple(leaves), tuple(sorted(names)))


@functools.lru_cache(maxsize=512)  # one trial per (optimizer, names, parameter shapes)
def _traced_error(factory, schedule, dtype, structure, leaves, names) -> str | None:
    def step(hyper, params):
        optimizer = optimizer_for_run(factory, hyper, jax.random.PRNGKey(0), schedule)
        state = optimizer.init(params)
        if isinstance(optimizer, optax.GradientTransformationExtraArgs):

            def value_fn(p):
                return sum(jnp.sum(leaf**2) for leaf in jax.tree.leaves(p))

            return optimizer.update(
                params, state, params, value=value_fn(params), grad=params, value_fn=value_fn
            )
        return optimizer.update(params, state, params)

    scheduled = schedule_defaults(schedule, 1)
    hyper = {name: jax.ShapeDtypeStruct((), dtype) for name in (*names, *scheduled)}
    with jax.enable_x64(dtype == "float64"):
        try:
            jax.eval_shape(step, hyper, jax.tree.unflatten(structure, leaves))
        except Exception as error:  # any failure means: not with these as data
            return (
                f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
            )
    return None
