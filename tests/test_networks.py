"""The classification networks (gdjax.networks) against independent references, in float64.

The references: a hand-written numpy forward and backward pass of every model
(no JAX), optax stepped in a plain Python loop on minibatches drawn here,
numpy's own count of correct predictions, the MNIST-1D arrays' committed
fingerprint, and scikit-learn's stratified split of digits.
"""

import dataclasses
import functools
import hashlib
import random
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from references import optax_python_loop

import gdjax
from gdjax import networks

N_FEATURES, N_CLASSES = 40, 10
# The documented architecture, restated here: the CNN's convolutions (kernel width, stride 2, padding 1).
CNN_KERNELS, CNN_STRIDE, CNN_PADDING = (5, 3, 3), 2, 1


# --- a hand-written numpy forward and backward pass of every model --------------------------------


def _relu(a):
    return np.maximum(a, 0.0)


def _softmax_cross_entropy(logits, y):
    """(mean cross-entropy, its gradient with respect to the logits), by hand."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    loss = -log_p[rows, y].mean()
    d_logits = np.exp(log_p)
    d_logits[rows, y] -= 1.0
    return loss, d_logits / len(y)


def _conv_forward(x, kernel, bias):
    """Strided 1-D convolution, a loop over output positions and kernel taps; x (n, length, channels)."""
    width = kernel.shape[0]
    padded = np.pad(x, ((0, 0), (CNN_PADDING, CNN_PADDING), (0, 0)))
    length = (x.shape[1] + 2 * CNN_PADDING - width) // CNN_STRIDE + 1
    out = np.empty((x.shape[0], length, kernel.shape[2]))
    for i in range(length):
        acc = np.broadcast_to(bias, (x.shape[0], bias.shape[0])).copy()
        for k in range(width):
            acc += padded[:, CNN_STRIDE * i + k, :] @ kernel[k]
        out[:, i, :] = acc
    return out, padded


def _conv_backward(d_out, padded, kernel):
    """(d input, d kernel, d bias) of ``_conv_forward``, the same loops run backwards."""
    d_padded, d_kernel = np.zeros_like(padded), np.zeros_like(kernel)
    for i in range(d_out.shape[1]):
        for k in range(kernel.shape[0]):
            d_kernel[k] += padded[:, CNN_STRIDE * i + k, :].T @ d_out[:, i, :]
            d_padded[:, CNN_STRIDE * i + k, :] += d_out[:, i, :] @ kernel[k].T
    return d_padded[:, CNN_PADDING:-CNN_PADDING, :], d_kernel, d_out.sum(axis=(0, 1))


def _numpy_loss_and_grads(model, params, X, y):
    """(loss, logits, grads) of ``model`` by a hand-written forward and backward pass."""
    p = {name: np.asarray(value, np.float64) for name, value in params.items()}
    grads = {}
    if model == "linear":
        logits = X @ p["W"] + p["b"]
        loss, d_logits = _softmax_cross_entropy(logits, y)
        grads["W"], grads["b"] = X.T @ d_logits, d_logits.sum(0)
    elif model == "mlp":
        a1 = X @ p["W1"] + p["b1"]
        h1 = _relu(a1)
        a2 = h1 @ p["W2"] + p["b2"]
        h2 = h1 + _relu(a2)
        logits = h2 @ p["W3"] + p["b3"]
        loss, d_logits = _softmax_cross_entropy(logits, y)
        grads["W3"], grads["b3"] = h2.T @ d_logits, d_logits.sum(0)
        d_h2 = d_logits @ p["W3"].T
        d_a2 = d_h2 * (a2 > 0)
        grads["W2"], grads["b2"] = h1.T @ d_a2, d_a2.sum(0)
        d_h1 = d_h2 + d_a2 @ p["W2"].T  # the residual path and the layer's
        d_a1 = d_h1 * (a1 > 0)
        grads["W1"], grads["b1"] = X.T @ d_a1, d_a1.sum(0)
    else:
        h, saved = X[:, :, None], []
        for layer in (1, 2, 3):
            a, padded = _conv_forward(h, p[f"K{layer}"], p[f"c{layer}"])
            saved.append((a, padded))
            h = _relu(a)
        flat = h.reshape(len(X), -1)  # (position, channel), row-major
        logits = flat @ p["W"] + p["b"]
        loss, d_logits = _softmax_cross_entropy(logits, y)
        grads["W"], grads["b"] = flat.T @ d_logits, d_logits.sum(0)
        d_h = (d_logits @ p["W"].T).reshape(h.shape)
        for layer in (3, 2, 1):
            a, padded = saved[layer - 1]
            d_h, grads[f"K{layer}"], grads[f"c{layer}"] = _conv_backward(
                d_h * (a > 0), padded, p[f"K{layer}"]
            )
    return loss, logits, grads


def _numpy_logits(model, params, X):
    return _numpy_loss_and_grads(model, params, X, np.zeros(len(X), np.int64))[1]


# --- small problems ---------------------------------------------------------------------------------


def _teacher_data(n, seed):
    """``n`` examples of 40 features labelled by a fixed random linear teacher (learnable, 10 classes)."""
    rng = np.random.default_rng(seed)
    teacher = np.random.default_rng(99).standard_normal((N_FEATURES, N_CLASSES))
    X = rng.standard_normal((n, N_FEATURES))
    return X, np.argmax(X @ teacher, axis=1)


def _small_problem(model):
    X, y = _teacher_data(200, 1)
    X_test, y_test = _teacher_data(60, 2)
    X_val, y_val = _teacher_data(50, 3)
    return gdjax.classification(
        X, y, X_test, y_test, model=model, X_validation=X_val, y_validation=y_val, n_classes=N_CLASSES
    )


def _random_params(model, seed):
    """init_params, with random biases in place of the zeros so that every bias is exercised."""
    rng = np.random.default_rng(seed + 1000)
    params = networks.init_params(model, N_FEATURES, N_CLASSES, seed)
    return {
        name: (0.1 * rng.standard_normal(value.shape) if value.ndim == 1 else value)
        for name, value in params.items()
    }


# --- 1. the models against the numpy forward and backward pass --------------------------------------


@pytest.mark.parametrize("block", [None, 3])
@pytest.mark.parametrize("model", ["linear", "mlp", "cnn"])
def test_loss_and_gradient_equal_handwritten_numpy_backprop(model, block):
    """problem.loss and jax.grad of it equal a hand-written numpy forward and backward pass (no JAX);
    in one piece, and in blocks of 3 examples (the last with 2 padded rows)."""
    rng = np.random.default_rng(7)
    X, y = rng.standard_normal((7, N_FEATURES)), rng.integers(0, N_CLASSES, 7)
    prob = gdjax.classification(X, y, X[:3], y[:3], model=model, n_classes=N_CLASSES)
    jax.tree.map(
        np.testing.assert_array_equal, prob.init(5), networks.init_params(model, N_FEATURES, N_CLASSES, 5)
    )
    loss_function = dataclasses.replace(prob.loss, block=block)
    params = _random_params(model, 5)
    expected_loss, _, expected_grads = _numpy_loss_and_grads(model, params, X, y)
    with jax.enable_x64(True):
        jparams = jax.tree.map(jnp.asarray, params)
        loss, grads = jax.jit(jax.value_and_grad(loss_function))(jparams, jnp.asarray(X), jnp.asarray(y))
    assert loss.dtype == jnp.float64
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-10, atol=1e-12)
    assert sorted(grads) == sorted(expected_grads)
    for name, grad in grads.items():
        assert grad.dtype == jnp.float64
        np.testing.assert_allclose(grad, expected_grads[name], rtol=1e-10, atol=1e-12, err_msg=name)
        assert np.any(expected_grads[name] != 0), name  # every parameter really reaches the loss


def test_cnn_lengths_and_parameter_shapes():
    """The documented lengths 40 -> 19 -> 10 -> 5 and shapes; init_params draws exactly layer_shapes."""
    assert networks._conv_lengths(N_FEATURES) == [40, 19, 10, 5]
    expected = {
        "K1": (5, 1, 25), "c1": (25,), "K2": (3, 25, 25), "c2": (25,), "K3": (3, 25, 25), "c3": (25,),
        "W": (125, 10), "b": (10,),
    }  # fmt: skip
    assert networks.layer_shapes("cnn", N_FEATURES, N_CLASSES) == expected
    assert networks.layer_shapes("mlp", N_FEATURES, N_CLASSES) == {
        "W1": (40, 100), "b1": (100,), "W2": (100, 100), "b2": (100,), "W3": (100, 10), "b3": (10,),
    }  # fmt: skip
    assert networks.layer_shapes("linear", N_FEATURES, N_CLASSES) == {"W": (40, 10), "b": (10,)}
    for model in networks.MODELS:
        shapes = networks.layer_shapes(model, N_FEATURES, N_CLASSES)
        params = networks.init_params(model, N_FEATURES, N_CLASSES, 0)
        assert {name: value.shape for name, value in params.items()} == shapes
        assert all(value.dtype == np.float64 for value in params.values())
        with jax.enable_x64(True):
            logits = jax.eval_shape(networks.LOGITS[model], params, np.zeros((3, N_FEATURES)))
        assert logits.shape == (3, N_CLASSES)
    # the numpy reference's own lengths agree
    h = np.zeros((2, N_FEATURES, 1))
    for layer, width in enumerate(CNN_KERNELS, start=1):
        h = _conv_forward(h, np.zeros((width, h.shape[2], 25)), np.zeros(25))[0]
        assert h.shape[1] == [19, 10, 5][layer - 1]


def test_init_params_he_normal_from_default_rng_layer_by_layer():
    """Weights are default_rng(seed) standard normals drawn layer by layer, scaled by sqrt(gain / fan_in)."""
    params = networks.init_params("mlp", N_FEATURES, N_CLASSES, 11)
    rng = np.random.default_rng(11)
    np.testing.assert_allclose(params["W1"], rng.standard_normal((40, 100)) * np.sqrt(2 / 40), rtol=1e-14)
    np.testing.assert_allclose(params["W2"], rng.standard_normal((100, 100)) * np.sqrt(2 / 100), rtol=1e-14)
    np.testing.assert_allclose(params["W3"], rng.standard_normal((100, 10)) * np.sqrt(1 / 100), rtol=1e-14)
    for name in ("b1", "b2", "b3"):
        np.testing.assert_array_equal(params[name], 0.0)
    cnn = networks.init_params("cnn", N_FEATURES, N_CLASSES, 11)
    rng = np.random.default_rng(11)
    np.testing.assert_allclose(cnn["K1"], rng.standard_normal((5, 1, 25)) * np.sqrt(2 / 5), rtol=1e-14)
    np.testing.assert_allclose(cnn["K2"], rng.standard_normal((3, 25, 25)) * np.sqrt(2 / 75), rtol=1e-14)
    assert not np.array_equal(networks.init_params("mlp", N_FEATURES, N_CLASSES, 12)["W1"], params["W1"])


# --- 2. a sweep against optax in a plain Python loop on the same minibatches ------------------------

STEPS, LOG_EVERY, BATCH_SIZE, SEEDS, RATES = 20, 5, 16, (0, 3), (1e-3, 1e-2)


def _minibatches(seed, n_examples, batch_size, steps):
    """The documented order: epoch e shuffles with permutation(fold_in(PRNGKey(seed), e)); rest dropped."""
    per_epoch = n_examples // batch_size
    key = jax.random.PRNGKey(seed)
    orders = [
        np.asarray(jax.random.permutation(jax.random.fold_in(key, e), n_examples))
        for e in range((steps - 1) // per_epoch + 1)
    ]
    return [orders[t // per_epoch][(t % per_epoch) * batch_size :][:batch_size] for t in range(steps)]


def _sweep(model, optimizer, log_params=False, block=None):
    """A float64 sweep of the small problem: seeds 0 and 3, rates 1e-3 and 1e-2, 20 steps of 16 examples;
    its examples evaluated ``block`` at a time (None: in one piece, as built)."""
    prob = _with_block(_small_problem(model), block)
    res = gdjax.sweep(
        prob,
        optimizer,
        list(RATES),
        steps=STEPS,
        seeds=list(SEEDS),
        batch_size=BATCH_SIZE,
        dtype="float64",
        log_every=LOG_EVERY,
        log_params=log_params,
    )
    return prob, res


def _run_params(res, i, j):
    return {name: value[i, j] for name, value in res.params.items()}


FAST_CASES = {("mlp", "adam"), ("cnn", "sgd")}  # the others are marked slow (a compile of 5-10 s each)


@pytest.mark.parametrize(
    ("model", "optimizer"),
    [
        pytest.param(model, optimizer, marks=() if (model, optimizer) in FAST_CASES else (pytest.mark.slow,))
        for model in ("mlp", "cnn")
        for optimizer in ("sgd", "momentum", "adam")
    ],
)
def test_sweep_equals_optax_python_loop_on_same_minibatches(model, optimizer):
    """Every (seed, rate) run's final params equal optax stepped in a Python loop; its final loss, numpy's.

    The same sweep's final held-out metrics are checked too (``_assert_final_metrics_equal_numpy``), so that
    one compile serves both.
    """
    prob, res = _sweep(model, optimizer)
    # 200 examples in batches of 16: 12 an epoch (8 left out), so 20 steps cross into a second epoch
    assert prob.n_examples // BATCH_SIZE < STEPS
    with jax.enable_x64(True):
        X, y = jnp.asarray(prob.X), jnp.asarray(prob.y)
        for i, seed in enumerate(SEEDS):
            batches = _minibatches(seed, prob.n_examples, BATCH_SIZE, STEPS)
            assert len(np.unique(np.concatenate(batches[:12]))) == 12 * BATCH_SIZE
            start = networks.init_params(model, N_FEATURES, N_CLASSES, seed)
            for j, rate in enumerate(RATES):
                transformation = gdjax.OPTIMIZERS[optimizer](rate)
                expected = optax_python_loop(
                    jax.jit(prob.loss), jax.tree.map(jnp.asarray, start), X, y, transformation, STEPS, batches
                )
                expected = jax.tree.map(np.asarray, expected)
                got = _run_params(res, i, j)
                assert sorted(got) == sorted(expected)
                for name, value in expected.items():
                    assert got[name].dtype == np.float64
                    where = f"{name}, seed {seed}, rate {rate}"
                    np.testing.assert_allclose(got[name], value, rtol=1e-10, atol=1e-13, err_msg=where)
                    # the run really moved
                    assert not np.allclose(value, start[name], rtol=1e-6, atol=0), where
                numpy_loss = _numpy_loss_and_grads(model, expected, prob.X, prob.y)[0]
                np.testing.assert_allclose(res.final_loss[i, j], numpy_loss, rtol=1e-10)
    assert np.all(res.diverged_at == -1)
    assert not np.allclose(res.final_loss[:, 0], res.final_loss[:, 1], rtol=1e-3)  # the rates differ
    _assert_final_metrics_equal_numpy(model, prob, res)


# --- 3. held-out metrics against numpy's count --------------------------------------------------------

METRICS = {"test_accuracy", "test_loss", "validation_accuracy", "validation_loss"}


def _numpy_metrics(model, params, prob):
    """{split_accuracy: numpy's count of argmax matches / count, split_loss: numpy's cross-entropy}."""
    measured = {}
    for split in ("test", "validation"):
        X, y = prob.held_out[f"X_{split}"], prob.held_out[f"y_{split}"]
        loss, logits, _ = _numpy_loss_and_grads(model, params, X, y)
        measured[f"{split}_accuracy"] = np.count_nonzero(np.argmax(logits, axis=1) == y) / len(y)
        measured[f"{split}_loss"] = loss
    return measured


def _assert_metrics_equal(got, expected, where):
    assert set(got) == set(expected) == METRICS
    for name, value in expected.items():
        if name.endswith("accuracy"):
            assert got[name] == value, (name, where)  # a count over a count: any difference is a miscount
        else:
            np.testing.assert_allclose(got[name], value, rtol=1e-10, err_msg=f"{name} {where}")


def _assert_final_metrics_equal_numpy(model, prob, res):
    """final_metrics and the curves' last point (log_every divides steps) equal numpy on the final params."""
    n_logs = STEPS // LOG_EVERY
    assert set(res.metric_curves) == set(res.final_metrics) == METRICS
    for name in METRICS:
        assert res.metric_curves[name].shape == (len(SEEDS), len(RATES), n_logs)
        assert res.final_metrics[name].shape == (len(SEEDS), len(RATES))
    accuracies = set()
    for i in range(len(SEEDS)):
        for j in range(len(RATES)):
            expected = _numpy_metrics(model, _run_params(res, i, j), prob)
            _assert_metrics_equal({k: v[i, j] for k, v in res.final_metrics.items()}, expected, "final")
            _assert_metrics_equal({k: v[i, j, -1] for k, v in res.metric_curves.items()}, expected, "last")
            accuracies |= {expected["test_accuracy"], expected["validation_accuracy"]}
    assert len(accuracies) > 2  # the accuracies differ between runs: the comparison can tell them apart
    frame = res.to_frame()
    assert set(frame.columns) >= METRICS
    assert len(frame) == len(SEEDS) * len(RATES)
    row = frame[(frame.seed == SEEDS[1]) & (frame.learning_rate == RATES[0])].iloc[0]
    for name in METRICS:
        assert row[name] == res.final_metrics[name][1, 0]


