"""The optimizer registry: name -> factory(learning_rate) -> optax.GradientTransformation.

Every entry is an optax alias; nothing is re-implemented. ``gd`` and ``sgd``
apply the same update; they differ in the data each step sees, which the
engine decides: ``sgd`` steps on minibatches (default size 1, reshuffled every
epoch), ``gd`` on the whole data set.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import sys
from collections.abc import Callable
from typing import NamedTuple

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
    """Return ``(name, factory)`` for a registered name, ``"optax:NAME"``, ``"module:function"`` or a factory.

    A factory passed as a callable is named by ``factory_name`` (a lambda:
    ``"custom"``); one loaded by ``"module:function"`` by that text.
    """
    if isinstance(optimizer, str) and optimizer.startswith(OPTAX_PREFIX):
        return optimizer, _optax_factory(optimizer.removeprefix(OPTAX_PREFIX))
    if isinstance(optimizer, str) and ":" in optimizer:
        return optimizer, load_factory(optimizer)
    if isinstance(optimizer, str):
        if optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer {optimizer!r} is not registered; known: {', '.join(sorted(OPTIMIZERS))},"
                " optax:NAME for any optax optimizer (e.g. optax:adamw), module:function for your own"
                " factory, or pass a callable learning_rate -> optax.GradientTransformation"
            )
        return optimizer, OPTIMIZERS[optimizer]
    if isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            "optimizer must be a factory learning_rate -> optax.GradientTransformation, not a"
            f" {type(optimizer).__name__} (its learning rate is fixed, so a sweep cannot set it); pass e.g."
            " lambda learning_rate: optax.chain(optax.clip(1.0), optax.sgd(learning_rate)),"
            " or a registered name or optax:NAME"
        )
    if callable(optimizer):
        return factory_name(optimizer), optimizer
    raise TypeError(
        f"optimizer must be a registered name ({', '.join(sorted(OPTIMIZERS))}) or a callable"
        f" learning_rate -> optax.GradientTransformation; got {type(optimizer).__name__}"
    )


# The name of a factory that has none of its own (a lambda) in results and tables.
UNNAMED = "custom"


def factory_name(factory: Callable) -> str:
    """A user's factory's name in results: its qualified name, without the ``<locals>`` of a nested one.

    ``functools.partial(optax.sgd, momentum=0.9)`` is ``sgd(momentum=0.9)``;
    an object with ``__call__`` its class's name; a lambda ``"custom"``
    unless given a ``__name__`` (``factory.__name__ = "clipped_sgd"``).

    Examples:
        >>> import functools, optax
        >>> factory_name(optax.adamw), factory_name(functools.partial(optax.sgd, momentum=0.9))
        ('adamw', 'sgd(momentum=0.9)')
        >>> factory_name(lambda learning_rate: optax.sgd(learning_rate))
        'custom'
    """
    if isinstance(factory, functools.partial):
        keywords = (f"{key}={value!r}" for key, value in factory.keywords.items())
        settings = [*map(repr, factory.args), *keywords]
        return f"{factory_name(factory.func)}({', '.join(settings)})"
    name = getattr(factory, "__name__", None)
    qualified = getattr(factory, "__qualname__", None) or name
    if not isinstance(qualified, str):  # an object with __call__
        return type(factory).__name__
    qualified = qualified.rsplit("<locals>.", 1)[-1]
    if "<lambda>" in qualified:
        return name if isinstance(name, str) and name and name != "<lambda>" else UNNAMED
    return qualified


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


def load_factory(spec: str) -> OptimizerFactory:
    """The factory ``module:function`` names, imported from ``sys.path`` (``python -m``: the current folder).

    ValueError, naming the spec, where the module does not import or has no such callable.
    """
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name.isidentifier():
        raise ValueError(f"optimizer {spec!r}: give module:function, e.g. my_optimizer:make_opt")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # ImportError, or whatever the module raises as it loads
        raise ValueError(
            f"optimizer {spec!r}: cannot import {module_name!r} ({type(error).__name__}: {error})"
        ) from None
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise ValueError(
            f"optimizer {spec!r}: module {module_name!r} has no function {function_name!r}"
            " (a factory learning_rate, **hyperparameters -> optax.GradientTransformation)"
        )
    return factory


class Declarations(NamedTuple):
    """What an optimizer declares beside its factory (see ``declarations``)."""

    search_space: dict | None  # {name: (scale, low, high)}: what tuning searches (gdjax.search)
    gradients_per_step: int  # gradient evaluations a step takes (2 for SAM): counted in the work
    evaluation_params: Callable | None  # (opt_state, params) -> the params the loss is evaluated at


def declarations(optimizer: str | OptimizerFactory) -> Declarations:
    """An optimizer's declarations: the registered ones' (``gdjax.search.SEARCH_SPACES``), or a factory's.

    A factory declares on itself (attributes ``search_space``,
    ``gradients_per_step``, ``evaluation_params``) or, for any it does not,
    in its module (``SEARCH_SPACE``, ``GRADIENTS_PER_STEP``,
    ``EVALUATION_PARAMS``): the module a ``"module:function"`` names, else
    the factory's own. A module's constants declare for every factory in it.
    ``evaluation_params(opt_state, params)`` is for optimizers whose model is
    not their iterate (schedule-free, averaging: e.g.
    ``optax.contrib.schedule_free_eval_params``).
    """
    from gdjax.search import SEARCH_SPACES

    name, factory = resolve_optimizer(optimizer)
    if isinstance(optimizer, str) and optimizer in OPTIMIZERS:  # not a factory of yours named "adam"
        return Declarations(SEARCH_SPACES.get(name), 1, None)
    if isinstance(optimizer, str) and not optimizer.startswith(
        OPTAX_PREFIX
    ):  # "module:function": that module
        module = sys.modules.get(optimizer.partition(":")[0])
    else:
        module = sys.modules.get(getattr(factory, "__module__", None) or "")

    def declared(attribute: str, module_attribute: str, default):
        value = getattr(factory, attribute, None)
        return value if value is not None else getattr(module, module_attribute, default)

    per_step = declared("gradients_per_step", "GRADIENTS_PER_STEP", 1)
    if isinstance(per_step, bool) or not isinstance(per_step, int) or per_step < 1:
        raise ValueError(
            f"optimizer {name!r}: gradients_per_step must be a positive integer; got {per_step!r}"
        )
    evaluation = declared("evaluation_params", "EVALUATION_PARAMS", None)
    if evaluation is not None and not callable(evaluation):
        raise ValueError(
            f"optimizer {name!r}: evaluation_params must be a function (opt_state, params) -> params;"
            f" got {evaluation!r}"
        )
    return Declarations(declared("search_space", "SEARCH_SPACE", None), per_step, evaluation)
