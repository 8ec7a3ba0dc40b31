"""Parity of gdjax.sweep with independent references, in float64."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from references import optax_python_loop, textbook_regression_gd, textbook_xor_backprop

import gdjax


def test_gd_regression_equals_textbook_loop_and_reaches_lstsq():
    prob = gdjax.linear_regression()
    res = gdjax.sweep(prob, "gd", [0.0005], steps=100_000, dtype="float64")
    theta, cost = textbook_regression_gd(prob.X, prob.y, 0.0005, 100_000)
    np.testing.assert_allclose(res.params[0, 0], theta, rtol=1e-10)
    np.testing.assert_allclose(res.final_loss[0, 0], cost, rtol=1e-10)
    lstsq = np.linalg.lstsq(prob.X, prob.y, rcond=None)[0]
    np.testing.assert_allclose(res.params[0, 0], lstsq, atol=1e-3)
    assert res.final_loss[0, 0] == pytest.approx(3.89, abs=0.005)  # TEXTBOOK.md's figure


def test_float32_gd_regression_stalls_short_of_lstsq_as_textbook_says():
    prob = gdjax.linear_regression()
    res = gdjax.sweep(prob, "gd", [0.0005], steps=100_000)
    lstsq = np.linalg.lstsq(prob.X, prob.y, rcond=None)[0]
    assert res.params.dtype == np.float32
    assert 1e-3 < abs(res.params[0, 0, 0] - lstsq[0]) < 2e-2


def test_xor_gd_equals_textbook_backprop():
    prob = gdjax.xor()
    start = prob.init(1)
    res = gdjax.sweep(prob, "gd", [0.5], steps=60_000, dtype="float64", init_params=start)
    W0, W1, out = textbook_xor_backprop(prob.X, prob.y, start["W0"], start["W1"], 0.5, 60_000)
    np.testing.assert_allclose(res.params["W0"][0, 0], W0, rtol=1e-8)
    np.testing.assert_allclose(res.params["W1"][0, 0], W1, rtol=1e-8)
    np.testing.assert_array_equal(out.ravel() > 0.5, [False, True, True, False])
    np.testing.assert_allclose(out.ravel(), [0.004, 0.995, 0.996, 0.006], atol=1e-3)


def _x64_loop(prob, transformation, learning_rate, steps, batches=None):
    with jax.enable_x64(True):
        params = jax.tree.map(jnp.asarray, prob.init(0))
        out = optax_python_loop(
            prob.loss,
            params,
            jnp.asarray(prob.X),
            jnp.asarray(prob.y),
            transformation(learning_rate),
            steps,
            batches,
        )
        return jax.tree.map(np.asarray, out)


@pytest.mark.slow  # 5 s measured on 2 busy cores
@pytest.mark.parametrize("name", ["gd", "momentum", "adam"])
@pytest.mark.parametrize(
    ("make_problem", "learning_rate"), [(gdjax.linear_regression, 1e-4), (gdjax.xor, 0.5)]
)
def test_registered_optimizer_equals_optax_in_python_loop(name, make_problem, learning_rate):
    prob, steps = make_problem(), 300
    res = gdjax.sweep(prob, name, [learning_rate], steps=steps, dtype="float64")
    expected = _x64_loop(prob, gdjax.OPTIMIZERS[name], learning_rate, steps)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[0, 0], b, rtol=1e-10), res.params, expected)


def test_sgd_minibatches_follow_reshuffled_epochs():
    prob, batch_size, steps, seed = gdjax.linear_regression(), 8, 40, 3
    res = gdjax.sweep(prob, "sgd", [1e-5], steps=steps, seeds=[seed], batch_size=batch_size, dtype="float64")
    batches_per_epoch = prob.n_examples // batch_size
    with jax.enable_x64(True):
        key = jax.random.PRNGKey(seed)
        orders = [
            np.asarray(jax.random.permutation(jax.random.fold_in(key, e), prob.n_examples))
            for e in range(steps // batches_per_epoch + 1)
        ]
    batches = [
        orders[t // batches_per_epoch][(t % batches_per_epoch) * batch_size :][:batch_size]
        for t in range(steps)
    ]
    # each epoch visits distinct examples
    assert len(set(np.concatenate(batches[:batches_per_epoch]).tolist())) == batches_per_epoch * batch_size
    expected = _x64_loop(prob, optax.sgd, 1e-5, steps, batches)
    np.testing.assert_allclose(res.params[0, 0], expected, rtol=1e-10)


def test_sgd_with_whole_batch_equals_gd():
    prob = gdjax.linear_regression()
    sgd = gdjax.sweep(prob, "sgd", [1e-4], steps=500, batch_size=prob.n_examples, dtype="float64")
    gd = gdjax.sweep(prob, "gd", [1e-4], steps=500, dtype="float64")
    np.testing.assert_allclose(sgd.params, gd.params, rtol=1e-10)
