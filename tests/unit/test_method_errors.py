"""benchmarks/method_errors.py: `targets` lists every evaluation a method's row and its cost need,
and `export` names the models whose training CPU a partial run left unknown."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import method_errors

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = [str(ROOT / "config.yaml"), str(ROOT / "config.benchmark.yaml")]


def test_targets_include_the_stage_2_the_cost_counts():
    """The corrected pre-training's row costs its stage 2 too: a run that evaluated only the
    fine-tuned model left its training CPU unknown (BENCHMARKS.md 15e)."""
    out = method_errors.targets(CONFIGS, "ethanol", ["corrected", "cheap_only", "asteroid"], [100], [4])
    run = "results/ethanol/models/egnn"
    assert out == [
        f"{run}/corrected/xtb/ginf/N100_s4/stage2/eval.json",
        f"{run}/corrected/xtb/ginf/N100_s4/finetune/eval.json",
        f"{run}/stage2/xtb/ginf/s4/eval.json",
        f"{run}/stage2/xtb/gr1/N100_s4/eval.json",
        f"{run}/finetune/xtb/gr1/N100_s4/eval.json",
        f"{run}/finetune/xtb/ginf/N100_s4/eval.json",
    ]
    # only the N and seeds asked for, each file once
    many = method_errors.targets(CONFIGS, "ethanol", ["standard", "standard"], [25, 100], [0, 2])
    assert sorted(many) == sorted(f"{run}/standard/N{n}_s{s}/eval.json" for n in (25, 100) for s in (0, 2))


def test_targets_refuse_unknown_and_disabled_methods():
    with pytest.raises(KeyError, match="unknown method 'bogus'; methods: standard, asteroid"):
        method_errors.targets(CONFIGS, "ethanol", ["bogus"], [100], [0])
    # config.yaml alone has no foundation model to fine-tune
    with pytest.raises(SystemExit, match="'foundation' is not enabled for ethanol"):
        method_errors.targets(CONFIGS[:1], "ethanol", ["foundation"], [100], [0])


def test_unknown_costs_names_each_model_once():
    rows = pd.DataFrame(
        {
            "method": ["corrected"] * 2 + ["delta"] * 2,
            "model": "egnn",
            "cheap_level": "xtb",
            "n_train": 100,
            "seed": 4,
            "frame_id": [0, 1, 0, 1],
            "train_cpu_h_total": [np.nan, np.nan, 0.1, 0.1],
        }
    )
    assert method_errors.unknown_costs(rows) == ["corrected egnn xtb N = 100 seed 4"]


def test_export_refuses_a_gamma_choice_with_an_unevaluated_candidate(tmp_path):
    """A run rebuilt from archives lacked one γ candidate's eval.json, and the γ choice silently saw
    only the other candidate (one seed's ASTEROID error moved 0.33 -> 0.35): the export now names
    such candidates; models that no γ choice reads (stage 1, committee members) do not count."""
    from pipeline.models import build, save_model

    model = build("egnn", hidden=8, num_layers=1, cutoff=4.0)
    finetune = {"stage": "finetune", "model_name": "egnn", "seed": 2, "n_train": 100}
    runs = {
        "models/egnn/finetune/xtb/gr1/N100_s2": {**finetune, "gamma_spec": "r1"},  # not evaluated
        "models/egnn/finetune/xtb/ginf/N100_s2": finetune,  # evaluated
        "models/egnn/corrected/xtb/ginf/N100_s2/finetune": {**finetune, "role": "corrected"},  # not evaluated
        "models/egnn/standard/N100_s2": {**finetune, "stage": "standard"},  # stage 1: no γ choice reads it
        "selection/s2/r1/egnn/m0": {"model_name": "egnn", "seed": 2},  # a committee member: no stage
    }
    for run, extra in runs.items():
        save_model(model, tmp_path / run / "model.pt", extra)
    (tmp_path / "models/egnn/finetune/xtb/ginf/N100_s2/eval.json").write_text("{}")
    assert method_errors.unevaluated_gamma_candidates(tmp_path) == [
        "models/egnn/corrected/xtb/ginf/N100_s2/finetune",
        "models/egnn/finetune/xtb/gr1/N100_s2",
    ]


def _rows(pretrain: list[tuple[str, float]] | None) -> pd.DataFrame:
    """Per-frame rows of three seeds of one fine-tuned method, as an exported file holds them; without
    the pre-training columns when `pretrain` is None (a file exported before they existed)."""
    rows = []
    for seed in range(3):
        model = {"method": "corrected", "model": "mace", "cheap_level": "xtb", "n_train": 50, "seed": seed}
        model |= dict.fromkeys(method_errors.MODEL_COLUMNS, np.nan) | {"stop_reason": "early_stopping"}
        if pretrain is None:
            model = {k: v for k, v in model.items() if not k.startswith("pretrain_")}
        else:
            model["pretrain_stop_reason"], model["pretrain_late_improvement"] = pretrain[seed]
        rows += [{**model, "frame_id": f, "force_mae_kcal": 0.5} for f in range(4)]
    return pd.DataFrame(rows)


def test_stopped_counts_fine_tunings_whose_pre_training_a_cap_cut_short():
    """Only a cap that ended a still-improving pre-training counts (not early stopping, not a cap
    reached after the improvement had levelled off); files without the columns read as none."""
    pretrain = [("step_cap", 0.14), ("step_cap", 0.01), ("early_stopping", 0.0)]
    res = method_errors.results_from_rows(_rows(pretrain))
    assert method_errors.stopped(res) == "early_stopping 3; pre-training cut short by its cap 1"
    old = method_errors.results_from_rows(_rows(None))
    assert old["pretrain_stop_reason"].isna().all()
    assert method_errors.stopped(old) == "early_stopping 3"
