"""A corpus of small models and losses, each swept with many optimizers: a sweep is jax.vmap of one run.

Every model is a ``gdjax.Problem`` on small seeded data (32 examples); each is
swept for 50 steps in float64 with two seeds and two learning rates well
inside the stable range, and must equal ``jax.jit(jax.vmap(one run))`` to
rtol 1e-12 (or, where the pair amplifies rounding, as close as a 1-ulp
nudge of the start moves the reference: ``_assert_close``), with no run
diverged. The models cover the primitives a loss
brings into the engine's batching: biases, integer labels, convolutions,
normalisations, gathers, ``where``, loops (scan, fori, while), ``cond``, sorting,
custom-JVP activations, and losses that draw from a PRNG key.
"""

import dataclasses
import functools
from itertools import pairwise

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax
from references import vmap_of_one_run

import gdjax

N = 32  # examples of every model; sgd steps on batches of 8


# ----- data and starting points


def _inputs(seed, features=4):
    return np.random.default_rng(seed).standard_normal((N, features))


def _teacher(X, seed, outputs=None):
    """Targets of a random smooth function of X, with a little noise."""
    rng = np.random.default_rng(seed + 100)
    W = rng.standard_normal((X.shape[1], 1 if outputs is None else outputs))
    out = np.tanh(X @ W) + 0.1 * rng.standard_normal((X.shape[0], W.shape[1]))
    return out[:, 0] if outputs is None else out


def _labels(X, classes, seed):
    """Integer labels in [0, classes): the argmax of a random linear function of X."""
    W = np.random.default_rng(seed + 200).standard_normal((X.shape[1], classes))
    return np.argmax(X @ W, axis=1).astype(np.int64)


def _ids(seed, vocabulary, columns):
    """Integer ids held as floats (X goes in as the sweep's dtype); the loss turns them into indices."""
    return np.random.default_rng(seed).integers(0, vocabulary, (N, columns)).astype(np.float64)


def _init(**shapes):
    """``init(seed)`` drawing every named parameter ``0.3 * standard normal`` of its shape (() a scalar)."""

    def init(seed):
        rng = np.random.default_rng(seed)
        return {name: 0.3 * rng.standard_normal(shape) for name, shape in shapes.items()}

    return init


def _mse(pred, y):
    return jnp.mean((pred - y) ** 2)


def _mlp_features(params, X):
    return jnp.tanh(X @ params["W"] + params["b"][None, :])


# ----- the losses (module-level functions: sweeps of one loss share a compiled program)


def linear_scalar_bias(params, X, y):
    return _mse(X @ params["w"] + params["b"], y)


def mlp_tanh(params, X, y):
    return _mse(_mlp_features(params, X) @ params["v"] + params["c"], y)


def mlp_relu_ce3(params, X, y):
    hidden = jax.nn.relu(X @ params["W"] + params["b"][None, :])
    logits = hidden @ params["V"] + params["c"][None, :]
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))


