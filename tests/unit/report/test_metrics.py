"""Power-law fit, sample-efficiency factor and cost accounting on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.report import metrics


def _run(method, n, mae, level=None, seed=0, model="egnn", cpu_h_per_label=2.0):
    """One results.csv row; accurate labels cost `cpu_h_per_label` CPU-h each."""
    n_cheap = 0 if level is None else 1000
    return {
        "molecule": "ethanol",
        "model": model,
        "method": method,
        "cheap_level": level,
        "n_train": n,
        "gamma": math.nan,
        "seed": seed,
        "force_mae_kcal": mae,
        "force_rmse_kcal": 1.3 * mae,
        "force_mae_mev": 43.4 * mae,
        "force_rmse_mev": 56.4 * mae,
        "energy_mae_kcal": 0.1 * mae,
        "n_accurate_labels": n,
        "n_cheap_labels": n_cheap,
        "accurate_label_cpu_h": n * cpu_h_per_label,
        "cheap_label_cpu_h": 0.01 * n_cheap,
        "data_cost_cpu_h": n * cpu_h_per_label + 0.01 * n_cheap,
        "train_wall_s": 10.0,
        "train_cpu_s": 20.0,
    }


def test_power_law_fit_recovers_exact_parameters():
    n = np.array([10, 20, 50, 100, 1000])
    a, b = metrics.fit_power_law(n, 3.7 * n**-0.42)
    assert a == pytest.approx(3.7, rel=1e-12) and b == pytest.approx(0.42, rel=1e-12)


def test_power_law_fit_averages_seeds_per_n():
    # Seeds at ±10 % around the exact curve: their per-N means are exact, whereas a fit of
    # the raw points in log space would be biased (mean of logs ≠ log of mean).
    n = np.array([10, 10, 100, 100, 1000, 1000])
    exact = 2.0 * n**-0.5
    a, b = metrics.fit_power_law(n, exact * np.array([1.1, 0.9] * 3))
    assert a == pytest.approx(2.0, rel=1e-12) and b == pytest.approx(0.5, rel=1e-12)


def test_power_law_fit_needs_two_n():
    with pytest.raises(ValueError, match="two distinct N"):
        metrics.fit_power_law([50, 50], [0.3, 0.4])


def test_power_law_inversion():
    assert metrics.power_law_n_for_error(0.1, 2.0, 0.5) == pytest.approx(400.0)
    assert np.isnan(metrics.power_law_n_for_error(0.1, 2.0, -0.1))


def _hand_case() -> pd.DataFrame:
    """standard: err = 2·N^-0.5 (0.2 at N=100, 0.1 at N=400), two seeds straddling it;
    ASTEROID (dft): half the standard error, also at N=200 where standard was not run."""
    rows = []
    for seed, f in ((0, 1.05), (1, 0.95)):
        rows += [_run("standard", 100, 0.2 * f, seed=seed), _run("standard", 400, 0.1 * f, seed=seed)]
        rows += [_run("asteroid", n, 0.5 * 2.0 * n**-0.5 * f, "dft", seed) for n in (100, 200, 400)]
    rows.append(_run("asteroid", 100, 0.19, "empirical"))
    rows.append(_run("cheap_only", 0, 1.0, "dft"))
    return pd.DataFrame(rows)


def test_sample_efficiency_hand_case():
    table = metrics.sample_efficiency(_hand_case(), "egnn", cheap_level="dft")
    assert table.attrs["fit"] == pytest.approx((2.0, 0.5))
    assert list(table["n_train"]) == [100, 200, 400]
    # ASTEROID at N=100 reaches 0.1, which standard reaches at N=(2/0.1)^2=400: factor 4.
    assert table["force_mae_kcal"].tolist() == pytest.approx([0.1, 2**-0.5 / 10, 0.05])
    assert table["n_equiv"].tolist() == pytest.approx([400.0, 800.0, 1600.0])
    assert table["factor"].tolist() == pytest.approx([4.0, 4.0, 4.0])
    assert table["reduction_pct"].iloc[[0, 2]].tolist() == pytest.approx([50.0, 50.0])
    assert math.isnan(table["reduction_pct"].iloc[1])  # no standard run at N=200
    assert table["extrapolated"].tolist() == [False, True, True]
    # 400 accurate labels at 2 CPU-h each
    assert table["standard_equiv_cost_cpu_h"].iloc[0] == pytest.approx(800.0)
    assert table["data_cost_cpu_h"].iloc[0] == pytest.approx(210.0)


def test_sample_efficiency_needs_cheap_level_when_ambiguous():
    with pytest.raises(ValueError, match="pass cheap_level"):
        metrics.sample_efficiency(_hand_case(), "egnn")
    with pytest.raises(ValueError, match="no 'asteroid' results"):
        metrics.sample_efficiency(_hand_case(), "gemnet", cheap_level="dft")


def test_error_reduction_per_n():
    red = metrics.error_reduction(_hand_case(), "egnn")
    # cheap_only has N=0 and asteroid N=200 has no standard run: both absent.
    assert set(zip(red["method"], red["cheap_level"], red["n_train"])) == {
        ("asteroid", "dft", 100),
        ("asteroid", "dft", 400),
        ("asteroid", "empirical", 100),
    }
    emp = red[red["cheap_level"] == "empirical"]
    assert emp["reduction_pct"].iloc[0] == pytest.approx(5.0)


def test_ablation_table_repeats_standard_per_level():
    df = pd.DataFrame(
        [
            _run("standard", 100, 0.2),
            _run("asteroid", 100, 0.1, "dft"),
            _run("finetune_unweighted", 100, 0.15, "dft"),
            _run("asteroid", 100, 0.12, "xtb"),
        ]
    )
    abl = metrics.ablation_table(df)
    assert list(zip(abl["cheap_level"], abl["method"])) == [
        ("dft", "standard"),
        ("dft", "finetune_unweighted"),
        ("dft", "asteroid"),
        ("xtb", "standard"),
        ("xtb", "asteroid"),
    ]


def test_aggregate_mean_std_over_seeds():
    df = pd.DataFrame([_run("standard", 50, 0.3, seed=0), _run("standard", 50, 0.5, seed=1)])
    agg = metrics.aggregate_results(df)
    assert len(agg) == 1 and agg["n_seeds"].iloc[0] == 2
    assert agg["force_mae_kcal"].iloc[0] == pytest.approx(0.4)
    assert agg["force_mae_kcal_std"].iloc[0] == pytest.approx(math.sqrt(0.02))
    assert agg["cheap_level"].iloc[0] == ""


def test_label_cost_summary_weights_by_frames():
    lc = pd.DataFrame(
        [
            ("ccsdt", "train", 100, 0, 0, 720000.0, 7200.0, 1000.0),
            ("ccsdt", "test", 300, 2, 0, 1080000.0, 3600.0, 500.0),
            ("dft", "cheap-dft", 1000, 0, 0, 36000.0, 36.0, 10.0),
        ],
        columns=metrics.LABEL_COST_COLUMNS,
    )
    s = metrics.label_cost_summary(lc).set_index("level")
    assert list(s.index) == ["dft", "ccsdt"]
    assert s.at["ccsdt", "cpu_h_total"] == pytest.approx(500.0)
    assert s.at["ccsdt", "cpu_s_per_frame"] == pytest.approx(4500.0)
    assert s.at["ccsdt", "wall_s_per_frame"] == pytest.approx(625.0)
    assert s.at["ccsdt", "n_failed"] == 2
    assert s.at["ccsdt", "n_outliers"] == 0


def test_label_cost_summary_counts_outlier_frames():
    lc = pd.DataFrame(
        [
            ("ccsdt", "train", 100, 0, 3, 720000.0, 7200.0, 1000.0),
            ("ccsdt", "test", 300, 2, 1, 1080000.0, 3600.0, 500.0),
        ],
        columns=metrics.LABEL_COST_COLUMNS,
    )
    s = metrics.label_cost_summary(lc)
    assert list(s.columns[:4]) == ["level", "n_frames", "n_failed", "n_outliers"]
    assert s.at[0, "n_outliers"] == 4


def test_stage_timings_from_benchmark_files(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = []
    for rule, job, wall, rss, cpu in (
        ("label", "ccsdt/train_0", 3600, 1000, 7200),
        ("label", "ccsdt/train_1", 1800, 3000, 3600),
        ("train", "egnn/100_0", 900, 500, "NA"),
    ):
        p = tmp_path / "benchmarks" / "ethanol" / rule / f"{job}.tsv"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(header + f"{wall}\t1:00:00\t{rss}\t1\t1\t1\t0\t0\t99\t{cpu}\n")
        files.append(str(p))
    t = metrics.stage_timings(metrics.read_benchmarks(files, "ethanol")).set_index("stage")
    assert list(t.index) == ["label", "train"]
    assert t.at["label", "n_jobs"] == 2
    assert t.at["label", "wall_h"] == pytest.approx(1.5)
    assert t.at["label", "cpu_h"] == pytest.approx(3.0)
    assert t.at["label", "max_rss_mb"] == 3000
    assert math.isnan(t.at["train", "cpu_h"]) and t.at["train", "wall_h"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="not under a 'aspirin' directory"):
        metrics.stage_from_path(files[0], "aspirin")


def test_estimate_vs_spent_per_level():
    lc = pd.DataFrame(
        [
            ("ccsdt", "train", 100, 0, 0, 720000.0, 7200.0, 1000.0),
            ("ccsdt", "test", 300, 2, 0, 1080000.0, 3600.0, 500.0),
            ("dft", "cheap-dft", 1000, 0, 0, 36000.0, 36.0, 10.0),
        ],
        columns=metrics.LABEL_COST_COLUMNS,
    )
    plan = pd.DataFrame(
        [("ccsdt", 400, 3000.0, "cost model"), ("dft", 1000, 72.0, "measured")], columns=metrics.PLAN_COLUMNS
    )
    t = metrics.estimate_vs_spent(plan, lc).set_index("level")
    assert t.at["ccsdt", "estimated_cpu_h"] == pytest.approx(400 * 3000 / 3600)
    assert t.at["ccsdt", "spent_cpu_h"] == pytest.approx(500.0)
    assert t.at["ccsdt", "spent_over_estimate"] == pytest.approx(500.0 / (400 * 3000 / 3600))
    assert t.at["dft", "spent_cpu_s_per_frame"] == pytest.approx(36.0)
    assert t.at["dft", "spent_over_estimate"] == pytest.approx(0.5)
    assert t.at["dft", "estimate_source"] == "measured"
    # a level not labelled (yet): spent is missing, not zero
    plan2 = pd.concat([plan, pd.DataFrame([("xtb", 10, 0.01, "cost model")], columns=metrics.PLAN_COLUMNS)])
    assert math.isnan(metrics.estimate_vs_spent(plan2, lc).set_index("level").at["xtb", "spent_cpu_h"])
    assert metrics.estimate_vs_spent(plan.iloc[:0], lc).empty


def _route(method, n, mae, total, predict, level=None, model="egnn"):
    r = _run(method, n, mae, level=level, model=model)
    r.update(total_cpu_h=total, predict_cpu_s_per_frame=predict, train_cpu_h_total=0.1)
    return r


def test_cheapest_route_to_each_standard_error():
    """Targets: standard's errors at each N. Δ (xtb) reaches standard's N = 100 error at N = 25 for 60
    CPU-h; ASTEROID needs N = 50 (110 CPU-h); sGDML never reaches it."""
    df = pd.DataFrame(
        [
            _route("standard", 25, 2.0, 50.0, 0.002),
            _route("standard", 100, 1.0, 200.0, 0.002),
            _route("asteroid", 25, 1.5, 60.0, 0.002, "xtb"),
            _route("asteroid", 50, 0.9, 110.0, 0.002, "xtb"),
            _route("delta", 25, 0.8, 60.5, 0.006, "xtb"),
            _route("delta", 100, 0.4, 210.0, 0.006, "xtb"),
            _route("sgdml", 25, 1.9, 49.0, 0.001, model="sgdml"),
            _route("cheap_only", 0, 3.0, 1.0, 0.002, "xtb"),  # no accurate labels: not a route
        ]
    )
    r = metrics.cheapest_routes(df)
    at100 = r[r["target"] == "standard egnn, N = 100"].set_index("method")
    assert set(at100.index) == {"standard", "asteroid", "delta"}  # sGDML (1.9) never gets to 1.0
    assert at100.loc["delta", "n_train"] == 25 and at100.loc["delta", "total_cpu_h"] == 60.5
    assert at100.loc["asteroid", "n_train"] == 50 and at100.loc["delta", "cheapest"]
    assert at100.loc["delta", "predict_cpu_s_per_frame"] == 0.006
    at25 = r[r["target"] == "standard egnn, N = 25"].set_index("method")
    assert at25.loc["sgdml", "cheapest"] and at25["cheapest"].sum() == 1  # 49 CPU-h < standard's 50


def test_prediction_costs_per_method_and_per_ns_of_md():
    df = pd.DataFrame(
        [
            _route("standard", 25, 2.0, 50.0, 0.002),
            _route("standard", 100, 1.0, 200.0, 0.004),
            _route("delta", 25, 0.8, 60.5, 2.5, "dft"),
        ]
    )
    pc = metrics.prediction_costs(df).set_index("method")
    assert pc.loc["standard", "predict_cpu_s_per_frame"] == pytest.approx(0.003)
    # 1 ns at 0.5 fs = 2e6 steps: a DFT Δ model needs ~1,400 CPU-h where the pure model needs ~2
    assert pc.loc["delta", "md_cpu_h_per_ns"] == pytest.approx(2.5 * 2e6 / 3600)
    assert pc.loc["standard", "md_cpu_h_per_ns"] == pytest.approx(0.003 * 2e6 / 3600)
