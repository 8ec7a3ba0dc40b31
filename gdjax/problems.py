"""The problems a sweep runs on: data, a starting point and a loss.

Loss conventions follow the textbook exactly (docs/library.md):

* linear regression: cost ``J = sum((X @ theta - y)**2) / (2 m)``, ``m`` the
  number of examples in the batch;
* XOR: ``0.5 * sum((out - y)**2)``, a sum over the examples, not a mean.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class Facts:
    """What is known about a problem, declared by whoever builds it: the harness reads these, never the loss.

    Attributes:
        minimum_loss: the loss at the minimum (its infimum: 0 for XOR); NaN if unknown.
        optimum: the parameters at the minimum (shaped like ``init``'s), or None if unknown.
        target_loss: a run has solved the problem once its loss stays at or
            below this to the end; NaN: no target.
        curvature: ``(L, mu)``, the largest and smallest eigenvalue of a
            constant Hessian (least squares, quadratics), or None. GD's
            stability limit ``2 / L`` and the heavy ball's follow from it
            (``gdjax.theory``).
        reference: the name of the textbook numpy loop that solves it
            (``bench.baselines.TEXTBOOK_LOOPS``), or None; ``reference_rate``
            the learning rate that loop runs at.
        seeded_start: whether ``init(seed)`` differs between seeds. Where it
            does not, a full-batch run of an optimizer without noise of its
            own is the same for every seed: one seed says all.
    """

    minimum_loss: float = np.nan
    optimum: Any = None
    target_loss: float = np.nan
    curvature: tuple[float, float] | None = None
    reference: str | None = None
    reference_rate: float | None = None
    seeded_start: bool = True


XOR_INPUTS = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1]], dtype=np.float64)
XOR_TARGETS = np.array([[0], [1], [1], [0]], dtype=np.float64)


class Problem(NamedTuple):
    """A differentiable objective with its data and its starting point.

    Attributes:
        name: short name used in tables, e.g. ``"linear_regression"``.
        X: inputs, float64, shape (examples, features).
        y: targets, float64, first axis of length examples.
        loss: ``loss(params, X, y) -> scalar``, evaluated on the whole data or
            on a minibatch (rows of ``X`` and ``y``). A module-level function,
            so that sweeps of the same problem kind share one compiled program.
        init: ``init(seed) -> params``, the starting parameters (a pytree of
            float64 numpy arrays) for one seed.
        loss_takes_key: the loss is ``loss(params, X, y, key)``, stochastic
            (dropout, noise): a training step passes a PRNG key of its own
            for every run and step, the loss on all data (logged, final)
            passes ``None``.
        metrics: ``metrics(params, held_out) -> {name: scalar}``, measures
            evaluated at every logged point and at the end (held-out loss
            and accuracy, ...): a module-level function or an equal-comparing
            object, like ``loss``. None: only the loss is logged.
        held_out: ``{name: array}``, the data ``metrics`` reads (a test set,
            a validation set), put on the devices beside ``X`` and ``y``;
            integer arrays reach it as int32, float ones as the sweep's dtype.
        facts: what is known about it (``Facts``): minimum, optimum, target,
            curvature, reference loop, whether the seed changes the start.

    ``y`` of an integer dtype (class labels) reaches the loss as int32; float
    data as the sweep's dtype.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    loss: Callable[..., jax.Array]
    init: Callable[[int], Any]
    loss_takes_key: bool = False
    metrics: Callable[..., dict] | None = None
    held_out: dict[str, np.ndarray] | None = None
    facts: Facts = Facts()

    @property
    def n_examples(self) -> int:
        return self.X.shape[0]


def regression_cost(theta, X, y):
    """Textbook cost ``sum(r**2) / (2 m)`` of the hypothesis ``X @ theta``."""
    residual = X @ theta - y
    return jnp.sum(residual**2) / (2 * X.shape[0])


def xor_loss(params, X, y):
    """Half the sum of squared errors of the two-layer sigmoid network."""
    hidden = jax.nn.sigmoid(X @ params["W0"])
    out = jax.nn.sigmoid(hidden @ params["W1"])
    return 0.5 * jnp.sum((out - y) ** 2)


def _as_float_data(name: str, value) -> np.ndarray:
    """``value`` as float64, refusing what is not real numbers or not finite.

    Integers and every float type numpy or JAX knows (float16, bfloat16, ...)
    are accepted; booleans, complex numbers, strings and objects are not.
    """
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        raise TypeError(
            f"{name} must hold real numbers (integer or float) in one array; got {_described(value)}"
        ) from None
    if not (jnp.issubdtype(array.dtype, jnp.integer) or jnp.issubdtype(array.dtype, jnp.floating)):
        # numpy's dtype says little of a dict or a ragged list (object): name what was given instead
        got = f"dtype {array.dtype}" if array.dtype != object else _described(value)
        raise TypeError(f"{name} must hold real numbers (integer or float) in one array; got {got}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        bad = np.argwhere(~np.isfinite(array))[0]
        raise ValueError(
            f"{name} must be finite; found {array[tuple(bad)]} at index {tuple(int(i) for i in bad)}"
        )
    return array


def _described(value) -> str:
    """What a value that is no array of numbers is, for an error message: its type and what it holds."""
    if isinstance(value, dict):
        keys = ", ".join(repr(key) for key in list(value)[:4]) + (", ..." if len(value) > 4 else "")
        return f"a dict (keys {keys})" if value else "an empty dict"
    if isinstance(value, list | tuple) and value:
        kinds = ", ".join(dict.fromkeys(type(item).__name__ for item in value))
        return f"a {type(value).__name__} of {kinds} (not one rectangular array of numbers)"
    return f"{type(value).__name__} {value!r}" if len(repr(value)) <= 40 else type(value).__name__


def textbook_regression_data(m: int = 100, bias: float = 25.0, variance: float = 10.0, seed: int = 0):
    """The textbook data: ``X = [1, i]`` and ``y_i = (i + bias) + u_i * variance``, ``u_i ~ U(0, 1)``.

    ``u`` comes from numpy's ``RandomState(seed)``, the generator the textbook
    used, so seed 0 gives its data exactly.
    """
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
        raise ValueError(f"m must be an integer >= 1; got {m!r}")
    for name, value in (("bias", bias), ("variance", variance)):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}")
    i = np.arange(m, dtype=np.float64)
    X = np.column_stack([np.ones(m), i])
    y = (i + bias) + np.random.RandomState(seed).uniform(0, 1, m) * variance
    return X, y


def linear_regression(
    X=None,
    y=None,
    *,
    m: int = 100,
    bias: float = 25.0,
    variance: float = 10.0,
    seed: int = 0,
    standardize: bool = False,
    add_bias: bool = False,
    name: str = "linear_regression",
) -> Problem:
    """Linear regression by least squares, started from ``theta = ones``.

    Args:
        X: your own design matrix, shape (examples, features). When omitted,
            the textbook data is generated (its first column is the bias).
        y: your own targets, shape (examples,). Given together with ``X``.
        m, bias, variance, seed: the textbook data's size, offset, noise
            amplitude and generator seed (used only when ``X`` is omitted).
        standardize: rescale every non-constant column of ``X`` to mean 0
            and standard deviation 1; constant columns (a bias) are kept.
        add_bias: put a column of ones in front of ``X`` (after standardising).
        name: the problem's name in tables.

    Examples:
        >>> prob = linear_regression()
        >>> prob.X.shape, prob.y.shape
        ((100, 2), (100,))
    """
    if (X is None) != (y is None):
        raise ValueError("linear_regression: give both X and y, or neither (for the textbook data)")
    textbook = X is None and (m, bias, variance, seed, standardize, add_bias) == (
        100,
        25,
        10,
        0,
        False,
        False,
    )
    if X is None:
        X, y = textbook_regression_data(m, bias, variance, seed)
    X = _as_float_data("X", X)
    y = _as_float_data("y", y)
    if X.ndim != 2 or X.shape[0] < 1 or X.shape[1] < 1:
        raise ValueError(f"X must be 2-D with at least one example and one feature; got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X of shape {X.shape}; got {y.shape}")
    if standardize:
        X = standardized_columns(X)
    if add_bias:
        X = np.column_stack([np.ones(X.shape[0]), X])
    n_features = X.shape[1]
    with np.errstate(over="ignore", invalid="ignore"):  # data near float64's limits: facts not finite
        theta, cost = least_squares(X, y)
        eigenvalues = np.linalg.eigvalsh(X.T @ X / X.shape[0])
    L, mu = float(eigenvalues[-1]), float(max(eigenvalues[0], 0.0))
    facts = Facts(
        minimum_loss=cost,
        optimum=theta,
        target_loss=REGRESSION_TARGET_FACTOR * cost,
        curvature=(L, mu),
        reference="regression_gd",
        # the textbook's own rate on its data; half the stability limit 2 / L on any other
        reference_rate=TEXTBOOK_RATE if textbook else (1 / L if L > 0 else None),
        seeded_start=False,
    )
    return Problem(name, X, y, regression_cost, lambda seed: np.ones(n_features), facts=facts)


# A regression is solved within this factor of the least-squares optimum's cost.
REGRESSION_TARGET_FACTOR = 1.01
# The textbook's learning rate on its regression data.
TEXTBOOK_RATE = 5e-4


def least_squares(X, y) -> tuple[np.ndarray, float]:
    """The exact least-squares solution of ``X theta = y`` and its cost ``sum(r**2) / (2 m)`` (numpy)."""
    theta = np.linalg.lstsq(X, y, rcond=None)[0]
    residual = X @ theta - y
    return theta, float(residual @ residual / (2 * X.shape[0]))


def standardized_columns(X: np.ndarray) -> np.ndarray:
    """``X`` with every non-constant column at mean 0 and standard deviation 1; constant columns kept."""
    spread = X.std(axis=0)
    varies = spread > 0
    scaled = X.copy()
    scaled[:, varies] = (X[:, varies] - X[:, varies].mean(axis=0)) / spread[varies]
    return scaled


def xor(hidden: int = 4) -> Problem:
    """The textbook XOR network: ``sigmoid(sigmoid(X @ W0) @ W1)``, no bias vectors.

    Weights start ``Uniform(-1, 1)``, drawn as ``2 * rand - 1`` from numpy's
    ``RandomState(seed)`` (``W0`` first, then ``W1``), as in the textbook;
    seed 1 is the textbook's own start.
    """
    if isinstance(hidden, bool) or not isinstance(hidden, int | np.integer) or hidden < 1:
        raise ValueError(f"hidden must be an integer >= 1; got {hidden!r}")

    def init(seed: int):
        rng = np.random.RandomState(seed)
        W0 = 2 * rng.random_sample((3, hidden)) - 1
        W1 = 2 * rng.random_sample((hidden, 1)) - 1
        return {"W0": W0, "W1": W1}

    facts = Facts(minimum_loss=0.0, target_loss=XOR_TARGET_LOSS, reference="xor_backprop", reference_rate=0.5)
    return Problem("xor", XOR_INPUTS.copy(), XOR_TARGETS.copy(), xor_loss, init, facts=facts)


# XOR is solved when its loss is at most this: any output on the wrong side
# of 0.5 alone adds 0.5 * 0.5**2 = 0.125, so it implies all four are right.
XOR_TARGET_LOSS = 0.01


def regression_from_csv(
    path, target: str, *, standardize: bool = False, add_bias: bool = False, name: str | None = None
) -> Problem:
    """A least-squares regression of the CSV file's column ``target`` on all its other columns.

    The file needs a header row; every other column is a feature, and every
    value must be a finite number. ``standardize`` and ``add_bias`` are
    ``linear_regression``'s; the name defaults to the file's stem. A file
    that cannot be used gets a ``ValueError`` naming the file and the fault.
    """
    import pandas as pd

    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)  # raw text, to name a bad cell
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        reason = "it is empty" if isinstance(error, pd.errors.EmptyDataError) else _first_line(error)
        raise ValueError(f"{path}: not a readable CSV file ({reason})") from None
    if target not in frame.columns:
        raise ValueError(f"{path}: no column {target!r}; columns: {', '.join(map(str, frame.columns))}")
    if len(frame) == 0:
        raise ValueError(f"{path}: no data rows under the header")
    if frame.shape[1] < 2:
        raise ValueError(f"{path}: needs at least one feature column besides the target {target!r}")
    for column in frame.columns:
        values = pd.to_numeric(frame[column], errors="coerce").astype(np.float64)
        bad = ~np.isfinite(values.to_numpy())
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            cell = frame[column].iloc[row]
            raise ValueError(
                f"{path}: column {column!r}, data row {row + 1}: "
                f"{repr(cell) if cell.strip() else 'an empty cell'} is not a finite number"
            )
        frame[column] = values
    features = frame.drop(columns=[target]).to_numpy(dtype=np.float64)
    return linear_regression(
        features,
        frame[target].to_numpy(dtype=np.float64),
        standardize=standardize,
        add_bias=add_bias,
        name=name or path.stem,
    )


