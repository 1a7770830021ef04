"""The paper's tables from hand-made early-stop rows whose answers are known."""
import numpy as np
import pandas as pd
import pytest

from ticketlib.analysis import report, stats


def stop_rows(accuracies: dict, levels=(100.0, 10.0), seeds=3, **columns) -> list[dict]:
    """Early-stop rows: init → per-round test accuracy; seeds 0, 1, ... add 0.001·seed (a seed effect)."""
    return [dict(init=init, seed=seed, round=r, weights_remaining=level, condition="ticket",
                 test_acc=acc[r] + 0.001 * seed, censored=False, **columns)
            for init, acc in accuracies.items() for seed in range(seeds) for r, level in enumerate(levels)]


def test_paired_differences_pair_by_seed_and_test_equivalence():
    rows = pd.DataFrame(stop_rows({"a": (0.90, 0.80), "b": (0.899, 0.70)}, seeds=5))
    d = stats.paired_differences(rows, "init", "a", "b", by=("round",)).set_index("round")
    assert d.loc[0, "diff"] == pytest.approx(0.001) and d.loc[0, "seeds"] == 5
    assert d.loc[0, "equivalent"] and not d.loc[1, "equivalent"]  # 0.1 points alike; 10 points not
    three = stats.paired_differences(rows[rows.seed < 3], "init", "a", "b", by=("round",)).set_index("round")
    assert three.loc[0, "p_tost"] < 0.05 and not three.loc[0, "equivalent"]  # sameness is claimed from five seeds
    assert d.loc[1, "weights_remaining"] == 10.0


def test_the_budget_table_pairs_the_two_budgets_and_counts_censoring():
    short = pd.DataFrame(stop_rows({"normal": (0.92, 0.40)}, iterations=5000))
    long = pd.DataFrame(stop_rows({"normal": (0.96, 0.90)}, iterations=50000))
    short.loc[short["round"] == 1, "censored"] = True
    both = report.with_budget([long, short])
    assert sorted(both.budget.unique()) == ["5,000 iterations", "50,000 iterations"]
    accuracy = report.in_percent(stats.by_level(both, "test_acc", keys=["init", "budget"]))
    table, values = report.budget_table(both, accuracy)
    row = table.iloc[0]
    assert row["dense: 5,000 → 50,000 it. (%)"] == "92.1 → 96.1" and row["10.0%: gain (points)"] == "50.0 [50.0, 50.0]"
    assert row["early stop at the budget's end (of 6)"] == "3 → 0"
    assert (values["normal.sparsest_long"], values["normal.censored_short"], values["level"]) == ("90.1", "50", "10.0")


def test_the_diagnostics_table_reads_kept_over_pruned_and_rank_correlation():
    rows = pd.DataFrame([dict(init="normal", seed=s, round=r, tensor="hidden.0.weight", kept_abs_init=2.0 * (3 - r),
                              pruned_abs_init=1.0, rank_correlation=0.9 - 0.4 * r) for s in range(3) for r in (1, 2)])
    table, values = report.diagnostics_table(rows)
    assert table.iloc[0].tolist() == ["normal", "hidden.0", "4.00", "0.50", "2.00", "0.10"]
    assert values == {"seeds": 3, "normal.hidden.0.ratio": "3.00", "normal.hidden.0.rank": "0.30"}


