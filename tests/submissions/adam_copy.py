"""optax.adam submitted as a user's optimizer, with the registered adam's search space."""

import optax

from gdjax.search import SEARCH_SPACES

SEARCH_SPACE = SEARCH_SPACES["adam"]


def make_opt(learning_rate):
    return optax.adam(learning_rate)
