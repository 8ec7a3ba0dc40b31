"""Any optax optimizer by name (optax:NAME), and Nesterov momentum registered."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from references import optax_python_loop

import gdjax
from bench.cli import main


@pytest.mark.slow  # 10 s measured on 2 busy cores
@pytest.mark.parametrize(
    ("name", "transformation"),
    [
        ("optax:adamw", optax.adamw),
        ("optax:rmsprop", optax.rmsprop),
        ("optax:lion", optax.lion),
        ("nesterov", lambda rate: optax.sgd(rate, momentum=0.9, nesterov=True)),
    ],
)
def test_named_optimizer_equals_optax_stepped_in_python(name, transformation):
    problem, rates, steps = gdjax.xor(), [1e-3, 0.3], 200
    res = gdjax.sweep(problem, name, rates, steps, seeds=[2], dtype="float64")
    assert res.optimizer == name
    with jax.enable_x64(True):
        for column, rate in enumerate(rates):
            start = jax.tree.map(jnp.asarray, problem.init(2))
            expected = optax_python_loop(
                problem.loss, start, problem.X, problem.y, transformation(rate), steps
            )
            for name_ in ("W0", "W1"):
                np.testing.assert_allclose(res.params[name_][0, column], expected[name_], rtol=1e-10)


@pytest.mark.parametrize("name", ["optax:nope", "optax:apply_updates", "optax:chain", "optax:", "optax:1x"])
def test_names_optax_does_not_have_as_optimizers_are_refused(name):
    with pytest.raises(ValueError, match="is not an optax optimizer taking a learning rate"):
        gdjax.sweep(gdjax.rosenbrock(), name, [1e-3], 10)


@pytest.mark.slow  # 18 s measured on 2 busy cores
def test_command_line_takes_optax_names_and_refuses_unknown_ones(tmp_path, capsys):
    assert main(["--optimizers", "optax:nope", "--out", str(tmp_path)]) == 2
    assert "optax:nope is not an optax optimizer" in capsys.readouterr().err
    assert main(["--optimizers", "optax:adamw", "--out", str(tmp_path)]) == 2
    assert "no default learning rates for optax:adamw" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    small = ["--lrs", "1e-3,1e-2", "--steps", "200", "--seeds", "0", "--repeats", "1", "--out", str(tmp_path)]
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--problems",
            "rosenbrock",
            "--optimizers",
            "optax:adamw,nesterov",
            *small,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    summary = (tmp_path / "cpu-custom" / "summary.csv").read_text()
    assert "optax:adamw" in summary
    assert "nesterov" in summary
