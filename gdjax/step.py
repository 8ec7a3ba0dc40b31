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


# The one divergence rule, for every dtype and every output: a run has
# diverged at the first observed step whose loss on all data is not finite,
# or whose excess over the problem's minimum loss is above DIVERGENCE_FACTOR
# times the starting excess; where the minimum is unknown (or the start is
# at it), whose loss is above DIVERGENCE_LOSS (finite in float32), or
# DIVERGENCE_FACTOR times the starting loss's size where that is larger.
DIVERGENCE_FACTOR = 1e6
DIVERGENCE_LOSS = 1e30


def divergence_ceiling(initial_loss, minimum_loss):
    """The highest loss a run may reach without counting as diverged (see DIVERGENCE_FACTOR)."""
    excess = initial_loss - minimum_loss
    relative = jnp.isfinite(minimum_loss) & (excess > 0)
    absolute = jnp.maximum(DIVERGENCE_LOSS, DIVERGENCE_FACTOR * jnp.abs(initial_loss))
    return jnp.where(relative, minimum_loss + DIVERGENCE_FACTOR * excess, absolute)


def _watch(watched, loss, t, target_loss, ceiling):
    """(diverged_at, first at target, last step above target) updated with the loss after ``t`` updates."""
    diverged_at, first_at_target, last_above = watched
    diverged_at = _mark_divergence(diverged_at, jnp.isfinite(loss) & (loss <= ceiling), t)
    at_target = loss <= target_loss  # False for a NaN target (none known) and a NaN loss
    first_at_target = jnp.where((first_at_target < 0) & at_target, t, first_at_target)
    last_above = jnp.where(at_target, last_above, t)
    return diverged_at, first_at_target, last_above


def watched_every_step(batch_size, n_examples, loss_takes_key, evaluation_params=None) -> bool:
    """Whether a step's own loss is the loss on all data, watched every step (else at the logged points).

    So it is where every step sees every example (a batch of all of them, in
    any order, sums the same terms), the loss draws no noise, and the
    optimizer's model is its iterate (no ``evaluation_params`` declared: a
    step's gradient is taken at the iterate, not at the point evaluated).
    """
    return (
        (batch_size is None or batch_size == n_examples) and not loss_takes_key and evaluation_params is None
    )


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


# On a CPU the distinct seeds of a batch of runs shuffle one after another (a batched sort costs
# about the same a row). Elsewhere, where a tile holds all of a device's runs, a batch with more
# than this many distinct seeds sorts every run's row in one batched sort: one kernel, not
# thousands in turn.
SHUFFLED_IN_TURN = 4


def epoch_orders(keys, count, epoch, n_examples) -> jax.Array:
    """(len(keys), n_examples) int32: row i the example order of epoch ``epoch`` of ``keys[i]``, i < count.

    A run's order is ``permutation(fold_in(its key, epoch))`` whatever else
    is computed beside it: exact integers, the same bits however computed.
    The runs batched together pass their distinct keys here (``run_one``'s
    ``batch_keys``), so runs of one seed (a grid's points) shuffle once, not
    once each: the MNIST-1D MLP's 16-run tiles of one seed had spent an
    eighth of their time sorting. Rows from ``count`` on are not orders of
    any run.
    """

    def order(key):
        return jax.random.permutation(jax.random.fold_in(key, epoch), n_examples).astype(jnp.int32)

    def in_turn():
        rows = jnp.zeros((keys.shape[0], n_examples), jnp.int32)
        return lax.fori_loop(0, count, lambda i, rows: rows.at[i].set(order(keys[i])), rows)

    def few_in_turn():
        return lax.cond(count <= SHUFFLED_IN_TURN, in_turn, lambda: jax.vmap(order)(keys))

    return lax.platform_dependent(cpu=in_turn, default=few_in_turn)


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
    noise = noise_argument(make_optimizer)
    if noise == "key":
        return make_optimizer(rate, **others, key=jax.random.wrap_key_data(key))  # a typed key (optax's)
    if noise == "seed":
        return make_optimizer(rate, **others, seed=jax.random.randint(key, (), 0, 2**31 - 1))
    return make_optimizer(rate, **others)