def test_the_factors_table_sweeps_sigma_and_pairs_the_shapes():
    sigma = stop_rows({"normal": (0.97, 0.96), "uniform_symmetric": (0.97, 0.955)}, scale=0.05) + \
        stop_rows({"normal": (0.93, 0.40), "uniform_symmetric": (0.94, 0.60)}, scale=1.0)
    mean = stop_rows({"uniform": (0.33, 0.85), "uniform_centered": (0.94, 0.90)}, scale=1.0)
    xavier = stop_rows({"xavier_normal": (0.976, 0.98), "xavier_uniform": (0.977, 0.98)}, scale=1.0)
    stops = pd.DataFrame(sigma + mean + xavier)
    table, values = report.factors_table(stops, stops[stops.init.str.startswith("xavier")])
    sigma_rows = table[table.sweep == "σ"].set_index("value")
    assert sigma_rows.loc["0.05", "normal − uniform at 10.0% (points)"] == "0.5 [0.5, 0.5]"
    assert sigma_rows.loc["1", "normal − uniform at 10.0% (points)"] == "−20.0 [−20.0, −20.0]"
    assert table[table.sweep == "× Xavier"].iloc[0]["normal − uniform at 10.0% (points)"] == "0.0 [0.0, 0.0]"  # no ≈ at 3 seeds
    assert values["best_sigma"] == "0.05" and values["unit_sigma_minus_xavier.sparsest"] == "−58.0 [−58.0, −58.0]"
    assert values["best_sigma_minus_xavier.seeds"] == 3
    # seeds 3–4 pooled for the comparison with Xavier normal, where σ 0.05 is now alike; the best σ is chosen from seeds 0–2
    more = pd.DataFrame(stop_rows({"normal": (0.976, 0.98)}, scale=0.05, seeds=5) + stop_rows({"normal": (0.9, 0.99)}, scale=1.0, seeds=5)
                        + stop_rows({"xavier_normal": (0.976, 0.98)}, scale=1.0, seeds=5))
    _, pooled = report.factors_table(stops, stops[stops.init.str.startswith("xavier")], pd.concat([stops, more[more.seed >= 3]]))
    assert pooled["best_sigma"] == "0.05" and pooled["best_sigma_minus_xavier.seeds"] == 5
    assert pooled["best_sigma_minus_xavier.sparsest"] == "−1.2 [−2.6, 0.2]"  # −2 at seeds 0–2, 0 at 3–4
    assert pooled["best_sigma_minus_xavier.held_out.sparsest"] == "0.00"  # seeds 3–4 alone
    assert pooled["unit_sigma_minus_xavier.seeds"] == 3 and pooled["xavier_normal.sparsest"] == "98.1"  # the grid's own seeds
    assert values["centered_minus_uniform.dense"] == "61.0 [61.0, 61.0]" and values["uniform_centered.sparsest"] == "90.1"
    assert np.isclose(float(values["best_sigma_acc"]), 96.1)


def test_numbers_print_a_true_minus_and_no_negative_zero():
    assert report.number(-1.26) == "−1.3" and report.number(-0.04) == "0.0" and report.number(0.04) == "0.0"
    assert report.with_ci(-0.02, -0.61, 0.44) == "0.0 [−0.6, 0.4]"
    assert report.with_ci(-0.21, -0.40, -0.02) == "−0.21 [−0.40, −0.02]"  # excludes 0: must not read "[−0.4, 0.0]"
    assert report.with_ci(0.21, 0.0, 0.4) == "0.2 [0.0, 0.4]"  # reaches 0 (a barrier's cut band): one digit


def test_the_components_table_counts_the_levels_with_a_draw_or_an_order_effect():
    rng = np.random.default_rng(0)
    rows = [dict(init="xavier_normal", seed=s, data_seed=d, round=r, weights_remaining=100 * 0.8 ** r,
                 test_acc=0.9 + 0.01 * s * (r < 2) + 0.001 * rng.standard_normal())
            for s in range(3) for d in range(3) for r in range(4)]
    parts = stats.variance_components(pd.DataFrame(rows))
    table, values = report.components_table(parts)
    assert values["xavier_normal.levels"] == 4
    assert values["xavier_normal.draw_effects"] == 2 and values["xavier_normal.order_effects"] <= 1
    assert float(values["xavier_normal.share_draw"].rstrip("%")) > 40  # the draw dominates half the levels
    assert len(table) == 4


def test_percent_bands_stop_at_the_scale_end():
    summary = pd.DataFrame(dict(mean=[0.9, -0.2], low=[0.5, -1.3], high=[1.3, 0.1]))
    shown = report.in_percent(summary)
    assert shown.high.tolist() == [100, 10] and shown.low.tolist() == [50, -100] and shown["mean"].tolist() == [90, -20]


