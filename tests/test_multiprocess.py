"""Several processes (jax.distributed, two on localhost, CPU): the same sweep, split over both, same results.

Each process is a subprocess with one host device; JAX's multi-process
runtime (gloo collectives on the CPU) joins them into one mesh of two
devices, each process running its share of the runs.
"""

import os
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pandas as pd
import pytest

import gdjax
from bench import cli
from bench.tables import read_metadata, read_table

ENV = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"}
# 3 seeds x 13 rates: 39 runs over 2 devices, an uneven split. A device holds whole tiles of
# 16 runs; the chunked sweep's memory limit (about 20 runs of about 3.9 KB a device) fits one
# tile, 10 rates (with every seed) over the 2 devices, so 2 chunks, the last padded.
LEARNING_RATES = [float(rate) for rate in np.geomspace(1e-3, 10.0, 13)]
SEEDS = [0, 1, 2]
CHUNK_MEMORY_LIMIT = 160_000
SCRIPT = textwrap.dedent(
    """
    import sys
    import jax
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    address, process_id, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    jax.distributed.initialize(address, num_processes=2, process_id=process_id)
    import numpy as np, gdjax
    assert len(jax.devices()) == 2 and len(jax.local_devices()) == 1, jax.devices()
    out = {}
    for name, memory_limit in [("whole", None), ("chunked", int(sys.argv[4]))]:
        program = gdjax.prepare_sweep(gdjax.xor(), "adam", eval(sys.argv[5]), steps=300,
                                      seeds=eval(sys.argv[6]), dtype="float64", memory_limit=memory_limit)
        res = program.run()
        out[name + "/chunk_size"] = program.chunk_size
        out[name + "/final_loss"] = res.final_loss
        out[name + "/diverged_at"] = res.diverged_at
        out[name + "/loss_curve"] = res.loss_curve
        leaves = jax.tree.leaves(res.params)
        out[name + "/params"] = np.concatenate([leaf.reshape(*leaf.shape[:2], -1) for leaf in leaves], -1)
    np.savez(path, **out)
    """
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run_processes(commands, timeout=300):
    """Start every command at once; wait for all; return (returncode, stdout, stderr) of each."""
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
        for command in commands
    ]
    try:
        outputs = [process.communicate(timeout=timeout) for process in processes]
    finally:
        for process in processes:
            process.kill()
    return [(process.returncode, out, err) for process, (out, err) in zip(processes, outputs, strict=True)]


@pytest.mark.slow  # 29 s measured on 2 busy cores
def test_sweep_over_two_processes_equals_one_process(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    paths = [tmp_path / f"process{i}.npz" for i in range(2)]
    arguments = [str(CHUNK_MEMORY_LIMIT), repr(LEARNING_RATES), repr(SEEDS)]
    finished = _run_processes(
        [sys.executable, "-c", SCRIPT, address, str(i), str(path), *arguments] for i, path in enumerate(paths)
    )
    for returncode, _, stderr in finished:
        assert returncode == 0, stderr
    res = gdjax.sweep(gdjax.xor(), "adam", LEARNING_RATES, steps=300, seeds=SEEDS, dtype="float64")
    params = np.concatenate([leaf.reshape(*leaf.shape[:2], -1) for leaf in jax.tree.leaves(res.params)], -1)
    for path in paths:  # every process gathered every run
        got = np.load(path)
        assert got["whole/chunk_size"] == len(LEARNING_RATES)
        assert 1 < got["chunked/chunk_size"] < len(LEARNING_RATES)
        for name in ("whole", "chunked"):
            np.testing.assert_allclose(got[f"{name}/final_loss"], res.final_loss, rtol=1e-12)
            np.testing.assert_array_equal(got[f"{name}/diverged_at"], res.diverged_at)
            np.testing.assert_allclose(got[f"{name}/loss_curve"], res.loss_curve, rtol=1e-12)
            np.testing.assert_allclose(got[f"{name}/params"], params, rtol=1e-12)


BENCH = [
    "--problems", "linear_regression", "--optimizers", "gd,adam", "--lrs", "1e-3:1e-2:5",
    "--seeds", "0,1,2", "--steps", "200", "--repeats", "1", "--dtype", "float64",
]  # fmt: skip


@pytest.mark.slow  # 107 s measured on 2 busy cores
def test_bench_over_two_processes_writes_once_the_same_tables(tmp_path):
    address = f"127.0.0.1:{_free_port()}"
    together, alone = tmp_path / "together", tmp_path / "alone"
    together.mkdir()
    command = [sys.executable, "-m", "bench", *BENCH]
    processes = ["--coordinator", address, "--num-processes", "2"]
    finished = _run_processes(
        [
            [*command, "--out", str(together / f"process{i}"), *processes, "--process-id", str(i)]
            for i in range(2)
        ]
        + [[*command, "--out", str(alone)]]
    )
    for returncode, _, stderr in finished:
        assert returncode == 0, stderr
    assert "process 1: done; process 0 writes" in finished[1][1]
    assert not (together / "process1").exists()  # only process 0 writes
    folder = "cpu-custom-float64"  # a float64 run has a folder of its own
    written = together / "process0" / folder
    assert read_metadata(written)["process_count"] == 2
    for name in ("convergence.csv", "summary.csv"):
        pd.testing.assert_frame_equal(read_table(written / name), read_table(alone / folder / name))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--coordinator", "127.0.0.1:1"], "--coordinator, --num-processes and --process-id go together"),
        (["--coordinator", "127.0.0.1:1", "--num-processes", "2", "--process-id", "2"], "--process-id must"),
        (["--coordinator", "127.0.0.1", "--num-processes", "2", "--process-id", "0"], "must be HOST:PORT"),
    ],
)
def test_bad_process_flags_are_refused(tmp_path, flags, message):
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "--out", str(tmp_path), *flags],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1
    assert message in completed.stderr


def test_busy_port_and_absent_coordinator_are_one_line_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "JOIN_TIMEOUT_S", 1)
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        flags = ["--out", str(tmp_path), "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
        assert cli.main([*flags, "--process-id", "0"]) == 2
    assert f"port {port} cannot be used here" in capsys.readouterr().err
    assert cli.main([*flags, "--process-id", "1"]) == 2  # the port is closed now: nobody answers
    assert f"no coordinator answered at 127.0.0.1:{port} in 1 s" in capsys.readouterr().err
