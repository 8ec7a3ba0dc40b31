"""Submitting your own optimizer: search spaces, the same budget for all, paired verdicts, bad submissions."""

import numpy as np
import pandas as pd
import pytest

import gdjax
from bench import submit
from bench.cli import main
from bench.runner import run_suite
from bench.tables import read_table
from gdjax.search import SEARCH_SPACES, check_search_space, draw_points, unit_points

ADAM_COPY = "submissions.adam_copy:make_opt"


# --- search spaces and the points drawn ---


def test_a_latin_hypercube_puts_one_point_in_each_stratum_of_every_column():
    unit = unit_points(16, 3, seed=0)
    assert unit.shape == (16, 3)
    for column in unit.T:
        assert sorted(np.floor(column * 16).astype(int)) == list(range(16))


def test_points_lie_in_their_ranges_on_their_scales_and_depend_on_the_space_not_the_optimizer():
    space = {"learning_rate": ("log", 1e-4, 1.0), "b1": ("log1m", 0.5, 0.999), "eps": ("linear", 0.0, 2.0)}
    points = draw_points(space, 40)
    rates, b1, eps = (np.array([p[name] for p in points]) for name in ("learning_rate", "b1", "eps"))
    assert rates.min() >= 1e-4
    assert rates.max() <= 1.0
    assert b1.min() >= 0.5
    assert b1.max() <= 0.999
    assert eps.min() >= 0
    assert eps.max() <= 2
    # log1m: log(1 - b1) spread evenly, a point in each of 40 equal strata of it
    strata = np.floor((np.log1p(-b1) - np.log1p(-0.5)) / (np.log1p(-0.999) - np.log1p(-0.5)) * 40)
    assert sorted(strata.astype(int)) == list(range(40))
    # the same space gives the same points, whoever declares it: adam and a copy of it
    assert draw_points(SEARCH_SPACES["adam"], 8) == draw_points(dict(SEARCH_SPACES["adam"]), 8)


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"b1": ("log", 0.1, 0.9)}, "must include 'learning_rate'"),
        ({"learning_rate": ("cubic", 1e-3, 1.0)}, "scale one of log, linear, log1m"),
        ({"learning_rate": ("log", 1.0, 1e-3)}, "finite numbers low < high"),
        ({"learning_rate": ("log", 0.0, 1.0)}, "needs 0 < low"),
        ({"learning_rate": ("log", 1e-3, 1.0), "momentum": ("log1m", 0.5, 1.0)}, "0 <= low < high < 1"),
        ({"learning_rate": ("log", 1e-3, 1.0), "b3": ("linear", 0.0, 1.0)}, "'b3' is not a numeric argument"),
        (
            {"learning_rate": ("log", 1e-3, 1.0), "nesterov": ("linear", 0.0, 1.0)},
            "'nesterov' is not a numeric",
        ),
        ([("learning_rate", "log", 1e-3, 1.0)], "must be a non-empty dict"),
    ],
)
def test_a_bad_search_space_is_refused_naming_what_is_wrong(space, message):
    with pytest.raises(ValueError, match="search space of momentum") as error:
        check_search_space(space, gdjax.OPTIMIZERS["momentum"], "momentum")
    assert message in str(error.value)


# --- the same budget, the same bits ---


def test_every_optimizer_is_tuned_on_the_same_number_of_points_whatever_its_space():
    optimizers = [*submit.BASELINES, ADAM_COPY]
    spaces = {name: gdjax.declarations(name).search_space for name in optimizers}
    assert len(spaces["momentum"]) == 2
    assert len(spaces["adam"]) == 1
    cells = submit._cells(optimizers, spaces, ["xor", "rosenbrock"], "quick")
    assert {cell.n_points() for cell in cells} == {submit.N_POINTS["quick"]}
    copy, adam = (
        next(c for c in cells if c.problem == "xor" and c.optimizer == o) for o in (ADAM_COPY, "adam")
    )
    assert copy.points == adam.points


