"""runs_last() computes what jax.vmap computes, for each rule and for the fallback."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import gdjax
from gdjax.runs_last import ELEMENTWISE_DOT_LIMIT, UNROLL_LIMIT, fast_path_agrees, runs_last

N_RUNS = 5


def _shared_and_runs(rng, shapes, batched):
    """Arguments of the given per-run shapes: the batched ones with N_RUNS runs on their last axis."""
    return [
        rng.normal(size=(*shape, N_RUNS) if flag else shape)
        for shape, flag in zip(shapes, batched, strict=True)
    ]


def _assert_like_vmap(fn, shapes, batched):
    rng = np.random.default_rng(0)
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in _shared_and_runs(rng, shapes, batched)]
        expected = jax.vmap(fn, in_axes=[-1 if flag else None for flag in batched], out_axes=-1)(*args)
        got = jax.jit(runs_last(fn, tuple(batched)))(*args)
        jax.tree.map(lambda e, g: np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12), expected, got)
        return got


DOTS = {  # (lhs shape, rhs shape, dimension numbers)
    "matrix @ vector": ((4, 3), (3,), (((1,), (0,)), ((), ()))),
    "matrix @ matrix": ((4, 3), (3, 2), (((1,), (0,)), ((), ()))),
    "contract the first axes": ((3, 4), (3, 2), (((0,), (0,)), ((), ()))),
    "two contracted axes": ((2, 3, 4), (3, 2), (((0, 1), (1, 0)), ((), ()))),
    "many terms": ((2, UNROLL_LIMIT + 3), (UNROLL_LIMIT + 3, 2), (((1,), (0,)), ((), ()))),
    "past the elementwise limit": (
        (2, ELEMENTWISE_DOT_LIMIT),
        (ELEMENTWISE_DOT_LIMIT, 2),
        (((1,), (0,)), ((), ())),
    ),
    "batch dimensions": ((2, 4, 3), (2, 3), (((2,), (1,)), ((0,), (0,)))),
}


@pytest.mark.parametrize("batched", [(True, True), (False, True), (True, False)], ids=["both", "rhs", "lhs"])
@pytest.mark.parametrize("case", DOTS)
def test_dot_general_is_vmaps(case, batched):
    lhs, rhs, numbers = DOTS[case]
    _assert_like_vmap(lambda a, b: lax.dot_general(a, b, numbers), [lhs, rhs], batched)


@pytest.mark.slow  # 6 s measured on 2 busy cores
def test_elementwise_with_scalars_reductions_and_reshapes_are_vmaps():
    def fn(scale, x, shared):
        y = jnp.tanh(scale * x + shared) / (1 + jnp.exp(-x))  # a per-run scalar and a shared array beside x
        y = jnp.where(y > 0, y, 0.5 * y) ** 2
        return {
            "sum": jnp.sum(y, axis=0),
            "all": jnp.sum(y),
            "many terms": jnp.sum(jnp.tile(y, (5, 1)), axis=0),  # a sum of 20 terms a run
            "padded": jnp.pad(y, ((1, 2), (0, 1))),
            "joined": jnp.concatenate([y, shared, y[:1]]),
            "max": jnp.max(y, axis=1),
            "reshaped": y.T.reshape(-1)[1:7],
            "broadcast": jnp.broadcast_to(y[:, None, :], (y.shape[0], 2, y.shape[1])),
            "finite": jnp.all(jnp.isfinite(y)),
            "constant": jnp.ones(3),  # shared output: every run gets it
        }

    _assert_like_vmap(fn, [(), (4, 3), (4, 3)], [True, True, False])


def test_scan_with_a_shared_start_and_a_cond_on_a_shared_index_are_vmaps():
    def fn(rate, start, noise, data):
        def step(carry, inputs):
            x, count = carry
            t, kick = inputs  # a shared and a per-run scanned input
            x = lax.cond(t % 3 == 0, lambda: x * 0.5, lambda: x - rate * jnp.tanh(data @ x) + kick)
            return (x, count + 1), jnp.sum(x**2)

        (x, count), curve = lax.scan(step, (start, jnp.int32(0)), (jnp.arange(7), noise))
        return x, count, curve

    _assert_like_vmap(fn, [(), (3,), (7,), (3, 3)], [True, True, True, False])


def test_cond_on_a_per_run_index_custom_jvp_jit_gather_dynamic_slice_and_while_are_vmaps():
    def fn(x, rows, shared):
        picked = x[rows]  # gather: batched by vmap itself
        branch = lax.cond(jnp.sum(x) > 0, lambda: jax.nn.relu(x), lambda: jnp.logaddexp(x, 1.0))
        inner = jax.jit(lambda v: jnp.sin(v) @ shared)(x)
        window = lax.dynamic_slice(x, (shared.shape[0] - 3,), (2,))
        _, halved = lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 0.5), (0, x))
        return picked, branch, inner, window, halved

    rng = np.random.default_rng(1)
    with jax.enable_x64(True):
        x = jnp.asarray(rng.normal(size=(4, N_RUNS)))
        rows = jnp.asarray(rng.integers(0, 4, size=(2, N_RUNS)))
        shared = jnp.asarray(rng.normal(size=(4, 4)))
        expected = jax.vmap(fn, in_axes=(-1, -1, None), out_axes=-1)(x, rows, shared)
        got = jax.jit(runs_last(fn, (True, True, False)))(x, rows, shared)
        jax.tree.map(lambda e, g: np.testing.assert_allclose(g, e, rtol=1e-12), expected, got)


def test_gradient_of_a_network_is_vmaps():
    def loss(params, X, y):
        hidden = jax.nn.sigmoid(X @ params["W0"])
        return 0.5 * jnp.sum((jax.nn.sigmoid(hidden @ params["W1"]) - y) ** 2)

    def fn(params, X, y):
        return jax.grad(loss)(params, X, y)

    rng = np.random.default_rng(2)
    with jax.enable_x64(True):
        params = {
            "W0": jnp.asarray(rng.normal(size=(3, 4, N_RUNS))),
            "W1": jnp.asarray(rng.normal(size=(4, 1, N_RUNS))),
        }
        X, y = jnp.asarray(rng.normal(size=(4, 3))), jnp.asarray(rng.normal(size=(4, 1)))
        expected = jax.vmap(fn, in_axes=(-1, None, None), out_axes=-1)(params, X, y)
        got = jax.jit(runs_last(fn, (True, False, False)))(params, X, y)
        jax.tree.map(lambda e, g: np.testing.assert_allclose(g, e, rtol=1e-12), expected, got)


def test_batched_arguments_must_share_their_runs_axis():
    with pytest.raises(ValueError, match="one last"):
        runs_last(lambda a, b: a + b, (True, True))(jnp.ones((2, 3)), jnp.ones((2, 4)))


def test_the_xor_gradient_has_a_rule_for_every_step_and_no_batched_product(monkeypatch):
    """What makes it fast: no fallback to vmap, and the per-run products written out (no batch dimensions)."""
    problem = gdjax.xor()
    params = jax.tree.map(lambda w: jnp.ones((*w.shape, N_RUNS)), problem.init(1))
    assert fast_path_agrees()  # its self-test uses jax.vmap: run it (once a process) before vmap is refused
    monkeypatch.setattr(jax, "vmap", lambda *args, **kwargs: pytest.fail("fell back to jax.vmap"))
    gradient = runs_last(jax.grad(problem.loss), (True, False, False))
    jaxpr = jax.make_jaxpr(gradient)(params, problem.X, problem.y)
    products = [eqn for eqn in jaxpr.eqns if eqn.primitive.name == "dot_general"]
    assert all(not eqn.params["dimension_numbers"][1][0] for eqn in products)


def test_a_passed_self_test_is_remembered_only_where_the_compilation_cache_is_used(tmp_path, monkeypatch):
    from gdjax import compile_cache
    from gdjax import runs_last as module

    check = fast_path_agrees.__wrapped__  # without the once-a-process memo
    monkeypatch.setattr(compile_cache, "_in_use", [])
    assert module._agreement_file() is None  # the library writes no file unless asked to
    monkeypatch.setattr(compile_cache, "_in_use", [tmp_path])
    assert check()
    (remembered,) = tmp_path.glob("gdjax-runs-last-agrees-*.txt")
    assert not remembered.name.endswith("-cache")  # JAX's cache eviction leaves it alone
    monkeypatch.setattr(module, "_self_test_corpus", lambda: pytest.fail("tested again"))
    assert check()  # a later process with the same JAX, device, settings and rules skips the test
    with jax.default_matmul_precision("highest"):
        assert module._agreement_file() != remembered  # other settings: tested again
