"""Declarations on the module and on a factory: the factory's attribute wins; a partial uses the module's."""

import functools

import optax

SEARCH_SPACE = {"learning_rate": ("log", 1e-3, 1.0)}
GRADIENTS_PER_STEP = 2


def own(learning_rate):
    return optax.sgd(learning_rate)


own.search_space = {"learning_rate": ("log", 1e-2, 10.0)}
own.gradients_per_step = 3

adam = functools.partial(optax.adam, b1=0.8)  # named like a registered optimizer, declared by this module