def softmax10_take_along_axis(params, X, y):
    logp = jax.nn.log_softmax(X @ params["W"] + params["b"][None, :], axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def logsumexp10_index(params, X, y):
    logits = X @ params["W"]
    picked = logits[jnp.arange(X.shape[0]), y]
    return jnp.mean(jax.nn.logsumexp(logits, axis=1) - picked)


def multiclass_hinge3(params, X, y):
    scores = X @ params["W"]
    true = jnp.take_along_axis(scores, y[:, None], axis=1)
    margins = jnp.maximum(0.0, scores - true + 1.0)
    return jnp.mean(jnp.sum(jnp.where(jax.nn.one_hot(y, 3) > 0, 0.0, margins), axis=1))


def conv1d(params, X, y):
    signal = X[:, None, :]  # (examples, 1 channel, 12 samples)
    maps = lax.conv_general_dilated(signal, params["K"], window_strides=(1,), padding="VALID")
    features = jnp.mean(jax.nn.relu(maps + params["b"][None, :, None]), axis=2)
    return _mse(features @ params["v"], y)


def conv2d_maxpool(params, X, y):
    image = X.reshape(X.shape[0], 1, 4, 4)
    maps = jnp.tanh(lax.conv_general_dilated(image, params["K"], (1, 1), "SAME"))  # (examples, 3, 4, 4)
    pooled = lax.reduce_window(maps, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    return _mse(pooled.reshape(X.shape[0], -1) @ params["v"], y)


def layer_norm(params, X, y):
    hidden = X @ params["W"]
    mean = jnp.mean(hidden, axis=1, keepdims=True)
    var = jnp.var(hidden, axis=1, keepdims=True)
    normed = (hidden - mean) / jnp.sqrt(var + 1e-5) * params["gain"][None, :] + params["shift"][None, :]
    return _mse(jax.nn.gelu(normed) @ params["v"], y)


def batch_norm(params, X, y):
    hidden = X @ params["W"]
    mean, var = hidden.mean(axis=0, keepdims=True), hidden.var(axis=0, keepdims=True)  # over the examples
    normed = (hidden - mean) / jnp.sqrt(var + 1e-3)
    return _mse(jax.nn.softplus(normed) @ params["v"], y)


TIED = np.array([0, 1, 1, 2, 0, 2])  # feature j uses weight TIED[j]


def gather_tied_weights(params, X, y):
    return _mse(X @ params["w"][TIED], y)


def embedding_ce3(params, X, y):
    ids = X.astype(jnp.int32)  # (examples, 3 tokens) of a vocabulary of 10
    bag = jnp.mean(params["E"][ids], axis=1)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(bag @ params["W"], y))


def matrix_factorisation(params, X, y):
    user, item = X[:, 0].astype(jnp.int32), X[:, 1].astype(jnp.int32)
    pred = jnp.sum(params["U"][user] * params["V"][item], axis=1) + params["bu"][user] + params["bi"][item]
    return _mse(pred, y)


def where_asymmetric(params, X, y):
    residual = X @ params["w"] - y
    return jnp.mean(jnp.where(residual > 0, 2.0 * residual**2, 0.5 * residual**2))


def huber(params, X, y):
    return jnp.mean(optax.huber_loss(_mlp_features(params, X) @ params["v"], y, delta=0.5))


def residual_mlp(params, X, y):
    hidden = _mlp_features(params, X)
    hidden = hidden + jnp.tanh(hidden @ params["R"] + params["r"][None, :])
    return _mse(hidden @ params["v"], y)


def scan_rnn(params, X, y):
    sequence = jnp.moveaxis(X.reshape(X.shape[0], 4, 2), 1, 0)  # 4 steps of (examples, 2)

    def cell(state, x):
        return jnp.tanh(x @ params["Wx"] + state @ params["Wh"] + params["b"][None, :]), None

    state, _ = lax.scan(cell, jnp.zeros((X.shape[0], 5), X.dtype), sequence)
    return _mse(state @ params["v"], y)


def fori_loop_layers(params, X, y):
    hidden = jnp.tanh(X @ params["W"])
    hidden = lax.fori_loop(0, 3, lambda i, h: jnp.tanh(h @ params["R"] + params["r"][None, :]), hidden)
    return _mse(hidden @ params["v"], y)


def while_loop_scale(params, X, y):
    """The prediction over the smallest power of two above the weights' norm, found by a while loop."""

    def below(carry):
        scale, norm = carry
        return scale < norm

    def double(carry):
        scale, norm = carry
        return 2.0 * scale, norm

    norm = lax.stop_gradient(jnp.sqrt(jnp.sum(params["w"] ** 2)))  # no gradient through the loop
    scale, _ = lax.while_loop(below, double, (jnp.ones((), X.dtype), norm))
    return _mse(X @ params["w"] / scale, y)


def cond_on_params(params, X, y):
    penalty = lax.cond(
        jnp.sum(params["w"] ** 2) > 0.3,
        lambda w: 0.1 * jnp.sum(w**2),
        lambda w: 0.01 * jnp.sum(jnp.abs(w)),
        params["w"],
    )
    return _mse(X @ params["w"], y) + penalty


def cond_on_data(params, X, y):
    pred = lax.cond(jnp.mean(X[:, 0]) > 0, jnp.tanh, jax.nn.soft_sign, X @ params["w"])
    return _mse(pred, y)


def dropout(params, X, y, key):
    hidden = _mlp_features(params, X)
    if key is not None:
        keep = jax.random.bernoulli(key, 0.8, hidden.shape)
        hidden = jnp.where(keep, hidden / 0.8, 0.0)
    return _mse(hidden @ params["v"], y)


def input_noise(params, X, y, key):
    if key is not None:
        noise_key, _ = jax.random.split(key)
        X = X + 0.1 * jax.random.normal(noise_key, X.shape, X.dtype)
    return _mse(X @ params["w"], y)


def cumsum_monotone(params, X, y):
    """A monotone staircase in X's first column: non-negative steps (softplus) summed with cumsum."""
    levels = jnp.cumsum(jax.nn.softplus(params["steps"]))
    weights = jax.nn.sigmoid(4.0 * (X[:, :1] - params["edges"][None, :]))
    return _mse(weights @ levels - params["offset"], y)


def einsum_batched(params, X, y):
    A = X.reshape(X.shape[0], 3, 4)
    B = (X @ params["P"]).reshape(X.shape[0], 4, 2)
    products = jnp.einsum("bij,bjk->bik", A, B)
    return _mse(jnp.tanh(products).reshape(X.shape[0], 6) @ params["v"], y)


def attention(params, X, y):
    tokens = X.reshape(X.shape[0], 4, 3)
    q, k, v = (tokens @ params[name] for name in ("Wq", "Wk", "Wv"))
    weights = jax.nn.softmax(jnp.einsum("bid,bjd->bij", q, k) / 2.0, axis=-1)
    pooled = jnp.mean(jnp.einsum("bij,bjd->bid", weights, v), axis=1)
    return _mse(pooled @ params["v"], y)


def top_k(params, X, y):
    largest, _ = lax.top_k(X @ params["W"], 2)
    return _mse(largest @ params["v"], y)


def sorted_features(params, X, y):
    return _mse(jnp.sort(X @ params["W"], axis=1) @ params["v"], y)


def weight_norm(params, X, y):
    w = params["g"] * params["direction"] / jnp.linalg.norm(params["direction"])
    return _mse(X @ w, y) + 0.01 * jnp.linalg.norm(params["direction"])


def sigmoid_bce(params, X, y):
    logits = _mlp_features(params, X) @ params["v"]
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))


