"""A factory returning the wrong thing (an update function, not an optax.GradientTransformation)."""

SEARCH_SPACE = {"learning_rate": ("log", 1e-3, 1.0)}


def make_opt(learning_rate):
    return lambda grads: grads