# Logistic regression's generated data: labels from this line through the
# features (bias, x1, x2); LABEL_NOISE of them flipped unless separable.
LOGISTIC_TRUE_WEIGHTS = np.array([0.5, 2.0, -1.0])
LABEL_NOISE = 0.1


@dataclasses.dataclass(frozen=True)
class LogisticLoss:
    """Mean log-loss of ``sigmoid(X @ w)`` against labels in {0, 1}, plus ``l2 / 2 * ||w||**2``.

    Equal for the same ``l2``, so sweeps of one penalty share a compiled program.
    """

    l2: float

    def __call__(self, w, X, y):
        logits = X @ w
        # log(1 + exp(z)) - y z is -[y log p + (1 - y) log(1 - p)], p = sigmoid(z), without overflow
        log_loss = jnp.mean(jnp.logaddexp(0.0, logits) - y * logits)
        return log_loss + 0.5 * self.l2 * jnp.sum(w**2)


def logistic_regression(m: int = 200, *, separable: bool = False, l2: float = 1e-2, seed: int = 0) -> Problem:
    """L2-regularised logistic regression on generated 2-D data, started from ``w = 0``.

    Features are standard normal (plus a bias column); the label is 1 where
    ``X @ LOGISTIC_TRUE_WEIGHTS > 0``. Unless ``separable``, each label is
    flipped with probability LABEL_NOISE. The penalty ``l2 > 0`` makes the
    minimum unique and finite even on separable data, so it can be computed
    exactly (Newton's method, ``logistic_minimum``), and is declared in ``facts``.
    """
    if isinstance(m, bool) or not isinstance(m, int | np.integer) or m < 1:
        raise ValueError(f"m must be an integer >= 1; got {m!r}")
    if not _is_finite_number(l2) or l2 <= 0:
        raise ValueError(f"l2 must be a finite number > 0 (the minimum is then unique); got {l2!r}")
    rng = np.random.RandomState(seed)
    X = np.column_stack([np.ones(m), rng.standard_normal((m, 2))])
    y = (X @ LOGISTIC_TRUE_WEIGHTS > 0).astype(np.float64)
    if not separable:
        flipped = rng.uniform(size=m) < LABEL_NOISE
        y = np.where(flipped, 1.0 - y, y)
    name = "logistic_regression_separable" if separable else "logistic_regression"
    w, minimum = logistic_minimum(X, y, float(l2))
    facts = Facts(
        minimum_loss=minimum,
        optimum=w,
        target_loss=LOGISTIC_TARGET_FACTOR * minimum,
        reference="logistic_gd",
        reference_rate=1.0,
        seeded_start=False,
    )
    return Problem(name, X, y, LogisticLoss(float(l2)), lambda seed: np.zeros(3), facts=facts)


