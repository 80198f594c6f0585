"""Bias-corrected pre-training: corrected labels = cheap labels + the Δ model's correction (units),
and the estimates of their remaining error."""

import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import units
from pipeline.data import Dataset, load_npz
from pipeline.evaluation.predict import predict
from pipeline.models import build, save_model
from pipeline.selection import committee_disagreement
from pipeline.training import corrected
from tests.conftest import ETHANOL_R, ETHANOL_Z


def _frames(n, seed, scale=0.05, ids=0):
    rng = np.random.default_rng(seed)
    R = ETHANOL_R[None] + scale * rng.standard_normal((n, 9, 3))
    E = rng.normal(-4200.0, 0.5, n)  # eV, an absolute energy like a real level's
    F = rng.normal(0.0, 1.0, (n, 9, 3))  # eV/A
    return Dataset(R=R, z=ETHANOL_Z, E=E, F=F, frame_id=np.arange(ids, ids + n), cpu_s=np.full(n, 0.01))


def _delta_model(path, seed, train_ids, train_cpu_s=0.0):
    torch.manual_seed(seed)
    m = build("egnn", hidden=16, num_layers=2)
    m.set_normalization(0.3, 2.0)  # a correction of a few kcal/mol, so a units slip would show
    extra = {
        "stage": "delta",
        "model_name": "egnn",
        "n_train": len(train_ids),
        "seed": seed,
        "train_cpu_s": train_cpu_s,
    }
    save_model(m, path, extra={**extra, "cheap_level": "xtb", "train_frame_id": [int(i) for i in train_ids]})
    return m


@pytest.fixture
def run(tmp_path):
    train, val, pool = _frames(6, 0, ids=0), _frames(8, 1, ids=100), _frames(12, 2, scale=0.12, ids=200)
    cheap_val = Dataset(R=val.R, z=val.z, E=val.E - 1.0, F=val.F * 0.9, frame_id=val.frame_id)
    paths = {k: tmp_path / f"{k}.npz" for k in ("train", "val", "pool", "cheap_val")}
    for k, ds in zip(paths, (train, val, pool, cheap_val)):
        ds.save(paths[k])
    models = [_delta_model(tmp_path / f"d{s}.pt", s, train.frame_id) for s in (0, 1)]
    return tmp_path, paths, models, pool


def _correct(tmp_path, paths, delta, uncertainty="auto", device="cpu"):
    out = {k: tmp_path / f"out_{k}" for k in ("pool.npz", "u.npz", "u.csv")}
    info = corrected.correct_pool(
        delta_paths=delta,
        cheap_npz=paths["pool"],
        train_npz=paths["train"],
        val_npz=paths["val"],
        cheap_val_npz=paths["cheap_val"],
        uncertainty=uncertainty,
        out_pool=out["pool.npz"],
        out_uncertainty=out["u.npz"],
        out_csv=out["u.csv"],
        device=device,
    )
    return info, load_npz(out["pool.npz"]), np.load(out["u.npz"]), pd.read_csv(out["u.csv"])


def test_corrected_labels_are_cheap_plus_correction_in_ev(run):
    tmp_path, paths, models, pool = run
    _, got, u, _ = _correct(tmp_path, paths, [tmp_path / "d0.pt"], device="auto")  # the default config's device
    dE, dF = predict(models[0], pool.R, pool.z)  # kcal/mol, kcal/mol/A
    assert np.abs(dE).max() > 0.1  # a correction big enough to see a unit slip
    np.testing.assert_allclose(got.E, pool.E + units.kcal_to_ev(dE), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.F, pool.F + units.kcal_to_ev(dF), rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got.frame_id, pool.frame_id)
    assert (u["frame_id"] == pool.frame_id).all() and u["B"].shape == (12,) and (u["B"] >= 0).all()
    assert int(u["n_train"]) == 6 and float(u["bias_cpu_s"]) > 0


def test_one_delta_model_uses_the_distance_and_a_committee_is_ranked_too(run):
    tmp_path, paths, _, _ = run
    info, _, _, diag = _correct(tmp_path, paths, [tmp_path / "d0.pt"])
    assert info["uncertainty"] == "distance" and list(diag["estimator"]) == ["distance"]
    info, _, _, diag = _correct(tmp_path, paths, [tmp_path / "d0.pt", tmp_path / "d1.pt"])
    assert set(diag["estimator"]) == {"distance", "committee"} and diag["chosen"].sum() == 1
    assert diag.loc[diag["chosen"], "estimator"].item() == info["uncertainty"]
    assert diag["spearman"].between(-1, 1).all() and (diag["n_val"] == 8).all()
    with pytest.raises(ValueError, match="not available with 1"):
        _correct(tmp_path, paths, [tmp_path / "d0.pt"], uncertainty="committee")


def test_distance_is_zero_on_training_frames_and_grows_away_from_them():
    train = _frames(5, 0).R
    assert np.allclose(corrected.nearest_distance(train, train), 0.0)
    near, far = _frames(20, 3, scale=0.02).R, _frames(20, 3, scale=0.3).R
    assert corrected.nearest_distance(far, train).mean() > corrected.nearest_distance(near, train).mean()
    # rotation and translation do not move a frame in descriptor space
    rot = train @ np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1.0]]).T + 3.0
    assert np.allclose(corrected.nearest_distance(rot, train), 0.0, atol=1e-10)


def test_committee_disagreement_is_zero_for_agreeing_models():
    dF = np.random.default_rng(0).normal(size=(1, 4, 9, 3))
    assert np.allclose(committee_disagreement(np.repeat(dF, 3, axis=0)), 0.0)
    assert (committee_disagreement(np.random.default_rng(1).normal(size=(3, 4, 9, 3))) > 0).all()


@pytest.mark.parametrize("gamma_kind", ["inf", "relative"])
def test_stage_2_carries_what_the_delta_models_and_the_relabelling_cost_at_every_gamma(run, gamma_kind):
    """Corrected pre-training's cost counts the Δ models and the relabelling through its stage-2 model;
    at γ = ∞ (unit weights, the benchmark's only candidate) as well as at a finite γ."""
    from pipeline.models import load_model
    from pipeline.training import stages

    tmp_path, paths, _, _ = run
    for s in (0, 1):  # what training each Δ model cost: 100 and 101 CPU-s
        _delta_model(tmp_path / f"d{s}.pt", s, load_npz(paths["train"]).frame_id, train_cpu_s=100.0 + s)
    _, _, u, _ = _correct(tmp_path, paths, [tmp_path / "d0.pt", tmp_path / "d1.pt"])
    stages.train_cheap(
        model_name="egnn",
        hparams={"hidden": 16, "num_layers": 2},
        cheap_npz=tmp_path / "out_pool.npz",
        bias_npz=tmp_path / "out_u.npz",
        gamma_kind=gamma_kind,
        gamma=1.0,
        stage={"batch_size": 4, "max_epochs": 1, "lr": 1e-3},
        training={"rho": 0.01, "ema_decay": 0.5, "grad_clip": 10.0, "n_projections": 1},
        seed=0,
        device="cpu",
        out_model=tmp_path / "s2.pt",
        out_history=tmp_path / "s2.csv",
        checkpoint=tmp_path / "s2.ckpt",
    )
    extra = load_model(tmp_path / "s2.pt").extra
    assert extra["delta_cpu_s"] == pytest.approx(201.0)
    assert extra["bias_cpu_s"] == pytest.approx(float(u["bias_cpu_s"])) and extra["bias_cpu_s"] > 0
    assert (extra["gamma"] == float("inf")) == (gamma_kind == "inf")
