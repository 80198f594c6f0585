"""build_report on small synthetic tables: offline HTML, figure files, exact numbers."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import records
from pipeline.report import metrics
from pipeline.report.html import build_report

MOLECULE = "aspirin"
FIGURES = [
    "learning_curves",
    "error_vs_cost",
    "error_vs_total_cost",
    "gamma_selection",
    "bias_diagnostic",
    "cheap_only",
    "md_stability",
    "stage_timings",
    "label_cost",
    "selection",
]
N_VALUES = [25, 50, 100, 200]
SEEDS = [0, 1]
CCSDT_CPU_H = 2.0  # CPU-h per accurate label
CHEAP_CPU_H = {"dft": 0.01, "empirical": 1e-6, "unlabelled": 0.0}
N_CHEAP = 1000
CONFIG_TEXT = 'molecules:\n  aspirin:\n    smiles: CC(=O)OC1=CC=CC=C1C(=O)O\nnote: "<b>x</b> & y"\n'


def _results(rng: np.random.Generator) -> pd.DataFrame:
    """Per-seed results following err = 4·N^-0.5 for standard training, with
    method-dependent factors and 2 % seed noise."""
    factors = {  # (method, cheap_level): error factor over standard
        ("standard", None): 1.0,
        ("asteroid", "dft"): 0.55,
        ("asteroid", "empirical"): 0.75,
        ("finetune_unweighted", "dft"): 0.8,
        ("bias_aware_no_finetune", "dft"): 0.9,
        ("score_matching", "unlabelled"): 0.85,
    }
    rows = []

    def row(model, method, level, n, seed, mae, gamma=math.nan):
        n_cheap = 0 if level is None else N_CHEAP
        acc_h, cheap_h = n * CCSDT_CPU_H, n_cheap * CHEAP_CPU_H.get(level or "", 0.0)
        rows.append(
            {
                "molecule": MOLECULE,
                "model": model,
                "method": method,
                "cheap_level": level,
                "n_train": n,
                "gamma": gamma,
                "seed": seed,
                "force_mae_kcal": mae,
                "force_rmse_kcal": 1.3 * mae,
                "force_mae_mev": 43.364 * mae,
                "force_rmse_mev": 43.364 * 1.3 * mae,
                "energy_mae_kcal": 0.2 * mae,
                "n_accurate_labels": n,
                "n_cheap_labels": n_cheap,
                "accurate_label_cpu_h": acc_h,
                "cheap_label_cpu_h": cheap_h,
                "data_cost_cpu_h": acc_h + cheap_h,
                "train_wall_s": 100.0 + n,
                "train_cpu_s": 180.0 + 2 * n,
                "force_mae_ci_low": 0.9 * mae,
                "force_mae_ci_high": 1.1 * mae,
                "reduction_vs_standard": math.nan,
                "reduction_ci_low": math.nan,
                "reduction_ci_high": math.nan,
                "train_cpu_h_total": (180.0 + 2 * n) / 3600,
                "total_cpu_h": acc_h + cheap_h + (180.0 + 2 * n) / 3600,
                "predict_cpu_s_per_frame": 0.05 if model == "sgdml" else 0.002,
            }
        )

    for model, scale in (("egnn", 4.0), ("gemnet", 3.0)):
        for seed in SEEDS:
            for (method, level), f in factors.items():
                gamma = {"asteroid": 1.0, "finetune_unweighted": math.inf, "bias_aware_no_finetune": 2.0}.get(
                    method, math.nan
                )
                for n in N_VALUES:
                    noise = 1 + 0.02 * rng.standard_normal()
                    row(model, method, level, n, seed, scale * f * n**-0.5 * noise, gamma)
            for level, mae in (("dft", 1.1), ("empirical", 2.4)):
                row(model, "cheap_only", level, 0, seed, mae * (1 + 0.02 * rng.standard_normal()))
            row(model, "score_matching_no_finetune", "unlabelled", 0, seed, 3.0 + 0.1 * seed)
    for seed in SEEDS:
        for n in N_VALUES:
            row("sgdml", "sgdml", None, n, seed, 3.5 * n**-0.45 * (1 + 0.02 * rng.standard_normal()))
    return pd.DataFrame(rows)


def write_synthetic_inputs(root: Path) -> dict:
    """Write a consistent set of pipeline tables under `root`; returns build_report kwargs."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    _results(rng).reindex(columns=records.RESULTS).to_csv(root / "results.csv", index=False)
    pd.DataFrame(
        [
            ("ccsdt", "train", 200, 0, 200 * CCSDT_CPU_H * 3600, CCSDT_CPU_H * 3600, 900.0),
            ("ccsdt", "test", 100, 1, 100 * CCSDT_CPU_H * 3600, CCSDT_CPU_H * 3600, 880.0),
            ("dft", "cheap-dft", N_CHEAP, 2, N_CHEAP * 36.0, 36.0, 20.0),
            ("empirical", "cheap-empirical", N_CHEAP, 0, N_CHEAP * 0.0036, 0.0036, 0.004),
        ],
        columns=["level", "subset", "n_frames", "n_failed", "cpu_s_total", "cpu_s_per_frame", "wall_s_per_frame"],
    ).reindex(columns=records.LABEL_COSTS, fill_value=0).to_csv(root / "label_costs.csv", index=False)
    gam = []
    for model in ("egnn", "gemnet"):
        for level in ("dft", "empirical"):
            for n in N_VALUES:
                for seed in SEEDS:
                    losses = {
                        g: (np.log(g) - 0.1 * seed) ** 2 + 0.1 if np.isfinite(g) else 1.0
                        for g in (0.5, 1.0, 2.0, 4.0, math.inf)
                    }
                    best = min(losses, key=losses.get)
                    gam += [
                        (
                            "asteroid",
                            model,
                            level,
                            n,
                            seed,
                            f"{g:g}",
                            g,
                            100.0 / g if np.isfinite(g) else 1000.0,
                            v,
                            g == best,
                        )
                        for g, v in losses.items()
                    ]
    pd.DataFrame(gam, columns=[c for c in records.GAMMA if c != "n_cheap"]).reindex(columns=records.GAMMA).to_csv(
        root / "gamma_selection.csv", index=False
    )
    red = []
    for n in N_VALUES:  # ASTEROID (dft) 45 % better, significant; score matching at N = 200 not significant
        red.append(("egnn", "asteroid", "dft", n, "egnn standard", 2, 100, 0.55, 1.0, 0.45, 0.40, 0.50, True))
        red.append(
            (
                "egnn",
                "score_matching",
                "unlabelled",
                n,
                "egnn standard",
                2,
                100,
                0.95,
                1.0,
                0.05,
                -0.05 if n == 200 else 0.01,
                0.15,
                n != 200,
            )
        )
    pd.DataFrame(red, columns=records.REDUCTIONS).to_csv(root / "reductions.csv", index=False)
    bias_rows = [
        ("egnn", lvl, n, 0, i, 5.0 + rng.random(), 1.0 + rng.random(), 4.0)
        for lvl in ("dft", "empirical")
        for n in (25, 200)
        for i in range(20)
    ]
    bias = pd.DataFrame(
        bias_rows,
        columns=["model", "cheap_level", "n_train", "seed", "frame_id", "bias_estimate", "true_bias", "stage1_error"],
    )
    bias.to_csv(root / "bias_diagnostic.csv", index=False)
    from pipeline.evaluation.bias_diagnostic import summarise

    summarise(bias).to_csv(root / "bias_correlation.csv", index=False)
    (root / "forcefield").mkdir(exist_ok=True)
    (root / "forcefield" / "metadata.json").write_text(
        json.dumps(
            {
                "molecule": MOLECULE,
                "model": "egnn",
                "method": "asteroid",
                "accurate_level": "ccsd_t",
                "cheap_level": "dft",
                "n_train": 200,
                "seed": 1,
                "gamma_spec": "r1",
                "chosen_by": "lowest validation force MAE",
                "val_force_mae_kcal_per_mol_A": 0.31,
                "expected_test_force_mae_kcal_per_mol_A": 0.33,
                "test_force_mae_95ci": [0.3, 0.36],
                "sgdml_same_n": {"val_force_mae_kcal_per_mol_A": 0.2, "better_on_validation": True, "model": "sg.npz"},
            }
        )
    )
    stab = []
    for model in ("egnn", "gemnet"):
        for method, level, p_div in (("standard", None, 0.5), ("asteroid", "dft", 0.1)):
            for n in (25, 200):
                for seed in SEEDS:
                    for run in range(3):
                        div = bool(rng.random() < p_div)
                        stab.append(
                            (
                                model,
                                method,
                                level,
                                n,
                                seed,
                                run,
                                400 if div else 1000,
                                1000,
                                div,
                                "step 400: bond stretch 2.1" if div else "",
                            )
                        )
    pd.DataFrame(stab, columns=[c for c in metrics.STABILITY_COLUMNS if c != "time_ps"]).assign(
        time_ps=lambda d: d["steps_completed"] * 0.0005
    ).to_csv(root / "stability.csv", index=False)
    bench = []
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for stage, n_jobs, wall, cpu, rss in (
        ("sample_md", 1, 600.0, 590.0, 300.0),
        ("label", 4, 7200.0, 28000.0, 4000.0),
        ("train", 6, 900.0, 1700.0, 2500.0),
        ("report", 1, 5.0, 4.0, 200.0),
    ):
        for j in range(n_jobs):
            p = root / "benchmarks" / MOLECULE / stage / f"job{j}.tsv"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(
                header + f"{wall + j}\t0:10:00\t{rss + j}\t{2 * rss}\t{rss}\t{rss}\t1.0\t2.0\t95.0\t{cpu + j}\n"
            )
            bench.append(str(p))
    sel, val = [], []
    for seed in SEEDS:
        for r in (1, 2):
            u = rng.gamma(2.0, 0.3, 60)  # kcal/mol/Å
            order = np.full(60, -1)
            order[np.argsort(-u)[:10]] = np.arange(10)
            sel += [
                (seed, r, 1000 * r + j, u[j], rng.random(), order[j], rng.normal(0, 3), rng.gamma(4, 5))
                for j in range(60)
            ]
            err = rng.gamma(2.0, 0.4, 20)
            val += [(seed, r, "delta", 5000 + j, 0.5 * err[j] + 0.1 * rng.random(), err[j]) for j in range(20)]
    pd.DataFrame(sel, columns=records.SELECTION).to_csv(root / "selection.csv", index=False)
    pd.DataFrame(val, columns=records.SELECTION_VALIDATION).to_csv(root / "selection_validation.csv", index=False)
    (root / "config.yaml").write_text(CONFIG_TEXT)
    return dict(
        results_csv=root / "results.csv",
        label_costs_csv=root / "label_costs.csv",
        gamma_csv=root / "gamma_selection.csv",
        stability_csv=root / "stability.csv",
        benchmark_files=bench,
        config_path=root / "config.yaml",
        out_html=root / "out" / "report.html",
        fig_dir=root / "out" / "figures",
        molecule=MOLECULE,
        reductions_csv=root / "reductions.csv",
        bias_csv=root / "bias_diagnostic.csv",
        bias_summary_csv=root / "bias_correlation.csv",
        forcefield_dir=root / "forcefield",
        selection_csv=root / "selection.csv",
        selection_validation_csv=root / "selection_validation.csv",
    )


