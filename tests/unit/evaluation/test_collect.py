"""collect reads roles from model metadata: gamma choice (inf included), costs, every method row."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from pipeline.data import Dataset
from pipeline.evaluation.collect import collect
from tests.conftest import ETHANOL_R, ETHANOL_Z

N_TEST = 30


def _eval(path, errors, extra=None, **top):
    """An eval.json as the evaluate/sgdml rules write it (per-frame errors drive every statistic)."""
    path.mkdir(parents=True, exist_ok=True)
    e = np.asarray(errors, dtype=float)
    ev = {
        "force_mae_kcal": e.mean(),
        "force_rmse_kcal": e.mean(),
        "force_mae_mev": 43 * e.mean(),
        "force_rmse_mev": 43 * e.mean(),
        "energy_mae_kcal": 0.1,
        "per_frame_force_mae_kcal": e.tolist(),
        "frame_id": list(range(N_TEST)),
        "method": "model",
        "model_extra": extra or {},
        **top,
    }
    (path / "eval.json").write_text(json.dumps(ev))
    (path / "model.pt").write_bytes(b"model " + path.name.encode())
    return str(path / "eval.json")


def _ds(path, n, cpu):
    Dataset(
        R=np.repeat(ETHANOL_R[None], n, 0), z=ETHANOL_Z, E=np.zeros(n), F=np.zeros((n, 9, 3)), cpu_s=np.full(n, cpu)
    ).save(path)
    return str(path)


@pytest.fixture
def run(tmp_path):
    rng = np.random.default_rng(0)
    hard = rng.lognormal(0, 0.5, N_TEST)  # per-frame difficulty shared by all methods
    m = tmp_path / "models"
    base = dict(model_name="egnn", seed=0)
    evals = [
        _eval(m / "std", 2.0 * hard, dict(base, stage="standard", n_train=4, best_metric=2.1, train_cpu_s=100)),
        _eval(
            m / "cheap_only",
            3.0 * hard,
            dict(base, stage="cheap", cheap_level="xtb", gamma=math.inf, gamma_spec="inf", train_cpu_s=1000),
        ),
        _eval(
            m / "s2_r1",
            2.9 * hard,
            dict(
                base,
                stage="cheap",
                cheap_level="xtb",
                gamma=0.7,
                gamma_spec="r1",
                stage1_n_train=4,
                bias_cpu_s=7,
                effective_frames=55.0,
                n_cheap=90,
                train_cpu_s=900,
            ),
        ),
        _eval(
            m / "ft_r1",
            1.6 * hard,
            dict(
                base,
                stage="finetune",
                init_stage="cheap",
                cheap_level="xtb",
                gamma=0.7,
                gamma_spec="r1",
                n_train=4,
                best_val_loss=0.5,
                best_metric=1.7,
                effective_frames=55.0,
                n_cheap=90,
                train_cpu_s=50,
            ),
        ),
        _eval(
            m / "ft_inf",
            1.2 * hard,
            dict(
                base,
                stage="finetune",
                init_stage="cheap",
                init_stop_reason="step_cap",
                init_late_improvement=0.25,
                cheap_level="xtb",
                gamma=math.inf,
                gamma_spec="inf",
                n_train=4,
                best_val_loss=0.3,
                best_metric=1.3,
                effective_frames=100.0,
                n_cheap=100,
                train_cpu_s=60,
            ),
        ),
        _eval(m / "score", 4.0 * hard, dict(base, stage="score_matching", train_cpu_s=30)),
        _eval(
            m / "ft_score",
            1.9 * hard,
            dict(
                base,
                stage="finetune",
                init_stage="score_matching",
                n_train=4,
                best_val_loss=0.9,
                best_metric=1.95,
                train_cpu_s=20,
            ),
        ),
        _eval(tmp_path / "sgdml", 1.0 * hard, None, method="sgdml", n_train=4, train_cpu_s=8, valid_force_mae_kcal=1.0),
    ]
    train = _ds(tmp_path / "train.npz", 4, 3600.0)  # one CPU-hour per accurate label
    cheap = _ds(tmp_path / "cheap.npz", 100, 36.0)  # 1 CPU-h for the pool
    out = {k: str(tmp_path / f"{k}.csv") for k in ("results", "gamma", "costs", "stab", "red", "bias", "bsum")}
    res = collect(
        molecule="ethanol",
        evals=evals,
        train_npz=train,
        cheap_npz={"xtb": cheap},
        unlabelled_npz=None,
        datasets={"ccsd_t:train": train, "xtb:cheap-xtb": cheap},
        stability_csvs=[],
        out_results=out["results"],
        out_gamma=out["gamma"],
        out_costs=out["costs"],
        out_stability=out["stab"],
        out_reductions=out["red"],
        out_bias=out["bias"],
        out_bias_summary=out["bsum"],
        out_forcefield=str(tmp_path / "forcefield"),
        accurate_level="ccsd_t",
        n_bootstrap=500,
    )
    return res, out, tmp_path


def test_every_method_row_from_metadata(run):
    res, _, _ = run
    rows = {(r.method, r.cheap_level): r for r in res.itertuples()}
    assert set(rows) == {
        ("standard", ""),
        ("cheap_only", "xtb"),
        ("asteroid", "xtb"),
        ("bias_aware_no_finetune", "xtb"),
        ("finetune_unweighted", "xtb"),
        ("score_matching", "unlabelled"),
        ("score_matching_no_finetune", "unlabelled"),
        ("sgdml", ""),
    }
    assert rows[("cheap_only", "xtb")].n_train == 0 and rows[("asteroid", "xtb")].n_train == 4
    # a fine-tuned row carries how its pre-training ended (γ = inf here wins: ASTEROID's row too)
    ft = rows[("finetune_unweighted", "xtb")]
    assert (ft.pretrain_stop_reason, ft.pretrain_late_improvement) == ("step_cap", 0.25)
    st = rows[("standard", "")]
    assert not st.pretrain_stop_reason and math.isnan(st.pretrain_late_improvement)


def test_gamma_inf_is_a_candidate_and_wins_on_validation_loss(run):
    res, out, _ = run
    g = pd.read_csv(out["gamma"])
    assert list(g["gamma_spec"]) == ["r1", "inf"] and list(g["chosen"]) == [False, True]
    assert list(g["effective_frames"]) == [55.0, 100.0]
    ast = res[res["method"] == "asteroid"].iloc[0]
    assert ast["gamma_spec"] == "inf" and math.isinf(ast["gamma"])
    assert ast["force_mae_kcal"] == pytest.approx(1.2 * res[res["method"] == "standard"]["force_mae_kcal"].iloc[0] / 2)
    # with gamma = inf chosen, "no fine-tuning" is the unweighted stage-2 (cheap-only) model
    nf = res[res["method"] == "bias_aware_no_finetune"].iloc[0]
    assert nf["force_mae_kcal"] == pytest.approx(res[res["method"] == "cheap_only"]["force_mae_kcal"].iloc[0])


def test_costs_count_labels_and_every_training_step(run):
    res, _, _ = run
    r = {m: res[res["method"] == m].iloc[0] for m in res["method"]}
    assert r["standard"]["accurate_label_cpu_h"] == pytest.approx(4.0)
    assert r["asteroid"]["cheap_label_cpu_h"] == pytest.approx(1.0)
    # stage 1 + bias + (stage 2 + fine-tune) for both candidates
    assert r["asteroid"]["train_cpu_h_total"] * 3600 == pytest.approx(100 + 7 + 900 + 50 + 1000 + 60)
    assert r["finetune_unweighted"]["train_cpu_h_total"] * 3600 == pytest.approx(1000 + 60)
    assert r["score_matching"]["train_cpu_h_total"] * 3600 == pytest.approx(30 + 20)
    assert r["sgdml"]["train_cpu_h_total"] * 3600 == pytest.approx(8)
    assert r["asteroid"]["total_cpu_h"] == pytest.approx(4 + 1 + r["asteroid"]["train_cpu_h_total"])


def test_reductions_carry_paired_intervals(run):
    res, out, _ = run
    ast = res[res["method"] == "asteroid"].iloc[0]
    assert ast["reduction_vs_standard"] == pytest.approx(0.4)
    assert ast["reduction_ci_low"] == pytest.approx(0.4) and ast["reduction_ci_high"] == pytest.approx(0.4)
    std = res[res["method"] == "standard"].iloc[0]
    assert std["force_mae_ci_low"] < std["force_mae_kcal"] < std["force_mae_ci_high"]
    red = pd.read_csv(out["red"])
    sg = red[red["method"] == "sgdml"].iloc[0]
    assert sg["baseline"] == "egnn standard" and sg["reduction"] == pytest.approx(0.5) and sg["significant"]


def test_recommended_force_field_is_chosen_on_validation_and_exported(run):
    _, _, tmp = run
    meta = json.loads((tmp / "forcefield" / "metadata.json").read_text())
    # lowest validation MAE among models ending on accurate data: fine-tuned, gamma = inf (1.3)
    assert meta["method"] == "asteroid" and meta["gamma_spec"] == "inf" and meta["n_train"] == 4
    assert meta["val_force_mae_kcal_per_mol_A"] == 1.3 and meta["accurate_level"] == "ccsd_t"
    assert (tmp / "forcefield" / "model.pt").read_bytes() == b"model ft_inf"
    assert meta["calculator"] == "ModelCalculator" and meta["sgdml_same_n"]["better_on_validation"]


def test_evaluations_on_different_test_sets_are_refused(tmp_path, run):
    ev = json.loads((tmp_path / "models" / "std" / "eval.json").read_text())
    ev["frame_id"] = list(range(1, N_TEST + 1))
    (tmp_path / "models" / "std" / "eval.json").write_text(json.dumps(ev))
    with pytest.raises(ValueError, match="different test sets"):
        collect(
            molecule="ethanol",
            evals=[str(tmp_path / "models" / "std" / "eval.json"), str(tmp_path / "models" / "ft_inf" / "eval.json")],
            train_npz=str(tmp_path / "train.npz"),
            cheap_npz={},
            unlabelled_npz=None,
            datasets={},
            stability_csvs=[],
            out_results=str(tmp_path / "r.csv"),
            out_gamma=str(tmp_path / "g.csv"),
            out_costs=str(tmp_path / "c.csv"),
            out_stability=str(tmp_path / "s.csv"),
        )


def _ds_ids(path, frame_id, cpu, meta=None):
    n = len(frame_id)
    Dataset(
        meta=meta or {},
        R=np.repeat(ETHANOL_R[None], n, 0),
        z=ETHANOL_Z,
        E=np.zeros(n),
        F=np.zeros((n, 9, 3)),
        frame_id=np.asarray(frame_id),
        cpu_s=np.full(n, cpu),
    ).save(path)
    return str(path)


XTB_ENTRY = {"engine": "xtb", "method": "GFN2-xTB"}


def _delta_run(tmp_path, cheap_entry=XTB_ENTRY, prmtop=None, selected=False):
    """Standard EGNN, Δ-EGNN and Δ-sGDML on xTB at N = 4 (Δ-EGNN best on validation); with
    `selected`, also Δ-EGNN on the frames a selection picked (best on validation then)."""
    rng = np.random.default_rng(1)
    hard = rng.lognormal(0, 0.5, N_TEST)
    m = tmp_path / "models"
    evals = [
        _eval(
            m / "std",
            2.0 * hard,
            dict(model_name="egnn", seed=0, stage="standard", n_train=4, best_metric=2.1, train_cpu_s=100),
            predict_cpu_s_per_frame=0.002,
        ),
        _eval(
            m / "delta",
            0.5 * hard,
            dict(
                model_name="egnn",
                seed=0,
                stage="delta",
                n_train=4,
                cheap_level="xtb",
                cheap_entry=cheap_entry,
                best_metric=0.55,
                train_cpu_s=90,
            ),
            method="delta",
            cheap_level="xtb",
            predict_cpu_s_per_frame=0.006,
        ),
        _eval(
            tmp_path / "dsg",
            0.8 * hard,
            None,
            method="delta_sgdml",
            cheap_level="xtb",
            n_train=4,
            train_cpu_s=5,
            valid_force_mae_kcal=0.9,
            predict_cpu_s_per_frame=0.0045,
        ),
    ]
    # accurate train frames 100..105 (train[:4] = 100..103) at 1 CPU-h each
    train = _ds_ids(tmp_path / "train.npz", [100, 101, 102, 103, 104, 105], 3600.0)
    # xTB on the train frames: 103 failed (its attempt cost 72 s); 104, 105 are beyond N = 4
    xtb_train = _ds_ids(tmp_path / "xtb_train.npz", [100, 101, 102, 104, 105], 36.0)
    pd.DataFrame([dict(level="xtb", frame_id=103, reason="SCC", cpu_s=72.0)]).to_csv(
        tmp_path / "xtb_train.failures.csv", index=False
    )
    xtb_val = _ds_ids(tmp_path / "xtb_val.npz", [200, 201, 202], 36.0)
    xtb_test = _ds_ids(tmp_path / "xtb_test.npz", list(range(N_TEST)), 36.0)
    picks = {}
    if selected:  # round 0 = 100, 101; round 1 picked pool frames 300, 301 (accurate 2 CPU-h, xTB 40 s each)
        extra = dict(model_name="egnn", seed=0, stage="delta", n_train=4, cheap_level="xtb", role="delta_selected")
        extra.update(cheap_entry=cheap_entry, best_metric=0.45, train_cpu_s=80)
        evals.append(_eval(m / "dsel", 0.4 * hard, extra, predict_cpu_s_per_frame=0.006))
        cost = {"selected": {"n_first": 2, "selection_cpu_s": 500.0}}
        picks = {
            "ccsd_t:4:0": _ds_ids(tmp_path / "sel_acc.npz", [100, 101, 300, 301], 7200.0, cost),
            "xtb:4:0": _ds_ids(tmp_path / "sel_xtb.npz", [100, 101, 300, 301], 40.0, cost),
        }
    datasets = {"ccsd_t:train": train, "xtb:train": xtb_train, "xtb:val": xtb_val, "xtb:test": xtb_test}
    return _collect(
        tmp_path, evals, train, {}, datasets, out_forcefield=str(tmp_path / "ff"), prmtop=prmtop, selected=picks
    )


def _collect(tmp_path, evals, train, cheap_npz, datasets, **kw):
    """collect into tmp_path (results, gamma, costs, stab, red CSVs): (results, their paths)."""
    out = {k: str(tmp_path / f"{k}.csv") for k in ("results", "gamma", "costs", "stab", "red")}
    res = collect(
        molecule="ethanol",
        evals=evals,
        train_npz=train,
        cheap_npz=cheap_npz,
        unlabelled_npz=None,
        datasets=datasets,
        stability_csvs=[],
        out_results=out["results"],
        out_gamma=out["gamma"],
        out_costs=out["costs"],
        out_stability=out["stab"],
        out_reductions=out["red"],
        n_bootstrap=300,
        accurate_level="ccsd_t",
        **kw,
    )
    return res, out


def test_delta_rows_count_cheap_labels_on_train_val_and_test(tmp_path):
    """Δ: N accurate labels + cheap labels on those N frames (a failed attempt included), the
    validation and the test frames; its prediction cost; reductions like every method."""
    res, out = _delta_run(tmp_path)
    r = {x.method: x for x in res.itertuples()}
    assert set(r) == {"standard", "delta", "delta_sgdml"}
    d = r["delta"]
    assert d.cheap_level == "xtb" and d.n_train == 4 and d.n_accurate_labels == 4
    assert d.n_cheap_labels == 3 + 3 + N_TEST  # 100, 101, 102 + val + test
    assert d.cheap_label_cpu_h * 3600 == pytest.approx(3 * 36 + 72 + 3 * 36 + N_TEST * 36)
    assert d.accurate_label_cpu_h == pytest.approx(4.0)
    assert d.data_cost_cpu_h == pytest.approx(4.0 + d.cheap_label_cpu_h)
    assert d.total_cpu_h == pytest.approx(d.data_cost_cpu_h + 90 / 3600)
    assert r["delta_sgdml"].n_cheap_labels == d.n_cheap_labels and r["delta_sgdml"].model == "sgdml"
    assert r["delta_sgdml"].train_cpu_h_total * 3600 == pytest.approx(5)
    assert d.predict_cpu_s_per_frame == 0.006 and r["standard"].predict_cpu_s_per_frame == 0.002
    assert d.val_force_mae_kcal == 0.55 and r["delta_sgdml"].val_force_mae_kcal == 0.9
    assert d.reduction_vs_standard == pytest.approx(0.75)
    red = pd.read_csv(out["red"]).set_index("method")
    assert red.loc["delta", "reduction"] == pytest.approx(0.75) and red.loc["delta", "baseline"] == "egnn standard"
    assert red.loc["delta_sgdml", "model"] == "sgdml vs egnn" and red.loc["delta_sgdml", "reduction"] == pytest.approx(
        0.6
    )


def test_a_delta_model_best_on_validation_is_the_recommended_force_field(tmp_path):
    """Δ-EGNN has the lowest validation MAE: it is exported with its cheap level's settings, and the
    metadata names the best plain model (no cheap level at run time); Δ-sGDML is never exported."""
    _delta_run(tmp_path)
    meta = json.loads((tmp_path / "ff" / "metadata.json").read_text())
    assert meta["method"] == "delta" and meta["calculator"] == "DeltaCalculator" and meta["cheap_level"] == "xtb"
    assert meta["cheap_level_entry"] == XTB_ENTRY and meta["prmtop"] is None
    assert meta["predict_cpu_s_per_frame"] == 0.006 and meta["val_force_mae_kcal_per_mol_A"] == 0.55
    assert (tmp_path / "ff" / "model.pt").read_bytes() == b"model delta"
    assert not (tmp_path / "ff" / "gaff2.prmtop").exists()
    assert meta["delta_same_n"]["method"] == "delta" and meta["delta_same_n"]["val_force_mae_kcal_per_mol_A"] == 0.55
    plain = meta["plain_same_n"]
    assert plain["method"] == "standard" and not plain["better_on_validation"]
    assert plain["predict_cpu_s_per_frame"] == 0.002 and plain["model_path"].endswith("std/model.pt")
    dsg = meta["delta_sgdml_same_n"]  # not exported, but named with its validation error
    assert dsg["val_force_mae_kcal_per_mol_A"] == 0.9 and not dsg["better_on_validation"]
    assert dsg["cheap_level"] == "xtb" and dsg["model"].endswith("dsg/sgdml_model.npz")


def test_a_recommended_delta_model_on_gaff2_is_exported_with_its_prmtop(tmp_path):
    entry = {"engine": "empirical"}
    with pytest.raises(ValueError, match="GAFF2 prmtop.*--prmtop"):
        _delta_run(tmp_path, entry)
    prmtop = tmp_path / "gaff2.prmtop"
    prmtop.write_text("%VERSION prmtop of the molecule\n")
    _delta_run(tmp_path, entry, prmtop=str(prmtop))
    meta = json.loads((tmp_path / "ff" / "metadata.json").read_text())
    assert meta["prmtop"] == "gaff2.prmtop" and meta["cheap_level_entry"] == entry
    assert (tmp_path / "ff" / "gaff2.prmtop").read_text() == prmtop.read_text()


def test_delta_without_its_cheap_datasets_is_refused(tmp_path):
    hard = np.ones(N_TEST)
    ev = _eval(
        tmp_path / "delta",
        hard,
        dict(model_name="egnn", seed=0, stage="delta", n_train=4, cheap_level="dft", train_cpu_s=1),
        method="delta",
    )
    train = _ds_ids(tmp_path / "train.npz", [1, 2, 3, 4], 1.0)
    with pytest.raises(ValueError, match="dft:train"):
        collect(
            molecule="ethanol",
            evals=[ev],
            train_npz=train,
            cheap_npz={},
            unlabelled_npz=None,
            datasets={},
            stability_csvs=[],
            out_results=str(tmp_path / "r.csv"),
            out_gamma=str(tmp_path / "g.csv"),
            out_costs=str(tmp_path / "c.csv"),
            out_stability=str(tmp_path / "s.csv"),
        )


def test_corrected_pretraining_is_also_compared_with_delta_learning():
    """reductions.csv: a method with `compare_with` gets a row against each of those methods (same
    model, level, N, matched seeds) besides the one against standard training; worse is negative."""
    from pipeline.evaluation.collect import pooled_reductions

    rng = np.random.default_rng(0)
    scale = {"standard": 2.0, "delta": 0.8, "corrected": 1.0}
    rows = [
        dict(
            model="egnn",
            method=m,
            cheap_level="" if m == "standard" else "xtb",
            n_train=25,
            seed=s,
            _errors=scale[m] * (1 + 0.1 * rng.random(40)),
        )
        for m in scale
        for s in range(3)
    ]
    red = pooled_reductions(pd.DataFrame(rows), n_bootstrap=200).set_index(["method", "baseline"])
    assert set(red.index) == {("delta", "egnn standard"), ("corrected", "egnn standard"), ("corrected", "egnn delta")}
    vs_delta = red.loc[("corrected", "egnn delta")]
    assert vs_delta["reduction"] == pytest.approx(1 - 1.0 / 0.8, abs=0.03) and vs_delta["n_seeds"] == 3
    assert red.loc[("corrected", "egnn standard"), "reduction"] == pytest.approx(0.5, abs=0.03)


def test_a_model_on_selected_frames_pays_for_its_own_labels_and_the_selection(tmp_path):
    """Δ-EGNN on selected frames: the accurate and cheap labels of its own 4 frames (not train[:4]),
    the validation and test frames at xTB, and the committees' training and scoring as training CPU;
    best on validation, it is exported as a Δ model (its cheap level runs at every call)."""
    res, out = _delta_run(tmp_path, selected=True)
    r = {x.method: x for x in res.itertuples()}
    d = r["delta_selected"]
    assert d.n_train == 4 and d.seed == 0 and d.cheap_level == "xtb"
    assert d.accurate_label_cpu_h == pytest.approx(4 * 2.0)  # its own frames, 2 CPU-h each
    assert d.cheap_label_cpu_h * 3600 == pytest.approx(4 * 40 + 3 * 36 + N_TEST * 36)
    assert d.train_cpu_h_total * 3600 == pytest.approx(80 + 500)
    assert r["delta"].accurate_label_cpu_h == pytest.approx(4.0)  # random frames unchanged
    red = pd.read_csv(out["red"])
    assert set(red.loc[red.method == "delta_selected", "baseline"]) == {"egnn standard", "egnn delta"}
    meta = json.loads((tmp_path / "ff" / "metadata.json").read_text())
    assert meta["method"] == "delta_selected" and meta["calculator"] == "DeltaCalculator"
    assert meta["cheap_level_entry"] == XTB_ENTRY and meta["delta_same_n"]["method"] == "delta_selected"
    assert "committee" not in meta  # one seed: no committee


def test_the_other_seeds_of_the_recommended_method_are_exported_as_its_committee(tmp_path):
    """Every seed of the recommended method, model and N other than its own is exported under
    committee/ (the calculator reports their force disagreement); an earlier export's are replaced."""
    hard = np.random.default_rng(2).lognormal(0, 0.5, N_TEST)
    evals = [
        _eval(
            tmp_path / f"std{s}",
            (1.0 + 0.1 * s) * hard,
            dict(model_name="egnn", seed=s, stage="standard", n_train=4, best_metric=1.0 + 0.1 * s, train_cpu_s=9),
        )
        for s in (2, 0, 1)
    ]
    train = _ds(tmp_path / "train.npz", 4, 3600.0)
    ff = tmp_path / "ff"
    (ff / "committee").mkdir(parents=True)
    (ff / "committee" / "s7.pt").write_bytes(b"stale")
    out = {k: str(tmp_path / f"{k}.csv") for k in ("results", "gamma", "costs", "stab", "red")}
    collect(
        molecule="ethanol",
        evals=evals,
        train_npz=train,
        cheap_npz={},
        unlabelled_npz=None,
        datasets={"ccsd_t:train": train},
        stability_csvs=[],
        out_results=out["results"],
        out_gamma=out["gamma"],
        out_costs=out["costs"],
        out_stability=out["stab"],
        out_reductions=out["red"],
        n_bootstrap=100,
        out_forcefield=str(ff),
    )
    meta = json.loads((ff / "metadata.json").read_text())
    assert meta["method"] == "standard" and meta["seed"] == 0
    assert meta["committee"]["members"] == ["committee/s1.pt", "committee/s2.pt"]
    assert meta["committee"]["seeds"] == [1, 2]
    assert (ff / "committee" / "s1.pt").read_bytes() == b"model std1"
    assert sorted(p.name for p in (ff / "committee").iterdir()) == ["s1.pt", "s2.pt"]