# Logistic regression is solved within this factor of its exact minimum.
LOGISTIC_TARGET_FACTOR = 1 + 1e-4


def logistic_minimum(X, y, l2: float) -> tuple[np.ndarray, float]:
    """The exact minimiser of the regularised log-loss and its loss: Newton's method in numpy, float64."""
    m, n = X.shape
    w = np.zeros(n)
    for _ in range(100):
        p = 1 / (1 + np.exp(-(X @ w)))
        gradient = X.T @ (p - y) / m + l2 * w
        hessian = (X.T * (p * (1 - p))) @ X / m + l2 * np.eye(n)
        w = w - np.linalg.solve(hessian, gradient)
        if np.linalg.norm(gradient) < 1e-13:
            break
    else:
        raise RuntimeError("Newton's method did not converge on the logistic regression")
    logits = X @ w
    return w, float(np.mean(np.logaddexp(0, logits) - y * logits) + 0.5 * l2 * w @ w)


@dataclasses.dataclass(frozen=True)
class _FunctionLoss:
    """``f(params)`` as a problem loss (the data are ignored); equal for the same ``f``, so one compile."""

    f: Callable[[Any], jax.Array]

    def __call__(self, params, X, y):
        return self.f(params)


def function_problem(
    f: Callable[[Any], Any], x0, *, name: str = "function", facts: Facts | None = None
) -> Problem:
    """Any differentiable ``f: params -> scalar``, minimised from ``x0``; JAX supplies the gradient.

    The generalisation of the tutorial ``gradient_descent(gradient, start,
    learn_rate, n_iter)``: ``sweep(function_problem(f, x0), "gd", rates,
    steps)`` runs it for every rate at once. Every seed starts at ``x0``.

    Args:
        f: written with ``jax.numpy``, taking an array shaped like ``x0`` and
            returning a real scalar.
        x0: the start, one array of real numbers of any shape (e.g.
            ``(-1.5, 2.0)``). Parameters that are a pytree (a dict of
            arrays) need a ``Problem`` of their own, whose ``init``
            returns the pytree (``TypeError`` says so).
        name: the problem's name in tables.
        facts: what you know of ``f`` (``Facts``: its minimum, optimum, a
            target); its start is the same for every seed whatever you give.

    ``f`` is checked at ``x0`` before any sweep: a non-scalar result, a
    function JAX cannot differentiate, or one that fails on an array of
    ``x0``'s shape gets a ``TypeError`` or ``ValueError`` saying which.

    Examples:
        >>> import jax.numpy as jnp
        >>> prob = function_problem(lambda x: jnp.sum((x - 3.0) ** 2), x0=[0.0, 0.0])
        >>> prob.init(0)
        array([0., 0.])
    """
    if not callable(f):
        raise TypeError(f"f must be a function params -> scalar; got {type(f).__name__}")
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string; got {name!r}")
    try:
        start = _as_float_data("x0", x0)
    except TypeError as error:
        raise TypeError(f"{error}. {PYTREE_HINT}") from None
    if start.size == 0:
        raise ValueError("x0 must hold at least one number; got an empty array")
    point = jax.ShapeDtypeStruct(start.shape, jnp.float32)
    not_traceable = (
        "f must be written with jax.numpy, JAX traces it to differentiate it (no numpy calls or Python "
        "conversions of its argument)"
    )
    try:
        value = jax.eval_shape(f, point)
    except jax.errors.JAXTypeError as error:
        raise TypeError(f"{not_traceable}: {type(error).__name__}: {_first_line(error)}") from None
    except Exception as error:  # whatever f raises on an array of x0's shape
        raise ValueError(
            f"f failed on an array of x0's shape {start.shape}: {type(error).__name__}: {_first_line(error)}"
        ) from None
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape != () or not jnp.issubdtype(dtype, jnp.floating):
        got = f"shape {shape} dtype {dtype}" if shape is not None else type(value).__name__
        raise ValueError(f"f must return a real floating-point scalar; got {got}")
    try:
        jax.eval_shape(jax.grad(f), point)
    except Exception as error:
        raise TypeError(
            f"f must be differentiable by jax.grad: {type(error).__name__}: {_first_line(error)}"
        ) from None
    facts = dataclasses.replace(facts or Facts(), seeded_start=False)
    return Problem(
        name, np.zeros((1, 0)), np.zeros(1), _FunctionLoss(f), lambda seed: start.copy(), facts=facts
    )


