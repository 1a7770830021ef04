import numpy as np
import pandas as pd
import pytest
import torch

from ticketlib.imp import run_cohort
from ticketlib.stats import (best_versus_worst, bootstrap_ci, by_level, difference_matrix, holm,
                             initializer_summary, jaccard, matching_level, summary_table,
                             matching_level_ci, overlap_matrix, with_ci,
                             mask_overlap, nearest_round, paired_comparison, pairwise_comparisons,
                             random_jaccard)
from ticketlib.store import Store


def curve(accuracies_by_seed, levels=(100.0, 80.0, 64.0, 51.2)):
    """Early-stop rows for one init: accuracies_by_seed[seed][round]."""
    return pd.DataFrame([dict(init="x", condition="ticket", seed=s, round=r, weights_remaining=levels[r], test_acc=a)
                         for s, accs in enumerate(accuracies_by_seed) for r, a in enumerate(accs)])


def test_bootstrap_interval_covers_the_mean_and_shrinks_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.normal(0.7, 0.02, 5), rng.normal(0.7, 0.02, 500)
    lo_s, hi_s = bootstrap_ci(small)
    lo_l, hi_l = bootstrap_ci(large)
    assert lo_s < small.mean() < hi_s and lo_l < 0.7 < hi_l
    assert hi_l - lo_l < hi_s - lo_s
    assert np.isnan(bootstrap_ci([0.5])).all()


def test_bootstrap_interval_does_not_depend_on_row_order():
    values = np.random.default_rng(2).normal(0.6, 0.05, 5)
    assert bootstrap_ci(values) == bootstrap_ci(values[::-1]) == bootstrap_ci(np.roll(values, 2))


def test_by_level_reports_mean_and_interval_per_round():
    table = by_level(curve([[0.60, 0.62, 0.61, 0.55], [0.62, 0.64, 0.63, 0.57]]), "test_acc")
    assert list(table["round"]) == [0, 1, 2, 3] and list(table.seeds) == [2] * 4
    assert table["mean"].tolist() == pytest.approx([0.61, 0.63, 0.62, 0.56])
    assert (table.low <= table["mean"]).all() and (table["mean"] <= table.high).all()


def test_matching_level_is_the_sparsest_level_at_or_above_dense():
    assert matching_level(curve([[0.60, 0.62, 0.61, 0.55]])) == 64.0
    assert matching_level(curve([[0.60, 0.59, 0.61, 0.55]])) == 64.0  # a dip on the way is noise
    assert matching_level(curve([[0.60, 0.59, 0.58, 0.55]])) == 100.0
    assert matching_level(curve([[0.60, 0.59, 0.58, 0.55]]), tolerance=0.02) == 64.0
    assert matching_level(curve([[0.60, 0.62, 0.61, 0.55], [0.62, 0.60, 0.62, 0.57]])) == 64.0  # means over seeds
    point, low, high = matching_level_ci(curve([[0.60, 0.62, 0.61, 0.55], [0.60, 0.58, 0.57, 0.50],
                                                [0.60, 0.63, 0.62, 0.61]]))
    # seeds resampled as whole curves: seed 1 alone never matches (100), seed 2 alone matches at 51.2
    assert (point, low, high) == (64.0, 51.2, 100.0)


def test_nearest_round_on_log_scale():
    stops = curve([[0.6, 0.6, 0.6, 0.6]], levels=(100.0, 21.1, 7.0, 3.6))
    # the geometric midpoint of 7.0 and 3.6 is 5.02
    assert nearest_round(stops, 21) == 1 and nearest_round(stops, 5.1) == 2 and nearest_round(stops, 4.9) == 3


def test_paired_comparison_uses_seed_pairs():
    a = pd.Series([0.70, 0.72, 0.74, 0.71], index=[0, 1, 2, 3])
    b = a - 0.01 + pd.Series([0.001, -0.001, 0.0, 0.0005], index=[0, 1, 2, 3])
    result = paired_comparison(a, b)
    assert result["diff"] == pytest.approx(0.009875) and result["seeds"] == 4
    assert result["low"] > 0 and result["p"] < 0.001  # tiny paired noise: clearly different


def test_pairwise_comparisons_and_holm():
    rows = [dict(init=i, seed=s, round=1, test_acc=base + 0.001 * s)
            for i, base in (("a", 0.7), ("b", 0.7), ("c", 0.6)) for s in range(4)]
    rows[0]["test_acc"] += 0.0001  # break exact equality of a and b
    table = pairwise_comparisons(pd.DataFrame(rows), 1)
    assert list(zip(table.a, table.b)) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert table.loc[1, "diff"] == pytest.approx(0.1, abs=1e-4)
    assert holm(np.array([0.01, 0.04, 0.03, np.nan])).tolist()[:3] == pytest.approx([0.03, 0.06, 0.06])