def test_a_model_of_its_own_is_compared_with_each_neural_models_standard_training(tmp_path):
    """Fine-tuned SO3LR (model so3lr, seeds 0 and 1) has no standard training of its own model:
    reductions.csv pairs it seed by seed with EGNN's standard training, and the zero-shot model (one
    deterministic run) with every EGNN seed."""
    hard = np.random.default_rng(3).lognormal(0, 0.5, N_TEST)
    evals = []
    for s in (0, 1):
        base = dict(seed=s, stage="standard", n_train=4, train_cpu_s=9)
        evals.append(_eval(tmp_path / f"std{s}", 2.0 * hard, dict(base, model_name="egnn", best_metric=2.0)))
        ft = dict(base, model_name="so3lr", best_metric=1.0, role="foundation")
        evals.append(_eval(tmp_path / f"ft{s}", 1.0 * hard, ft))
    zs = dict(seed=0, stage="standard", n_train=4, model_name="so3lr", best_metric=3.0, role="foundation_zero_shot")
    evals.append(_eval(tmp_path / "zs", 4.0 * hard, zs))
    train = _ds(tmp_path / "train.npz", 4, 3600.0)
    out = {k: str(tmp_path / f"{k}.csv") for k in ("results", "gamma", "costs", "stab", "red")}
    collect(
        molecule="ethanol",
        evals=evals,
        train_npz=train,
        cheap_npz={},
        unlabelled_npz=None,
        datasets={"ccsd_t:train": train},
        stability_csvs=[],
        out_results=out["results"],
        out_gamma=out["gamma"],
        out_costs=out["costs"],
        out_stability=out["stab"],
        out_reductions=out["red"],
        n_bootstrap=100,
    )
    red = pd.read_csv(out["red"]).set_index("method")
    ft, zs = red.loc["foundation"], red.loc["foundation_zero_shot"]
    assert ft["model"] == "so3lr vs egnn" and ft["baseline"] == "egnn standard" and ft["n_seeds"] == 2
    assert ft["reduction"] == pytest.approx(0.5) and zs["reduction"] == pytest.approx(-1.0) and zs["n_seeds"] == 2


