"""Signum (Bernstein et al., 2018): sign descent with momentum in optax, for ``python -m bench submit``.

Each step moves every parameter by the learning rate, in the direction of the sign of its momentum
(``m = g + momentum * m``: the sign ignores the scale). Run from the repository's root:

    python -m bench submit docs.examples.signum:signum
"""

import optax

# What tuning searches, for every problem alike: the rate on a log scale, the momentum as 1 - momentum on a
# log scale (0.9, 0.99 equally far apart). Every optimizer of the comparison gets the same number of points.
SEARCH_SPACE = {
    "learning_rate": ("log", 1e-6, 1e1),
    "momentum": ("log1m", 0.5, 0.999),
}


def signum(learning_rate, momentum=0.9):
    return optax.chain(
        optax.trace(decay=momentum),
        optax.scale_by_sign(),
        optax.scale_by_learning_rate(learning_rate),
    )