@pytest.mark.slow  # 5 s measured on 2 busy cores
@pytest.mark.parametrize("block", [None, 16])
def test_every_logged_metric_equals_numpy_on_logged_params(block):
    """With log_params, every logged metric and training loss equal numpy on the parameters logged with it,
    with the examples evaluated in one piece or in blocks of at most 16 (200 training examples in 13 blocks
    with 8 rows padded, 60 test examples in 4, 50 validation ones in 4 with 2 padded)."""
    prob, res = _sweep("linear", "momentum", log_params=True, block=block)
    n_logs = STEPS // LOG_EVERY
    accuracies = set()
    for i in range(len(SEEDS)):
        for j in range(len(RATES)):
            for point in range(n_logs):
                params = {name: value[i, j, point] for name, value in res.params_curve.items()}
                expected = _numpy_metrics("linear", params, prob)
                got = {name: value[i, j, point] for name, value in res.metric_curves.items()}
                _assert_metrics_equal(got, expected, point)
                train_loss = _numpy_loss_and_grads("linear", params, prob.X, prob.y)[0]
                np.testing.assert_allclose(res.loss_curve[i, j, point], train_loss, rtol=1e-10)
                accuracies.add(expected["test_accuracy"])
            jax.tree.map(np.testing.assert_array_equal, params, _run_params(res, i, j))  # the last is the end
    assert len(accuracies) > 2