def noise_argument(make_optimizer) -> str | None:
    """``"key"`` or ``"seed"``: the argument by which a run gives ``make_optimizer`` its own noise; or None.

    None also for a ``functools.partial`` that fixes the user's own key or
    seed: its noise is then the same in every run.
    """
    if {"key", "seed"} & set(getattr(make_optimizer, "keywords", None) or {}):
        return None
    try:
        accepted = inspect.signature(make_optimizer).parameters
    except (TypeError, ValueError):  # a callable without a signature: it takes the learning rate only
        return None
    return next((name for name in ("key", "seed") if name in accepted), None)


def run_one(
    hyper,
    params,
    key,
    X,
    y,
    held_out=None,
    known=None,
    batch_keys=None,
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
    evaluation_params=None,
):
    """One run: ``steps`` updates from ``params``, the loss logged every ``log_every``.

    ``hyper`` holds the run's hyperparameters (name -> scalar: the learning
    rate, the optimizer's other data arguments and the schedule's
    parameters; see ``optimizer_for_run``).

    ``known`` holds the problem's ``target_loss`` and ``minimum_loss``
    (scalars, NaN where unknown). The loss on all data is watched at every
    step of a full-batch run (the gradient's own value: the loss after ``t``
    updates, exact), and at the start, the logged points and the end of a
    minibatch run (whose steps see a batch's loss only, so its parameters
    are also checked finite after every step). From it: ``diverged_at`` by
    the one rule (``divergence_ceiling``), ``first_at_target``, the first
    observed step at or below the target, and ``at_target_from``, the first
    observed step from which the loss stayed at or below it to the end (-1
    where it ended above). With a ``tolerance``, the first step whose parameter change is below it is
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

    With ``evaluation_params`` (an optimizer's declaration, see
    ``gdjax.optimizers.declarations``: schedule-free, averaging),
    the model is ``evaluation_params(opt_state, params)``, not the iterate:
    every loss (initial, logged, final, best), the metrics, the watch, the
    logged and the final parameters are at that point, and the loss is
    watched at the start, the logged points and the end only, as in a
    minibatch run (a step's loss is the iterate's). The iterate is still
    checked finite after every step, and ``tolerance`` applies to its change.
    Without it, the program is the one it always was.

    ``batch_keys`` is ``(keys, count)``: the distinct keys of the runs batched
    with this one (its own among them) in the first ``count`` rows of
    ``keys``, the same array for every run of the batch. A minibatch run
    takes its order from the first row holding its key (``epoch_orders``), so
    the orders are computed once per distinct key (a key missing from them
    would take row 0: the engine always passes it); None: from its own key.
    """
    loss_key, optimizer_key = stream_keys(key)
    optimizer = optimizer_for_run(make_optimizer, hyper, optimizer_key, schedule)
    takes_extra_args = isinstance(optimizer, optax.GradientTransformationExtraArgs)
    n_examples = X.shape[0]
    order_keys, n_order_keys = (key[None], 1) if batch_keys is None else batch_keys
    own_key = jnp.all(order_keys == key[None, :], axis=-1)
    key_row = jnp.argmax(own_key).astype(jnp.int32)  # the first row holding this run's key
    full_batch = watched_every_step(batch_size, n_examples, loss_takes_key, evaluation_params)

    def full_loss(params):
        return loss(params, X, y, *((None,) if loss_takes_key else ()))

    def model(opt_state, params):  # the parameters a run reports and its losses are evaluated at
        return params if evaluation_params is None else evaluation_params(opt_state, params)

    opt_state = optimizer.init(params)
    initial_loss = full_loss(model(opt_state, params))
    known = known or {"target_loss": jnp.nan, "minimum_loss": jnp.nan}
    target_loss = known["target_loss"]
    ceiling = divergence_ceiling(initial_loss, known["minimum_loss"])

    def step(carry, t):
        (params, opt_state, watched, orders), stopped_at = carry
        if batch_size is None:
            X_batch, y_batch = X, y
        else:
            batches_per_epoch = n_examples // batch_size
            epoch, batch = t // batches_per_epoch, t % batches_per_epoch
            orders = lax.cond(
                batch == 0, lambda: epoch_orders(order_keys, n_order_keys, epoch, n_examples), lambda: orders
            )
            rows = lax.dynamic_slice(orders, (key_row, batch * batch_size), (1, batch_size))[0]
            X_batch, y_batch = X[rows], y[rows]
        step_key = (jax.random.fold_in(loss_key, t),) if loss_takes_key else ()

        def batch_loss(params):
            return loss(params, X_batch, y_batch, *step_key)

        value, grads = jax.value_and_grad(batch_loss)(params)
        if full_batch:
            watched = _watch(watched, value, t, target_loss, ceiling)
        if takes_extra_args:
            updates, opt_state = optimizer.update(
                grads, opt_state, params, value=value, grad=grads, value_fn=batch_loss
            )
        else:
            updates, opt_state = optimizer.update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        if not full_batch:
            diverged_at, *at_target = watched
            watched = (_mark_divergence(diverged_at, _all_finite(new_params), t + 1), *at_target)
        if tolerance is not None:
            settled = _change_norm(new_params, params) < tolerance
            stopped_at = jnp.where((stopped_at < 0) & settled, t + 1, stopped_at)
        return ((new_params, opt_state, watched, orders), stopped_at), None

    def logged_block(carry, first_step):
        carry, _ = lax.scan(step, carry, first_step + jnp.arange(log_every, dtype=jnp.int32))
        (params, opt_state, watched, orders), stopped_at = carry
        evaluated = model(opt_state, params)
        logged_loss = full_loss(evaluated)
        if not full_batch:
            watched = _watch(watched, logged_loss, first_step + log_every, target_loss, ceiling)
        logged = {"loss": logged_loss, **({"params": evaluated} if log_params else {})}
        if metrics is not None:
            logged["metrics"] = metrics(evaluated, held_out)
        return ((params, opt_state, watched, orders), stopped_at), logged

    n_logs, tail = divmod(steps, log_every)
    never = jnp.int32(-1)
    watched = (never, never, never)  # diverged_at, first at target, last step above target
    if not full_batch:
        watched = _watch(watched, initial_loss, 0, target_loss, ceiling)
    orders = jnp.zeros((order_keys.shape[0], 0 if batch_size is None else n_examples), jnp.int32)
    carry = (params, opt_state, watched, orders)
    carry, logged = lax.scan(logged_block, (carry, never), jnp.arange(n_logs, dtype=jnp.int32) * log_every)
    if tail:
        carry, _ = lax.scan(step, carry, n_logs * log_every + jnp.arange(tail, dtype=jnp.int32))
    (params, opt_state, watched, _), stopped_at = carry
    params = model(opt_state, params)
    loss_curve = logged["loss"]
    # where the last logged point is the end, its loss and metrics are the final ones: not evaluated twice
    final_loss = full_loss(params) if tail else loss_curve[-1]
    diverged_at, first_at_target, last_above = _watch(watched, final_loss, steps, target_loss, ceiling)
    # the stay at the target starts at the observation after the last one above it
    next_observed = jnp.minimum(last_above + (1 if full_batch else log_every), steps)
    at_target_from = jnp.where(last_above < 0, 0, jnp.where(last_above == steps, -1, next_observed))
    seen = jnp.concatenate([initial_loss[None], loss_curve, final_loss[None]])
    best_loss = jnp.min(jnp.where(jnp.isfinite(seen), seen, jnp.inf))
    outputs = {
        "final_loss": final_loss,
        "best_loss": best_loss,
        "diverged_at": diverged_at,
        "first_at_target": first_at_target,
        "at_target_from": at_target_from,
        "loss_curve": loss_curve,
        "params": params,
    }
    if tolerance is not None:
        outputs["stopped_at"] = stopped_at
    if log_params:
        outputs["params_curve"] = logged["params"]
    if metrics is not None:
        outputs["metric_curves"] = logged["metrics"]
        if tail:
            outputs["final_metrics"] = metrics(params, held_out)
        else:
            outputs["final_metrics"] = jax.tree.map(lambda curve: curve[-1], logged["metrics"])
    return outputs
