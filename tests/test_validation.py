"""Bad input is refused before tracing, naming the argument, the value and what is allowed."""

import numpy as np
import pytest

import gdjax

REG = gdjax.linear_regression()


def call(**changes):
    kwargs = {"problem": REG, "optimizer": "gd", "learning_rates": [1e-3], "steps": 10}
    kwargs.update(changes)
    return gdjax.sweep(**kwargs)


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        (
            {"optimizer": "rmsprop"},
            ValueError,
            r"'rmsprop'.*known: adam, gd, momentum, nesterov, sgd, optax:NAME",
        ),
        ({"optimizer": 3}, TypeError, "optimizer must be"),
        ({"learning_rates": []}, ValueError, "learning_rates must be a non-empty"),
        (
            {"learning_rates": [1e-3, 0.0]},
            ValueError,
            r"learning_rates must be positive and finite; got 0\.0",
        ),
        ({"learning_rates": [-1.0]}, ValueError, r"positive and finite; got -1\.0"),
        ({"learning_rates": [float("nan")]}, ValueError, "positive and finite; got nan"),
        ({"learning_rates": [float("inf")]}, ValueError, "positive and finite; got inf"),
        ({"learning_rates": [1e40]}, ValueError, "at most 3.4e\\+38 in float32"),
        ({"learning_rates": ["fast"]}, TypeError, "learning_rates must be"),
        ({"steps": 0}, ValueError, "steps must be an integer >= 1 and <= 2147483647; got 0"),
        ({"steps": 2**31}, ValueError, "steps must be an integer >= 1 and <= 2147483647; got 2147483648"),
        ({"steps": 2.5}, TypeError, "steps must be an integer"),
        ({"log_every": 0}, ValueError, "log_every must be an integer >= 1 and <= 10; got 0"),
        ({"log_every": 11}, ValueError, "log_every must be an integer >= 1 and <= 10; got 11"),
        ({"batch_size": 0}, ValueError, "batch_size must be an integer >= 1 and <= 100; got 0"),
        ({"batch_size": 101}, ValueError, "batch_size must be .* <= 100; got 101"),
        ({"dtype": "float16"}, ValueError, "dtype must be one of float32, float64; got 'float16'"),
        ({"dtype": "double-ish"}, ValueError, "dtype must be one of"),
        ({"seeds": []}, ValueError, "seeds must be a non-empty"),
        ({"seeds": [-1]}, ValueError, r"seeds must be integers in \[0, 2147483647\]"),
        ({"seeds": [0.5]}, TypeError, "seeds must be integers"),
        ({"problem": "xor"}, TypeError, "problem must be a gdjax Problem"),
        ({"init_params": np.ones(3)}, ValueError, "init_params must match"),
    ],
)
def test_sweep_refuses_bad_arguments(changes, error, match):
    with pytest.raises(error, match=match):
        call(**changes)


@pytest.mark.parametrize(
    ("X", "y", "error", "match"),
    [
        (np.ones((5, 2)), np.ones(4), ValueError, r"y must have shape \(5,\) to match X of shape \(5, 2\)"),
        (np.ones(5), np.ones(5), ValueError, "X must be 2-D"),
        (np.ones((0, 2)), np.ones(0), ValueError, "at least one example"),
        (np.array([[1.0, np.nan]]), np.ones(1), ValueError, r"X must be finite; found nan at index \(0, 1\)"),
        (
            np.ones((2, 2)),
            np.array([1.0, np.inf]),
            ValueError,
            r"y must be finite; found inf at index \(1,\)",
        ),
        (np.array([["a", "b"]]), np.ones(1), TypeError, "X must hold real numbers"),
        (np.ones((2, 2)), None, ValueError, "give both X and y"),
    ],
)
def test_linear_regression_refuses_bad_data(X, y, error, match):
    with pytest.raises(error, match=match):
        gdjax.linear_regression(X=X, y=y)


def test_integer_data_is_accepted_as_float():
    prob = gdjax.linear_regression(X=np.array([[1, 0], [1, 1], [1, 2]]), y=np.array([1, 2, 3]))
    assert prob.X.dtype == np.float64


@pytest.mark.parametrize("hidden", [0, -2, 2.0, True])
def test_xor_refuses_bad_hidden(hidden):
    with pytest.raises(ValueError, match="hidden must be an integer >= 1"):
        gdjax.xor(hidden=hidden)
