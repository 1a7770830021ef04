import numpy as np
import pandas as pd
import pytest
import torch

from ticketlib.analysis.report import (
    best_versus_worst,
    difference_matrix,
    summary_table,
    with_ci,
)
from ticketlib.analysis.stats import (
    by_level,
    control_gaps,
    early_stops,
    holm,
    initializer_summary,
    jaccard,
    mask_overlap,
    matching_level,
    matching_range,
    mean_ci,
    nearest_round,
    overlap_matrix,
    paired_comparison,
    pairwise_comparisons,
    random_jaccard,
    t_interval,
)
from ticketlib.errors import TicketError


def curve(accuracies_by_seed, levels=(100.0, 80.0, 64.0, 51.2)):
    """Early-stop rows for one init: accuracies_by_seed[seed][round]."""
    return pd.DataFrame([dict(init="x", condition="ticket", seed=s, round=r, weights_remaining=levels[r], test_acc=a)
                         for s, accs in enumerate(accuracies_by_seed) for r, a in enumerate(accs)])


@pytest.mark.slow
def test_t_interval_holds_its_coverage_at_few_seeds():
    """Nominal 95%: 93–97% of intervals over n = 3, 5, 10 draws cover the true mean, for normal and
    for skewed (gamma, skewness 1) values, and for paired differences with a shared seed effect."""
    rng = np.random.default_rng(0)
    draws = {"normal": (lambda shape: rng.normal(0.7, 0.02, shape), 0.7),
             "skewed": (lambda shape: 0.6 + rng.gamma(4.0, 0.01, shape), 0.64)}
    for n in (3, 5, 10):
        for name, (draw, true) in draws.items():
            bounds = np.array([t_interval(row) for row in draw((4000, n))])
            coverage = np.mean((bounds[:, 0] <= true) & (true <= bounds[:, 1]))
            assert 0.93 <= coverage <= 0.97, (name, n, coverage)
    seed_effect = rng.normal(0.70, 0.02, (4000, 5))
    a = seed_effect + rng.normal(0, 0.005, (4000, 5))
    b = seed_effect - 0.01 + rng.normal(0, 0.005, (4000, 5))  # true difference 0.01
    bounds = np.array([t_interval(row) for row in a - b])
    assert 0.93 <= np.mean((bounds[:, 0] <= 0.01) & (0.01 <= bounds[:, 1])) <= 0.97


def test_t_interval_exact_values_and_degenerate_cases():
    low, high = t_interval([1.0, 2.0, 3.0])  # mean 2, s = 1, t(0.975, 2) = 4.3027
    assert (low, high) == pytest.approx((2 - 4.302653 / np.sqrt(3), 2 + 4.302653 / np.sqrt(3)))
    assert np.isnan(t_interval([0.5])).all() and t_interval([0.4, 0.4]) == (0.4, 0.4)
    assert np.isnan(mean_ci([])).all()


def test_by_level_reports_mean_and_interval_per_round():
    table = by_level(curve([[0.60, 0.62, 0.61, 0.55], [0.62, 0.64, 0.63, 0.57]]), "test_acc")
    assert list(table["round"]) == [0, 1, 2, 3] and list(table.seeds) == [2] * 4
    assert table["mean"].tolist() == pytest.approx([0.61, 0.63, 0.62, 0.56])
    half = 12.706205 * np.std([0.60, 0.62], ddof=1) / np.sqrt(2)  # t(0.975, 1)
    assert table.low.tolist() == pytest.approx([m - half for m in [0.61, 0.63, 0.62, 0.56]])


def test_matching_level_is_the_sparsest_level_at_or_above_dense():
    assert matching_level(curve([[0.60, 0.62, 0.61, 0.55]])) == 64.0
    assert matching_level(curve([[0.60, 0.59, 0.61, 0.55]])) == 64.0  # a dip on the way is noise
    assert matching_level(curve([[0.60, 0.59, 0.58, 0.55]])) == 100.0
    assert matching_level(curve([[0.60, 0.59, 0.58, 0.55]]), tolerance=0.02) == 64.0
    assert matching_level(curve([[0.60, 0.62, 0.61, 0.55], [0.62, 0.60, 0.62, 0.57]])) == 64.0  # means over seeds


def test_matching_is_undefined_when_the_dense_network_does_not_train():
    assert np.isnan(matching_level(curve([[0.50, 0.52, 0.51, 0.55]])))  # below (1 + 0.1) / 2 = 55%
    assert matching_level(curve([[0.56, 0.52, 0.51, 0.55]])) == 100.0
    assert np.isnan(matching_range(curve([[0.30, 0.35, 0.4, 0.45], [0.31, 0.36, 0.4, 0.46]]))).all()