def two_heads(params, X, y):
    """Nested parameters, two outputs: a regression (y[:, 0]) and a 0/1 label (y[:, 1])."""
    hidden = jnp.tanh(X @ params["trunk"]["W"] + params["trunk"]["b"][None, :])
    value = hidden @ params["heads"]["value"]
    logit = hidden @ params["heads"]["label"]
    return _mse(value, y[:, 0]) + jnp.mean(optax.sigmoid_binary_cross_entropy(logit, y[:, 1]))


def scalar_sine(params, X, y):
    return _mse(params["a"] * jnp.sin(params["b"] * X[:, 0]) + params["c"], y)


def deep_gelu_list(params, X, y):
    """Parameters as a list of (W, b) layers."""
    hidden = X
    for W, b in params[:-1]:
        hidden = jax.nn.gelu(hidden @ W + b[None, :])
    W, b = params[-1]
    return _mse(hidden @ W + b, y)


def poisson(params, X, y):
    eta = X @ params["w"] + params["b"]
    return jnp.mean(jnp.exp(eta) - y * eta)


def quantile(params, X, y):
    residual = y - _mlp_features(params, X) @ params["v"]
    return jnp.mean(jnp.maximum(0.8 * residual, -0.2 * residual))


def clipped(params, X, y):
    return _mse(jnp.clip(X @ params["w"], -0.5, 0.5), y)


