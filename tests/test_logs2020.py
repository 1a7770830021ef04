"""The 2020 study's shipped logs (results/logs2020/logs.csv) and their comparison with our as-run grid."""
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from ticketlib.analysis import logs2020
from ticketlib.analysis.results import load_grid
from ticketlib.names import SEED2020_INITS

matplotlib.use("Agg")
RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.fixture(scope="module")
def logs():
    return logs2020.read_logs(RESULTS)


def test_the_shipped_logs_hold_every_lenet_run_of_the_2020_study(logs):
    assert len(logs) == 10 * 11 * 100
    assert set(logs.scheme) == set(SEED2020_INITS)
    runs = logs.groupby("scheme").seed.agg(lambda s: sorted(set(s)))
    assert all(seeds == list(range(42, 53)) for seeds in runs)
    assert (logs.groupby(["scheme", "seed"]).epoch.agg(list) == [list(range(100))] * 110).all()
    assert (logs["round"] == logs.epoch // 5).all()
    assert logs[["logged_train_acc", "logged_test_acc"]].stack().between(0, 100).all()


def test_weights_remaining_fall_by_round_and_are_one_ladder(logs):
    for _, run in logs.groupby(["scheme", "seed"]):
        assert run.params_remaining.is_monotonic_decreasing
        assert run.groupby("round").params_remaining.nunique().eq(1).all()  # pruned only at round starts
    ladder = logs.groupby("round").params_remaining.agg(["min", "max"])
    assert (ladder["min"] == ladder["max"]).all() and ladder["max"].iloc[0] == 100
    assert ladder["max"].iloc[-1] == pytest.approx(1.447057)


def hundredths(accuracy: pd.Series) -> pd.Series:
    return pd.Series(np.isclose(accuracy * 100, np.round(accuracy * 100)))


def test_the_logged_accuracies_are_swapped(logs):
    """Test-set accuracy counts out of 10,000 (whole hundredths of a percent), training-set accuracy out of 60,000."""
    assert hundredths(logs.logged_train_acc).all()
    assert (~hundredths(logs.logged_test_acc)).mean() > 0.8


def test_the_2020_ladder_is_our_as_run_ladder(logs):
    ours = load_grid("mnist_seed2020_as_run", RESULTS).table.groupby("round").weights_remaining.first()
    theirs = logs.groupby("round").params_remaining.first()
    assert np.allclose(theirs, ours.loc[theirs.index], atol=1e-6)


def tiny_example():
    """2020: scheme normal, 2 seeds, round 0 (an earlier epoch that must be ignored, then the round's last).
    Ours: 3 seeds, two evaluations in round 0 (the last counts); and a scheme the logs lack."""
    logs = pd.DataFrame({
        "scheme": "normal", "seed": [42, 42, 43, 43], "epoch": [3, 4, 3, 4], "round": 0, "sparsity": 0.0,
        "params_remaining": 100.0, "logged_train_acc": [10.0, 80.0, 10.0, 81.0],
        "logged_test_acc": [10.0, 97.0, 10.0, 99.0]})[logs2020.COLUMNS]
    seeds = [0, 1, 2]
    last = pd.DataFrame({"init": "normal", "seed": seeds, "iteration": 5000,
                         "train_acc": [0.97, 0.98, 0.99], "test_acc": [0.90, 0.91, 0.92]})
    early = last.assign(iteration=1000, train_acc=0.5, test_acc=0.5)
    other = last.assign(init="uniform")
    table = pd.concat([last, early, other], ignore_index=True).assign(
        round=0, weights_remaining=100.0, run_id=lambda t: t.init + t.seed.astype(str))
    return logs, table


def test_agreement_on_a_hand_made_example():
    agreed = logs2020.agreement(*tiny_example()).set_index("split")
    assert list(agreed.index) == ["test", "train"] and set(agreed.scheme) == {"normal"}
    train, test = agreed.loc["train"], agreed.loc["test"]
    # training set: the log's "test" 97, 99 against our train_acc 97, 98, 99 → the same mean
    assert (train.mean_2020, train.mean_ours, train.difference) == pytest.approx((98, 98, 0))
    half = scipy_stats.t.ppf(0.975, 2) / np.sqrt(3)  # our sd is 1 point
    assert (train.low_ours, train.high_ours) == pytest.approx((98 - half, 98 + half))
    assert train.inside_ours and train.welch_agrees
    # test set: the log's "train" 80, 81 against our test_acc 90, 91, 92 → 10.5 points apart
    assert (test.mean_2020, test.mean_ours, test.difference) == pytest.approx((80.5, 91, -10.5))
    assert not test.inside_ours and not test.welch_agrees
    assert (test.seeds_2020, test.seeds_ours) == (2, 3)


def test_welch_interval_is_scipys():
    a, b = [80.0, 81.0], [90.0, 91.0, 92.0]
    expected = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert logs2020.welch_interval(a, b) == pytest.approx(tuple(expected))


def test_summary_and_overlay_of_the_example():
    agreed = logs2020.agreement(*tiny_example())
    summary = logs2020.summary(agreed).set_index("split")
    assert summary.loc["train", "median_abs_difference"] == pytest.approx(0)
    assert summary.loc["test", "median_abs_difference"] == pytest.approx(10.5)
    assert (summary.loc["train", "welch_agrees"], summary.loc["test", "welch_agrees"]) == (1, 0)
    fig = logs2020.overlay(agreed, "test")
    assert [ax.get_title() for ax in fig.axes] == ["unscaled: N(0, 1), U(0, 1)"]
    values = logs2020.agreement_values(agreed, down_to=1.0)
    assert (values["welch_agrees"], values["cells"]) == ("50.0", len(agreed))  # the train split agrees, test not
    assert values["max_median_gap"] == "10.50" and values["median_gap_below"] == "nan"  # every round lies above 1%


def test_the_module_imports_no_torch():
    import subprocess
    import sys
    code = "import sys, ticketlib.analysis.logs2020; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"