def test_matching_range_from_paired_intervals():
    # seed pairs: level 80 clearly above dense, 64 within noise of it, 51.2 clearly below
    point, not_ruled_out, confirmed = matching_range(curve([[0.60, 0.62, 0.61, 0.55], [0.60, 0.621, 0.595, 0.56],
                                                            [0.60, 0.619, 0.60, 0.555]]))
    assert (point, not_ruled_out, confirmed) == (64.0, 64.0, 80.0)
    assert np.isnan(matching_range(curve([[0.60, 0.62, 0.61, 0.55]]))[1:]).all()  # one seed: no interval


def test_diverged_runs_count_as_failures_at_their_round_and_after():
    rows = []
    for seed, diverge_at in ((0, None), (1, 1)):
        for r, level in enumerate((100.0, 80.0, 64.0)):
            if diverge_at is not None and r > diverge_at:
                break
            failed = r == diverge_at
            rows += [dict(run_id=f"r{seed}", init="x", condition="ticket", seed=seed, round=r, weights_remaining=level,
                          iteration=i, val_loss=np.nan if failed else 1.0 - i / 100, val_acc=0.5, test_acc=0.6,
                          is_early_stop=(not failed and i == 40), diverged=failed) for i in (20, 40)]
    stops = early_stops(pd.DataFrame(rows))
    assert stops[["run_id", "round", "failed"]].values.tolist() == [
        ["r0", 0, False], ["r0", 1, False], ["r0", 2, False], ["r1", 0, False], ["r1", 1, True], ["r1", 2, True]]
    failed = stops[stops.failed]
    assert failed.test_acc.tolist() == [0.1, 0.1] and failed.weights_remaining.tolist() == [80.0, 64.0]
    levels = by_level(stops, "test_acc", keys=["init"])
    assert levels.failed.tolist() == [0, 1, 1] and levels["mean"].tolist() == pytest.approx([0.6, 0.35, 0.35])


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
    rows = [dict(init=i, condition="ticket", seed=s, round=1, test_acc=base + 0.001 * s)
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
    # every seed gains exactly 1 and 2 points at 50% and 21%: both confirmed, 7.2% (−5) ruled out
    assert (summary.loc["a", "matching_low"], summary.loc["a", "matching_high"]) == (21.0, 21.0)
    assert summary.loc["a", "peak_gain"] == pytest.approx(2.0) and "peak_gain_low" not in summary
    assert summary.loc["a", "failed"] == 0
    assert summary.loc["a", "acc_7"] == pytest.approx(55.2) and np.isnan(summary.loc["a", "acc_1.8"])
    assert summary.loc["a", "speedup"] == pytest.approx(2.0) and summary.loc["a", "speedup_level"] == 21.0
    far = initializer_summary(pd.DataFrame(rows), levels=(), speedup_at=1.8)  # no round within ×1.25 of 1.8%
    assert far.speedup.isna().all() and far.speedup_level.isna().all()
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
                                                      "acc_1.8_high": np.nan}, speedup=1.234, seeds=4, failed=0,
                                 sparsest=1.8)])
    table = summary_table(summary, [21, 1.8], 21)
    assert list(table.columns) == ["initializer", "dense (%)", "matches dense down to (%)",
                                   "not ruled out / above dense (%)", "at 21% (%)", "speed-up at 21%"]
    assert table.iloc[0].tolist() == ["a", "60.0 [59.0, 61.0]", "14.0", "14.0 / 20.0", "61.0 [60.0, 62.0]", "1.23"]
    censored = summary_table(summary.assign(matching=1.8), [21], 21)  # matching at the sparsest tested: at least that far
    assert censored["matches dense down to (%)"].iloc[0] == "≤ 1.8"


def test_sameness_is_claimed_by_the_equivalence_bound_not_by_missing_significance():
    from ticketlib.analysis.report import sameness_values
    rows = []
    for seed, noise in enumerate((0.0, 0.001, -0.001, 0.0005, -0.0005)):
        rows += [dict(init="a", seed=seed, round=1, condition="ticket", test_acc=0.97 + noise),
                 dict(init="b", seed=seed, round=1, condition="ticket", test_acc=0.9702 + noise),  # 0.02 points
                 dict(init="c", seed=seed, round=1, condition="ticket", test_acc=0.95 + 5 * noise)]  # 2 points
    values = sameness_values(pairwise_comparisons(pd.DataFrame(rows), 1), "x_")
    assert values["x_pairs"] == 3 and values["x_equivalent_pairs"] == 1  # a–b only: c lies 2 points away
    assert values["x_significant_pairs"] == 2 and values["margin"] == "0.5"
    assert float(values["x_widest_bound"]) > 2.0


