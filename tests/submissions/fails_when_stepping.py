"""A factory whose transformation fails on its first update."""

import optax

SEARCH_SPACE = {"learning_rate": ("log", 1e-3, 1.0)}


def make_opt(learning_rate):
    def update(updates, state, params=None):
        raise RuntimeError("this update is broken")

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