def absolute(params, X, y):
    return jnp.mean(jnp.abs(jax.nn.silu(X @ params["W"]) @ params["v"] - y))


def cosine(params, X, y):
    pred = X @ params["W"]
    cos = jnp.sum(pred * y, axis=1) / (jnp.linalg.norm(pred, axis=1) * jnp.linalg.norm(y, axis=1) + 1e-8)
    return 1.0 - jnp.mean(cos)


# ----- the table: name -> Problem


def _deep_init(seed):
    rng = np.random.default_rng(seed)
    sizes = [4, 6, 5, 1]
    layers = [(0.3 * rng.standard_normal((a, b)), 0.1 * rng.standard_normal(b)) for a, b in pairwise(sizes)]
    W, b = layers[-1]
    return [*layers[:-1], (W[:, 0], b[0])]


def _two_heads_init(seed):
    flat = _init(W=(4, 6), b=(6,), value=(6,), label=(6,))(seed)
    trunk, heads = {"W": flat["W"], "b": flat["b"]}, {"value": flat["value"], "label": flat["label"]}
    return {"trunk": trunk, "heads": heads}


def _problems():
    X4, X6, X12, X16 = _inputs(1), _inputs(2, 6), _inputs(3, 12), _inputs(4, 16)
    y4, y6, y12, y16 = _teacher(X4, 1), _teacher(X6, 2), _teacher(X12, 3), _teacher(X16, 4)
    ids = _ids(5, 10, 3)
    pairs = np.column_stack([_ids(6, 6, 1), _ids(7, 5, 1)])
    ratings = np.random.default_rng(8).standard_normal(N)
    counts = np.random.default_rng(9).poisson(np.exp(0.3 * X4[:, 0])).astype(np.float64)
    binary = (y4 > 0).astype(np.float64)
    mlp = {"W": (4, 6), "b": (6,), "v": (6,)}
    table = [
        (linear_scalar_bias, X4, y4, _init(w=(4,), b=())),
        (mlp_tanh, X4, y4, _init(**mlp, c=())),
        (mlp_relu_ce3, X4, _labels(X4, 3, 1), _init(W=(4, 8), b=(8,), V=(8, 3), c=(3,))),
        (softmax10_take_along_axis, X6, _labels(X6, 10, 2), _init(W=(6, 10), b=(10,))),
        (logsumexp10_index, X6, _labels(X6, 10, 3), _init(W=(6, 10))),
        (multiclass_hinge3, X4, _labels(X4, 3, 4), _init(W=(4, 3))),
        (conv1d, X12, y12, _init(K=(4, 1, 3), b=(4,), v=(4,))),
        (conv2d_maxpool, X16, y16, _init(K=(3, 1, 2, 2), v=(12,))),
        (layer_norm, X4, y4, _init(W=(4, 6), gain=(6,), shift=(6,), v=(6,))),
        (batch_norm, X4, y4, _init(W=(4, 5), v=(5,))),
        (gather_tied_weights, X6, y6, _init(w=(3,))),
        (embedding_ce3, ids, _labels(ids, 3, 5), _init(E=(10, 4), W=(4, 3))),
        (matrix_factorisation, pairs, ratings, _init(U=(6, 2), V=(5, 2), bu=(6,), bi=(5,))),
        (where_asymmetric, X4, y4, _init(w=(4,))),
        (huber, X4, y4, _init(**mlp)),
        (residual_mlp, X4, y4, _init(**mlp, R=(6, 6), r=(6,))),
        (scan_rnn, _inputs(10, 8), _teacher(_inputs(10, 8), 10), _init(Wx=(2, 5), Wh=(5, 5), b=(5,), v=(5,))),
        (fori_loop_layers, X4, y4, _init(W=(4, 5), R=(5, 5), r=(5,), v=(5,))),
        (while_loop_scale, X4, y4, _init(w=(4,))),
        (cond_on_params, X4, y4, _init(w=(4,))),
        (cond_on_data, X4, y4, _init(w=(4,))),
        (dropout, X4, y4, _init(**mlp)),
        (input_noise, X4, y4, _init(w=(4,))),
        (cumsum_monotone, X4, y4, _init(steps=(5,), edges=(5,), offset=())),
        (einsum_batched, X12, y12, _init(P=(12, 8), v=(6,))),
        (attention, X12, y12, _init(Wq=(3, 4), Wk=(3, 4), Wv=(3, 4), v=(4,))),
        (top_k, X6, y6, _init(W=(6, 5), v=(2,))),
        (sorted_features, X6, y6, _init(W=(6, 4), v=(4,))),
        (weight_norm, X4, y4, _init(g=(), direction=(4,))),
        (sigmoid_bce, X4, binary, _init(**mlp)),
        (two_heads, X4, np.column_stack([y4, binary]), _two_heads_init),
        (scalar_sine, X4, np.sin(1.5 * X4[:, 0]), _init(a=(), b=(), c=())),
        (deep_gelu_list, X4, y4, _deep_init),
        (poisson, X4, counts, _init(w=(4,), b=())),
        (quantile, X4, y4, _init(**mlp)),
        (clipped, X4, y4, _init(w=(4,))),
        (absolute, X4, y4, _init(W=(4, 5), v=(5,))),
        (cosine, X4, _teacher(X4, 11, outputs=3), _init(W=(4, 3))),
    ]
    problems = {}
    for loss, X, y, init in table:
        takes_key = loss in (dropout, input_noise)
        problems[loss.__name__] = gdjax.Problem(loss.__name__, X, y, loss, init, loss_takes_key=takes_key)
    return problems


