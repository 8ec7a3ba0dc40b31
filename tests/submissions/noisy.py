"""A stochastic optimizer: SGD with Gaussian noise on the gradient, drawn from the key each run gets."""

import jax
import optax

SEARCH_SPACE = {"learning_rate": ("log", 1e-3, 1.0)}
NOISE = 0.01


def make_opt(learning_rate, key):
    def init(params):
        return key

    def update(updates, state, params=None):
        state, drawn = jax.random.split(state)
        leaves, structure = jax.tree.flatten(updates)
        keys = jax.random.split(drawn, len(leaves))
        noisy = [
            g + NOISE * jax.random.normal(k, g.shape, g.dtype) for k, g in zip(keys, leaves, strict=True)
        ]
        return jax.tree.map(lambda g: -learning_rate * g, jax.tree.unflatten(structure, noisy)), state

    return optax.GradientTransformation(init, update)