def test_mask_overlap_pairs_every_mask():
    masks = {("a", 0): {"w": np.array([True, True, False, False])}, ("b", 0): {"w": np.array([True, False, True, False])},
             ("a", 1): {"w": np.array([True, True, False, False])}}
    pairs = mask_overlap(masks)
    assert pairs[["init_a", "seed_a", "init_b", "seed_b"]].values.tolist() == [["a", 0, "a", 1], ["a", 0, "b", 0],
                                                                             ["a", 1, "b", 0]]
    assert pairs.jaccard.tolist() == pytest.approx([1.0, 1 / 3, 1 / 3])


def test_analysis_refuses_a_table_that_mixes_setups():
    rows = [dict(init=i, condition="ticket", seed=s, round=1, lr=lr, test_acc=0.6 + 0.01 * s)
            for i in ("a", "b") for s in range(3) for lr in (1e-3, 2e-3)]
    with pytest.raises(TicketError, match="differ in lr"):
        pairwise_comparisons(pd.DataFrame(rows), 1)
    with pytest.raises(TicketError, match="differ in lr"):
        by_level(pd.DataFrame(rows).assign(weights_remaining=50.0), "test_acc", keys=["init"])
    controls = pd.DataFrame(rows[:6]).assign(condition="reinit", test_acc=0.5)  # lr 1e-3 only below
    one = pd.DataFrame([r for r in rows if r["lr"] == 1e-3])
    assert len(pairwise_comparisons(pd.concat([one, controls]), 1)) == 1  # controls are left out, not compared


def test_control_gaps_are_paired_by_seed_and_averaged_per_seed():
    rows = []
    for init, gap in (("a", [0.10, 0.12, 0.11]), ("b", [0.02, 0.04, 0.03])):
        for seed in range(3):
            base = 0.5 + 0.05 * seed  # a large seed effect, removed by pairing
            rows += [dict(init=init, seed=seed, round=2, condition="ticket", test_acc=base + gap[seed]),
                     dict(init=init, seed=seed, round=2, condition="random", test_acc=base)]
    gaps = control_gaps(pd.DataFrame(rows), 2).set_index("init")
    assert gaps.loc["a", "gap"] == pytest.approx(0.11) and gaps.loc["a", "seeds"] == 3
    assert (gaps.loc["a", "low"], gaps.loc["a", "high"]) == pytest.approx(t_interval([0.10, 0.12, 0.11]))
    assert gaps.loc["all", "gap"] == pytest.approx(0.07) and gaps.loc["all", "seeds"] == 3  # seeds, not 6 values
    assert (gaps.loc["all", "low"], gaps.loc["all", "high"]) == pytest.approx(t_interval([0.06, 0.08, 0.07]))


def test_control_values_separate_the_fan_scaled_schemes():
    from ticketlib.analysis.report import controls_values
    rows = []
    for init, gap in (("normal", -0.30), ("kaiming_normal", 0.04), ("xavier_normal", 0.06)):  # normal: unscaled
        for seed in range(3):
            for round_, weights in ((0, 100.0), (1, 2.0)):
                rows += [dict(init=init, seed=seed, round=round_, weights_remaining=weights, condition="ticket",
                              test_acc=0.9 + gap + 0.01 * seed),
                         dict(init=init, seed=seed, round=round_, weights_remaining=weights, condition="random",
                              test_acc=0.9)]
    stops = pd.DataFrame(rows)
    values = controls_values(stops, control_gaps(stops, 1))
    assert values["sparsest"] == "2.0" and values["seeds"] == 3
    assert values["ticket_minus_random"].startswith("−5.7 [")  # (−30 + 4 + 6) / 3 + 1 (the mean seed)
    assert values["scaled_ticket_minus_random"].startswith("6.0 [")  # (4 + 6) / 2 + 1: the fan-scaled schemes only
    assert (values["normal.ticket"], values["normal.random"]) == ("61.0", "90.0")  # the unscaled scheme's accuracies
    assert values["kaiming_normal.ticket_minus_random"].startswith("5.0 [")  # 4 + 1 (the mean seed), per scheme


