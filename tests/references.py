"""Independent references: the textbook numpy loops (shared with the harness) and optax in plain Python."""

import jax
import optax

from bench.baselines import textbook_regression_gd, textbook_xor_backprop

__all__ = ["optax_python_loop", "textbook_regression_gd", "textbook_xor_backprop"]


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
