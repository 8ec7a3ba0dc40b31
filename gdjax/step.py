"""One run of an optimizer: the per-run function the engine batches over every (seed, learning rate)."""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import optax
from jax import lax

from gdjax.schedules import SCHEDULES, learning_rate_schedule


def _all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree.leaves(tree)]))


def _mark_divergence(diverged_at, finite, step):
    """Record ``step`` as the divergence step unless one is already recorded."""
    return jnp.where((diverged_at < 0) & ~finite, step, diverged_at)


def _change_norm(new, old) -> jax.Array:
    """Euclidean norm of ``new - old`` over every leaf of the parameters."""
    squares = [jnp.sum((a - b) ** 2) for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(old), strict=True)]
    return jnp.sqrt(sum(squares))


# A run's key (drawn from its seed) orders its minibatches: epoch e shuffles
# with fold_in(key, e). The keys of a stochastic loss and of a stochastic
# optimizer come from fold_in(key, OTHER_STREAMS), a number no epoch reaches.
OTHER_STREAMS = 2**32 - 1


def stream_keys(key) -> tuple[jax.Array, jax.Array]:
    """The run's (loss key, optimizer key), both independent of its minibatch order."""
    loss_key, optimizer_key = jax.random.split(jax.random.fold_in(key, OTHER_STREAMS))
    return loss_key, optimizer_key


def optimizer_for_run(make_optimizer, hyper, key, schedule="constant") -> optax.GradientTransformation:
    """``make_optimizer(rate, **others)`` for one run's hyperparameters ``hyper`` (name -> scalar).

    ``hyper["learning_rate"]`` is the first argument, scheduled by
    ``schedule`` with the schedule's parameters from ``hyper``; the other
    values are keyword arguments. An optimizer taking a ``key`` (or an
    integer ``seed``) gets the run's own, so a stochastic optimizer
    (``optax.noisy_sgd``) draws other noise for every seed, instead of its
    default key 0 for every run.
    """
    others = dict(hyper)
    learning_rate = others.pop("learning_rate")
    _, scheduled = SCHEDULES[schedule]
    rate = learning_rate_schedule(schedule, learning_rate, {name: others.pop(name) for name in scheduled})
    try:
        accepted = inspect.signature(make_optimizer).parameters
    except (TypeError, ValueError):  # a callable without a signature: it takes the learning rate only
        accepted = {}
    if {"key", "seed"} & set(getattr(make_optimizer, "keywords", None) or {}):
        return make_optimizer(rate, **others)  # a functools.partial with the user's own key or seed
    if "key" in accepted:
        return make_optimizer(
            rate, **others, key=jax.random.wrap_key_data(key)
        )  # a typed key, as optax wants
    if "seed" in accepted:
        return make_optimizer(rate, **others, seed=jax.random.randint(key, (), 0, 2**31 - 1))
    return make_optimizer(rate, **others)