def test_problem_without_validation_records_test_metrics_only():
    """Without a validation set the metrics are test_loss and test_accuracy, equal to numpy's."""
    X, y = _teacher_data(40, 4)
    X_test, y_test = _teacher_data(30, 5)
    prob = gdjax.classification(X, y, X_test, y_test, model="linear", n_classes=N_CLASSES)
    res = gdjax.sweep(prob, "gd", [0.5], steps=6, log_every=3, dtype="float64")
    assert set(res.final_metrics) == {"test_accuracy", "test_loss"}
    assert res.metric_curves["test_accuracy"].shape == (1, 1, 2)
    loss, logits, _ = _numpy_loss_and_grads("linear", _run_params(res, 0, 0), X_test, y_test)
    correct = np.count_nonzero(np.argmax(logits, axis=1) == y_test)
    assert res.final_metrics["test_accuracy"][0, 0] == correct / 30
    np.testing.assert_allclose(res.final_metrics["test_loss"][0, 0], loss, rtol=1e-10)
    assert "validation_accuracy" not in res.to_frame().columns


# --- 4. MNIST-1D ----------------------------------------------------------------------------------------

# Generated once by mnist1d 0.0.2.post1's make_dataset(get_dataset_args()) with scipy 1.17.1 / numpy 2.4.6
# (Python 3.11); the very same bytes came from scipy 1.18.1 / numpy 2.5.5 (Python 3.12 and 3.13) and from
# scipy 1.13.0 / numpy 2.0.0. The first 16 hex digits of the sha256 of np.round(array, 10).tobytes()
# (labels as int64), and a few values.
MNIST1D_SHA256 = {
    "X": "0539f21168954cff",
    "y": "d97dc7aecec8ad6b",
    "X_test": "e6768a77e1588535",
    "y_test": "8de99be3ff9dab15",
}
# The same, of the 4,000 training rows [features, label] rounded and sorted: independent of their order.
MNIST1D_TRAINING_ROWS_SHA256 = "7cfad48f68e6ebe5"
MNIST1D_VALUES = {
    ("X", (0, 0)): -0.3320056673693902,
    ("X", (0, 1)): -0.4719103656557236,
    ("X", (0, 2)): -0.778697076293495,
    ("X_test", (999, 38)): 0.8777343497528006,
    ("X_test", (999, 39)): 1.193151836835276,
}
MNIST1D_FIRST_LABELS = [2, 6, 4, 5, 6, 6, 6, 0, 3, 1]