def test_log_axis_labels_leave_out_the_ones_that_would_crowd():
    from ticketlib.analysis.figures import spaced_labels
    assert spaced_labels([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1]) == ["0.01", "", "0.05", "", "0.2", "", "1"]
    assert spaced_labels([0.125, 0.25, 0.5, 1, 2, 4, 8, 16]) == ["0.125", "", "0.5", "", "2", "", "8", ""]


def test_the_instability_table_names_the_largest_mean_barrier():
    rows = [dict(init=init, seed=s, k="θ0 (k = 0)", rewind_iteration=0, round=r, weights_remaining=100 * 0.8 ** r,
                 barrier=(0.03 if (init, r) == ("normal", 1) else 0.001) + 0.001 * s)
            for init in ("normal", "xavier_normal") for s in range(3) for r in range(3)]
    barriers = pd.DataFrame(rows)
    tickets = barriers.assign(condition="ticket", test_acc=0.9)
    table, values = report.instability_table(barriers, tickets)
    assert values["largest_barrier"] == "3.1" and values["largest_barrier_init"] == "normal"
    assert values["largest_barrier_level"] == "80.0" and values["stable"] == "2"
    assert values["normal.barrier_dense"] == "0.2 [0.0, 0.4]"  # −0.05 prints as 0.0, not −0.0
    assert values["largest_upper"] == "3.3" and values["largest_upper_init"] == "normal"  # 3.1 + 4.303 × 0.1 / √3
    assert "rewind" not in table  # one rewind point: the caption says which


def test_the_instability_table_gives_each_later_rewind_points_gain_paired_by_seed():
    rows = [dict(init="normal", seed=s, k=report.rewind_label(k), rewind_iteration=k, round=r,
                 weights_remaining=100 * 0.8 ** r, barrier=0.001,
                 test_acc=0.5 + (0.1 + 0.01 * s if k == 500 and r == 2 else 0) + 0.05 * s)
            for k in (0, 500) for s in range(3) for r in range(3)]
    barriers = pd.DataFrame(rows)
    table, values = report.instability_table(barriers, barriers.assign(condition="ticket"))
    assert values["normal.k500.minus_k0_sparsest"] == "11.0 [8.5, 13.5]"  # 10 + s points: 11 ± 4.303 × 1 / √3
    assert values["normal.k500.ticket_sparsest"] == "66.0" and values["normal.k500.minus_k0_100.0"] == "0.0 [0.0, 0.0]"
    assert list(table.rewind) == ["θ0 (k = 0)", "k = 500"]
    assert values["largest_barrier"] == values["late_largest_barrier"] == "0.1"  # each over its own rewind points


def test_the_instability_table_gives_the_range_of_the_fan_scaled_gains_without_the_unscaled():
    gain = {"xavier_normal": 0.002, "orthogonal": -0.001, "normal": 0.3}
    rows = [dict(init=init, seed=s, k=report.rewind_label(k), rewind_iteration=k, round=r,
                 weights_remaining=100 * 0.8 ** r, barrier=0.001, test_acc=0.9 + (gain[init] if k else 0) + 0.001 * s)
            for init in gain for k in (0, 2000) for s in range(3) for r in range(3)]
    barriers = pd.DataFrame(rows)
    _, values = report.instability_table(barriers, barriers.assign(condition="ticket"))
    assert values["scaled.k2000.minus_k0_sparsest_low"] == "−0.1" and values["scaled.k2000.minus_k0_sparsest_high"] == "0.2"


def test_barrier_intervals_stop_at_zero():
    rows = [dict(init="normal", seed=s, k="θ0 (k = 0)", rewind_iteration=0, round=r, weights_remaining=100 * 0.8 ** r,
                 barrier=0.03 if s == 2 else 0.0) for s in range(3) for r in range(2)]
    barriers = pd.DataFrame(rows)
    _, values = report.instability_table(barriers, barriers.assign(condition="ticket", test_acc=0.9))
    assert values["normal.barrier_sparsest"] == "1.0 [0.0, 5.3]"  # the t interval's low end, −3.3, is cut at 0


