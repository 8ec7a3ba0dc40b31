"""Grids over any hyperparameter and learning-rate schedules, against one-axis sweeps and optax."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from references import optax_python_loop
from test_engine import _count_compiles

import gdjax
from gdjax.schedules import learning_rate_schedule, schedule_defaults

RATES = [1e-4, 3e-4, 1e-3]
MOMENTA = [0.5, 0.9, 0.99]


def test_a_grid_of_rate_and_momentum_equals_one_axis_sweeps_of_each_momentum():
    problem = gdjax.linear_regression()
    res = gdjax.sweep(
        problem, "momentum", grid={"learning_rate": RATES, "momentum": MOMENTA}, steps=300, dtype="float64"
    )
    assert res.grid_shape == (3, 3)
    assert res.final_loss.shape == (1, 9)
    np.testing.assert_array_equal(res.grid["momentum"], np.tile(MOMENTA, 3))  # row-major: the last fastest
    np.testing.assert_array_equal(res.learning_rates, np.repeat(RATES, 3))
    final = res.final_loss.reshape(3, 3)
    for column, beta in enumerate(MOMENTA):
        alone = gdjax.sweep(
            problem, functools.partial(optax.sgd, momentum=beta), RATES, steps=300, dtype="float64"
        )
        np.testing.assert_allclose(final[:, column], alone.final_loss[0], rtol=1e-12)
    # the registered optimizer passes its 0.9 as data too: that column equals it bit for bit
    registered = gdjax.sweep(problem, "momentum", RATES, steps=300, dtype="float64")
    np.testing.assert_array_equal(final[:, 1], registered.final_loss[0])
    frame = res.to_frame()
    assert {"learning_rate", "momentum", "schedule"} <= set(frame.columns)
    assert frame["momentum"].tolist() == np.tile(MOMENTA, 3).tolist()


def test_an_adam_grid_point_equals_the_one_axis_run_of_the_same_values_bit_for_bit():
    """A value given (an axis, a partial's keyword) is data: the b1 = 0.9 column is partial(adam, b1=0.9)."""
    problem = gdjax.xor()
    res = gdjax.sweep(problem, "adam", grid={"learning_rate": [0.01, 0.1], "b1": [0.5, 0.9]}, steps=300)
    alone = gdjax.sweep(problem, functools.partial(optax.adam, b1=0.9), [0.01, 0.1], steps=300)
    np.testing.assert_array_equal(res.final_loss.reshape(2, 2)[:, 1], alone.final_loss[0])
    assert not np.array_equal(res.final_loss.reshape(2, 2)[:, 0], alone.final_loss[0])  # b1 mattered
    registered = gdjax.prepare_sweep(problem, "adam", [0.01], steps=300)  # its defaults stay constants
    assert set(registered.hyperparameters) == {"learning_rate"}


def test_points_run_as_given_and_equal_the_grid_points():
    problem = gdjax.quadratic(100.0)
    grid = gdjax.sweep(
        problem, "momentum", grid={"learning_rate": [0.001, 0.01], "momentum": MOMENTA}, steps=200
    )
    points = [{"learning_rate": 0.01, "momentum": 0.99}, {"learning_rate": 0.001, "momentum": 0.5}]
    res = gdjax.sweep(problem, "momentum", points=points, steps=200)
    assert res.grid_shape is None
    np.testing.assert_array_equal(res.final_loss[0], grid.final_loss[0, [5, 0]])


@pytest.mark.slow  # 6 s measured on 2 busy cores
def test_a_rerun_must_sweep_the_grids_own_axes():
    grid = gdjax.prepare_sweep(
        gdjax.quadratic(10.0), "momentum", grid={"learning_rate": [0.01, 0.1], "momentum": MOMENTA}, steps=50
    )
    with pytest.raises(ValueError, match="a rerun must sweep what this sweep does"):
        grid.rerun([0.01])  # momentum would silently take its default 0.9
    rerun = grid.rerun(seeds=[5], points=[{"momentum": 0.5, "learning_rate": 0.1}])  # any order of names
    alone = gdjax.sweep(gdjax.quadratic(10.0), "momentum", grid={"learning_rate": [0.1], "momentum": [0.5]},
                        steps=50, seeds=[5])  # fmt: skip
    np.testing.assert_array_equal(rerun.run().final_loss, alone.final_loss)


def test_a_new_grid_of_the_same_shape_does_not_recompile():
    problem = gdjax.quadratic(10.0)
    gdjax.sweep(problem, "momentum", grid={"learning_rate": [0.01, 0.02], "momentum": MOMENTA}, steps=50)
    again = {"learning_rate": [0.05, 0.2], "momentum": [0.1, 0.2, 0.3]}
    assert _count_compiles(lambda: gdjax.sweep(problem, "momentum", grid=again, steps=50)) == 0
    schedule = {"learning_rate": [0.01, 0.02], "warmup_steps": [0, 10, 20]}
    gdjax.sweep(problem, "gd", grid=schedule, schedule="warmup_cosine", steps=50)
    schedule = {"learning_rate": [0.03, 0.04], "warmup_steps": [5, 15, 25]}
    assert (
        _count_compiles(lambda: gdjax.sweep(problem, "gd", grid=schedule, schedule="warmup_cosine", steps=50))
        == 0
    )


@pytest.mark.slow  # 11 s measured on 2 busy cores
def test_a_grid_over_an_optax_optimizers_own_argument():
    problem = gdjax.xor()
    decays = [0.0, 1e-2, 1e-1]
    res = gdjax.sweep(
        problem,
        "optax:adamw",
        grid={"learning_rate": [0.05], "weight_decay": decays},
        steps=200,
        dtype="float64",
    )
    for column, decay in enumerate(decays):
        alone = gdjax.sweep(
            problem, functools.partial(optax.adamw, weight_decay=decay), [0.05], steps=200, dtype="float64"
        )
        np.testing.assert_allclose(res.final_loss[0, column], alone.final_loss[0, 0], rtol=1e-12)


@pytest.mark.slow  # 6 s measured on 2 busy cores
def test_a_users_factory_takes_its_keyword_arguments_from_the_grid():
    def heavy_ball(lr, beta=0.0):
        return optax.sgd(lr, momentum=beta)

    problem = gdjax.quadratic(10.0)
    res = gdjax.sweep(problem, heavy_ball, grid={"learning_rate": [0.05], "beta": [0.0, 0.9]}, steps=100)
    plain = gdjax.sweep(problem, "gd", [0.05], steps=100)
    np.testing.assert_array_equal(res.final_loss[0, 0], plain.final_loss[0, 0])
    assert res.final_loss[0, 1] != plain.final_loss[0, 0]


LR = {"learning_rate": [0.1]}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"grid": {**LR, "gamma": [1.0]}},
            r"'gamma' is not an argument of .*'momentum'.*learning_rate, momentum",
        ),
        ({"grid": {**LR, "nesterov": [1.0]}}, r"'nesterov' is not a numeric hyperparameter"),
        ({"grid": {"momentum": [0.5]}}, r"must include 'learning_rate'"),
        ({"grid": {**LR, "momentum": []}}, r"grid\['momentum'\] must be a non-empty"),
        ({"grid": {**LR, "momentum": ["high"]}}, r"grid\['momentum'\] must be finite numbers"),
        ({"grid": {**LR, "momentum": [np.nan]}}, r"must be finite"),
        ({"grid": {"learning_rate": [0.0]}}, r"grid\['learning_rate'\] must be positive"),
        ({"grid": {**LR, "b1": [True]}}, r"grid\['b1'\] must be .* \(no flags\)"),
        ({"grid": {**LR, "momentum": 0.9}}, r"grid\['momentum'\] must be a non-empty 1-D sequence"),
        ({"learning_rates": [0.1], "grid": LR}, r"exactly one of .* got learning_rates, grid"),
        ({"points": [{"learning_rate": 0.1}, {"momentum": 0.5}]}, r"same names"),
        ({"grid": LR, "schedule": "linear"}, r"schedule must be one of constant, cosine"),
        ({"grid": {**LR, "warmup_steps": [10.0]}, "schedule": "cosine"}, r"'warmup_steps' is not"),
        (
            {"grid": {**LR, "warmup_steps": [200.0]}, "schedule": "warmup_cosine"},
            r"warmup_steps must be >= 0 and",
        ),
    ],
)
def test_bad_grids_are_refused_naming_what_is_allowed(kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message):
        gdjax.prepare_sweep(gdjax.quadratic(10.0), "momentum", steps=100, **kwargs)


