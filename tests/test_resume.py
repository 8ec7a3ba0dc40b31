"""Resume: an interrupted run, run again, skips what it finished and writes the same tables."""

import pytest
from test_bench import SMALL_RUN

from bench import runner, tables
from bench.cli import main

CELLS = 4  # problems x optimizers


@pytest.fixture
def counted_cells(monkeypatch):
    """Count the cells actually run; ``interrupt_at`` (1-based) makes that cell press Ctrl-C."""
    real = runner._run_cell
    state = {"calls": 0, "interrupt_at": None}

    def run_cell(*args):
        state["calls"] += 1
        if state["calls"] == state["interrupt_at"]:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(runner, "_run_cell", run_cell)
    return state


def _tables(folder):
    """The run's tables without wall times (timing.csv, seconds_* columns): a resumed run keeps the
    cached cells' timings, a whole run measures them all again."""
    return {
        name: tables.read_table(folder / name).filter(regex="^(?!seconds_)").to_csv(index=False)
        for name in tables.RUN_TABLES
        if name != "timing.csv"
    }


@pytest.mark.slow  # 38 s measured on 2 busy cores
def test_resumed_run_skips_finished_cells_and_equals_an_uninterrupted_one(tmp_path, counted_cells):
    assert main([*SMALL_RUN, "--out", str(tmp_path / "whole")]) == 0
    assert counted_cells["calls"] == CELLS
    assert not list((tmp_path / "whole").glob(".*.partial"))  # a complete run keeps no pieces

    counted_cells.update(calls=0, interrupt_at=3)
    out = tmp_path / "resumed"
    assert main([*SMALL_RUN, "--out", str(out)]) == 130
    assert not (out / "cpu-custom").exists()
    assert len(list((out / ".cpu-custom.partial").iterdir())) >= 1 + 2  # the floor, two cells

    counted_cells.update(calls=0, interrupt_at=None)
    assert main([*SMALL_RUN, "--out", str(out)]) == 0
    assert counted_cells["calls"] == CELLS - 2
    assert _tables(out / "cpu-custom") == _tables(tmp_path / "whole" / "cpu-custom")
    timing = tables.read_table(out / "cpu-custom" / "timing.csv")
    assert len(timing) == len(tables.read_table(tmp_path / "whole" / "cpu-custom" / "timing.csv"))
    assert not (out / ".cpu-custom.partial").exists()


@pytest.mark.slow  # 55 s measured on 2 busy cores
def test_fresh_and_changed_options_run_everything_again(tmp_path, counted_cells):
    counted_cells.update(interrupt_at=3)
    assert main([*SMALL_RUN, "--out", str(tmp_path)]) == 130
    counted_cells.update(calls=0, interrupt_at=None)
    assert main([*SMALL_RUN, "--steps", "200", "--out", str(tmp_path)]) == 0  # another configuration
    assert counted_cells["calls"] == CELLS
    counted_cells.update(calls=0, interrupt_at=3)
    assert main([*SMALL_RUN, "--out", str(tmp_path)]) == 130
    counted_cells.update(calls=0, interrupt_at=None)
    assert main([*SMALL_RUN, "--fresh", "--out", str(tmp_path)]) == 0
    assert counted_cells["calls"] == CELLS


def test_a_problem_is_fingerprinted_by_what_its_loss_captured():
    import gdjax
    from bench.cache import problem_fingerprint

    def fingerprint(k):
        return problem_fingerprint(gdjax.quadratic(k)._replace(name="same name"), seeds=[0])

    assert fingerprint(10.0) == fingerprint(10.0)
    assert fingerprint(10.0) != fingerprint(100.0)  # same code, another captured matrix