def _sha256(array):
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()[:16]


def _fingerprint(data):
    return {
        name: _sha256(np.round(value, 10) if name.startswith("X") else np.asarray(value, np.int64))
        for name, value in data.items()
    }


def _sorted_rows_fingerprint(X, y):
    rows = np.round(np.column_stack([X, y]), 10)
    return _sha256(rows[np.lexsort(rows.T[::-1])])


@functools.cache
def _mnist1d_data_once():
    pytest.importorskip("mnist1d")
    return networks.mnist1d_data()


def test_mnist1d_data_matches_committed_fingerprint():
    """The generated arrays have the documented shapes and equal the committed fingerprint."""
    data = _mnist1d_data_once()
    assert set(data) == {"X", "y", "X_test", "y_test"}
    assert data["X"].shape == (4000, 40)
    assert data["X_test"].shape == (1000, 40)
    assert data["y"].shape == (4000,)
    assert data["y_test"].shape == (1000,)
    assert np.issubdtype(data["y"].dtype, np.integer)
    assert set(np.unique(data["y"])) == set(range(10)) == set(np.unique(data["y_test"]))
    for (name, index), value in MNIST1D_VALUES.items():
        assert data[name][index] == pytest.approx(value, rel=1e-12, abs=1e-14)
    assert data["y"][:10].tolist() == MNIST1D_FIRST_LABELS
    assert _fingerprint(data) == MNIST1D_SHA256, "MNIST-1D generated other data (another scipy or mnist1d?)"
    assert _sorted_rows_fingerprint(data["X"], data["y"]) == MNIST1D_TRAINING_ROWS_SHA256