MODELS = _problems()

# (learning rates, batch size): two rates well inside every model's stable range
OPTIMIZERS = {
    "gd": ([0.02, 0.05], None),
    "sgd": ([0.01, 0.03], 8),
    "momentum": ([0.003, 0.01], None),
    "adam": ([1e-3, 3e-3], None),
    "optax:adamw": ([1e-3, 3e-3], None),
    "optax:rmsprop": ([1e-3, 3e-3], None),
    "optax:adagrad": ([0.01, 0.03], None),
    "optax:lion": ([3e-4, 1e-3], None),
    "optax:nadam": ([1e-3, 3e-3], None),
    "optax:adabelief": ([1e-3, 3e-3], None),
    "optax:lamb": ([1e-3, 3e-3], None),
    "optax:yogi": ([1e-3, 3e-3], None),
    "optax:novograd": ([1e-3, 3e-3], None),
    "optax:adafactor": ([1e-3, 3e-3], None),
    "optax:amsgrad": ([1e-3, 3e-3], None),
    "optax:fromage": ([1e-3, 3e-3], None),
    "optax:noisy_sgd": ([0.01, 0.03], None),
    "optax:lbfgs": ([0.2, 0.4], None),  # at 0.1 its curvature test is a tie (0.9, curv_rtol 0.9)
}

CORE = ("gd", "sgd", "momentum", "adam")  # every model is swept with each of these
OPTAX_MODELS_EACH = 3  # and with each optax optimizer on this many models, a different few for each
FAST = {  # the unmarked subset: the core optimizers and two optax families, on models that bring different
    # primitives (dropout-momentum and noisy_sgd run in `nox -s slow`: 13 and 18 s of the 4-minute loop)
    ("mlp_relu_ce3", "gd"),
    ("scan_rnn", "sgd"),
    ("gather_tied_weights", "momentum"),
    ("conv1d", "adam"),
    ("softmax10_take_along_axis", "optax:adamw"),
    ("mlp_tanh", "optax:lbfgs"),  # a smooth loss: on a kinked one (cond_on_params) a line search decides
    # by the last bits at times, and one ulp of rounding then moves L-BFGS by 1e-9 (seen, step 10 or 29)
}