def test_an_argument_that_cannot_be_data_is_refused_by_a_trial_trace():
    # lbfgs's memory_size sets the shape of its history: an integer that cannot be traced
    with pytest.raises(ValueError, match=r"'memory_size' of optimizer 'optax:lbfgs' cannot be data"):
        gdjax.prepare_sweep(
            gdjax.quadratic(10.0),
            "optax:lbfgs",
            grid={"learning_rate": [1.0], "memory_size": [3, 5]},
            steps=10,
        )


STEPS = 40


@pytest.mark.slow  # 13 s measured on 2 busy cores
@pytest.mark.parametrize(
    ("schedule", "parameters", "optax_schedule"),
    [
        ("cosine", {"decay_steps": 30.0, "alpha": 0.1},
         lambda lr: optax.cosine_decay_schedule(lr, 30, alpha=0.1)),
        ("warmup_cosine", {"warmup_steps": 8.0, "decay_steps": float(STEPS), "alpha": 0.05},
         lambda lr: optax.warmup_cosine_decay_schedule(0.0, lr, 8, STEPS, end_value=0.05 * lr)),
        ("exponential", {"transition_steps": float(STEPS), "decay_rate": 0.1},
         lambda lr: optax.exponential_decay(lr, STEPS, 0.1)),
        ("constant", {}, lambda lr: optax.constant_schedule(lr)),
        ("inverse_time", {"decay_steps": float(STEPS), "decay_rate": 9.0},  # optax has none: the formula
         lambda lr: lambda count: lr / (1 + 9.0 * count / STEPS)),
    ],
)  # fmt: skip
def test_each_schedule_equals_optaxs_and_a_scheduled_run_equals_optax_stepped_in_python(
    schedule, parameters, optax_schedule
):
    rate = 2e-4
    with jax.enable_x64(True):
        ours = learning_rate_schedule(schedule, np.float64(rate), parameters)
        ours = ours if callable(ours) else (lambda t: rate)
        optax_float32 = optax_schedule(
            rate
        )  # with optax's int32 count, some of its schedules round to float32

        def theirs(count):
            return optax_float32(jnp.asarray(count, jnp.float64))

        for t in range(STEPS + 5):
            np.testing.assert_allclose(float(ours(t)), float(theirs(t)), rtol=1e-12, atol=1e-300)
    problem = gdjax.linear_regression()
    res = gdjax.sweep(
        problem, "momentum", grid={"learning_rate": [rate], **{k: [v] for k, v in parameters.items()}},
        schedule=schedule, steps=STEPS, dtype="float64",
    )  # fmt: skip
    with jax.enable_x64(True):
        params = optax_python_loop(
            problem.loss, problem.init(0), problem.X, problem.y, optax.sgd(theirs, momentum=0.9), STEPS
        )
    np.testing.assert_allclose(res.params[0, 0], params, rtol=1e-12)


def test_schedules_default_to_decaying_over_the_runs_steps():
    for schedule, end in (
        ("cosine", 0.0),
        ("warmup_cosine", 0.0),
        ("exponential", 0.1),
        ("inverse_time", 0.1),
    ):
        with jax.enable_x64(True):
            rate = learning_rate_schedule(schedule, np.float64(1.0), schedule_defaults(schedule, 1000))
            assert float(rate(1000)) == pytest.approx(end, abs=1e-12), schedule
            assert float(rate(0 if schedule != "warmup_cosine" else 100)) == 1.0, schedule
    res = gdjax.sweep(
        gdjax.quadratic(10.0), "gd", grid={"learning_rate": [0.05]}, schedule="exponential", steps=1000
    )
    assert res.schedule == "exponential"
    program = gdjax.prepare_sweep(gdjax.quadratic(10.0), "gd", [0.05], 1000, schedule="warmup_cosine")
    assert program.hyperparameters["decay_steps"][0] == 1000
    assert program.hyperparameters["warmup_steps"][0] == 100