def test_a_submitted_copy_of_adam_gives_adams_numbers_to_the_last_bit():
    """The same space and seeds: tuning runs, the best point and its fresh seeds equal adam's, every bit."""
    optimizers = ["adam", ADAM_COPY]
    spaces = {name: gdjax.declarations(name).search_space for name in optimizers}
    problems = {"xor": gdjax.xor(), "rosenbrock": gdjax.rosenbrock()}
    cells = [c._replace(steps=400) for c in submit._cells(optimizers, spaces, problems, "quick")]
    tables = run_suite(cells, dtype="float32", repeats=1, problems=problems)
    for frame in (tables.convergence, tables.tuned, tables.fresh):
        frame = frame.filter(regex="^(?!seconds_)")  # wall times (steps x the cell's measured time a step)
        mine, theirs = (
            frame[frame["optimizer"] == name].drop(columns="optimizer") for name in (ADAM_COPY, "adam")
        )
        assert len(mine)
        assert mine.reset_index(drop=True).equals(theirs.reset_index(drop=True))
    budget = submit.tuning_budget(tables.convergence)
    assert set(budget["points"]) == {submit.N_POINTS["quick"]}  # counted in the runs, not set
    assert budget.groupby("problem")["seeds"].nunique().eq(1).all()
    work = submit.per_seed_work(tables.fresh, {ADAM_COPY: 1, "adam": 1})
    verdicts = submit.paired_verdicts(work, ADAM_COPY, ["adam"])
    assert set(verdicts["verdict"]) <= {"the same", "neither reached the target"}


# --- paired verdicts ---


def _work(rows, target_resolution=1, resolution=100.0):
    frame = pd.DataFrame(rows, columns=["problem", "optimizer", "seed", "work"])
    return frame.assign(target_resolution=target_resolution, resolution=resolution)


def test_paired_verdicts_use_the_ratio_on_each_shared_seed():
    seeds = range(1000, 1010)
    rng = np.random.default_rng(0)
    base = rng.uniform(100, 1000, 10)  # seeds differ a lot; the ratio on each seed is what counts
    rows = [("p", "base", s, b) for s, b in zip(seeds, base, strict=True)]
    rows += [("p", "new", s, 0.8 * b) for s, b in zip(seeds, base, strict=True)]
    verdict = submit.paired_verdicts(_work(rows), "new", ["base"]).iloc[0]
    assert verdict["verdict"] == "faster"
    assert verdict["n_pairs"] == 10
    assert verdict["work_ratio_median"] == pytest.approx(0.8)
    # unpaired, the two sets of values overlap widely: only the pairing makes this a verdict
    assert (0.8 * base).max() > base.min()
    noisy = [("p", "new", s, b * f) for s, b, f in zip(seeds, base, [0.5, 2] * 5, strict=True)]
    verdict = submit.paired_verdicts(_work(rows[:10] + noisy), "new", ["base"]).iloc[0]
    assert verdict["verdict"] == "within noise"


@pytest.mark.parametrize(
    ("new", "base", "verdict", "ratio"),
    [
        (50.0, 100.0, "faster", 0.5),
        (300.0, 100.0, "slower", 3.0),
        (100.0, 100.0, "the same", 1.0),
        (100.0, np.inf, "faster", 0.0),
        (np.inf, 100.0, "slower", np.inf),
        (0.0, 0.0, "the same", 1.0),  # both at the target from the start
    ],
)
def test_deterministic_pairs_are_compared_exactly(new, base, verdict, ratio):
    row = submit.paired_verdicts(_work([("p", "new", 0, new), ("p", "base", 0, base)]), "new", ["base"]).iloc[
        0
    ]
    assert (row["verdict"], row["work_ratio_median"], row["exact"], row["n_pairs"]) == (
        verdict,
        ratio,
        True,
        1,
    )


def test_deterministic_pairs_observed_coarsely_are_within_resolution_and_neither_is_said():
    coarse = _work(
        [("p", "new", 0, 1000.0), ("p", "base", 0, 1050.0)], target_resolution=100, resolution=100.0
    )
    row = submit.paired_verdicts(coarse, "new", ["base"]).iloc[0]
    assert (row["verdict"], row["exact"]) == ("within resolution", False)
    far = coarse.assign(work=[1000.0, 1500.0])
    assert submit.paired_verdicts(far, "new", ["base"]).iloc[0]["verdict"] == "faster"
    never = _work([("p", "new", 0, np.inf), ("p", "base", 0, np.inf)])
    row = submit.paired_verdicts(never, "new", ["base"]).iloc[0]
    assert (row["verdict"], row["n_pairs"], row["n_neither"]) == ("neither reached the target", 0, 1)


