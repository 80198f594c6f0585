"""Each training stage lowers its loss on a tiny synthetic problem; a killed job resumes."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import units
from pipeline.data import Dataset
from pipeline.models import build, load_model, save_model
from pipeline.training import stages
from tests.conftest import ETHANOL_R, ETHANOL_Z

TRAINING = {"rho": 0.01, "ema_decay": 0.5, "grad_clip": 10.0, "n_projections": 1}
HP = {"hidden": 16, "num_layers": 2}
# Every stage with each model family: (hyperparameters, learning rate). MACE from mace-torch, tiny (its
# avg_num_neighbors fitted on data), at the MACE paper's learning rate.
STAGE_MODELS = {
    "egnn": (HP, 3e-3),
    "mace": (
        {
            "hidden_irreps": "16x0e + 16x1o",
            "max_ell": 2,
            "correlation": 2,
            "num_bessel": 4,
            "radial_MLP": [16],
            "MLP_irreps": "4x0e",
        },
        1e-2,
    ),
}


def _harmonic_labels(R):
    """A smooth reference potential: harmonic springs between all pairs around the ethanol geometry."""
    d0 = np.linalg.norm(ETHANOL_R[:, None] - ETHANOL_R[None], axis=-1)
    diff = R[:, :, None] - R[:, None]  # [n, a, a, 3]
    d = np.linalg.norm(diff, axis=-1) + np.eye(9)
    k = 2.0  # eV/A^2
    E = 0.25 * k * ((d - d0 - np.eye(9)) ** 2).sum(axis=(1, 2))
    g = (k * (d - d0 - np.eye(9)) / d)[..., None] * diff  # [n, a, a, 3]
    return E, -g.sum(axis=2)


def _dataset(path, n, seed, noise=0.0):
    rng = np.random.default_rng(seed)
    R = ETHANOL_R[None] + 0.08 * rng.standard_normal((n, 9, 3))
    E, F = _harmonic_labels(R)
    F = F + noise * rng.standard_normal(F.shape)
    Dataset(R=R, z=ETHANOL_Z, E=E, F=F, cpu_s=np.ones(n)).save(path)
    return path


def _outputs(tmp_path, tag: str) -> dict:
    """The arguments every stage takes besides its data: training settings, seed 0 on CPU, and its files."""
    return dict(
        training=TRAINING,
        seed=0,
        device="cpu",
        out_model=tmp_path / f"{tag}.pt",
        out_history=tmp_path / f"{tag}.csv",
        checkpoint=tmp_path / f"{tag}.ckpt",
    )


def _first_last(history):
    """First and last training loss of a history (fine-tuning's period 0, the start, has none)."""
    h = pd.read_csv(history)
    trained = h["train_loss"].dropna()
    return trained.iloc[0], trained.iloc[-1], h


@pytest.mark.parametrize("model_name", sorted(STAGE_MODELS))
def test_every_stage_lowers_its_loss(tmp_path, model_name):
    hp, lr = STAGE_MODELS[model_name]
    acc = _dataset(tmp_path / "acc.npz", 24, 0)
    val = _dataset(tmp_path / "val.npz", 8, 1)
    cheap = _dataset(tmp_path / "cheap.npz", 40, 2, noise=0.3)
    stage = {"batch_size": 8, "max_epochs": 30, "lr": lr, "early_stopping_patience": 100}

    stages.train_standard(
        model_name=model_name,
        hparams=hp,
        train_npz=acc,
        n_train=16,
        val_npz=val,
        stage=stage,
        **_outputs(tmp_path, "s1"),
    )
    first, last, _ = _first_last(tmp_path / "s1.csv")
    assert last < 0.7 * first
    m = load_model(tmp_path / "s1.pt")
    assert m.extra["stage"] == "standard" and m.extra["n_train"] == 16

    B = stages.compute_bias(model_path=tmp_path / "s1.pt", cheap_npz=cheap, out_npz=tmp_path / "bias.npz")
    assert B.shape == (40,) and (B > 0).all()

    stages.train_cheap(
        model_name=model_name,
        hparams=hp,
        cheap_npz=cheap,
        bias_npz=tmp_path / "bias.npz",
        gamma_kind="absolute",
        gamma=1.0,
        stage=stage,
        **_outputs(tmp_path, "s2"),
    )
    first, last, _ = _first_last(tmp_path / "s2.csv")
    assert last < 0.7 * first
    extra = load_model(tmp_path / "s2.pt").extra
    assert extra["gamma"] == 1.0 and 0 < extra["mean_weight"] < 1

    stages.finetune(
        init_model=tmp_path / "s2.pt",
        train_npz=acc,
        n_train=16,
        val_npz=val,
        stage=stage,
        **_outputs(tmp_path, "s3"),
    )
    first, last, _ = _first_last(tmp_path / "s3.csv")
    assert last < first
    ft = load_model(tmp_path / "s3.pt").extra
    assert np.isfinite(ft["best_val_loss"])
    # how its start's training ended travels with the fine-tuned model (the report's pre-training note)
    assert (ft["init_stop_reason"], ft["init_stop_step"]) == (extra["stop_reason"], extra["stop_step"])
    assert ft["init_late_improvement"] == extra["late_improvement"]

    unl = Dataset(R=np.load(cheap)["R"], z=ETHANOL_Z)
    unl.save(tmp_path / "unl.npz")
    stages.train_score_matching(
        model_name=model_name,
        hparams=hp,
        unlabelled_npz=tmp_path / "unl.npz",
        temperature_K=500.0,
        stage={**stage, "max_epochs": 15},
        **_outputs(tmp_path, "sm"),
    )
    first, last, _ = _first_last(tmp_path / "sm.csv")
    assert last < first


@pytest.mark.parametrize("stage_fn", ["train_standard", "finetune"])
def test_a_stage_refuses_fewer_accurate_frames_than_n(tmp_path, stage_fn):
    """A model saved as N = 12 must have seen 12 accurate frames: with 10 labelled (2 dropped as
    failures, say) standard training and fine-tuning stop before training."""
    acc = _dataset(tmp_path / "acc.npz", 10, 0)
    val = _dataset(tmp_path / "val.npz", 4, 1)
    out = dict(out_model=tmp_path / "m.pt", out_history=tmp_path / "h.csv", checkpoint=tmp_path / "c.ckpt")
    common = dict(train_npz=acc, n_train=12, val_npz=val, training=TRAINING, seed=0, device="cpu", **out)
    stage = {"batch_size": 4, "max_epochs": 1, "lr": 1e-3}
    if stage_fn == "train_standard":
        call = dict(model_name="egnn", hparams=HP, stage=stage, **common)
    else:
        torch.manual_seed(0)
        save_model(build("egnn", **HP), tmp_path / "init.pt", extra={"stage": "score_matching", "model_name": "egnn"})
        call = dict(init_model=tmp_path / "init.pt", stage=stage, **common)
    with pytest.raises(ValueError, match=r"acc.npz has 10 labelled frames, fewer than N = 12"):
        getattr(stages, stage_fn)(**call)
    assert not (tmp_path / "m.pt").exists()


# A checkpoint every evaluation period; with eval_every_steps = 3 and 2 batches per epoch the
# periods cut epochs in half, so a resumed run must continue a half-used shuffled permutation.
# RESUME_PERIODS evaluation periods: long enough that the test's kill (after period 5) lands
# mid-run on a fast machine too (with 30 a CI runner once finished first).
RESUME_PERIODS = 200
RESUME_STAGES = {
    "epochs": {
        "batch_size": 8,
        "max_epochs": RESUME_PERIODS,
        "lr": 3e-3,
        "early_stopping_patience": 1000,
        "checkpoint_every_s": 0,
    },
    "steps": {
        "batch_size": 8,
        "max_epochs": 10 * RESUME_PERIODS,
        "max_steps": 3 * RESUME_PERIODS,
        "eval_every_steps": 3,
        "lr": 3e-3,
        "early_stopping_patience": 1000,
        "checkpoint_every_s": 0,
    },
}


def test_step_budget_bounds_a_stage_and_records_it(tmp_path):
    acc = _dataset(tmp_path / "acc.npz", 24, 0)
    val = _dataset(tmp_path / "val.npz", 8, 1)
    stage = {
        "batch_size": 8,
        "max_epochs": 1000,
        "max_steps": 10,
        "eval_every_steps": 4,
        "lr": 3e-3,
        "early_stopping_patience": 100,
    }
    summary = stages.train_standard(
        model_name="egnn",
        hparams=HP,
        train_npz=acc,
        n_train=16,
        val_npz=val,
        stage=stage,
        **_outputs(tmp_path, "m"),
    )
    h = pd.read_csv(tmp_path / "m.csv")
    assert summary["steps"] == 10 and summary["frames_seen"] == 80
    assert list(h["step"]) == [4, 8, 10]  # three evaluations: two full periods and the rest of the budget
    assert load_model(tmp_path / "m.pt").extra["model_name"] == "egnn"


@pytest.mark.parametrize("stop_reason, late, warned", [("step_cap", 0.3, True), ("early_stopping", 0.3, False)])
def test_fine_tuning_a_pretraining_a_cap_cut_short_says_so(tmp_path, caplog, stop_reason, late, warned):
    """The fine-tuning log names a start whose training a cap ended while it still improved (the
    short stage 2 that hid ASTEROID's gain, BENCHMARKS.md 16); a start that early stopping ended is not named."""
    acc = _dataset(tmp_path / "acc.npz", 16, 0)
    val = _dataset(tmp_path / "val.npz", 8, 1)
    torch.manual_seed(0)
    start = {"stage": "cheap", "model_name": "egnn", "seed": 0, "stop_reason": stop_reason, "stop_step": 10}
    save_model(build("egnn", **HP), tmp_path / "s2.pt", extra={**start, "late_improvement": late})
    stage = {"batch_size": 8, "max_epochs": 1000, "max_steps": 4, "eval_every_steps": 2, "lr": 1e-3}
    with caplog.at_level("WARNING", logger="pipeline.training.stages"):
        stages.finetune(
            init_model=tmp_path / "s2.pt",
            train_npz=acc,
            n_train=16,
            val_npz=val,
            stage=stage,
            **_outputs(tmp_path, "s3"),
        )
    named = [r.getMessage() for r in caplog.records if "pre-training that has not converged" in r.getMessage()]
    assert bool(named) == warned
    if warned:
        assert "step_cap" in named[0] and "30%" in named[0]
    extra = load_model(tmp_path / "s3.pt").extra
    assert (extra["init_stop_reason"], extra["init_late_improvement"]) == (stop_reason, late)


@pytest.mark.parametrize("schedule", sorted(RESUME_STAGES))
def test_killed_training_resumes_from_checkpoint(tmp_path, schedule):
    acc = _dataset(tmp_path / "acc.npz", 24, 0)
    val = _dataset(tmp_path / "val.npz", 8, 1)
    import json

    stage = RESUME_STAGES[schedule]

    def cmd(out):
        return [
            sys.executable,
            "-m",
            "pipeline",
            "train-standard",
            "--model-name",
            "egnn",
            "--hparams",
            json.dumps(HP),
            "--train",
            str(acc),
            "--n-train",
            "16",
            "--val",
            str(val),
            "--stage",
            json.dumps(stage),
            "--training",
            json.dumps(TRAINING),
            "--seed",
            "0",
            "--device",
            "cpu",
            "--out-model",
            str(out / "model.pt"),
            "--out-history",
            str(out / "history.csv"),
            "--checkpoint",
            str(out / "model.pt.ckpt"),
        ]

    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref_dir.mkdir()
    run_dir.mkdir()
    subprocess.run(cmd(ref_dir), check=True, capture_output=True)
    assert not (ref_dir / "model.pt.ckpt").exists()  # removed after success

    proc = subprocess.Popen(cmd(run_dir), stderr=subprocess.DEVNULL)
    ckpt = run_dir / "model.pt.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and torch.load(ckpt, weights_only=False)["state"]["epoch"] >= 5:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail(f"training ended (exit {proc.returncode}) before the test could kill it; raise RESUME_PERIODS")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    epoch_at_kill = torch.load(ckpt, weights_only=False)["state"]["epoch"]
    assert 5 <= epoch_at_kill < RESUME_PERIODS and not (run_dir / "model.pt").exists()

    r = subprocess.run(cmd(run_dir), capture_output=True, text=True, check=True)
    assert f"resumed from {ckpt} at epoch {epoch_at_kill}" in r.stderr
    # the resumed run ends where an uninterrupted one does
    h_ref, h_run = pd.read_csv(ref_dir / "history.csv"), pd.read_csv(run_dir / "history.csv")
    assert len(h_run) == len(h_ref) == RESUME_PERIODS
    np.testing.assert_allclose(h_run["val_loss"], h_ref["val_loss"], rtol=1e-5)
    a, b = load_model(ref_dir / "model.pt"), load_model(run_dir / "model.pt")
    for (_k, v), (_, w) in zip(a.state_dict().items(), b.state_dict().items()):
        torch.testing.assert_close(v, w, rtol=1e-5, atol=1e-6)


def test_delta_trains_on_accurate_minus_cheap_of_the_first_n_frames(tmp_path):
    """The Δ target is accurate - cheap on the frames both labelled (frame_id); frames beyond N or
    without a cheap label are not used; the cheap level's config entry travels with the model."""
    from pipeline.data import load_npz

    acc = _dataset(tmp_path / "acc.npz", 12, 0)
    val = _dataset(tmp_path / "val.npz", 6, 1)
    a, v = load_npz(acc), load_npz(val)
    v.frame_id = v.frame_id + 100
    v.save(val)
    # "cheap" = accurate minus a smooth per-frame offset and a small force bias; frame 3 has no cheap label
    keep = [i for i in range(12) if i != 3]
    Dataset(R=a.R[keep], z=a.z, E=a.E[keep] - 5.0, F=a.F[keep] - 0.01, frame_id=a.frame_id[keep]).save(
        tmp_path / "c.npz"
    )
    Dataset(R=v.R, z=v.z, E=v.E - 5.0, F=v.F - 0.01, frame_id=v.frame_id).save(tmp_path / "cv.npz")
    stage = {"batch_size": 4, "max_epochs": 3, "lr": 1e-3, "early_stopping_patience": 10}
    stages.train_delta(
        model_name="egnn",
        hparams=HP,
        train_npz=acc,
        cheap_train_npz=tmp_path / "c.npz",
        n_train=8,
        val_npz=val,
        cheap_val_npz=tmp_path / "cv.npz",
        cheap_level="xtb",
        cheap_entry={"engine": "xtb", "method": "GFN2-xTB"},
        stage=stage,
        training=TRAINING,
        seed=0,
        device="cpu",
        out_model=tmp_path / "d.pt",
        out_history=tmp_path / "d.csv",
        checkpoint=tmp_path / "d.ckpt",
    )
    m = load_model(tmp_path / "d.pt")
    assert m.extra["stage"] == "delta" and m.extra["n_train"] == 8 and m.extra["n_delta_train"] == 7
    assert m.extra["train_frame_id"] == [0, 1, 2, 4, 5, 6, 7] and m.extra["n_delta_val"] == 6
    assert m.extra["cheap_entry"] == {"engine": "xtb", "method": "GFN2-xTB"} and m.extra["cheap_level"] == "xtb"
    # the energy offset of the difference (5 eV per frame) sets the model's shift
    assert float(m.energy_shift) * 9 == pytest.approx(units.ev_to_kcal(5.0), rel=1e-3)


def test_the_schema_is_the_one_source_of_every_stage_setting():
    """A workflow stage gets every stage setting from the config (the schema's defaults fill what a
    config leaves out); StageConfig's own defaults are fallbacks for direct use only, never used there."""
    from dataclasses import fields

    from pipeline.config import default_config
    from pipeline.training.engine import StageConfig

    cfg = default_config()["training"]
    engine_wide = {"rho", "ema_decay", "grad_clip", "n_projections", "objective", "kT", "extra"}
    # not settings: how often a checkpoint is written, and whether the start is validated (each
    # command decides: fine-tuning does)
    stage_fields = {f.name for f in fields(StageConfig)} - engine_wide - {"checkpoint_every_s", "evaluate_start"}
    for section in ("accurate", "cheap", "corrected", "finetune"):
        assert stage_fields <= set(cfg[section]), (section, stage_fields - set(cfg[section]))
        built = stages.stage_config(cfg[section], cfg)
        assert all(getattr(built, k) == cfg[section][k] for k in stage_fields), section
    # score matching has no step budget (epochs only), the rest comes from its section too
    assert stage_fields - {"max_steps", "eval_every_steps"} <= set(cfg["score_matching"])


def test_a_pretrained_model_keeps_its_forces_and_fits_only_its_energy_offset(tmp_path):
    """SO3LR zero-shot: the saved model's forces are the pretrained model's (scale 1, nothing
    trained) and its energies are shifted to the labels' mean; a fine-tuning run starts from the
    same model and lowers its loss. A model that is not pretrained is refused zero-shot."""
    from pipeline.evaluation.predict import predict

    acc, val = _dataset(tmp_path / "acc.npz", 12, 0), _dataset(tmp_path / "val.npz", 6, 1)
    out = tmp_path / "zs.pt"
    stages.zero_shot(
        model_name="so3lr", hparams={}, train_npz=acc, n_train=8, val_npz=val, seed=0, device="cpu", out_model=out
    )
    zs, fresh = load_model(out), build("so3lr")
    assert float(zs.energy_scale) == 1.0 and zs.extra["steps"] == 0 and zs.extra["best_metric"] > 0
    data = Dataset(**{k: v for k, v in np.load(acc).items() if k in ("R", "z", "E", "F")})
    E_zs, F_zs = predict(zs, data.R[:8], data.z)
    _, F_raw = predict(fresh, data.R[:8], data.z)
    np.testing.assert_allclose(F_zs, F_raw, rtol=1e-5, atol=1e-4)
    assert np.mean(E_zs) == pytest.approx(units.ev_to_kcal(data.E[:8]).mean(), abs=1e-2)
    summary = stages.train_standard(
        model_name="so3lr",
        hparams={},
        train_npz=acc,
        n_train=8,
        val_npz=val,
        stage={"batch_size": 4, "max_epochs": 3, "lr": 1e-4, "warmup_epochs": 0, "early_stopping_patience": 10},
        training=TRAINING,
        seed=0,
        device="cpu",
        out_model=tmp_path / "ft.pt",
        out_history=tmp_path / "ft.csv",
        checkpoint=tmp_path / "ft.ckpt",
        extra={"role": "foundation"},
    )
    first, last, _ = _first_last(tmp_path / "ft.csv")
    assert last < first and summary["best_metric"] > 0 and load_model(tmp_path / "ft.pt").extra["role"] == "foundation"
    with pytest.raises(ValueError, match="not pretrained"):
        stages.zero_shot(
            model_name="egnn", hparams=HP, train_npz=acc, n_train=8, val_npz=val, seed=0, device="cpu", out_model=out
        )