def run_one(
    hyper,
    params,
    key,
    X,
    y,
    held_out=None,
    *,
    loss,
    make_optimizer,
    steps,
    log_every,
    batch_size,
    tolerance=None,
    log_params=False,
    loss_takes_key=False,
    metrics=None,
    schedule="constant",
):
    """One run: ``steps`` updates from ``params``, the loss logged every ``log_every``.

    ``hyper`` holds the run's hyperparameters (name -> scalar: the learning
    rate, the optimizer's other data arguments and the schedule's
    parameters; see ``optimizer_for_run``).

    Divergence is watched through the parameters after every step, and
    through the loss on all data at the logged points and the end. Checking
    the loss itself every step would cost a second reduction over the data
    per step: 3.7x the time of a regression sweep on the CPU. With a
    ``tolerance``, the first step whose parameter change is below it is
    recorded (the run goes on); with ``log_params``, the parameters at the
    logged points too. A loss that ``loss_takes_key`` is called ``loss(params,
    X_batch, y_batch, key)`` with a key of its own at every step
    (``fold_in(loss key, step)``), and with ``key`` None where it is
    evaluated on all data (the initial, logged and final losses). An
    optimizer whose update takes extra arguments
    (``optax.GradientTransformationExtraArgs``) is given the batch's
    ``value``, ``grad`` and ``value_fn`` (what ``optax.lbfgs``'s line
    search needs). With ``metrics`` (a problem's, see ``Problem``),
    ``metrics(params, held_out)`` is recorded at the logged points and the
    end.
    """
    loss_key, optimizer_key = stream_keys(key)
    optimizer = optimizer_for_run(make_optimizer, hyper, optimizer_key, schedule)
    takes_extra_args = isinstance(optimizer, optax.GradientTransformationExtraArgs)
    n_examples = X.shape[0]

    def full_loss(params):
        return loss(params, X, y, *((None,) if loss_takes_key else ()))

    def step(carry, t):
        (params, opt_state, diverged_at, order), stopped_at = carry
        if batch_size is None:
            X_batch, y_batch = X, y
        else:
            batches_per_epoch = n_examples // batch_size
            epoch, batch = t // batches_per_epoch, t % batches_per_epoch
            order = lax.cond(
                batch == 0,
                lambda: jax.random.permutation(jax.random.fold_in(key, epoch), n_examples).astype(jnp.int32),
                lambda: order,
            )
            rows = lax.dynamic_slice(order, (batch * batch_size,), (batch_size,))
            X_batch, y_batch = X[rows], y[rows]
        step_key = (jax.random.fold_in(loss_key, t),) if loss_takes_key else ()

        def batch_loss(params):
            return loss(params, X_batch, y_batch, *step_key)

        value, grads = jax.value_and_grad(batch_loss)(params)
        if takes_extra_args:
            updates, opt_state = optimizer.update(
                grads, opt_state, params, value=value, grad=grads, value_fn=batch_loss
            )
        else:
            updates, opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        diverged_at = _mark_divergence(diverged_at, _all_finite(new_params), t + 1)
        if tolerance is not None:
            settled = _change_norm(new_params, params) < tolerance
            stopped_at = jnp.where((stopped_at < 0) & settled, t + 1, stopped_at)
        return ((new_params, opt_state, diverged_at, order), stopped_at), None

    def logged_block(carry, first_step):
        carry, _ = lax.scan(step, carry, first_step + jnp.arange(log_every, dtype=jnp.int32))
        (params, opt_state, diverged_at, order), stopped_at = carry
        logged_loss = full_loss(params)
        diverged_at = _mark_divergence(diverged_at, jnp.isfinite(logged_loss), first_step + log_every)
        logged = {"loss": logged_loss, **({"params": params} if log_params else {})}
        if metrics is not None:
            logged["metrics"] = metrics(params, held_out)
        return ((params, opt_state, diverged_at, order), stopped_at), logged

    n_logs, tail = divmod(steps, log_every)
    initial_loss = full_loss(params)
    carry = (params, optimizer.init(params), jnp.int32(-1), jnp.arange(n_examples, dtype=jnp.int32))
    carry, logged = lax.scan(
        logged_block, (carry, jnp.int32(-1)), jnp.arange(n_logs, dtype=jnp.int32) * log_every
    )
    if tail:
        carry, _ = lax.scan(step, carry, n_logs * log_every + jnp.arange(tail, dtype=jnp.int32))
    (params, _, diverged_at, _), stopped_at = carry
    loss_curve = logged["loss"]
    final_loss = full_loss(params)
    diverged_at = _mark_divergence(diverged_at, jnp.isfinite(final_loss), steps)
    seen = jnp.concatenate([initial_loss[None], loss_curve, final_loss[None]])
    best_loss = jnp.min(jnp.where(jnp.isfinite(seen), seen, jnp.inf))
    outputs = {
        "final_loss": final_loss,
        "best_loss": best_loss,
        "diverged_at": diverged_at,
        "loss_curve": loss_curve,
        "params": params,
    }
    if tolerance is not None:
        outputs["stopped_at"] = stopped_at
    if log_params:
        outputs["params_curve"] = logged["params"]
    if metrics is not None:
        outputs["metric_curves"] = logged["metrics"]
        outputs["final_metrics"] = metrics(params, held_out)
    return outputs