def _cases():
    """Every model with CORE; every optax optimizer with OPTAX_MODELS_EACH models, taken in turn.

    The whole matrix (38 models x 18 optimizers, ~6 s of compiling each on
    2 cores) would take over an hour; this covers every model and every
    optimizer in 196 cases.
    """
    models = list(MODELS)
    optax_names = [name for name in OPTIMIZERS if name not in CORE]
    pairs = [(model, optimizer) for model in models for optimizer in CORE]
    for i, optimizer in enumerate(optax_names):
        pairs += [
            (models[(i * OPTAX_MODELS_EACH + k) % len(models)], optimizer) for k in range(OPTAX_MODELS_EACH)
        ]
    pairs += sorted((FAST | {("layer_norm", "optax:noisy_sgd")}) - set(pairs))  # beyond the matrix
    for model, optimizer in pairs:
        marks = () if (model, optimizer) in FAST else (pytest.mark.slow,)
        yield pytest.param(model, optimizer, id=f"{model}-{optimizer.removeprefix('optax:')}", marks=marks)


# A loss near 0 is a difference of O(1) terms (a log-sum-exp minus the label's logit), so its rounding
# is absolute, a few ulps of 1.0 whatever its size: mlp_relu_ce3 with L-BFGS ends at 8.4e-9, 4 ulps
# of 1.0 (1e-7 relative) from the reference on an AVX-512 CPU, where a 1-ulp nudge of the start moved
# it by half an ulp.
LOSS_ATOL = 16 * np.finfo(np.float64).eps


def _assert_close(got, want, nudged, what, atol=0.0):
    """``got`` equals ``want`` to rtol 1e-12 (and ``atol``), or is no further from it than 10x what a
    1-ulp nudge moves it.

    Where a model and an optimizer amplify rounding (L-BFGS near its
    optimum, RMSProp where a gradient component is itself rounding error),
    a start moved by one ulp ends as far from the reference as the
    engine's other order of additions does: ``nudged()`` is the reference
    run from such a start, computed only for those cases.
    """
    got, want = np.asarray(got), np.asarray(want)
    if np.allclose(got, want, rtol=1e-12, atol=atol):
        return
    sensitivity = np.max(np.abs(np.asarray(nudged()) - want))
    np.testing.assert_array_less(np.max(np.abs(got - want)), 10 * sensitivity, err_msg=what)


@pytest.mark.parametrize(("model", "optimizer"), list(_cases()))
def test_sweep_equals_vmap_of_one_run(model, optimizer):
    rates, batch_size = OPTIMIZERS[optimizer]
    program = gdjax.prepare_sweep(
        MODELS[model],
        optimizer,
        rates,
        50,
        seeds=[0, 3],
        log_every=10,
        dtype="float64",
        batch_size=batch_size,
    )
    got = program.run()
    want = vmap_of_one_run(program)
    assert np.all(want["diverged_at"] == -1)
    np.testing.assert_array_equal(got.diverged_at, want["diverged_at"])

    @functools.cache
    def nudged():
        ulp = np.finfo(np.float64).eps
        start = jax.tree.map(lambda leaf: leaf * (1 + ulp), program._init_params)
        return vmap_of_one_run(dataclasses.replace(program, _init_params=start))

    for name in ("final_loss", "best_loss", "loss_curve"):
        _assert_close(getattr(got, name), want[name], lambda name=name: nudged()[name], name, LOSS_ATOL)
    for i, (g, w) in enumerate(
        zip(jax.tree.leaves(got.params), jax.tree.leaves(want["params"]), strict=True)
    ):
        _assert_close(g, w, lambda i=i: jax.tree.leaves(nudged()["params"])[i], f"params leaf {i}")


def test_the_corpus_is_as_wide_as_promised():
    assert len(MODELS) >= 30
    assert sum(name.startswith("optax:") for name in OPTIMIZERS) >= 10
    assert {optimizer for _, optimizer in FAST} >= {"gd", "sgd", "momentum", "adam"}