def test_scale_values_pair_the_two_shapes_within_each_seed():
    from ticketlib.analysis.report import in_percent, scale_values
    rows = [dict(init=init, seed=seed, scale=scale, round=r, weights_remaining=level, condition="ticket",
                 test_acc=0.9 - 0.02 * abs(scale - 1) + (0.01 if init == "xavier_normal" else 0) + 0.01 * seed)
            for init in ("xavier_normal", "xavier_uniform") for seed in range(3) for scale in (0.5, 1.0, 2.0)
            for r, level in ((0, 100.0), (1, 2.0))]
    stops = pd.DataFrame(rows)
    accuracy = in_percent(by_level(stops, "test_acc", keys=["init", "scale"]))
    values = scale_values(stops, accuracy, 1)
    assert values["seeds"] == 3 and values["scales"] == "0.5, 1, 2" and values["sparsest"] == "2.0"
    assert values["best_scale.xavier_normal"] == "1" and values["range.xavier_uniform"] == "2.0"
    assert values["shape_diff"] == "1.0 [1.0, 1.0]"  # normal − uniform, the seed effect paired away
    assert values["shape_diff_at.0.5"] == values["shape_diff_at.2"] == "1.0 [1.0, 1.0]"
    from ticketlib.analysis.report import scale_table
    table = scale_table(accuracy, 1, stops)
    assert table["xavier_normal − xavier_uniform (points)"].tolist() == ["1.0 [1.0, 1.0]"] * 3


def test_the_2020_claims_are_paired_differences_per_seed():
    from ticketlib.analysis.report import claims_2020, claims_table, claims_values
    schemes = {"kaiming_normal": 0.60, "kaiming_uniform": 0.60, "xavier_normal": 0.62, "xavier_uniform": 0.62,
               "xavier_normal_half": 0.63, "xavier_uniform_half": 0.63, "xavier_normal_double": 0.61,
               "xavier_uniform_double": 0.61, "normal": 0.50, "uniform": 0.50}
    rows = [dict(init=i, condition="ticket", seed=s, round=r, weights_remaining=level, test_acc=base + 0.01 * s,
                 train_acc=base)
            for i, base in schemes.items() for s in range(3) for r, level in enumerate((100.0, 3.5, 2.8, 2.3))]
    stops = pd.DataFrame(rows)
    claims = claims_2020({"fixed": ("fixed: test accuracy", stops, "test_acc"),
                          "as_run": ("as run: training-set accuracy", stops, "train_acc")})
    values = claims_values(claims)
    assert values["xavier_kaiming.as_run"] == "2.0 [2.0, 2.0]" and values["best.as_run"] == "xavier_normal_half (63.0%)"
    table = claims_table(claims)
    assert list(table.columns) == ["the 2020 report's conclusion", "fixed: test accuracy", "as run: training-set accuracy"]
    table = table.set_index("the 2020 report's conclusion")["fixed: test accuracy"]
    assert table["Xavier beats Kaiming at 3.5% (points)"] == "2.0 [2.0, 2.0]"  # the seed effect cancels
    assert table["narrower beats wider (Xavier ½ − ×2) at 3.5% (points)"] == "2.0 [2.0, 2.0]"
    assert table["normal ≈ uniform (normal − uniform) at 3.5% (points)"] == "0.0 [0.0, 0.0]"
    assert table["best scheme at 2.3%"] == "xavier_normal_half (64.0%)"
    assert table["N(0, 1), U(0, 1) − the fan-scaled schemes at 3.5% (points)"] == "−11.5 [−11.5, −11.5]"
    assert table["Xavier beats Kaiming at 2.8% (points)"] == "2.0 [2.0, 2.0]"  # the finer claims below 3.5% too
    assert values["narrow_wide_best.fixed"] == "2.0 [2.0, 2.0]"
    assert table["Xavier and Kaiming (four schemes) alike at 3.5%: spread of means (points)"].startswith("2.0 (")
    assert table["Xavier ½ best (Xavier ½ − the other Xavier schemes) at 2.3% (points)"] == "1.5 [1.5, 1.5]"
    assert table["all schemes alike at 3.5%: spread of means (points)"].startswith("13.0 (")
    assert values["four_alike.fixed"].endswith("0 equivalent within ±0.5)")  # three seeds: sameness never claimed
    five = pd.DataFrame([r | dict(seed=s) for r in rows if r["seed"] == 0 for s in range(5)])
    four = claims_values(claims_2020({"fixed": ("fixed", five, "test_acc")}))["four_alike.fixed"]
    assert four.endswith(", 2 equivalent within ±0.5)")  # Kaiming n/u and Xavier n/u, the same in every seed
    assert claims_values(claims_2020({"fixed": ("fixed", five, "test_acc")}))["four_alike_equivalent.fixed"] == "2 of 6"
