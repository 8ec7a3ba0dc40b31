"""A stand-in for an optimizer taking two gradient evaluations a step (SAM and the like): work counts 2x."""

import optax

SEARCH_SPACE = {"learning_rate": ("log", 1e-3, 1.0)}
GRADIENTS_PER_STEP = 2


def make_opt(learning_rate):
    return optax.sgd(learning_rate)