# What function_problem says to someone whose parameters are not one array.
PYTREE_HINT = (
    "function_problem's x0 is one array of real numbers, of any shape (e.g. (-1.5, 2.0) or "
    "np.zeros((3, 2))). For parameters that are a pytree (a dict or list of arrays), build the problem "
    "yourself: gdjax.Problem(name, X, y, loss, init) with loss(params, X, y) -> scalar and init(seed) "
    "returning the pytree (as gdjax.xor() does), e.g. X = np.zeros((1, 0)), y = np.zeros(1) where there "
    "is no data"
)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else "(no message)"


ROSENBROCK_START = (-1.5, 2.0)


def rosenbrock_function(x):
    """The Rosenbrock function ``(1 - x0)**2 + 100 (x1 - x0**2)**2``; minimum 0 at (1, 1)."""
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2


def rosenbrock(x0=ROSENBROCK_START) -> Problem:
    """The Rosenbrock valley (a = 1, b = 100) from ``x0`` (default the classic (-1.5, 2)); optimum (1, 1)."""
    facts = Facts(
        minimum_loss=0.0,
        optimum=np.ones(2),
        target_loss=ROSENBROCK_TARGET_LOSS,
        reference="tutorial_gd_rosenbrock",
        reference_rate=1e-3,
    )
    return function_problem(rosenbrock_function, x0, name="rosenbrock", facts=facts)