def test_seeds_neither_reached_are_left_out_so_a_submission_that_never_reaches_is_slower():
    """19 of 32 seeds reached by the baseline only, 13 by neither: slower, not 'within noise'."""
    rows = [("p", "base", s, 1000.0 if s < 19 else np.inf) for s in range(32)]
    rows += [("p", "new", s, np.inf) for s in range(32)]
    row = submit.paired_verdicts(_work(rows), "new", ["base"]).iloc[0]
    assert (row["verdict"], row["n_pairs"], row["n_neither"]) == ("slower", 19, 13)
    assert row["work_ratio_ci_low"] == np.inf


def test_a_deterministic_side_is_paired_with_each_seed_of_the_other_and_few_seeds_say_so():
    rows = [("p", "new", 0, 100.0)] + [("p", "base", s, 400.0 + s) for s in range(10)]
    row = submit.paired_verdicts(_work(rows), "new", ["base"]).iloc[0]
    assert (row["n_pairs"], row["exact"], row["verdict"]) == (10, False, "faster")
    few = [("p", "new", 0, 100.0)] + [("p", "base", s, 400.0) for s in range(3)]
    assert submit.paired_verdicts(_work(few), "new", ["base"]).iloc[0]["verdict"] == "too few seeds to say"


def test_work_counts_the_declared_gradient_evaluations_a_step_and_never_as_infinite():
    assert gdjax.declarations("submissions.sam_like:make_opt").gradients_per_step == 2
    fresh = pd.DataFrame(
        {
            "problem": "p",
            "optimizer": ["submissions.sam_like:make_opt", "sgd", "sgd", "sgd", "adam"],
            "seed": [0, 0, 1, 2, 0],
            "steps_to_target": [3, 300, -1, 5, 20],
            "examples_to_target": [300, 300, -1, 5, 2000],
            # reached, then diverged: not reached; a network's row (no divergence column there): NaN
            "diverged_at": [-1, -1, -1, 7, np.nan],
            "target_resolution": [1, 100, 100, 100, 10],
            "examples_a_step": [100, 1, 1, 1, 100],
        }
    )
    work = submit.per_seed_work(fresh, {"submissions.sam_like:make_opt": 2, "sgd": 1, "adam": 1})
    assert work["work"].tolist() == [600.0, 300.0, np.inf, np.inf, 2000.0]
    assert work["resolution"].tolist() == [200.0, 100.0, 100.0, 100.0, 1000.0]
    # the profile counts them too: on seed 0 sam_like needed 600, sgd 300
    profile = submit.work_profiles(work.iloc[:2], ["submissions.sam_like:make_opt", "sgd"])
    assert set(profile["quantity"]) == {"work"}
    at_one = profile[profile["tau"] == 1].set_index("optimizer")["rho"]
    assert at_one.to_dict() == {"submissions.sam_like:make_opt": 0.0, "sgd": 1.0}


def test_declarations_come_from_the_factory_first_then_the_module_the_spec_names():
    own = gdjax.declarations("submissions.declared_twice:own")
    assert own.search_space == {"learning_rate": ("log", 1e-2, 10.0)}
    assert own.gradients_per_step == 3
    partial = gdjax.declarations("submissions.declared_twice:adam")  # a partial: declared by the named module
    assert partial.search_space == {"learning_rate": ("log", 1e-3, 1.0)}
    assert partial.gradients_per_step == 2
    assert gdjax.declarations("adam").search_space == SEARCH_SPACES["adam"]  # the registered one, by name


@pytest.mark.parametrize("spec", ["submissions.noisy:make_opt", "submissions.line_search:make_opt"])
def test_stochastic_and_line_search_submissions_are_taken_and_timed(spec):
    """A factory taking a key gets one; an update needing the loss gets value, grad and value_fn."""
    from bench.baselines import loop_seconds_and_cost

    factory, space = submit.load_submission(spec)
    assert space == gdjax.declarations(spec).search_space
    seconds, cost = loop_seconds_and_cost(
        gdjax.rosenbrock(), factory, 0.1, steps=3, repeats=1, dtype="float32", batch_size=None
    )
    assert len(seconds) == 1
    assert cost.flop > 0