def test_the_controls_table_shows_any_registered_condition_beside_the_ticket():
    rows = [dict(init="xavier_normal", seed=s, condition=c, round=r, weights_remaining=100 * 0.8 ** r,
                 test_acc=0.97 - (0.02 if c == "sign_kept" and r else 0) + 0.001 * s)
            for s in range(5) for c in ("ticket", "sign_kept", "rescaled") for r in range(2)]
    stops = pd.DataFrame(rows)
    accuracy = report.in_percent(stats.by_level(stops, "test_acc", keys=["init", "condition"]))
    table = report.controls_table(accuracy, stats.control_gaps(stops, 1))
    assert list(table.columns[:4]) == ["initializer", "ticket", "sign kept", "rescaled"]  # spaces, so that headers can wrap
    assert table["ticket − sign kept (points)"].iloc[0] == "2.0 [2.0, 2.0]"
    assert table["ticket − rescaled (points)"].iloc[0] == "0.0 [0.0, 0.0] ≈"  # the same at five seeds: equivalent
    three = stats.control_gaps(stops[stops.seed < 3], 1)
    assert not three.equivalent.any()  # no sameness claimed from three seeds


def test_the_learning_rate_table_pairs_each_setting_with_the_default_rate():
    rows = [dict(init=init, scale=scale, lr=0.0012, lr_rule=rule, seed=s, condition="ticket", round=r,
                 weights_remaining=100 * 0.8 ** r, censored=False, failed=False,
                 test_acc=0.95 + (0.02 if rule == "relative" and scale == 4 and r else 0) + 0.001 * s)
            for init, scale in (("xavier_normal", 1.0), ("xavier_normal", 4.0)) for rule in (None, "relative")
            for s in range(3) for r in range(2)]
    stops = report.with_setting(pd.DataFrame(rows))
    more = [r | dict(seed=r["seed"] + 3) for r in rows if r["scale"] == 1.0 and r["seed"] < 2]  # seeds 3–4 at 1×
    table, values = report.lr_table(stops, report.with_setting(pd.DataFrame(rows + more)))
    assert values["xavier_normal.relative_rule_base_lr_0.0012.gain"].endswith("≈")  # alike, over five seeds
    assert values["xavier_normal.relative_rule_base_lr_0.0012.gain_seeds"] == 5
    assert table["− lr 0.0012 at 80.0% (points)"].iloc[1].endswith("≈ (5 seeds)")
    assert not values["xavier_normal_4x.relative_rule_base_lr_0.0012.gain"].endswith("≈")  # three seeds
    assert table["dense (%)"].iloc[0] == "95.1 [94.9, 95.3]"  # the means stay the grid's own three seeds'
    assert not report.lr_table(stops)[1]["xavier_normal.relative_rule_base_lr_0.0012.gain"].endswith("≈")
    assert sorted(stops.setting.unique()) == ["lr 0.0012", "relative rule, base lr 0.0012"]
    assert values["xavier_normal_4x.relative_rule_base_lr_0.0012.gain"].startswith("2.0 [")
    assert values["xavier_normal.relative_rule_base_lr_0.0012.gain"].startswith("0.0 [")
    assert values["xavier_normal_4x.lr_0.0012.sparsest"] == "95.1" and values["level"] == "80.0"
    assert len(table) == 4 and table["censored run-rounds"].iloc[0] == "0 of 6"


def test_the_pai_table_pairs_the_ticket_with_the_best_method_at_init():
    accuracy = {"ticket": 0.98, "snip": 0.95, "synflow": 0.96}
    rows = [dict(init="xavier_normal", seed=s, condition=c, round=r, weights_remaining=level,
                 test_acc=acc - (0.01 * r if c != "ticket" else 0) + 0.001 * s)
            for s in range(3) for c, acc in accuracy.items() for r, level in enumerate((100.0, 7.0, 2.0))]
    table, values = report.pai_table(pd.DataFrame(rows))
    assert (values["middle"], values["sparsest"], values["seeds"]) == ("7.0", "2.0", 3)
    assert values["xavier_normal.sparsest.best"] == "synflow"  # 0.96 − 0.02 beats 0.95 − 0.02
    assert values["xavier_normal.sparsest.gap"].startswith("4.0 [")  # 98.0 − 94.0, the same in every seed
    assert values["xavier_normal.middle.snip"] == "94.1"  # 0.95 − 0.01 + the mean seed's 0.001
    assert len(table) == 1 and table.iloc[0]["2.0%: best at init (%)"] == "synflow 94.1"


