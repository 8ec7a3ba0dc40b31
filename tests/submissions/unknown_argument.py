"""A search space naming an argument the factory lacks."""

import optax

SEARCH_SPACE = {"learning_rate": ("log", 1e-3, 1.0), "b3": ("log1m", 0.5, 0.99)}


def make_opt(learning_rate, b1=0.9):
    return optax.adam(learning_rate, b1=b1)