# --- bad submissions: one line, exit 2, nothing written ---


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            "submissions.broken_import:make_opt",
            "cannot import 'submissions.broken_import' (ModuleNotFoundError",
        ),
        ("submissions.adam_copy:make_optimizer", "has no function 'make_optimizer'"),
        ("submissions.no_space:make_opt", "declares no search space: add SEARCH_SPACE"),
        (
            "submissions.unknown_argument:make_opt",
            "'b3' is not a numeric argument of the factory; its arguments",
        ),
        ("submissions.bad_range:make_opt", "'b1' on scale 'log1m' needs 0 <= low < high < 1"),
        (
            "submissions.not_a_transformation:make_opt",
            "must return an optax.GradientTransformation; got function",
        ),
        (
            "submissions.raises_when_called:make_opt",
            "make_opt(...) failed: NotImplementedError: not written yet",
        ),
        (
            "submissions.fails_when_stepping:make_opt",
            "failed on a tiny problem (Rosenbrock, 3 steps): optimizer "
            "'submissions.fails_when_stepping:make_opt' failed to build, start or step when traced: "
            "RuntimeError: this update is broken",
        ),
        ("adam", "give your optimizer as module:function"),
    ],
)
def test_a_bad_submission_is_refused_in_one_line_before_any_work(tmp_path, capsys, spec, message):
    out = tmp_path / "results"
    assert main(["submit", spec, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.err.startswith("bench: error: ")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


# --- your optimizer in the library and the main run ---


def test_module_function_names_an_optimizer_in_the_library_and_gives_the_registered_numbers():
    problem = gdjax.xor()
    mine = gdjax.sweep(problem, ADAM_COPY, learning_rates=[0.01, 0.1], steps=200, seeds=[0, 1])
    adam = gdjax.sweep(problem, "adam", learning_rates=[0.01, 0.1], steps=200, seeds=[0, 1])
    assert mine.optimizer == ADAM_COPY
    np.testing.assert_array_equal(mine.loss_curve, adam.loss_curve)


@pytest.mark.slow  # 95 s measured on 2 busy cores
def test_submit_writes_the_comparison_with_the_budget_counted_and_adam_copy_the_same_as_adam(tmp_path):
    assert main(["submit", ADAM_COPY, "--quick", "--out", str(tmp_path)]) == 0
    folder = tmp_path / "submit-submissions.adam_copy.make_opt-quick"
    tuned, networks = read_table(folder / "tuned.csv"), read_table(folder / "networks-summary.csv")
    assert set(tuned["tuning_points"]) == {submit.N_POINTS["quick"]}
    assert set(networks["tuning_points"]) == {submit.N_NETWORK_POINTS["quick"]}
    assert set(tuned["optimizer"]) == {*submit.BASELINES, ADAM_COPY}
    runs = read_table(folder / "networks.csv")  # every tuning run of the network, to the last digit written
    mine, theirs = (runs[runs["optimizer"] == name].drop(columns="optimizer") for name in (ADAM_COPY, "adam"))
    assert len(mine)
    assert mine.reset_index(drop=True).equals(theirs.reset_index(drop=True))
    paired = read_table(folder / "paired.csv")
    assert set(paired[paired["optimizer"] == "adam"]["verdict"]) <= {"the same", "neither reached the target"}
    network = paired[paired["problem"] == "digits_linear"].set_index("optimizer")["verdict"]
    assert network["adam"] == "the same"  # adam reaches the target on digits in the quick profile
    assert len(paired) == 5 * 4 + 3  # toys x baselines, and the network without gd
    page = (folder / "comparison.md").read_text()
    assert "## Verdicts" in page
    assert "![profile-work.png](profile-work.png)" in page
    assert (folder / "profile-work.png").is_file()


@pytest.mark.slow  # 8 s measured on 2 busy cores
def test_a_run_of_your_own_takes_module_function_and_its_declared_rates(tmp_path):
    argv = ["--problems", "rosenbrock", "--optimizers", f"adam,{ADAM_COPY}", "--steps", "300", "--seeds", "0"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    (folder,) = tmp_path.iterdir()
    convergence = read_table(folder / "convergence.csv")
    mine = convergence[convergence["optimizer"] == ADAM_COPY]
    _, low, high = SEARCH_SPACES["adam"]["learning_rate"]
    assert mine["learning_rate"].min() == pytest.approx(low)
    assert mine["learning_rate"].max() == pytest.approx(high)