def test_mnist1d_data_is_deterministic_and_keeps_global_random_states():
    """A second build equals the first exactly; numpy's and Python's global generators draw as without it."""
    first = _mnist1d_data_once()
    np.random.seed(1234)  # noqa: NPY002 (the global generators mnist1d reseeds are the point)
    random.seed(5678)
    np.random.random(3)  # noqa: NPY002 (a state partway through a stream)
    numpy_state, python_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    networks._generated_mnist1d.cache_clear()  # generate it again, not the process's copy
    second = networks.mnist1d_data()
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == numpy_state[0]
    np.testing.assert_array_equal(after[1], numpy_state[1])
    assert after[2:] == numpy_state[2:]
    assert random.getstate() == python_state
    expected_numpy, expected_python = np.random.random(4), [random.random() for _ in range(4)]  # noqa: NPY002
    np.random.set_state(numpy_state)  # noqa: NPY002
    random.setstate(python_state)
    np.testing.assert_array_equal(np.random.random(4), expected_numpy)  # noqa: NPY002
    assert [random.random() for _ in range(4)] == expected_python
    for name in first:
        np.testing.assert_array_equal(second[name], first[name])
        assert second[name].dtype == first[name].dtype
    second["X"][0, 0] = np.nan  # a copy: the process's arrays are not changed through it
    assert np.isfinite(networks.mnist1d_data()["X"][0, 0])


def test_mnist1d_problem_builds_without_network(monkeypatch):
    """With every socket refused, mnist1d("mlp") builds 3,500 / 500 / 1,000 rows that partition the data.

    The partition is checked against the committed fingerprint of the training rows, sorted.
    """
    pytest.importorskip("mnist1d")
    import mnist1d.data

    class NetworkUsedError(AssertionError):
        pass

    def refuse(*args, **kwargs):
        raise NetworkUsedError("the network was used")

    for name in ("socket", "create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(mnist1d.data, "get_dataset", refuse)
    with pytest.raises(NetworkUsedError):  # the patch is in force
        socket.create_connection(("localhost", 80))
    networks._generated_mnist1d.cache_clear()  # generated here, with the sockets refused
    prob = gdjax.mnist1d("mlp")
    monkeypatch.undo()
    X_val, y_val = prob.held_out["X_validation"], prob.held_out["y_validation"]
    assert prob.name == "mnist1d_mlp"
    assert prob.X.shape == (3500, 40)
    assert prob.y.shape == (3500,)
    assert X_val.shape == (500, 40)
    assert y_val.shape == (500,)
    assert prob.held_out["X_test"].shape == (1000, 40)
    assert prob.held_out["y_test"].shape == (1000,)
    assert prob.init(0)["W3"].shape == (100, 10)
    test_set = {"X_test": prob.held_out["X_test"], "y_test": prob.held_out["y_test"]}
    assert _fingerprint(test_set) == {name: MNIST1D_SHA256[name] for name in test_set}
    train_rows = set(map(bytes, np.column_stack([prob.X, prob.y])))
    assert not train_rows & set(map(bytes, np.column_stack([X_val, y_val])))
    both = _sorted_rows_fingerprint(np.concatenate([prob.X, X_val]), np.concatenate([prob.y, y_val]))
    assert both == MNIST1D_TRAINING_ROWS_SHA256


# --- 5. digits and what importing gdjax imports ----------------------------------------------------------


def test_digits_split_is_stratified_and_scaled():
    """digits("mlp") equals scikit-learn's two stratified train_test_split calls; class shares within 1."""
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    prob = gdjax.digits("mlp")
    X_val, y_val = prob.held_out["X_validation"], prob.held_out["y_validation"]
    X_test, y_test = prob.held_out["X_test"], prob.held_out["y_test"]
    assert prob.X.shape == (1149, 64)
    assert X_val.shape == (288, 64)
    assert X_test.shape == (360, 64)
    for X in (prob.X, X_val, X_test):
        assert X.min() == 0.0
        assert X.max() == 1.0
        np.testing.assert_array_equal(X * 16, np.round(X * 16))  # 16 grey levels, scaled
    digits = load_digits()
    everything = Counter(zip(map(bytes, digits.data / 16.0), digits.target.tolist(), strict=True))
    split = Counter()
    for X, y in ((prob.X, prob.y), (X_val, y_val), (X_test, y_test)):
        split += Counter(zip(map(bytes, np.ascontiguousarray(X)), y.tolist(), strict=True))
    assert split == everything  # every image once, with its own label
    totals = np.bincount(digits.target, minlength=10)
    train_part = totals - np.bincount(y_test, minlength=10)
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - 360 * totals / 1797) < 1)
    assert np.all(np.abs(np.bincount(y_val, minlength=10) - 288 * train_part / 1437) < 1)
    X_train, X_test_ref, y_train, y_test_ref = train_test_split(
        digits.data / 16.0, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    X_train_ref, X_val_ref, y_train_ref, y_val_ref = train_test_split(
        X_train, y_train, test_size=0.2, stratify=y_train, random_state=0
    )
    for got, expected in [
        (prob.X, X_train_ref), (prob.y, y_train_ref), (X_val, X_val_ref), (y_val, y_val_ref),
        (X_test, X_test_ref), (y_test, y_test_ref),
    ]:  # fmt: skip
        np.testing.assert_array_equal(got, expected)


def test_importing_gdjax_imports_no_data_or_plotting_package():
    """A fresh interpreter's ``import gdjax`` loads neither mnist1d, scikit-learn nor matplotlib."""
    code = "import gdjax, sys; print(*(name in sys.modules for name in ('mnist1d', 'sklearn', 'matplotlib')))"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "False"], out.stdout + out.stderr


