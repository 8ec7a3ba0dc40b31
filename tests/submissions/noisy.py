"""A stochastic optimizer: it takes a key, and each run gets its own."""

import optax

SEARCH_SPACE = {"learning_rate": ("log", 1e-3, 1.0)}


def make_opt(learning_rate, key):
    return optax.noisy_sgd(learning_rate, key=key)
