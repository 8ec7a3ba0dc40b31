"""The classic lessons: any differentiable function, the tolerance stop, logged parameter paths."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from references import optax_python_loop

import gdjax
from bench.baselines import rosenbrock_gradient, textbook_regression_gd, tutorial_gradient_descent
from bench.conditioning import conditioning_table
from bench.suites import SUITE_OPTIMIZERS, build_suite


def _bowl(x):
    return jnp.sum((x - jnp.array([3.0, -1.0])) ** 2 * jnp.array([1.0, 10.0]))


def test_function_problem_gd_is_the_tutorial_loop():
    rates = [1e-3, 1e-2, 0.05]
    res = gdjax.sweep(gdjax.rosenbrock(), "gd", rates, steps=2000, dtype="float64")
    for column, rate in enumerate(rates):
        expected, _ = tutorial_gradient_descent(rosenbrock_gradient, (-1.5, 2.0), rate, 2000)
        if np.all(np.isfinite(expected)):
            np.testing.assert_allclose(res.params[0, column], expected, rtol=1e-10)
        else:
            assert res.diverged_at[0, column] >= 0


def test_rosenbrock_minimum_is_reached_by_an_optimizer_of_the_default_grid():
    problem = gdjax.function_problem(gdjax.problems.rosenbrock_function, (-1.5, 2.0), name="rosenbrock")
    best = {}
    for cell in build_suite(["rosenbrock"], list(SUITE_OPTIMIZERS)):
        res = gdjax.sweep(problem, cell.optimizer, cell.learning_rates, cell.steps, dtype="float64")
        best[cell.optimizer] = np.nanmin(np.linalg.norm(res.params[0] - 1.0, axis=-1))
    assert min(best.values()) < 1e-4, best


@pytest.mark.slow  # 13 s measured on 2 busy cores
def test_function_problem_takes_any_shape_and_optax_agrees():
    x0 = np.array([[0.5, -2.0], [1.0, 4.0]])
    problem = gdjax.function_problem(lambda x: jnp.sum(jnp.cos(x) + x**2), x0)
    res = gdjax.sweep(problem, "adam", [1e-2, 1e-1], steps=300, dtype="float64")
    with jax.enable_x64(True):
        for column, rate in enumerate([1e-2, 1e-1]):
            start = jnp.asarray(x0)
            expected = optax_python_loop(problem.loss, start, problem.X, problem.y, optax.adam(rate), 300)
            np.testing.assert_allclose(res.params[0, column], expected, rtol=1e-10)


@pytest.mark.parametrize(
    ("f", "x0", "error", "message"),
    [
        (
            lambda x: x * 2,
            (1.0, 2.0),
            ValueError,
            "f must return a real floating-point scalar; got shape (2,)",
        ),
        (lambda x: jnp.int32(1), (1.0,), ValueError, "dtype int32"),
        (lambda x: (x, x), (1.0,), ValueError, "got tuple"),
        (lambda x: np.sum(np.asarray(x)), (1.0, 2.0), TypeError, "f must be written with jax.numpy"),
        (lambda x: float(x[0]), (1.0, 2.0), TypeError, "f must be written with jax.numpy"),
        (lambda x: x @ jnp.ones(3), (1.0, 2.0), ValueError, "f failed on an array of x0's shape (2,)"),
        (
            lambda x: jax.lax.while_loop(lambda c: c[0] < 3.0, lambda c: c + 1.0, x).sum(),
            (1.0, 2.0),
            TypeError,
            "f must be differentiable by jax.grad",
        ),
        ("not a function", (1.0,), TypeError, "f must be a function"),
        (_bowl, (1.0, np.nan), ValueError, "x0 must be finite"),
        (_bowl, (), ValueError, "x0 must hold at least one number"),
        (_bowl, "ab", TypeError, "x0 must hold real numbers"),
    ],
)
def test_bad_function_or_start_is_refused_before_any_sweep(f, x0, error, message):
    with pytest.raises(error) as raised:
        gdjax.function_problem(f, x0)
    assert message in str(raised.value)


def test_same_function_shares_one_compiled_program():
    first = gdjax.prepare_sweep(gdjax.function_problem(_bowl, (0.0, 0.0)), "gd", [0.01], 10)
    second = gdjax.prepare_sweep(gdjax.function_problem(_bowl, (5.0, 5.0)), "gd", [0.02], 10)
    assert first.problem.loss == second.problem.loss
    assert hash(first.problem.loss) == hash(second.problem.loss)


def _regression_gd_with_stop(problem, rate, steps, tolerance):
    """The textbook loop, one step at a time, applying the classic stop: ||theta_t - theta_{t-1}|| < tol."""
    theta, stopped_at = np.ones(problem.X.shape[1]), -1
    for t in range(1, steps + 1):
        new, _ = textbook_regression_gd(problem.X, problem.y, rate, 1, theta=theta)
        if stopped_at < 0 and np.linalg.norm(new - theta) < tolerance:
            stopped_at = t
        theta = new
    return stopped_at


def test_stopped_at_agrees_with_a_plain_loop_applying_the_classic_rule():
    problem = gdjax.linear_regression()
    rates, steps, tolerance = [1e-4, 3e-4, 5e-4, 7e-4], 3000, 3e-3
    res = gdjax.sweep(problem, "gd", rates, steps, dtype="float64", tolerance=tolerance)
    expected = [_regression_gd_with_stop(problem, rate, steps, tolerance) for rate in rates]
    np.testing.assert_array_equal(res.stopped_at[0], expected)
    assert res.stopped_at[0, -1] == -1  # 7e-4 is past the stability limit: it never settles
    assert (res.stopped_at[0, :-1] > 0).all()


@pytest.mark.slow  # 181 s measured on 2 busy cores
def test_stopped_at_for_adam_agrees_with_the_tutorial_rule_on_optax_steps():
    problem, rate, steps, tolerance = gdjax.rosenbrock(), 0.01, 3000, 1e-4
    res = gdjax.sweep(problem, "adam", [rate], steps, dtype="float64", tolerance=tolerance)
    with jax.enable_x64(True):
        transformation, x = optax.adam(rate), jnp.asarray(problem.init(0))
        state, expected = transformation.init(x), -1
        for t in range(1, steps + 1):
            updates, state = transformation.update(jax.grad(problem.loss)(x, None, None), state, x)
            if expected < 0 and float(jnp.linalg.norm(updates)) < tolerance:
                expected = t
            x = optax.apply_updates(x, updates)
    assert expected > 0
    assert res.stopped_at[0, 0] == expected


def test_tolerance_is_validated_and_absent_by_default():
    res = gdjax.sweep(gdjax.rosenbrock(), "gd", [1e-3], 10)
    assert res.stopped_at is None
    assert "stopped_at" not in res.to_frame().columns
    for bad, error in [(0.0, ValueError), (-1e-3, ValueError), (np.inf, ValueError), ("1e-3", TypeError)]:
        with pytest.raises(error, match="tolerance must be a positive finite number"):
            gdjax.sweep(gdjax.rosenbrock(), "gd", [1e-3], 10, tolerance=bad)


@pytest.mark.slow  # 7 s measured on 2 busy cores
def test_params_curve_holds_the_parameters_at_each_logged_step():
    problem, rates, seeds = gdjax.xor(), [0.1, 1.0], [0, 3]
    res = gdjax.sweep(problem, "momentum", rates, 300, seeds=seeds, log_every=100, log_params=True)
    for k in range(3):
        shorter = gdjax.sweep(problem, "momentum", rates, 100 * (k + 1), seeds=seeds)
        for name in ("W0", "W1"):
            assert res.params_curve[name].shape == (2, 2, 3, *problem.init(0)[name].shape)
            np.testing.assert_array_equal(res.params_curve[name][:, :, k], shorter.params[name])
    assert gdjax.sweep(problem, "gd", rates, 10).params_curve is None
    with pytest.raises(TypeError, match="log_params must be True or False"):
        gdjax.sweep(problem, "gd", rates, 10, log_params="yes")


def test_chunked_sweep_keeps_stopped_at_and_params_curve():
    problem, rates = gdjax.linear_regression(), np.geomspace(1e-5, 1e-3, 40)
    options = {"dtype": "float64", "tolerance": 1e-3, "log_params": True, "log_every": 50}
    options["devices"] = jax.devices()[:1]  # the limit is per device
    whole_program = gdjax.prepare_sweep(problem, "gd", rates, 500, **options)
    whole = whole_program.run()
    # room for 20 runs: one tile of 16 (tiles hold whole blocks of 16 runs) a chunk
    limit = 2 * (20 * whole_program.bytes_per_run() + (problem.X.size + problem.y.size) * 8)
    program = gdjax.prepare_sweep(problem, "gd", rates, 500, memory_limit=limit, **options)
    assert program.chunk_size == 16
    chunked = program.run()
    np.testing.assert_array_equal(chunked.stopped_at, whole.stopped_at)
    np.testing.assert_allclose(chunked.params_curve, whole.params_curve, rtol=1e-12)  # float64 rounding


def test_logged_parameters_count_in_the_memory_estimate():
    problem = gdjax.linear_regression()
    plain = gdjax.prepare_sweep(problem, "gd", [1e-4], 1000, log_every=10)
    logged = gdjax.prepare_sweep(problem, "gd", [1e-4], 1000, log_every=10, log_params=True)
    # logs x parameters x float32, three copies: the run's own, the tiles' stacked outputs, the program's
    assert logged.bytes_per_run() - plain.bytes_per_run() == 3 * 100 * 2 * 4


def _fewest_steps_to(problem, optimizer, rates, steps, fraction):
    """Fewest steps, over the rates, until the loss is at most ``fraction`` of the starting loss."""
    res = gdjax.sweep(problem, optimizer, rates, steps, log_every=1, dtype="float64")
    start = float(problem.loss(jnp.asarray(problem.init(0)), problem.X, problem.y))
    reached = res.loss_curve[0] <= fraction * start
    return int(np.where(reached.any(-1), reached.argmax(-1) + 1, np.iinfo(np.int32).max).min())


def test_gd_slows_down_with_the_condition_number_and_momentum_much_less():
    rates = np.geomspace(1e-5, 2, 48)
    steps = {
        optimizer: [
            _fewest_steps_to(gdjax.quadratic(k), optimizer, rates, 8000, 1e-10) for k in (10, 100, 1000)
        ]
        for optimizer in ("gd", "momentum")
    }
    gd, momentum = steps["gd"], steps["momentum"]
    assert gd[0] < gd[1] < gd[2] < 8000, steps  # about proportional to the condition number
    assert gd[2] / gd[0] > 50, steps
    assert momentum[2] / momentum[0] < 5, steps
    assert momentum[2] < gd[2] / 10, steps


def test_quadratic_has_its_minimum_at_zero_and_refuses_a_bad_condition_number():
    problem = gdjax.quadratic(50.0)
    assert float(problem.loss(jnp.zeros(2), problem.X, problem.y)) == 0.0
    res = gdjax.sweep(problem, "momentum", [0.02], 3000, dtype="float64")
    np.testing.assert_allclose(res.params[0, 0], 0.0, atol=1e-8)
    for bad in (0.5, np.inf, np.nan, True, "x"):
        with pytest.raises(ValueError, match="condition_number must be a finite number >= 1"):
            gdjax.quadratic(bad)
    for bad in (np.nan, "30", None):
        with pytest.raises(ValueError, match="angle must be a finite number"):
            gdjax.quadratic(10.0, angle=bad)


def test_conditioning_table_shows_gd_slowing_down_and_momentum_not():
    table = conditioning_table("quick", dtype="float64")
    steps = table.pivot(index="condition_number", columns="optimizer", values="steps_to_target")
    assert list(steps.index) == [1.0, 10.0, 100.0]
    assert (steps > 0).all().all(), steps  # every optimizer reaches the target at some rate
    gd, momentum = steps["gd"], steps["momentum"]
    assert gd.is_monotonic_increasing, steps
    assert gd[100.0] / gd[1.0] > 10 * momentum[100.0] / momentum[1.0], steps