# Near Rosenbrock's minimum the loss is about 0.2 d**2 along the valley
# (Hessian eigenvalue 0.4), so this loss means within about 7e-5 of (1, 1).
ROSENBROCK_TARGET_LOSS = 1e-9
# A quadratic is solved once its loss is this fraction of its starting loss.
QUADRATIC_TARGET_FRACTION = 1e-10


def quadratic(condition_number: float = 100.0, x0=(1.0, 1.0), angle: float = np.pi / 6) -> Problem:
    """``0.5 x^T A x`` in two dimensions, ``A``'s eigenvalues 1 and ``condition_number``; minimum 0 at 0.

    ``A`` is ``diag(1, condition_number)`` rotated by ``angle`` (default 30
    degrees), so that no optimizer's per-coordinate scaling (Adam's) undoes
    the conditioning by itself. Plain GD's steps grow with the condition number.
    ``A`` is the problem's data (``X``, flattened to one row), not a
    constant of its loss, so quadratics of every condition number share one
    compiled program per optimizer.
    """
    if not _is_finite_number(condition_number) or condition_number < 1:
        raise ValueError(f"condition_number must be a finite number >= 1; got {condition_number!r}")
    if not _is_finite_number(angle):
        raise ValueError(f"angle must be a finite number (radians); got {angle!r}")
    c, s = np.cos(angle), np.sin(angle)
    rotation = np.array([[c, -s], [s, c]])
    matrix = rotation @ np.diag([1.0, float(condition_number)]) @ rotation.T

    start = np.asarray(x0, dtype=np.float64)
    if start.shape != (2,) or not np.all(np.isfinite(start)):
        raise ValueError(f"x0 must be two finite numbers; got {x0!r}")
    facts = Facts(
        minimum_loss=0.0,
        optimum=np.zeros(2),
        target_loss=QUADRATIC_TARGET_FRACTION * 0.5 * start @ matrix @ start,
        curvature=(float(condition_number), 1.0),
        seeded_start=False,
    )
    return Problem(
        f"quadratic_k{condition_number:g}",
        matrix.reshape(1, 4),
        np.zeros(1),
        quadratic_form,
        lambda seed: start.copy(),
        facts=facts,
    )


def quadratic_form(params, X, y):
    """``0.5 x^T A x`` with ``A`` the one row of ``X`` (gdjax.quadratic's loss); ``y`` is not used."""
    matrix = X[0].reshape(2, 2)
    return 0.5 * params @ matrix @ params


def _is_finite_number(value) -> bool:
    real = isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)
    return real and bool(np.isfinite(value))