# --- 6. bad input -------------------------------------------------------------------------------------------


def _valid_arguments():
    rng = np.random.default_rng(0)
    return {
        "X": rng.standard_normal((8, 6)),
        "y": np.array([0, 1, 2, 3, 0, 1, 2, 3]),
        "X_test": rng.standard_normal((4, 6)),
        "y_test": np.array([0, 1, 2, 3]),
    }


def _with(**changes):
    return {**_valid_arguments(), **changes}


BAD_INPUTS = {
    "model": (_with(model="rnn"), r"model must be one of linear, mlp, cnn; got 'rnn'"),
    "float labels": (_with(y=np.array([0.0, 1, 2, 3, 0, 1, 2, 3])), r"^y must be a 1-D array of integer"),
    "float test labels": (_with(y_test=np.array([0.0, 1, 2, 3])), r"^y_test must be a 1-D array of integer"),
    "negative labels": (_with(y=np.array([0, 1, 2, 3, 0, 1, 2, -1])), r"^y must .* >= 0"),
    "2-D labels": (_with(y=np.zeros((8, 1), int)), r"^y must be a 1-D array"),
    "1-D features": (_with(X=np.zeros(8)), r"^X must be a 2-D array"),
    "string features": (_with(X_test=np.full((4, 6), "a")), r"^X_test must be a 2-D array of numbers"),
    "non-finite features": (_with(X_test=np.full((4, 6), np.nan)), r"^X_test must be finite"),
    "train lengths": (_with(y=np.arange(7) % 4), r"the train set has 8 examples but 7 labels"),
    "test lengths": (_with(y_test=np.arange(5) % 4), r"the test set has 4 examples but 5 labels"),
    "validation lengths": (
        _with(X_validation=np.zeros((3, 6)), y_validation=np.array([0, 1])),
        r"the validation set has 3 examples but 2 labels",
    ),
    "test features": (_with(X_test=np.zeros((4, 5))), r"the test set has 5 features; the training set 6"),
    "validation features": (
        _with(X_validation=np.zeros((2, 7)), y_validation=np.array([0, 1])),
        r"the validation set has 7 features; the training set 6",
    ),
    "validation features only": (_with(X_validation=np.zeros((2, 6))), r"X_validation and y_validation"),
    "validation labels only": (_with(y_validation=np.array([0, 1])), r"X_validation and y_validation"),
    "float validation labels": (
        _with(X_validation=np.zeros((2, 6)), y_validation=np.array([0.5, 1.0])),
        r"^y_validation must be a 1-D array of integer",
    ),
    "n_classes too small": (
        _with(n_classes=3),
        r"n_classes must be an integer above every label \(> 3\); got 3",
    ),
    "n_classes below a test label": (
        _with(y_test=np.array([0, 1, 2, 7]), n_classes=5),
        r"n_classes must be an integer above every label \(> 7\)",
    ),
    "n_classes a bool": (_with(n_classes=True), r"n_classes must be an integer"),
    "n_classes a float": (_with(n_classes=10.0), r"n_classes must be an integer"),
    "cnn on 2 features": (
        _with(X=np.zeros((8, 2)), X_test=np.zeros((4, 2)), model="cnn"),
        r"model 'cnn' needs signals of at least 3 features; X has 2",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_refused_naming_the_argument(case):
    """Each bad argument raises ValueError with a message naming it (the regex is the reference)."""
    arguments, message = dict(BAD_INPUTS[case][0]), BAD_INPUTS[case][1]
    X, y, X_test, y_test = (arguments.pop(name) for name in ("X", "y", "X_test", "y_test"))
    with pytest.raises(ValueError, match=message):
        gdjax.classification(X, y, X_test, y_test, **arguments)


def test_good_input_edges_are_accepted():
    """Integer features, labels of any integer dtype, and the CNN's smallest input (3 features) build."""
    arguments = _valid_arguments()
    prob = gdjax.classification(
        np.arange(48).reshape(8, 6), arguments["y"].astype(np.uint8), arguments["X_test"], arguments["y_test"]
    )
    assert prob.X.dtype == np.float64
    assert prob.y.dtype == np.int64
    assert prob.init(0)["W3"].shape == (100, 4)  # n_classes: the largest label, plus one
    cnn = gdjax.classification(
        np.zeros((8, 3)), arguments["y"], np.zeros((4, 3)), arguments["y_test"], model="cnn"
    )
    assert cnn.init(0)["W"].shape == (25, 4)


def test_cnn_refusal_states_the_true_minimum():
    """The refusal of a too-short signal names the smallest count that works (3, by _conv_lengths)."""
    assert networks._conv_lengths(2)[-1] < 1 <= networks._conv_lengths(3)[-1]
    arguments = _valid_arguments()
    with pytest.raises(ValueError, match=r"at least 3 features"):
        gdjax.classification(
            np.zeros((8, 2)), arguments["y"], np.zeros((4, 2)), arguments["y_test"], model="cnn"
        )


def test_digits_refuses_cnn():
    """digits has 8x8 images, not signals: model "cnn" is refused, naming the argument."""
    with pytest.raises(ValueError, match=r"model must be 'linear' or 'mlp' for digits; got 'cnn'"):
        gdjax.digits("cnn")


@pytest.mark.slow  # 33 s measured on 2 busy cores
@pytest.mark.parametrize(
    ("optimizer", "dtype"), [("adam", "float32"), ("adam", "float64"), ("gd", "float32")]
)
def test_a_network_run_has_the_same_bits_alone_and_in_a_grid(optimizer, dtype):
    """Batched runs-first (jax.vmap), like every model of 256+ parameters: a run alone (one tile of 16)
    equals, bit for bit, the same run at a random place in a grid of 20 rates x 2 seeds on one device
    (one tile of 48) and split over two devices (losses, metrics, parameters)."""
    problem = _small_problem("mlp")
    rates = np.geomspace(1e-3, 1e-1, 20)
    at = int(np.random.default_rng(7).integers(len(rates)))
    settings = dict(steps=24, log_every=6, batch_size=None if optimizer == "gd" else 16, dtype=dtype)
    alone = gdjax.sweep(problem, optimizer, [rates[at]], seeds=[0], devices=jax.devices()[:1], **settings)
    for devices in (jax.devices()[:1], jax.devices()[:2]):
        grid = gdjax.prepare_sweep(problem, optimizer, rates, seeds=[3, 0], devices=devices, **settings)
        assert grid.runs_first
        whole = grid.run()
        np.testing.assert_array_equal(alone.final_loss[0], whole.final_loss[1, at : at + 1])
        np.testing.assert_array_equal(alone.loss_curve[0], whole.loss_curve[1, at : at + 1])
        for name, curve in alone.metric_curves.items():
            np.testing.assert_array_equal(curve[0], whole.metric_curves[name][1, at : at + 1])
        for leaf, grid_leaf in zip(jax.tree.leaves(alone.params), jax.tree.leaves(whole.params), strict=True):
            np.testing.assert_array_equal(leaf[0], grid_leaf[1, at : at + 1])


@pytest.mark.parametrize("block", [0, -3, 2.5, True, "500"])
def test_a_bad_block_is_refused_naming_it(block):
    for evaluation in (networks.CrossEntropyLoss, networks.HeldOutMetrics):
        with pytest.raises(ValueError, match=r"block must be a positive integer .* or None; got"):
            evaluation(networks.mlp_logits, block=block)


@pytest.mark.parametrize("block", [None, 2])
def test_a_diverged_run_has_no_accuracy(block):
    """NaN logits would argmax to class 0 (about 10% right): a diverged run's accuracy is NaN instead,
    whichever example (and block of 2, the last padded) the NaN is in."""
    metrics = networks.HeldOutMetrics(lambda params, X: X, block=block)  # the "features" are the logits
    logits = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], np.float32)
    labels = jnp.array([1, 0, 0, 0, 1])
    finite = metrics(None, {"X_test": jnp.asarray(logits), "y_test": labels})
    assert finite["test_accuracy"] == np.float32(4) / np.float32(5)
    for row in range(len(logits)):
        diverged = logits.copy()
        diverged[row, row % 2] = np.inf if row % 2 else np.nan
        measured = metrics(None, {"X_test": jnp.asarray(diverged), "y_test": labels})
        assert np.isnan(measured["test_accuracy"]), row
        assert np.isnan(measured["test_loss"]), row