def test_the_pai_table_reads_pooled_masks_beside_per_layer_ones_each_against_its_own_ticket():
    def grid(accuracy, ticket_shift=0.0):
        return pd.DataFrame([dict(init="normal", seed=s, condition=c, round=r, weights_remaining=level,
                                  test_acc=acc + (ticket_shift if c == "ticket" else -0.01 * r) + 0.001 * s)
                             for s in range(3) for c, acc in accuracy.items() for r, level in enumerate((100.0, 7.0, 2.0))])
    layerwise = grid({"ticket": 0.90, "snip": 0.80, "grasp": 0.85})
    pooled = grid({"ticket": 0.90, "snip_global": 0.95, "grasp_global": 0.70}, ticket_shift=0.01)
    table, values = report.pai_table(layerwise, pooled)
    assert table.masks.tolist() == ["per layer", "pooled"] and values["pooled_seeds"] == 3
    assert values["normal.sparsest.best"] == "grasp" and values["normal.sparsest.gap"].startswith("7.0 [")
    assert values["normal.sparsest.pooled_best"] == "snip_global"
    assert values["normal.sparsest.pooled_gap"].startswith("−2.0 [")  # 91.0 − 93.0: paired with its own ticket
    assert values["normal.sparsest.ticket"] == "90.1"  # the per-layer grid's ticket
    assert values["normal.sparsest.pooled_ticket"] == "91.1"
    assert values["normal.middle.snip_global"] == "94.1"


def test_percent_bands_of_a_never_negative_quantity_stop_at_zero():
    summary = pd.DataFrame(dict(mean=[0.02], low=[-0.01], high=[0.05]))
    assert report.in_percent(summary, floor=0).low.tolist() == [0]


def test_the_global_table_pairs_global_with_layerwise_tickets_and_reads_each_layers_share():
    tickets = stop_rows({"normal": (0.93, 0.60), "xavier_normal": (0.98, 0.971)}, levels=(100.0, 1.8), seeds=5)
    global_ = pd.DataFrame(tickets + [r | dict(condition="reinit", test_acc=r["test_acc"] - 0.2) for r in tickets if r["seed"] < 3])
    layerwise = pd.DataFrame(stop_rows({"normal": (0.93, 0.50), "xavier_normal": (0.98, 0.97), "orthogonal": (0.98, 0.97)},
                                       levels=(100.0, 1.9), seeds=5))
    layers = pd.DataFrame([dict(init=init, seed=s, round=r, tensor=t, weights_remaining=level,
                                fraction=1.0 if r == 0 else share + 0.001 * s)
                           for init in ("normal", "xavier_normal") for s in range(3) for r, level in ((0, 100.0), (1, 1.8))
                           for t, share in (("hidden.0.weight", 0.01), ("out.weight", 0.30))])
    table, values = report.global_table(global_, layerwise, report.layer_fractions(layers))
    row = table.set_index("initializer").loc["normal"]
    assert row["hidden.0 kept (%)"] == 1.1 and row["out kept (%)"] == 30.1
    assert row["global − layerwise (points)"] == "10.0 [10.0, 10.0]" and row["ticket − reinit, global (points)"] == "20.0 [20.0, 20.0]"
    assert list(table.initializer) == ["normal", "xavier_normal"]  # the layerwise grid's orthogonal is left out
    assert (values["level"], values["layerwise_level"], values["normal.global"]) == ("1.8", "1.9", "60.2")  # seeds 0–4 add 0.2 on average
    assert (values["seeds"], values["reinit_seeds"]) == (5, 3)  # tickets at seeds 3 and 4 have no reinit pair
    assert (values["scaled.count"], values["scaled.equivalent"], values["scaled.above"], values["scaled.below"]) == (1, 1, 1, 0)
    assert (values["scaled.gap_low"], values["scaled.reinit_high"]) == ("0.1", "20.0")


