"""`python -m bench devices`: one device against all, the scaling series, and other machines' rows kept.

Runs the quick profile in a subprocess whose XLA sees 2 host devices.
"""

import os
import subprocess
import sys

import pandas as pd
import pytest

from bench import tables
from bench.devices import merge

OTHER_MACHINE = "Some Other CPU (64 cores)"


def _run_devices(out, *args):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    return subprocess.run(
        [sys.executable, "-m", "bench", "devices", "--quick", "--out", str(out), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def _other_machine_rows(name: str) -> pd.DataFrame:
    columns = tables.SCHEMA[name]
    row = {column: 1 for column in columns}
    text = {"machine": OTHER_MACHINE, "device": "gpu-nvidia-h200", "series": "learning_rates"}
    row.update({column: value for column, value in text.items() if column in columns})
    row.update({column: "xor" if column == "problem" else "gd" for column in ("problem", "optimizer")})
    return pd.DataFrame([row])


@pytest.fixture(scope="module")
def device_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    for name in tables.MACHINE_TABLES:  # a table from another machine, committed earlier
        (out / name).write_text(tables.table_csv(name, _other_machine_rows(name)))
    completed = _run_devices(out)
    assert completed.returncode == 0, completed.stderr
    return out


@pytest.mark.slow  # 140 s measured on 2 busy cores
def test_compares_one_device_with_all_and_keeps_other_machines(device_results):
    devices = tables.read_table(device_results / "devices.csv")
    mine = devices[devices["machine"] != OTHER_MACHINE]
    assert set(zip(mine["device"], mine["device_count"], strict=True)) == {("cpu", 1), ("cpu", 2)}
    assert len(mine) == 2 * 2 * 4  # device groups x problems x optimizers
    both = mine.set_index(["problem", "optimizer", "device_count"])["ns_per_lr_step"]
    two = mine[mine["device_count"] == 2].set_index(["problem", "optimizer"])
    ratio = both.xs(1, level="device_count") / both.xs(2, level="device_count")
    assert (two["speedup_over_one_cpu"] - ratio).abs().max() < 1e-3 * ratio.max()
    assert (devices["machine"] == OTHER_MACHINE).sum() == 1


@pytest.mark.slow  # shares the module's devices run (80 s measured on 2 cores)
def test_scaling_series_cover_grid_and_data_size(device_results):
    scaling = tables.read_table(device_results / "scaling.csv")
    mine = scaling[scaling["machine"] != OTHER_MACHINE]
    assert set(mine["device_count"]) == {2}  # the series run on all devices
    rates = mine[mine["series"] == "learning_rates"]
    assert set(rates["problem"]) == {"linear_regression", "xor"}
    assert sorted(set(rates["n_runs"])) == [1, 8, 64]
    examples = mine[mine["series"] == "examples"]
    assert sorted(set(examples["n_examples"])) == [100, 1000]
    assert sorted(set(examples["n_features"])) == [2, 17]
    assert (scaling["machine"] == OTHER_MACHINE).sum() == 1


@pytest.mark.slow  # shares the module's devices run (80 s measured on 2 cores)
def test_writes_report_and_plots(device_results):
    report = (device_results / "devices.md").read_text()
    assert f"| {OTHER_MACHINE} | gpu-nvidia-h200 x1 |" in report
    for image in ("scaling-learning-rates.png", "scaling-examples.png"):
        assert (device_results / image).read_bytes().startswith(b"\x89PNG")
        assert f"![{image}]({image})" in report


@pytest.mark.slow  # 135 s measured on 2 busy cores
def test_rerun_replaces_this_machines_rows_only(device_results, tmp_path):
    for name in [*tables.MACHINE_TABLES, "devices.md"]:
        (tmp_path / name).write_bytes((device_results / name).read_bytes())
    assert _run_devices(tmp_path).returncode == 0
    for name in tables.MACHINE_TABLES:
        before = tables.read_table(device_results / name)
        after = tables.read_table(tmp_path / name)
        assert len(after) == len(before)
        assert (after["machine"] == OTHER_MACHINE).sum() == 1


def test_damaged_table_is_refused_and_left_as_it_was(tmp_path):
    (tmp_path / "devices.csv").write_text("machine,device\nhalf a row")
    completed = _run_devices(tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.startswith("bench: error: ")
    assert "devices.csv" in completed.stderr
    assert len(completed.stderr.strip().splitlines()) == 1
    assert (tmp_path / "devices.csv").read_text() == "machine,device\nhalf a row"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["devices.csv"]


def test_merge_replaces_rows_of_the_machines_measured_now():
    previous = pd.DataFrame({"machine": ["a", "b", "b"], "value": [1, 2, 3]})
    new = pd.DataFrame({"machine": ["b"], "value": [4]})
    merged = merge(previous, new)
    assert merged.to_dict("list") == {"machine": ["a", "b"], "value": [1, 4]}
    assert merge(None, new) is new
