"""The runs split over several devices give the same results as on one, uneven splits included.

The devices are forced host devices in a subprocess (XLA_FLAGS must be set
before JAX starts); this process's default devices give the reference.
"""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

import gdjax

CASES = {
    # name: (problem, optimizer, learning rates, seeds, batch size): 6, 5, 9 and 1 runs over 4 devices
    "regression_gd": ("linear_regression", "gd", [1e-4, 5e-4, 1e-2], [0, 1], None),
    "xor_adam": ("xor", "adam", [1e-3, 1e-2, 0.1, 1.0, 10.0], [3], None),
    "regression_sgd": ("linear_regression", "sgd", [1e-6, 1e-5, 1e-4], [0, 1, 2], 4),
    "xor_momentum_one_run": ("xor", "momentum", [0.5], [1], None),
}
SCRIPT = textwrap.dedent(
    """
    import sys
    import jax, numpy as np, gdjax
    cases, n_devices = eval(sys.argv[2]), int(sys.argv[3])
    assert len(jax.devices()) == 4, jax.devices()
    out = {}
    for name, (problem, optimizer, rates, seeds, batch) in cases.items():
        prob = getattr(gdjax, problem)()
        res = gdjax.sweep(prob, optimizer, rates, steps=500, seeds=seeds, batch_size=batch,
                          devices=jax.devices()[:n_devices])
        out[name + "/final_loss"] = res.final_loss
        out[name + "/diverged_at"] = res.diverged_at
        out[name + "/loss_curve"] = res.loss_curve
        for i, leaf in enumerate(jax.tree.leaves(res.params)):
            out[f"{name}/params{i}"] = leaf
    np.savez(sys.argv[1], **out)
    """
)


@pytest.mark.slow  # 91 s measured on 2 busy cores
@pytest.mark.parametrize("n_devices", [4, 3])
def test_split_over_devices_equals_one_device(tmp_path, n_devices):
    path = tmp_path / "out.npz"
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    subprocess.run(
        [sys.executable, "-c", SCRIPT, str(path), repr(CASES), str(n_devices)], env=env, check=True
    )
    split = np.load(path)
    for name, (problem, optimizer, rates, seeds, batch) in CASES.items():
        res = gdjax.sweep(
            getattr(gdjax, problem)(), optimizer, rates, steps=500, seeds=seeds, batch_size=batch
        )
        assert res.final_loss.shape == split[name + "/final_loss"].shape
        np.testing.assert_array_equal(split[name + "/final_loss"], res.final_loss)
        np.testing.assert_array_equal(split[name + "/diverged_at"], res.diverged_at)
        np.testing.assert_array_equal(split[name + "/loss_curve"], res.loss_curve)
        for i, leaf in enumerate(jax.tree.leaves(res.params)):
            np.testing.assert_array_equal(split[f"{name}/params{i}"], leaf)
    assert (split["regression_gd/diverged_at"][:, 2] >= 0).all()  # a diverging run among them


def test_devices_must_be_jax_devices():
    with pytest.raises(ValueError, match="devices must be a non-empty sequence of jax devices"):
        gdjax.sweep(gdjax.xor(), "gd", [0.5], steps=3, devices=[])
    with pytest.raises(ValueError, match="devices must be a non-empty sequence of jax devices"):
        gdjax.sweep(gdjax.xor(), "gd", [0.5], steps=3, devices=["cpu:0"])


def _devices_seen(env_changes: dict, script: str = "import gdjax, jax; print(len(jax.devices()))") -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "GDJAX_CPU_DEVICES")}
    env.update(env_changes, JAX_PLATFORMS="cpu")
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip() + done.stderr


@pytest.mark.slow  # 9 s measured on 2 busy cores
def test_gdjax_asks_for_one_cpu_device_per_core_unless_told():
    cores = len(os.sched_getaffinity(0))
    assert _devices_seen({}) == str(cores)
    assert _devices_seen({"GDJAX_CPU_DEVICES": "1"}) == "1"
    assert _devices_seen({"GDJAX_CPU_DEVICES": "3"}) == "3"
    assert _devices_seen({"XLA_FLAGS": "--xla_force_host_platform_device_count=5"}) == "5"
    assert "not a number of CPU devices" in _devices_seen({"GDJAX_CPU_DEVICES": "all"})


@pytest.mark.slow  # 11 s measured on 2 busy cores
def test_a_sweep_says_once_how_to_use_the_cores_when_jax_started_first():
    script = textwrap.dedent(
        """
        import warnings
        import jax
        jax.numpy.zeros(1)  # JAX's backend starts before gdjax is imported
        import gdjax
        warnings.simplefilter("always")
        for _ in range(2):
            gdjax.sweep(gdjax.xor(), "gd", [0.5], steps=3)
        """
    )
    said = _devices_seen({"GDJAX_CPU_DEVICES": "2"}, script)
    assert said.count("runs on 1 CPU device while 2 cores are available") == 1, said
    assert "GDJAX_CPU_DEVICES=1 silences this" in said