def test_layer_shares_count_the_tickets_rows_only():
    rows = [dict(init="normal", seed=s, round=1, tensor="out.weight", weights_remaining=50.0, condition=condition,
                 fraction=share) for s in range(3) for condition, share in (("ticket", 0.5), ("reinit", 0.9))]
    shares = report.layer_fractions(pd.DataFrame(rows)).iloc[0]
    assert shares["mean"] == pytest.approx(50.0) and shares.seeds == 3  # a control trains its ticket's mask


def test_panels_fitted_to_the_means_cut_a_wide_band_at_the_frame():
    import matplotlib
    matplotlib.use("Agg")
    from ticketlib.analysis.figures import panels
    summary = pd.DataFrame(dict(k=["θ0"] * 4, init=["normal"] * 2 + ["xavier_normal"] * 2,
                                weights_remaining=[100.0, 10.0] * 2, mean=[9.0, 1.0, 0.1, 0.2],
                                low=[0.0, 0.0, 0.0, 0.0], high=[35.0, 2.0, 0.3, 0.4]))
    wide = panels(summary, "k", "init", "barrier", reference=2.0)
    fitted = panels(summary, "k", "init", "barrier", reference=2.0, fit_to_means=True)
    assert wide.axes[0].get_ylim()[1] > 35
    low, high = fitted.axes[0].get_ylim()
    assert 9.0 < high < 10.0 and -1.0 < low < 0.1


def test_panels_draw_the_named_lines_in_grey_under_one_legend_entry_last():
    import matplotlib
    matplotlib.use("Agg")
    from ticketlib.analysis.figures import panels
    inits = ["xavier_normal", "normal", "lecun_normal", "lecun_uniform"]
    summary = pd.DataFrame([dict(tensor=t, init=i, weights_remaining=w, mean=w, low=w, high=w)
                            for t in ("a", "b") for i in inits for w in (100.0, 10.0)])
    fig = panels(summary, "tensor", "init", "kept", in_grey=["lecun_normal", "lecun_uniform"], grey_label="others")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["normal", "xavier_normal", "others"]
    for ax in fig.axes[:2]:
        greys = [line for line in ax.get_lines() if line.get_color() == "0.75"]
        assert len(greys) == 2 and len(ax.get_lines()) == 4


def test_pai_layer_values_say_which_layers_a_pooled_score_empties():
    layers = pd.DataFrame([dict(init="uniform", condition="snip_global", seed=s, round=r, tensor=t, fraction=f)
                           for s in range(3) for r in (0, 5)
                           for t, f in (("hidden.0.weight", 1.0 if r == 0 else 0.0), ("out.weight", 1.0 if r == 0 else 0.9))])
    values = report.pai_layer_values(layers)
    assert values == {"uniform.sparsest.snip_global.kept.hidden.0": "0.0", "uniform.sparsest.snip_global.kept.out": "90.0"}


def test_the_summary_values_give_the_fan_scaled_ranges_dense_and_at_the_sparsest_level():
    stops = pd.DataFrame(stop_rows({"xavier_normal": [0.976, 0.952], "orthogonal": [0.978, 0.957],
                                    "normal": [0.93, 0.30]}, iteration=500))
    stops.loc[(stops.init == "orthogonal") & (stops.seed == 2), "test_acc"] += 0.0003  # pairs that vary by seed
    summary = stats.initializer_summary(stops, levels=())
    overlap = pd.DataFrame(0.1, index=["a", "b"], columns=["a", "b"])
    values = report.summary_values(stops, stats.pairwise_comparisons(stops, 1), overlap, 0.01, summary)
    assert values["scaled_dense_acc"] == "97.7–97.9" and values["scaled_sparsest_acc"] == "95.3–95.8"  # N(0, 1) left out
