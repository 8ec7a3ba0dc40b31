"""An optimizer whose update needs the loss: L-BFGS with its zoom line search (value, grad, value_fn)."""

import optax

SEARCH_SPACE = {"learning_rate": ("log", 1e-2, 1.0)}


def make_opt(learning_rate):
    return optax.lbfgs(learning_rate)
