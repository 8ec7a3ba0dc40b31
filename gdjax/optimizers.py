"""The optimizer registry: name -> factory(learning_rate) -> optax.GradientTransformation.

Every entry is an optax alias; nothing is re-implemented. ``gd`` and ``sgd``
apply the same update; they differ in the data each step sees, which the
engine decides: ``sgd`` steps on minibatches (default size 1, reshuffled every
epoch), ``gd`` on the whole data set.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import optax

OptimizerFactory = Callable[..., optax.GradientTransformation]

OPTIMIZERS: dict[str, OptimizerFactory] = {
    "gd": optax.sgd,
    "sgd": optax.sgd,
    "momentum": functools.partial(optax.sgd, momentum=0.9),  # heavy ball: v = g + 0.9 v
    "nesterov": functools.partial(optax.sgd, momentum=0.9, nesterov=True),
    "adam": optax.adam,
}
# Any optax optimizer by name: "optax:adamw" is optax.adamw(learning_rate).
OPTAX_PREFIX = "optax:"

# Minibatch size used when a sweep does not give one; absent means full batch.
DEFAULT_BATCH_SIZE: dict[str, int] = {"sgd": 1}


def resolve_optimizer(optimizer: str | OptimizerFactory) -> tuple[str, OptimizerFactory]:
    """Return ``(name, factory)`` for a registered name, ``"optax:NAME"`` or a user's factory."""
    if isinstance(optimizer, str) and optimizer.startswith(OPTAX_PREFIX):
        return optimizer, _optax_factory(optimizer.removeprefix(OPTAX_PREFIX))
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer {optimizer!r} is not registered; known: {', '.join(sorted(OPTIMIZERS))},"
                " optax:NAME for any optax optimizer (e.g. optax:adamw), or pass a callable"
                " learning_rate -> optax.GradientTransformation"
            )
        return optimizer, OPTIMIZERS[optimizer]
    if callable(optimizer):
        return getattr(optimizer, "__name__", type(optimizer).__name__), optimizer
    raise TypeError(
        f"optimizer must be a registered name ({', '.join(sorted(OPTIMIZERS))}) or a callable"
        f" learning_rate -> optax.GradientTransformation; got {type(optimizer).__name__}"
    )


def _optax_factory(name: str) -> OptimizerFactory:
    """``optax.<name>``, checked to be an optimizer factory whose first argument is the learning rate."""
    factory = getattr(optax, name, None) if name.isidentifier() else None
    try:
        first = next(iter(inspect.signature(factory).parameters)) if callable(factory) else None
    except (StopIteration, TypeError, ValueError):
        first = None
    if first != "learning_rate":
        raise ValueError(
            f"optimizer {OPTAX_PREFIX}{name!s} is not an optax optimizer taking a learning rate "
            "(e.g. optax:adamw, optax:rmsprop, optax:lion, optax:adagrad)"
        )
    return factory
