"""The compiled sweep: vmapped runs, divergence, compile caching, dtypes, results."""

import jax
import numpy as np
import pytest

import gdjax

PROBLEMS = {
    "linear_regression": (gdjax.linear_regression, [1e-5, 1e-4, 4e-4]),
    "xor": (gdjax.xor, [0.1, 0.5, 2.0]),
}


@pytest.mark.parametrize("name", sorted(gdjax.OPTIMIZERS))
@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_each_vmapped_run_equals_the_same_run_alone(name, problem):
    make_problem, rates = PROBLEMS[problem]
    prob = make_problem()
    res = gdjax.sweep(prob, name, rates, steps=400, seeds=[0, 5], dtype="float64")
    for i, seed in enumerate([0, 5]):
        for j, rate in enumerate(rates):
            alone = gdjax.sweep(prob, name, [rate], steps=400, seeds=[seed], dtype="float64")
            np.testing.assert_allclose(res.final_loss[i, j], alone.final_loss[0, 0], rtol=1e-12)
            np.testing.assert_allclose(res.loss_curve[i, j], alone.loss_curve[0, 0], rtol=1e-12)
            assert res.diverged_at[i, j] == alone.diverged_at[0, 0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_diverging_rate_is_flagged_and_leaves_the_others_alone(dtype):
    prob = gdjax.linear_regression()
    stable = [1e-4, 5e-4]
    without = gdjax.sweep(prob, "gd", stable, steps=2000, dtype=dtype)
    with_it = gdjax.sweep(prob, "gd", [*stable, 1e-2], steps=2000, dtype=dtype)
    assert with_it.diverged_at[0, 2] >= 0
    assert not with_it.final_loss[0, 2] < 1e6 * without.final_loss.max()
    np.testing.assert_array_equal(with_it.diverged_at[:, :2], -1)
    np.testing.assert_array_equal(with_it.final_loss[:, :2], without.final_loss)
    np.testing.assert_array_equal(with_it.params[:, :2], without.params)
    np.testing.assert_array_equal(with_it.loss_curve[:, :2], without.loss_curve)
    initial = prob.loss(prob.init(0), prob.X, prob.y)
    np.testing.assert_allclose(with_it.best_loss[0, 2], initial, rtol=1e-6)  # it never improved


def test_diverged_at_is_the_first_step_beyond_the_rule():
    """The first loss above 1e6 times the starting excess over the minimum (float64, logged every step)."""
    prob = gdjax.linear_regression()
    res = gdjax.sweep(prob, "gd", [1e-2], steps=300, log_every=1, dtype="float64")
    # with log_every=1, loss_curve[t - 1] is the loss after t steps
    losses = np.concatenate([[prob.loss(prob.init(0), prob.X, prob.y)], res.loss_curve[0, 0]])
    excess = losses - prob.facts.minimum_loss
    first = res.diverged_at[0, 0]
    assert 0 < first < 300
    assert np.all(excess[:first] <= 1e6 * excess[0])
    assert excess[first] > 1e6 * excess[0]
    assert np.isfinite(losses[first])  # long before it overflows


COMPILES = []


def _on_duration(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
        COMPILES.append(duration)


# registered once: jax 0.8 has no public way to unregister a listener
jax.monitoring.register_event_duration_secs_listener(_on_duration)


def _count_compiles(fn):
    before = len(COMPILES)
    fn()
    return len(COMPILES) - before


@pytest.mark.slow  # 9 s measured on 2 busy cores
@pytest.mark.parametrize("name", sorted(gdjax.OPTIMIZERS))
def test_new_learning_rates_and_seeds_do_not_recompile(name):
    prob = gdjax.xor()
    gdjax.sweep(prob, name, [0.1, 0.2], steps=50, seeds=[0, 1])
    assert _count_compiles(lambda: gdjax.sweep(prob, name, [0.3, 0.7], steps=50, seeds=[4, 9])) == 0
    # own data of the same shape reuses it too
    other = gdjax.linear_regression(m=30, seed=2)
    gdjax.sweep(other, name, [1e-4], steps=50)
    again = gdjax.linear_regression(X=other.X * 2, y=other.y)
    assert _count_compiles(lambda: gdjax.sweep(again, name, [2e-4], steps=50)) == 0


def test_float64_does_not_leak_x64_mode():
    before = jax.config.jax_enable_x64
    res = gdjax.sweep(gdjax.linear_regression(), "adam", [1e-2], steps=10, dtype="float64")
    assert res.final_loss.dtype == np.float64
    assert jax.config.jax_enable_x64 == before
    assert jax.numpy.ones(1).dtype == (np.float64 if before else np.float32)


def test_float32_gives_the_same_answer_under_caller_x64():
    prob = gdjax.xor()
    plain = gdjax.sweep(prob, "adam", [0.1], steps=200)
    with jax.enable_x64(True):
        under_x64 = gdjax.sweep(prob, "adam", [0.1], steps=200)
    assert under_x64.final_loss.dtype == np.float32
    np.testing.assert_array_equal(plain.final_loss, under_x64.final_loss)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_answers_and_setting_kept_whatever_the_caller_x64_mode(dtype):
    prob = gdjax.linear_regression()
    answers = []
    for caller_x64 in (False, True):
        with jax.enable_x64(caller_x64):
            answers.append(gdjax.sweep(prob, "adam", [1e-2, 1.0], steps=300, dtype=dtype))
            assert jax.config.jax_enable_x64 == caller_x64
    assert answers[0].final_loss.dtype == answers[1].final_loss.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(answers[0].final_loss, answers[1].final_loss)
    np.testing.assert_array_equal(answers[0].params, answers[1].params)


def test_float64_without_x64_is_refused_not_downgraded(monkeypatch):
    import contextlib

    monkeypatch.setattr(
        jax, "enable_x64", lambda *args: contextlib.nullcontext()
    )  # as if x64 were unavailable
    if jax.config.jax_enable_x64:
        pytest.skip("the caller has x64 on")
    with pytest.raises(ValueError, match="dtype float64 is not available"):
        gdjax.sweep(gdjax.xor(), "gd", [0.5], steps=3, dtype="float64")


def test_result_shapes_curve_and_frame():
    res = gdjax.sweep(
        gdjax.xor(hidden=3), "momentum", [0.1, 0.5, 1.0], steps=1005, seeds=[0, 1], log_every=10
    )
    assert res.final_loss.shape == res.best_loss.shape == res.diverged_at.shape == (2, 3)
    assert res.loss_curve.shape == (2, 3, 100)
    assert res.params["W0"].shape == (2, 3, 3, 3)
    assert res.params["W1"].shape == (2, 3, 3, 1)
    assert np.all(res.best_loss <= res.final_loss)
    assert np.all(res.best_loss <= res.loss_curve.min(axis=-1))
    frame = res.to_frame()
    assert len(frame) == 6
    assert list(frame["seed"]) == [0, 0, 0, 1, 1, 1]
    np.testing.assert_array_equal(frame["final_loss"], res.final_loss.ravel())
    assert set(frame.columns) >= {
        "problem",
        "optimizer",
        "seed",
        "learning_rate",
        "final_loss",
        "best_loss",
        "diverged_at",
    }


def test_last_logged_loss_is_the_final_loss_when_log_every_divides_steps():
    res = gdjax.sweep(gdjax.linear_regression(), "gd", [1e-4], steps=1000, log_every=100, dtype="float64")
    assert res.loss_curve[0, 0, -1] == res.final_loss[0, 0]


def test_ahead_of_time_compile_then_execute_equals_sweep():
    prob = gdjax.linear_regression()
    program = gdjax.prepare_sweep(prob, "adam", [1e-2, 1e-1], steps=300, seeds=[0, 1])
    compiled = program.compile()
    outputs = program.execute(compiled)
    jax.block_until_ready(outputs)
    aot = program.result(outputs)
    direct = gdjax.sweep(prob, "adam", [1e-2, 1e-1], steps=300, seeds=[0, 1])
    np.testing.assert_array_equal(aot.final_loss, direct.final_loss)
    assert "scan" in program.lower().as_text() or "while" in program.lower().as_text()


@pytest.mark.slow  # 13 s measured on 2 busy cores
def test_the_harness_times_the_chunks_sweep_runs():
    from bench.timing import time_sweep

    prob, rates = gdjax.xor(), np.geomspace(1e-2, 10.0, 40)
    whole = gdjax.prepare_sweep(prob, "momentum", rates, steps=200, seeds=[0, 1])
    # one tile of 16 runs a device, and the data: X, y, the target and the minimum loss
    need = whole.bytes_per_run() * 16 + (prob.X.size + prob.y.size + 2) * 4
    chunked = gdjax.prepare_sweep(
        prob, "momentum", rates, steps=200, seeds=[0, 1], memory_limit=int(need / gdjax.planning.MEMORY_SHARE)
    )
    assert chunked.n_chunks > 1
    timing, timed = time_sweep(chunked, repeats=1)
    assert len(timing.run_s) == 1
    direct = whole.run()
    for name in ("final_loss", "diverged_at", "loss_curve"):
        np.testing.assert_array_equal(getattr(timed, name), getattr(direct, name), err_msg=name)


def test_user_callable_optimizer():
    import optax

    res = gdjax.sweep(gdjax.xor(), lambda lr: optax.rmsprop(lr), [0.01], steps=100)
    assert res.optimizer == "custom"  # a lambda has no name of its own
    assert np.isfinite(res.final_loss).all()


def test_init_params_is_used_for_every_seed():
    prob = gdjax.xor()
    start = prob.init(7)
    res = gdjax.sweep(prob, "gd", [0.5], steps=10, seeds=[0, 1, 2], init_params=start)
    np.testing.assert_array_equal(res.final_loss, res.final_loss[0, 0])


def test_a_rerun_runs_on_the_grids_compiled_program_with_the_results_of_its_own_sweep():
    """rerun(): the best rate on fresh seeds, padded to the grid's shape, needs no compile of its own."""
    problem = gdjax.xor()
    grid = gdjax.prepare_sweep(problem, "adam", np.geomspace(1e-3, 1, 8), 600, seeds=[0, 1], log_every=100)
    compiled = grid.compile()
    rerun = grid.rerun([0.05], range(1000, 1010))
    assert rerun.optimizer == "adam"
    # the grid's executable itself runs it: an argument of another shape would raise TypeError
    again = rerun.result(rerun.execute(compiled))
    alone = gdjax.sweep(problem, "adam", [0.05], 600, seeds=range(1000, 1010), log_every=100)
    np.testing.assert_array_equal(again.final_loss, alone.final_loss)
    np.testing.assert_array_equal(again.loss_curve, alone.loss_curve)
    np.testing.assert_array_equal(again.params["W1"], alone.params["W1"])
    with pytest.raises(ValueError, match="does not fit"):
        grid.rerun(np.geomspace(1e-3, 1, 8), range(100, 103))
