"""The engine on the JAX installed here: the fast path is on and right, and a sweep is jax.vmap of one run.

CI runs this file on every leg of its matrix (Python 3.11 to 3.13, the
newest JAX each gets, and the lowest versions pyproject.toml declares).
"""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from references import vmap_of_one_run

import gdjax
from gdjax import compile_cache
from gdjax import runs_last as runs_last_module
from gdjax.runs_last import fast_path_agrees, runs_last

# rates well inside each problem's stable range; 50 steps
PROBLEMS = {
    "linear_regression": (gdjax.linear_regression, [1e-4, 4e-4]),
    "xor": (gdjax.xor, [0.1, 2.0]),
    "rosenbrock": (gdjax.rosenbrock, [1e-4, 1e-3]),
    "logistic_regression": (gdjax.logistic_regression, [0.01, 0.3]),
}
OPTIMIZERS = ["gd", "sgd", "momentum", "adam", "optax:adamw"]


@pytest.mark.slow  # 23 s measured on 2 busy cores
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("problem", PROBLEMS)
def test_sweep_equals_vmap_of_one_run(problem, optimizer):
    make, rates = PROBLEMS[problem]
    program = gdjax.prepare_sweep(make(), optimizer, rates, 50, seeds=[0, 3], log_every=10, dtype="float64")
    got = program.run()
    want = vmap_of_one_run(program)
    for name in ("final_loss", "best_loss", "loss_curve"):
        np.testing.assert_allclose(getattr(got, name), want[name], rtol=1e-12, err_msg=name)
    np.testing.assert_array_equal(got.diverged_at, want["diverged_at"])
    jax.tree.map(
        lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14), got.params, want["params"]
    )
    assert np.all(got.diverged_at == -1)


@pytest.mark.slow  # 16 s measured on 2 busy cores
@pytest.mark.parametrize("x64", [False, True], ids=["x32", "x64"])
def test_the_fast_path_passes_its_self_test_on_this_jax(x64, monkeypatch):
    monkeypatch.setattr(compile_cache, "_in_use", [])  # run the test, not a verdict a harness run remembered
    fast_path_agrees.cache_clear()  # the first sweep of a process may run it in either mode
    try:
        with jax.enable_x64(x64), warnings.catch_warnings():
            warnings.simplefilter("error")
            assert fast_path_agrees(), f"the runs-last rules disagree with jax.vmap on jax {jax.__version__}"
    finally:
        fast_path_agrees.cache_clear()


def test_the_scan_layout_of_this_jax_is_known():
    def fn(x):
        return lax.scan(lambda c, x: (c + x, c * x), x[0], x)

    (eqn,) = [eqn for eqn in jax.make_jaxpr(fn)(jnp.ones(3)).jaxpr.eqns if eqn.primitive.name == "scan"]
    assert runs_last_module.scan_layout(dict(eqn.params), len(eqn.invars)) == (0, 1)


@pytest.mark.slow  # 53 s measured on 2 busy cores
def test_the_engine_needs_no_fallback_on_this_jax(monkeypatch):
    monkeypatch.setattr(runs_last_module, "_WARNED", set())
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="gdjax.runs_last")
        for optimizer in OPTIMIZERS:  # hidden=3: a shape no other test traces, so the program is traced here
            gdjax.sweep(gdjax.xor(hidden=3), optimizer, [0.1], steps=20)


@pytest.mark.slow  # 12 s measured on 2 busy cores
def test_a_wrong_rule_turns_the_fast_path_off_with_a_warning(monkeypatch):
    monkeypatch.setattr(compile_cache, "_in_use", [])  # run the test, not a verdict a harness run remembered
    right = runs_last_module._sum
    monkeypatch.setattr(runs_last_module, "_sum", lambda x, axes: right(x, axes) * 1.001)
    fast_path_agrees.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match=f"jax {jax.__version__}.*disagrees with jax.vmap"):
            assert not fast_path_agrees()
        x = np.arange(12.0, dtype=np.float32).reshape(3, 4)  # 3 terms a run: the sabotaged rule
        got = jax.jit(runs_last(lambda v: jnp.sum(v), (True,)))(x)
        np.testing.assert_array_equal(got, x.sum(axis=0))
    finally:
        fast_path_agrees.cache_clear()
