"""Performance profiles (bench.profiles): a hand-computed example, their properties, profiles.csv, plots."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import tables
from bench.profiles import MEASURES, performance_profiles, profile_plots

INF = np.inf
RESULTS = Path(__file__).parents[1] / "results"
# steps to target of optimizers a, b, c: p1..p3 solved by one at least (b misses p3, c misses p2),
# p4 by none, p5 not run by c
STEPS = {
    "p1": {"a": 10, "b": 20, "c": 40},
    "p2": {"a": 30, "b": 15, "c": INF},
    "p3": {"a": 5, "b": INF, "c": 5},
    "p4": {"a": INF, "b": INF, "c": INF},
    "p5": {"a": 1, "b": 2},
}
SECONDS_A_STEP = {"a": 1.0, "b": 0.125, "c": 1.0}  # b's steps are 8x cheaper


def _tuned(steps=STEPS) -> pd.DataFrame:
    rows = [
        {
            "problem": problem,
            "optimizer": optimizer,
            "steps_to_target_median": work,
            "examples_to_target_median": 100 * work,
            "seconds_to_target_median": work * SECONDS_A_STEP[optimizer],
        }
        for problem, cells in steps.items()
        for optimizer, work in cells.items()
    ]
    return pd.DataFrame(rows)


def _profile(frame: pd.DataFrame, quantity: str, optimizer: str) -> np.ndarray:
    """The (tau, rho) breakpoints of one profile, shape (breakpoints, 2)."""
    rows = frame[(frame["quantity"] == quantity) & (frame["optimizer"] == optimizer)]
    return rows[["tau", "rho"]].to_numpy(float)


def _is(profile: np.ndarray, expected: list[tuple[float, float]]) -> bool:
    return profile.shape == np.shape(expected) and np.allclose(profile, expected, rtol=1e-12, atol=0)


def test_hand_computed_profiles_of_three_problems_and_three_optimizers():
    frame = performance_profiles(_tuned())
    # ratios to the best: p1 (1, 2, 4), p2 (2, 1, inf), p3 (1, inf, 1)
    assert _is(_profile(frame, "gradient_evaluations", "a"), [(1, 2 / 3), (2, 1)])
    assert _is(_profile(frame, "gradient_evaluations", "b"), [(1, 1 / 3), (2, 2 / 3)])
    assert _is(_profile(frame, "gradient_evaluations", "c"), [(1, 1 / 3), (4, 2 / 3)])
    # examples are steps x 100 for everyone: the same ratios
    assert (_profile(frame, "examples", "c") == _profile(frame, "gradient_evaluations", "c")).all()
    # seconds: b's cheap steps make it the best on p1 and p2; p1 (10, 2.5, 40), p2 (30, 1.875, inf),
    # p3 (5, inf, 5): ratios (4, 1, 16), (16, 1, inf), (1, inf, 1)
    assert _is(_profile(frame, "seconds", "a"), [(1, 1 / 3), (4, 2 / 3), (16, 1)])
    assert _is(_profile(frame, "seconds", "b"), [(1, 2 / 3)])
    assert _is(_profile(frame, "seconds", "c"), [(1, 1 / 3), (16, 2 / 3)])
    counts = frame[["n_optimizers", "n_problems", "unsolved_problems", "not_compared_problems"]]
    assert (counts.drop_duplicates().to_numpy() == [[3, 3, 1, 1]]).all()


def test_profiles_depend_on_the_optimizers_compared():
    both = performance_profiles(_tuned())
    without_b = performance_profiles(_tuned(), optimizers=["a", "c"])
    # without b, a is the best on p2 and p5 (c did not run p5: still not compared)
    assert _is(_profile(without_b, "gradient_evaluations", "a"), [(1, 1.0)])
    assert not _is(_profile(both, "gradient_evaluations", "a"), [(1, 1.0)])
    # with only a and b, p5 joins and p4 is still unsolved
    two = performance_profiles(_tuned(), optimizers=["a", "b"])
    assert set(two["n_problems"]) == {4}
    assert set(two["not_compared_problems"]) == {0}


@pytest.mark.parametrize("folder", ["cpu", "cpu-quick"])
def test_rho_never_decreases_and_reaches_the_fraction_solved(folder):
    tuned = tables.read_table(RESULTS / folder / "tuned.csv")
    networks = tables.read_table(RESULTS / folder / "networks-summary.csv")
    frame = performance_profiles(tuned, networks)
    assert set(frame["quantity"]) == set(MEASURES)
    for (quantity, optimizer), rows in frame.groupby(["quantity", "optimizer"]):
        assert rows["tau"].iloc[0] == 1
        assert (np.diff(rows["tau"]) > 0).all()
        assert (np.diff(rows["rho"]) >= 0).all()
        assert rows["rho"].between(0, 1).all()
        # the last rho: the fraction of the problems (run by all, solved by one) this optimizer solved
        columns = MEASURES[quantity]
        work = pd.concat(
            [tuned.pivot(index="problem", columns="optimizer", values=columns[0]),
             networks.pivot(index="problem", columns="optimizer", values=columns[1])]
        ).dropna()  # fmt: skip
        work = work[np.isfinite(work).any(axis=1)]
        assert rows["n_problems"].iloc[0] == len(work)
        assert rows["rho"].iloc[-1] == pytest.approx(np.isfinite(work[optimizer]).mean())


def test_a_problem_nobody_solves_only_counts_and_nothing_solved_gives_nan():
    frame = performance_profiles(_tuned({"p": {"a": INF, "b": INF}}))
    assert len(frame) == 2 * len(MEASURES)  # one row per (quantity, optimizer): tau 1, rho NaN
    assert (frame["tau"] == 1).all()
    assert frame["rho"].isna().all()
    assert set(frame["unsolved_problems"]) == {1}
    assert set(frame["n_problems"]) == {0}
    assert profile_plots(frame) == {}


def test_networks_problems_join_and_a_repeated_cell_is_refused():
    networks = pd.DataFrame(
        {
            "problem": ["net"] * 3,
            "optimizer": ["a", "b", "c"],
            "gradient_evaluations_to_target_median": [8.0, 4.0, INF],
            "examples_to_target_median": [8.0, 4.0, INF],
            "seconds_to_target_median": [8.0, 4.0, INF],
        }
    )
    frame = performance_profiles(_tuned(), networks)
    assert set(frame["n_problems"]) == {4}
    assert _is(_profile(frame, "gradient_evaluations", "b"), [(1, 2 / 4), (2, 3 / 4)])
    with pytest.raises(ValueError, match=r"'p1'.*'a'.*more than one row"):
        performance_profiles(_tuned(), networks.assign(problem="p1"))


def test_profiles_csv_round_trips_through_the_schema(tmp_path):
    frame = performance_profiles(_tuned())
    (tmp_path / "profiles.csv").write_text(tables.table_csv("profiles.csv", frame))
    read = tables.read_table(tmp_path / "profiles.csv")
    assert list(read.columns) == list(tables.SCHEMA["profiles.csv"])
    assert np.allclose(read["rho"], frame.sort_values(["quantity", "optimizer", "tau"])["rho"])
    assert "depends on the set" in tables.SCHEMA["profiles.csv"]["n_optimizers"]


def test_one_plot_per_quantity():
    images = profile_plots(performance_profiles(_tuned()))
    assert sorted(images) == [
        "profile-examples.png",
        "profile-gradient-evaluations.png",
        "profile-seconds.png",
    ]
    assert all(image.startswith(b"\x89PNG") for image in images.values())