# --- the harness's protocol (bench.networks) ---------------------------------------------------------


def test_final_stay_is_the_start_of_the_last_stay_at_target_not_the_first_touch():
    """An oscillating run that touches the target once and falls back is not at target."""
    from bench.networks import final_stay

    curves = np.array(
        [
            [0.2, 0.6, 0.4, 0.7, 0.8],  # touches at 20, falls back, stays from 40
            [0.2, 0.6, 0.7, 0.8, 0.4],  # at target from 20 to 40, below at the end: never reached
            [0.6, 0.6, 0.6, 0.6, 0.6],  # there from the first logged point
        ]
    )
    stay, first = final_stay(curves, 0.5, log_every=10)
    np.testing.assert_array_equal(stay, [40, -1, 10])
    np.testing.assert_array_equal(first, [20, 20, 10])


def test_best_rate_is_chosen_on_validation_and_flagged_on_the_grid_edge():
    """The best rate maximises mean validation accuracy (ties: lower validation loss), never test accuracy."""
    from bench.networks import best_rate

    def result(validation_accuracy, validation_loss, test_accuracy):
        return gdjax.SweepResult(
            "p", "adam", np.array([1e-3, 1e-2, 1e-1]), np.array([0, 1]), 10, 10, "float32", None,
            *(np.zeros((2, 3)),) * 5, np.zeros((2, 3, 1)), {},
            final_metrics={
                "validation_accuracy": np.array([validation_accuracy] * 2),
                "validation_loss": np.array([validation_loss] * 2),
                "test_accuracy": np.array([test_accuracy] * 2),
            },
        )  # fmt: skip

    assert best_rate(result([0.5, 0.7, 0.6], [1, 1, 1], [0.9, 0.1, 0.1])) == (1, False)
    assert best_rate(result([0.5, 0.6, 0.7], [1, 1, 1], [0.1, 0.1, 0.1])) == (2, True)
    assert best_rate(result([0.7, 0.7, np.nan], [0.5, 0.4, np.nan], [0.1, 0.1, 0.1])) == (1, False)


