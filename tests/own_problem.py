"""A user's module of problems, for the command line's ``--problems module:function`` tests."""

import jax.numpy as jnp

import gdjax


def shifted_bowl():
    """A bowl whose minimum 0 is at (3, -1)."""
    return gdjax.function_problem(lambda x: jnp.sum((x - jnp.array([3.0, -1.0])) ** 2), x0=(0.0, 0.0))


def not_a_problem():
    return "a string"


def broken():
    raise RuntimeError("no data today")