def test_jaccard_and_its_random_baseline():
    a = {"w": torch.tensor([True, True, False, False])}
    b = {"w": torch.tensor([True, False, True, False])}
    assert jaccard(a, a) == 1.0 and jaccard(a, b) == pytest.approx(1 / 3)
    gen = torch.Generator().manual_seed(0)
    big = {"w": torch.rand(100_000, generator=gen) < 0.2}
    other = {"w": torch.rand(100_000, generator=gen) < 0.2}
    assert jaccard(big, other) == pytest.approx(random_jaccard(big), rel=0.03)  # 0.2² / (0.4 − 0.04) ≈ 0.111


def test_initializer_summary_and_overlap_matrix():
    levels = (100.0, 50.0, 21.0, 7.2)
    rows = [dict(init=i, condition="ticket", seed=s, round=r, weights_remaining=levels[r],
                 test_acc=base + bump[r] + 0.002 * s, iteration=[800, 600, 400, 700][r])
            for i, base in (("a", 0.60), ("b", 0.58)) for s in range(3)
            for r, bump in [(r, [0.0, 0.01, 0.02, -0.05]) for r in range(4)]]
    summary = initializer_summary(pd.DataFrame(rows), levels=(21.1, 7.0, 1.8)).set_index("init")
    assert summary.loc["a", "dense"] == pytest.approx(60.2) and summary.loc["a", "seeds"] == 3
    assert summary.loc["a", "matching"] == 21.0 and summary.loc["b", "peak_level"] == 21.0
    assert summary.loc["a", "peak_gain"] == pytest.approx(2.0)
    assert summary.loc["a", "acc_7"] == pytest.approx(55.2) and np.isnan(summary.loc["a", "acc_1.8"])
    assert summary.loc["a", "speedup"] == pytest.approx(2.0) and summary.loc["a", "speedup_level"] == 21.0
    pairs = pd.DataFrame([dict(init_a="a", seed_a=0, init_b="b", seed_b=0, jaccard=0.5),
                          dict(init_a="a", seed_a=1, init_b="b", seed_b=1, jaccard=0.7),
                          dict(init_a="a", seed_a=0, init_b="a", seed_b=1, jaccard=0.4),
                          dict(init_a="a", seed_a=0, init_b="b", seed_b=1, jaccard=0.1)])
    matrix = overlap_matrix(pairs)
    assert matrix.loc["a", "b"] == matrix.loc["b", "a"] == pytest.approx(0.6)
    assert matrix.loc["a", "a"] == 0.4 and np.isnan(matrix.loc["b", "b"])
    assert with_ci(61.23, 60.1, 62.35) == "61.2 [60.1, 62.4]" and with_ci(np.nan, 0, 0) == "—"


def test_difference_matrix_best_versus_worst_and_summary_table():
    noise = {"a": [0.0, 0.002, -0.001, 0.001], "b": [0.001, 0.0, 0.0, -0.001], "c": [0.0, -0.001, 0.001, 0.002]}
    rows = [dict(init=i, condition="ticket", seed=s, round=1, test_acc=base + 0.001 * s + noise[i][s])
            for i, base in (("a", 0.70), ("b", 0.65), ("c", 0.60)) for s in range(4)]
    stops = pd.DataFrame(rows)
    pairs = pairwise_comparisons(stops, 1)
    diff, labels = difference_matrix(pairs, ["c", "a", "b"])
    assert list(diff.index) == list(labels.columns) == ["c", "a", "b"]
    assert diff.loc["a", "c"] == pytest.approx(10.0) and diff.loc["c", "a"] == pytest.approx(-10.0)
    assert labels.loc["a", "c"] == "10.0*" and labels.loc["a", "a"] == ""
    result = best_versus_worst(stops, pairs, 1)
    assert (result["best"], result["worst"], result["best_acc"]) == ("a", "c", "70.2")
    assert result["best_minus_worst"].startswith("10.0 [")
    summary = pd.DataFrame([dict(init="a", dense=60.0, dense_low=59.0, dense_high=61.0, matching=14.0,
                                 matching_low=14.0, matching_high=20.0, acc_21=61.0, acc_21_low=60.0,
                                 acc_21_high=62.0, **{"acc_1.8": np.nan, "acc_1.8_low": np.nan,
                                                      "acc_1.8_high": np.nan}, speedup=1.234)])
    table = summary_table(summary, [21, 1.8], 21)
    assert list(table.columns) == ["initializer", "dense accuracy (%)", "sparsest matching dense (%)",
                                   "accuracy at 21% (%)", "early-stop speed-up at 21%"]
    assert table.iloc[0].tolist() == ["a", "60.0 [59.0, 61.0]", "14.0 [14.0, 20.0]", "61.0 [60.0, 62.0]", 1.23]


def test_mask_overlap_reads_without_writing(small_config, small_data, tmp_path):
    """Analysis reads the store: runs it lacks are skipped, and no folder or file appears."""
    store = Store(tmp_path / "runs")
    trained = [small_config(init=init, rounds=2) for init in ("xavier_normal", "orthogonal")]
    run_cohort(trained, store, small_data)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    pairs = mask_overlap(store, trained + [small_config(init="lecun_normal", rounds=2)], 1)
    assert len(pairs) == 1 and 0 < pairs.jaccard.iloc[0] < 1  # the two trained runs; the third is absent
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
