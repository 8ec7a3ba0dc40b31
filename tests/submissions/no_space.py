"""A factory that declares no search space."""

import optax


def make_opt(learning_rate):
    return optax.sgd(learning_rate)