def test_asteroid_on_selected_frames_pays_for_its_stage_1_on_them_and_every_gamma(tmp_path):
    """ASTEROID on selected frames: γ chosen among its own candidates on validation (inf wins), its
    stage 1 is the standard model on the selected frames, its cost every candidate's stages 2 and 3,
    the bias pass, the selection's committees and the accurate labels of its own frames."""
    hard = np.random.default_rng(2).lognormal(0, 0.5, N_TEST)
    m, base = tmp_path / "models", dict(model_name="egnn", seed=0, n_train=4)
    ft = dict(base, stage="finetune", init_stage="cheap", cheap_level="xtb", role="finetune_selected")
    evals = [
        _eval(m / "std", 2.0 * hard, dict(base, stage="standard", best_metric=2.1, train_cpu_s=100)),
        _eval(m / "std_sel", 1.8 * hard, dict(base, stage="standard", role="standard_selected", train_cpu_s=110)),
        _eval(
            m / "cheap_only",
            3.0 * hard,
            dict(base, stage="cheap", cheap_level="xtb", gamma=math.inf, gamma_spec="inf", train_cpu_s=1000),
        ),
        _eval(
            m / "s2_sel",
            2.9 * hard,
            dict(base, stage="cheap", cheap_level="xtb", gamma=0.7, gamma_spec="r1", role="stage2_selected")
            | dict(bias_cpu_s=9, stage1_n_train=4, train_cpu_s=800),
        ),
        _eval(m / "ft_sel_r1", 1.5 * hard, dict(ft, gamma=0.7, gamma_spec="r1", best_val_loss=0.6, train_cpu_s=40)),
        _eval(
            m / "ft_sel_inf", 1.1 * hard, dict(ft, gamma=math.inf, gamma_spec="inf", best_val_loss=0.4, train_cpu_s=30)
        ),
    ]
    train = _ds_ids(tmp_path / "train.npz", [100, 101, 102, 103], 3600.0)
    cheap = _ds(tmp_path / "cheap.npz", 100, 36.0)  # 1 CPU-h for the pool
    cost = {"selected": {"n_first": 2, "selection_cpu_s": 500.0}}
    picks = {"ccsd_t:4:0": _ds_ids(tmp_path / "sel_acc.npz", [100, 101, 300, 301], 7200.0, cost)}
    datasets = {"ccsd_t:train": train, "xtb:cheap-xtb": cheap}
    res, out = _collect(tmp_path, evals, train, {"xtb": cheap}, datasets, selected=picks)
    a = res[res.method == "asteroid_selected"].iloc[0]
    assert math.isinf(a.gamma) and a.n_train == 4 and a.cheap_level == "xtb"
    assert a.force_mae_kcal == pytest.approx(1.1 * hard.mean())
    assert a.accurate_label_cpu_h == pytest.approx(4 * 2.0) and a.cheap_label_cpu_h == pytest.approx(1.0)
    assert a.train_cpu_h_total * 3600 == pytest.approx(110 + 9 + (800 + 40) + (1000 + 30) + 500)
    gam = pd.read_csv(out["gamma"])
    assert set(gam.loc[gam.method == "asteroid_selected", "gamma_spec"]) == {"r1", "inf"}
    red = pd.read_csv(out["red"])
    assert set(red.loc[red.method == "asteroid_selected", "baseline"]) == {"egnn standard"}  # no ASTEROID row here