def test_every_optimizer_of_a_cell_gets_the_same_epochs():
    """gd steps on the whole training set: its steps are epochs; minibatch steps are n // 100 an epoch."""
    from bench.networks import EPOCHS, network_cells

    problem = gdjax.digits("linear")
    cells = network_cells("quick", {"digits_linear": problem})
    steps = {cell.optimizer: cell.steps for cell in cells}
    assert steps["gd"] == EPOCHS["quick"]
    assert steps["adam"] == steps["sgd"] == EPOCHS["quick"] * (problem.n_examples // 100)
    assert all(len(c.learning_rates) * len(c.tuning_seeds) == len(c.fresh_seeds) for c in cells)


def _with_block(problem, block):
    """``problem`` with its loss and metrics evaluated ``block`` examples at a time."""
    return problem._replace(
        loss=dataclasses.replace(problem.loss, block=block),
        metrics=dataclasses.replace(problem.metrics, block=block),
    )


@pytest.mark.slow  # 14 s measured on 2 busy cores
@pytest.mark.parametrize(
    ("model", "block"), [("mlp", networks.EVALUATION_BLOCK), ("mlp", 16), ("linear", 16), ("cnn", None)]
)
def test_the_memory_plan_counts_the_held_out_data_and_a_chunked_grid_gives_the_same_results(model, block):
    """The data on a device is X, y, every held-out split, the target and the minimum; a grid too large
    for memory is chunked, and gives the same bits as the grid in one tile loop on one device: losses,
    parameters and held-out metrics, with the examples evaluated in one piece or in blocks (200 training
    examples in 13 blocks, 60 and 50 held-out in 4). With the MLP's layers written ``h @ W`` (runs'
    weights merged in a product's columns), the first case's validation loss was 1 ulp apart."""
    from gdjax import planning
    from gdjax.placement import RUNS_ALIGN

    problem = _with_block(_small_problem(model), block)
    settings = dict(steps=12, log_every=4, batch_size=16, dtype="float32", seeds=[0, 1])
    rates = np.geomspace(1e-3, 1e-1, 24)
    one_device = jax.devices()[:1]
    whole = gdjax.prepare_sweep(problem, "adam", rates, devices=one_device, **settings)
    arrays = [problem.X, *problem.held_out.values()]
    # float32 features, int32 labels, and the target and minimum loss (two float32 scalars)
    expected = sum(a.size * 4 for a in arrays) + problem.y.size * 4 + 2 * 4
    assert planning.data_bytes(whole) == expected
    need = whole.bytes_per_run() * RUNS_ALIGN + planning.data_bytes(whole)  # one tile of runs at a time
    limit = int(need / planning.MEMORY_SHARE) + 1  # the plan uses MEMORY_SHARE of what it is given
    chunked = gdjax.prepare_sweep(problem, "adam", rates, memory_limit=limit, devices=one_device, **settings)
    assert whole.n_chunks == 1
    assert chunked.n_chunks > 1
    one, many = whole.run(), chunked.run()
    np.testing.assert_array_equal(one.final_loss, many.final_loss)
    np.testing.assert_array_equal(one.loss_curve, many.loss_curve)
    for leaf, chunked_leaf in zip(jax.tree.leaves(one.params), jax.tree.leaves(many.params), strict=True):
        np.testing.assert_array_equal(leaf, chunked_leaf)
    assert sorted(one.metric_curves) == sorted(METRICS)
    for name, curve in one.metric_curves.items():
        np.testing.assert_array_equal(curve, many.metric_curves[name], err_msg=name)
