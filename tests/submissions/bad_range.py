"""A search space with a range that cannot be: log1m above 1."""

import optax

SEARCH_SPACE = {"learning_rate": ("log", 1e-3, 1.0), "b1": ("log1m", 0.5, 1.5)}


def make_opt(learning_rate, b1=0.9):
    return optax.adam(learning_rate, b1=b1)
