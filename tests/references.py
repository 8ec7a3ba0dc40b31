"""Independent references: the textbook numpy loops (shared with the harness) and optax in plain Python."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bench.baselines import textbook_regression_gd, textbook_xor_backprop
from gdjax.step import run_one

__all__ = ["optax_python_loop", "textbook_regression_gd", "textbook_xor_backprop", "vmap_of_one_run"]


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


def vmap_of_one_run(program):
    """The program's runs as ``jax.jit(jax.vmap(one run))``: JAX's own batching, no tiles, one device."""
    run = functools.partial(run_one, **program.run_settings())
    n_seeds, n_lrs = len(program.seeds), len(program.learning_rates)
    with jax.enable_x64(True):
        hyper = {
            name: jnp.tile(jnp.asarray(values), n_seeds) for name, values in program.hyperparameters.items()
        }
        params = jax.tree.map(lambda leaf: jnp.repeat(jnp.asarray(leaf), n_lrs, axis=0), program._init_params)
        keys = jnp.repeat(jnp.stack([jax.random.PRNGKey(int(s)) for s in program.seeds]), n_lrs, axis=0)
        out = jax.jit(jax.vmap(run, in_axes=(0, 0, 0, None, None, None, None)))(
            hyper, params, keys, *program._data()
        )
        return jax.tree.map(lambda leaf: np.asarray(leaf).reshape(n_seeds, n_lrs, *leaf.shape[1:]), out)
