"""An optimizer whose model is not its iterate (schedule-free) is evaluated at its declared evaluation point.

Its losses, watch and final parameters equal a plain-Python loop of optax
steps evaluated at ``evaluation_params(opt_state, params)``, in float64;
the iterate's own losses differ, so the comparison can fail.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib
from references import vmap_of_one_run

import gdjax
from gdjax.optimizers import declarations
from gdjax.step import watched_every_step

RATES = [0.5, 0.8]  # 0.5 ends above the target where its iterate ends below; 0.8 reaches it
STEPS, LOG_EVERY = 50, 10
RTOL = 1e-10


def schedule_free(learning_rate):
    return optax.contrib.schedule_free_sgd(learning_rate, b1=0.9)


schedule_free.evaluation_params = optax.contrib.schedule_free_eval_params


def _python_loop(problem, learning_rate):
    """(losses at the evaluation point, the iterate's losses, final evaluation point) after 0..STEPS steps."""
    with jax.enable_x64(True):
        X, y = jnp.asarray(problem.X), jnp.asarray(problem.y)
        params = jax.tree.map(jnp.asarray, problem.init(0))
        optimizer = schedule_free(learning_rate)
        state = optimizer.init(params)
        grad = jax.grad(problem.loss)
        evaluated, iterate = [], []
        for t in range(STEPS + 1):
            if t:
                updates, state = optimizer.update(grad(params, X, y), state, params)
                params = optax.apply_updates(params, updates)
            evaluated.append(
                float(problem.loss(optax.contrib.schedule_free_eval_params(state, params), X, y))
            )
            iterate.append(float(problem.loss(params, X, y)))
        final = np.asarray(optax.contrib.schedule_free_eval_params(state, params))
        return np.array(evaluated), np.array(iterate), final


def _watched(losses, target):
    """(first_at_target, at_target_from) observed at the start, every LOG_EVERY steps and the end."""
    observed = range(0, STEPS + 1, LOG_EVERY)
    at = [t for t in observed if losses[t] <= target]
    above = [t for t in observed if losses[t] > target]
    first = at[0] if at else -1
    if not above:
        return first, 0
    return first, (-1 if above[-1] == STEPS else above[-1] + LOG_EVERY)


def test_schedule_free_is_evaluated_at_its_evaluation_point():
    problem = gdjax.linear_regression(standardize=True)
    assert declarations(schedule_free).evaluation_params is optax.contrib.schedule_free_eval_params
    assert declarations("adam").evaluation_params is None
    program = gdjax.prepare_sweep(problem, schedule_free, RATES, STEPS, log_every=LOG_EVERY, dtype="float64")
    res = program.run()
    target = problem.facts.target_loss
    logged = np.arange(LOG_EVERY, STEPS + 1, LOG_EVERY)
    reached, iterate_watch_differs = [], []
    for i, rate in enumerate(RATES):
        evaluated, iterate, final = _python_loop(problem, rate)
        np.testing.assert_allclose(res.loss_curve[0, i], evaluated[logged], rtol=RTOL)
        np.testing.assert_allclose(res.final_loss[0, i], evaluated[STEPS], rtol=RTOL)
        np.testing.assert_allclose(res.params[0, i], final, rtol=RTOL)
        observed = evaluated[np.r_[0, logged]]
        np.testing.assert_allclose(res.best_loss[0, i], observed.min(), rtol=RTOL)
        assert res.diverged_at[0, i] == -1
        first, stay = _watched(evaluated, target)
        assert (res.first_at_target[0, i], res.at_target_from[0, i]) == (first, stay)
        reached.append(stay >= 0)
        iterate_watch_differs.append(_watched(iterate, target) != (first, stay))
        # the test can fail: the iterate's losses are not the evaluation point's
        gap = np.abs(iterate[logged] - evaluated[logged]) / np.abs(evaluated[logged])
        assert gap.min() > 1e3 * RTOL, gap
        assert abs(iterate[STEPS] - evaluated[STEPS]) > 1e3 * RTOL * abs(evaluated[STEPS])
    assert any(reached)  # the watch is tested both ways
    assert not all(reached)
    assert any(iterate_watch_differs)  # and a watch of the iterate would have said otherwise
    # at the logged points only: the resolution a harness reports for steps to target
    assert not watched_every_step(None, problem.n_examples, False, schedule_free.evaluation_params)
    assert watched_every_step(None, problem.n_examples, False)
    # jax.vmap's batching of the same run (the engine's path for large models) agrees
    by_vmap = vmap_of_one_run(program)
    np.testing.assert_allclose(by_vmap["loss_curve"], res.loss_curve, rtol=RTOL)
    np.testing.assert_allclose(by_vmap["params"], res.params, rtol=RTOL)
    # the logged parameters are the evaluation point's too
    logging = gdjax.sweep(
        problem, schedule_free, RATES, STEPS, log_every=LOG_EVERY, dtype="float64", log_params=True
    )
    np.testing.assert_array_equal(logging.params_curve[:, :, -1], logging.params)
    np.testing.assert_array_equal(logging.loss_curve, res.loss_curve)


def test_a_declared_optimizer_that_diverges_is_caught_at_the_evaluation_point():
    problem = gdjax.linear_regression(standardize=True)
    res = gdjax.sweep(problem, schedule_free, [1e3], STEPS, log_every=LOG_EVERY, dtype="float64")
    assert 0 < res.diverged_at[0, 0] <= STEPS
    assert res.at_target_from[0, 0] == -1
