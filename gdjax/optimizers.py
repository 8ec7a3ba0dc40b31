"""The optimizer registry: name -> factory(learning_rate) -> optax.GradientTransformation.

Every entry is an optax alias; nothing is re-implemented. ``gd`` and ``sgd``
apply the same update; they differ in the data each step sees, which the
engine decides: ``sgd`` steps on minibatches (default size 1, reshuffled every
epoch), ``gd`` on the whole data set.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import optax

OptimizerFactory = Callable[..., optax.GradientTransformation]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    "gd": optax.sgd,
    "sgd": optax.sgd,
    "momentum": functools.partial(optax.sgd, momentum=0.9),  # heavy ball: v = g + 0.9 v
    "adam": optax.adam,
}

# Minibatch size used when a sweep does not give one; absent means full batch.
DEFAULT_BATCH_SIZE: dict[str, int] = {"sgd": 1}


def resolve_optimizer(optimizer: str | OptimizerFactory) -> tuple[str, OptimizerFactory]:
    """Return ``(name, factory)`` for a registered name or a user's factory."""
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer {optimizer!r} is not registered; known: {', '.join(sorted(OPTIMIZERS))}"
                " (or pass a callable learning_rate -> optax.GradientTransformation)"
            )
        return optimizer, OPTIMIZERS[optimizer]
    if callable(optimizer):
        return getattr(optimizer, "__name__", type(optimizer).__name__), optimizer
    raise TypeError(
        f"optimizer must be a registered name ({', '.join(sorted(OPTIMIZERS))}) or a callable"
        f" learning_rate -> optax.GradientTransformation; got {type(optimizer).__name__}"
    )