class _TableCells(HTMLParser):
    """Collects (data-column headers, rows of data-value attributes or None) of the
    table with a given id."""

    def __init__(self, table_id: str):
        super().__init__()
        self.table_id, self.inside, self.columns, self.rows = table_id, False, [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self.inside = a.get("id") == self.table_id
        elif self.inside and tag == "th":
            self.columns.append(a.get("data-column"))
        elif self.inside and tag == "tr" and self.columns:
            self.rows.append([])
        elif self.inside and tag == "td":
            self.rows[-1].append(a.get("data-value"))

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False


def table_mismatches(html_text: str, csv_path: Path, table_id: str = "results-table") -> list[str]:
    """Cells of the table whose data-value differs from the CSV (numeric columns), as messages."""
    parser = _TableCells(table_id)
    parser.feed(html_text)
    df = pd.read_csv(csv_path)
    if parser.columns != list(df.columns):
        return [f"columns {parser.columns} != CSV columns {list(df.columns)}"]
    if len(parser.rows) != len(df):
        return [f"{len(parser.rows)} rows != {len(df)} CSV rows"]
    bad = []
    for i, (cells, (_, csv_row)) in enumerate(zip(parser.rows, df.iterrows())):
        for col, cell in zip(df.columns, cells):
            if not pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
                continue
            want = float(csv_row[col])
            got = math.nan if cell is None else float(cell)
            if not (got == want or (math.isnan(got) and math.isnan(want))):
                bad.append(f"row {i} {col}: {cell!r} != {want!r}")
    return bad


_BUILT: dict[str, tuple[dict, Path]] = {}


def built_synthetic_report(tmp_path_factory) -> tuple[dict, Path]:
    """(build_report kwargs, report path) of the synthetic report, built once per
    session (the browser tests reuse it)."""
    if "report" not in _BUILT:
        kwargs = write_synthetic_inputs(tmp_path_factory.mktemp("report"))
        _BUILT["report"] = (kwargs, build_report(**kwargs))
    return _BUILT["report"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    kwargs, path = built_synthetic_report(tmp_path_factory)
    return kwargs, path, path.read_text(encoding="utf-8")


def test_report_has_no_network_references(report):
    _, _, text = report
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", text, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(?:https?:)?//", text, re.I)
    assert "<script" not in text.lower()  # the config's "<b>x</b>" must come out escaped
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in text


def test_every_figure_written_as_png_and_svg(report):
    kwargs, _, text = report
    for name in FIGURES:
        for ext in ("png", "svg"):
            p = Path(kwargs["fig_dir"]) / f"{name}.{ext}"
            assert p.is_file() and p.stat().st_size > 1000, p
        assert f'data-figure="{name}"' in text
    assert text.count('<img src="data:image/svg+xml;base64,') == len(FIGURES)
    assert "not drawn" not in text


def test_results_table_values_equal_csv(report):
    kwargs, _, text = report
    assert table_mismatches(text, kwargs["results_csv"]) == []
    # The comparison can fail: alter one exact value and it is reported.
    df = pd.read_csv(kwargs["results_csv"])
    exact = repr(float(df["force_mae_kcal"].iloc[3]))
    tampered = text.replace(f'data-value="{exact}"', 'data-value="0.123"', 1)
    assert tampered != text
    assert table_mismatches(tampered, kwargs["results_csv"])


def test_summary_reports_asteroid_gain_with_its_interval(report):
    _, _, text = report
    summary = text.split('<section id="figures">')[0]
    assert "Total label cost" in summary
    m = re.search(
        r"ASTEROID \(dft\) vs standard, EGNN</div><div class=\"card-value\">"
        r"([0-9]+)% lower force error</div><div class=\"card-detail\">([^<]*)<",
        summary,
    )
    assert m and m.group(1) == "45" and "95% CI +40% to +50%" in m.group(2)
    # egnn ASTEROID (dft) is built 45 % better than standard: a factor of ~(1/0.55)^2
    m = re.search(r"Sample efficiency of ASTEROID \(dft\), EGNN</div><div class=\"card-value\">([0-9.]+)×", summary)
    assert m and 2.8 < float(m.group(1)) < 3.9
    assert "Recommended force field" in summary and "forcefield/model.pt" in summary


def test_reductions_say_when_a_difference_is_not_significant(report):
    _, _, text = report
    table = text.split('id="reduction-table"')[1].split("</table>")[0]
    assert "not significant at 95%" in table and table.count(" n.s.</td>") == 1  # score matching at N = 200
    assert "[+40%, +50%]" in table


def test_gamma_bias_and_forcefield_sections(report):
    _, _, text = report
    assert 'id="gamma-table"' in text and "effective cheap frames" in text
    assert 'id="bias-table"' in text and "Spearman" in text
    ff = text.split('id="forcefield"')[1].split("</section>")[0]
    assert "load_forcefield('forcefield')" in ff and "sGDML, trained on the same 200 accurate labels, had a lower" in ff
    assert "It is a Δ model" not in ff


def test_a_recommended_delta_model_says_what_it_runs_and_names_the_plain_alternative(tmp_path):
    kwargs = write_synthetic_inputs(tmp_path)
    meta_path = Path(kwargs["forcefield_dir"]) / "metadata.json"
    meta = json.loads(meta_path.read_text())
    meta.update(
        method="delta",
        cheap_level="xtb",
        calculator="DeltaCalculator",
        predict_cpu_s_per_frame=0.0052,
        plain_same_n={
            "method": "standard",
            "model": "egnn",
            "cheap_level": None,
            "val_force_mae_kcal_per_mol_A": 0.64,
            "predict_cpu_s_per_frame": 0.0033,
            "model_path": "results/ethanol/models/egnn/standard/N200_s1/model.pt",
        },
    )
    meta_path.write_text(json.dumps(meta))
    text = build_report(**kwargs).read_text(encoding="utf-8")
    ff = " ".join(text.split('id="forcefield"')[1].split("</section>")[0].split())
    assert "It is a Δ model: every call computes the cheap level (xtb)" in ff
    assert "validation force MAE 0.64 vs 0.31 kcal/mol/Å, 3.3 ms CPU per call" in ff
    assert "models/egnn/standard/N200_s1/model.pt" in ff and ">5.2<" in ff


def test_missing_inputs_give_notes_not_crashes(tmp_path):
    kwargs = write_synthetic_inputs(tmp_path)
    Path(kwargs["stability_csv"]).unlink()
    Path(kwargs["label_costs_csv"]).write_text("")
    df = pd.read_csv(kwargs["results_csv"])
    df[~df["method"].isin(["cheap_only", "score_matching_no_finetune"])].to_csv(kwargs["results_csv"], index=False)
    # stale figures of an earlier run must not survive
    Path(kwargs["fig_dir"]).mkdir(parents=True)
    (Path(kwargs["fig_dir"]) / "md_stability.png").write_bytes(b"old")
    kwargs["benchmark_files"] = []
    text = build_report(**kwargs).read_text(encoding="utf-8")
    for name in ("cheap_only", "md_stability", "stage_timings", "label_cost"):
        assert f'id="fig-{name}"' in text and not (Path(kwargs["fig_dir"]) / f"{name}.png").exists()
    assert text.count("not drawn") >= 4
    assert "stability.csv not found" in text
    assert table_mismatches(text, kwargs["results_csv"]) == []


def test_missing_column_is_an_error(tmp_path):
    kwargs = write_synthetic_inputs(tmp_path)
    pd.read_csv(kwargs["results_csv"]).drop(columns="gamma").to_csv(kwargs["results_csv"], index=False)
    with pytest.raises(ValueError, match="gamma"):
        build_report(**kwargs)
    assert not Path(kwargs["out_html"]).exists()


def test_cost_section_sets_the_estimate_against_what_was_spent(tmp_path):
    kwargs = write_synthetic_inputs(tmp_path)
    plan = tmp_path / "label_plan.csv"
    pd.DataFrame(
        [
            ("ccsdt", 300, 2 * CCSDT_CPU_H * 3600, "cost model (test)"),
            ("dft", N_CHEAP, 36.0, "measured: mean of 9 cached frames of this molecule"),
        ],
        columns=["level", "n_frames", "cpu_s_per_frame", "source"],
    ).to_csv(plan, index=False)
    text = build_report(**kwargs, label_plan_csv=plan).read_text(encoding="utf-8")
    section = text.split('id="label-estimate-table"')[1].split("</table>")[0]
    assert "cost model (test)" in section and "spent / estimated" in section
    # CCSD(T) spent half the estimate, DFT exactly the estimate
    assert 'data-value="0.5"' in section and 'data-value="1.0"' in section
    assert 'id="label-estimate-table"' not in build_report(**kwargs).read_text(encoding="utf-8")


def test_routes_and_prediction_cost_tables_show_delta(tmp_path):
    from pipeline.report.content import prediction_cost_table, routes_table

    base = dict(
        molecule=MOLECULE,
        model="egnn",
        seed=0,
        gamma=math.nan,
        train_cpu_h_total=0.1,
        n_cheap_labels=0,
        force_rmse_kcal=1.0,
        energy_mae_kcal=1.0,
        n_accurate_labels=25,
    )
    df = pd.DataFrame(
        [
            dict(
                base,
                method="standard",
                cheap_level=None,
                n_train=25,
                force_mae_kcal=2.0,
                data_cost_cpu_h=50.0,
                total_cpu_h=50.1,
                predict_cpu_s_per_frame=0.002,
            ),
            dict(
                base,
                method="delta",
                cheap_level="xtb",
                n_train=25,
                force_mae_kcal=0.9,
                data_cost_cpu_h=50.2,
                total_cpu_h=50.3,
                predict_cpu_s_per_frame=0.007,
            ),
        ]
    )
    routes = routes_table(df)
    assert routes.id == "routes-table"
    assert any("Δ-learning: cheap level + neural correction (xtb)" in h.label for h in routes.headers)
    cells = [c for row in routes.rows for c in row.cells]
    assert "50.3 CPU-h (N = 25)" in [c.text for c in cells] and [c.cls for c in cells].count("num best") == 1
    pred = prediction_cost_table(df)
    assert pred.id == "prediction-cost-table" and "0.007" in [c.value for row in pred.rows for c in row.cells]


def test_tuning_notes_name_capped_runs_that_were_still_improving():
    from pipeline.report.content import tuning_notes

    df = pd.DataFrame(
        [
            dict(method="standard", n_train=50, stop_reason="early_stopping", late_improvement=0.0),
            dict(method="standard", n_train=100, stop_reason="step_cap", late_improvement=0.01),
            dict(method="asteroid", n_train=200, stop_reason="step_cap", late_improvement=0.2),
        ]
    )
    notes = tuning_notes(df)
    assert any("2 of 3 trainings ended at a step or epoch cap" in n for n in notes)
    late = [n for n in notes if "still improving" in n]
    assert len(late) == 1 and "1 of them" in late[0] and "asteroid N = 200" in late[0]
    assert "standard N = 100" not in late[0]
    assert not [n for n in tuning_notes(df.assign(late_improvement=0.02)) if "still improving" in n]


def test_tuning_notes_name_fine_tuned_routes_whose_pre_training_was_cut_short():
    """ASTEROID fine-tuned from a stage 2 that its cap ended while still improving: the note names the
    runs and the stage budget to raise; a pre-training that early stopping ended, or that had stopped
    improving, is not named."""
    from pipeline.report.content import tuning_notes

    rows = [
        dict(method="asteroid", n_train=25, pretrain_stop_reason="step_cap", pretrain_late_improvement=0.3),
        dict(method="corrected", n_train=25, pretrain_stop_reason="step_cap", pretrain_late_improvement=0.2),
        dict(method="asteroid", n_train=50, pretrain_stop_reason="early_stopping", pretrain_late_improvement=0.3),
        dict(method="finetune_unweighted", n_train=50, pretrain_stop_reason="step_cap", pretrain_late_improvement=0.01),
        dict(method="standard", n_train=25, pretrain_stop_reason="", pretrain_late_improvement=float("nan")),
        dict(method="score_matching", n_train=25, pretrain_stop_reason="epoch_cap", pretrain_late_improvement=0.1),
    ]
    (note,) = [n for n in tuning_notes(pd.DataFrame(rows)) if "pre-training" in n]
    assert note.startswith("3 fine-tuned models")
    assert "asteroid N = 25, corrected N = 25, score_matching N = 25" in note and "N = 50" not in note
    assert "training.cheap.max_steps, training.corrected.max_steps, training.score_matching.max_epochs" in note
    rows[-1]["pretrain_late_improvement"] = 0.0
    rows[0]["pretrain_late_improvement"] = rows[1]["pretrain_late_improvement"] = 0.0
    assert not [n for n in tuning_notes(pd.DataFrame(rows)) if "pre-training" in n]
