"""Learning-rate schedules whose every parameter is data: a grid axis like the learning rate itself.

optax's schedules take their step counts as Python integers,
``warmup_cosine_decay_schedule`` tests its peak with a Python ``if``, and
there is no inverse-time schedule, so none of them can have its parameters
swept in one compiled program. These are the same formulas written as
``jnp`` functions of the step (tests compare them with optax's where optax
has one). The peak is the sweep's learning rate; a parameter left out takes
its default, where ``None`` means the run's number of steps.
"""

from __future__ import annotations

import jax.numpy as jnp


def _cosine(t, decay_steps, alpha):
    """optax.cosine_decay_schedule's multiplier: 1 at t = 0, ``alpha`` from t = decay_steps on."""
    cosine = 0.5 * (1 + jnp.cos(jnp.pi * jnp.minimum(t, decay_steps) / decay_steps))
    return (1 - alpha) * cosine + alpha


def _warmup_cosine(t, warmup_steps, decay_steps, alpha):
    """optax.warmup_cosine_decay_schedule(0, 1, warmup_steps, decay_steps, end_value=alpha)."""
    warming = t / jnp.where(warmup_steps > 0, warmup_steps, 1)
    return jnp.where(t < warmup_steps, warming, _cosine(t - warmup_steps, decay_steps - warmup_steps, alpha))


# name -> (the multiplier of the peak rate at step t, its parameters' defaults)
SCHEDULES = {
    "constant": (lambda t: jnp.ones_like(t), {}),
    "cosine": (_cosine, {"decay_steps": None, "alpha": 0.0}),
    "warmup_cosine": (_warmup_cosine, {"warmup_steps": 0.1, "decay_steps": None, "alpha": 0.0}),
    "exponential": (lambda t, transition_steps, decay_rate: decay_rate ** (t / transition_steps),
                    {"transition_steps": None, "decay_rate": 0.1}),
    "inverse_time": (lambda t, decay_steps, decay_rate: 1 / (1 + decay_rate * t / decay_steps),
                     {"decay_steps": None, "decay_rate": 9.0}),
}  # fmt: skip
"""Every schedule's multiplier of the peak rate, and its parameters' defaults.

- ``constant``: 1.
- ``cosine``: ``alpha + (1 - alpha) (1 + cos(pi min(t, decay_steps) / decay_steps)) / 2``
  (optax.cosine_decay_schedule); ends at ``alpha`` (default 0).
- ``warmup_cosine``: linear from 0 to 1 over ``warmup_steps`` (default a tenth
  of the run), then cosine down to ``alpha`` at ``decay_steps`` (which counts
  the warmup, as optax.warmup_cosine_decay_schedule's does).
- ``exponential``: ``decay_rate ** (t / transition_steps)`` (optax.exponential_decay);
  by default 0.1 at the end of the run.
- ``inverse_time``: ``1 / (1 + decay_rate t / decay_steps)``; by default 0.1 at
  the end of the run.

A default of None is the run's number of steps; ``warmup_steps`` 0.1 is a
tenth of them.
"""

FRACTION_OF_STEPS = {"warmup_steps"}  # defaults given as a fraction of the run's steps


def schedule_defaults(schedule: str, steps: int) -> dict[str, float]:
    """The parameters of ``schedule`` and their default values for a run of ``steps`` steps."""
    _, defaults = SCHEDULES[schedule]
    return {
        name: float(steps if value is None else round(value * steps) if name in FRACTION_OF_STEPS else value)
        for name, value in defaults.items()
    }


def learning_rate_schedule(schedule: str, learning_rate, parameters: dict):
    """The function step -> rate that optax calls: ``learning_rate`` times the schedule's multiplier.

    ``parameters`` holds every parameter of the schedule (data: traced values
    in a sweep). A constant schedule is the learning rate itself, not a
    function, so optax applies it exactly as it applies a number.
    """
    if schedule == "constant":
        return learning_rate
    multiplier, _ = SCHEDULES[schedule]
    dtype = jnp.result_type(learning_rate)

    def rate(step):
        return learning_rate * multiplier(jnp.asarray(step, dtype), **parameters)

    return rate


def check_schedule_values(schedule: str, values: dict) -> None:
    """Refuse parameter values the schedule cannot run with (ValueError naming the value and the rule)."""

    def positive(name):
        bad = values[name][~(values[name] > 0)]
        if bad.size:
            raise ValueError(f"schedule {schedule!r}: {name} must be positive; got {float(bad[0])!r}")

    if schedule in ("cosine", "warmup_cosine", "inverse_time"):
        positive("decay_steps")
    if schedule == "exponential":
        positive("transition_steps")
        positive("decay_rate")
    if schedule == "warmup_cosine":
        warmup, decay = values["warmup_steps"], values["decay_steps"]
        bad = (warmup < 0) | (warmup >= decay)
        if bad.any():
            raise ValueError(
                "schedule 'warmup_cosine': warmup_steps must be >= 0 and below decay_steps; got warmup_steps "
                f"{float(warmup[bad][0])!r} with decay_steps {float(decay[bad][0])!r}"
            )
    if schedule in ("cosine", "warmup_cosine"):
        bad = values["alpha"][(values["alpha"] < 0) | (values["alpha"] > 1)]
        if bad.size:
            raise ValueError(f"schedule {schedule!r}: alpha must be in [0, 1]; got {float(bad[0])!r}")
    if schedule == "inverse_time" and (values["decay_rate"] < 0).any():
        bad = float(values["decay_rate"][values["decay_rate"] < 0][0])
        raise ValueError(f"schedule 'inverse_time': decay_rate must be >= 0; got {bad!r}")
