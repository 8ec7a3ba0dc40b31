"""Independent references, written the textbook way in numpy (float64) or plain Python."""

import jax
import numpy as np
import optax


def textbook_regression_gd(X, y, alpha, steps, theta=None):
    """The four textbook operations, looped: returns (theta, final cost)."""
    m = X.shape[0]
    theta = np.ones(X.shape[1]) if theta is None else np.array(theta, dtype=np.float64)
    for _ in range(steps):
        hypothesis = X @ theta
        residual = hypothesis - y
        gradient = X.T @ residual / m
        theta = theta - alpha * gradient
    residual = X @ theta - y
    return theta, residual @ residual / (2 * m)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def textbook_xor_backprop(X, y, W0, W1, alpha, steps):
    """The classic two-layer backprop loop: returns (W0, W1, outputs)."""
    W0, W1 = np.array(W0, dtype=np.float64), np.array(W1, dtype=np.float64)
    for _ in range(steps):
        hidden = sigmoid(X @ W0)
        out = sigmoid(hidden @ W1)
        delta2 = (out - y) * out * (1 - out)
        delta1 = (delta2 @ W1.T) * hidden * (1 - hidden)
        W1 = W1 - alpha * hidden.T @ delta2
        W0 = W0 - alpha * X.T @ delta1
    return W0, W1, sigmoid(sigmoid(X @ W0) @ W1)


def optax_python_loop(loss, params, X, y, transformation, steps, batches=None):
    """Step an optax transformation in a plain Python loop (call under x64 for float64).

    ``batches``, when given, is a sequence of row-index arrays, one per step.
    """
    state = transformation.init(params)
    grad = jax.grad(loss)
    for t in range(steps):
        rows = slice(None) if batches is None else batches[t]
        updates, state = transformation.update(grad(params, X[rows], y[rows]), state, params)
        params = optax.apply_updates(params, updates)
    return params
