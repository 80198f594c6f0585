"""Batched prediction: batch-size invariance, agreement with one-at-a-time energy_and_forces."""

import json

import numpy as np
import pytest
import torch

from pipeline import units
from pipeline.data import Dataset, save_npz
from pipeline.evaluation.predict import evaluate_model, metrics, predict
from pipeline.models import build, energy_and_forces, save_model

from .toy_models import HarmonicModel, methanol


@pytest.fixture(scope="module")
def frames():
    R0, z = methanol()
    rng = np.random.default_rng(1)
    R = R0 + rng.normal(scale=0.1, size=(7, len(z), 3))  # [7, 6, 3]
    return R, z


@pytest.fixture(scope="module")
def egnn():
    torch.manual_seed(0)
    return build("egnn", **SMALL_EGNN)


SMALL_EGNN = dict(hidden=16, num_layers=2, cutoff=5.0)


def one_at_a_time(model, R, z):
    E, F = [], []
    for r in R:
        e, f = energy_and_forces(
            model,
            torch.as_tensor(z, dtype=torch.long),
            torch.as_tensor(r, dtype=next(model.parameters()).dtype),
            torch.zeros(len(z), dtype=torch.long),
        )
        E.append(e.detach().double().numpy()[0])
        F.append(f.detach().double().numpy())
    return np.array(E), np.stack(F)


def test_toy_model_matches_single_frames_exactly(frames):
    R, z = frames
    model = HarmonicModel(R[0])
    E, F = predict(model, R, z, batch_size=3)
    E1, F1 = one_at_a_time(model, R, z)
    np.testing.assert_allclose(E, E1, rtol=1e-12)
    np.testing.assert_allclose(F, F1, rtol=1e-12, atol=1e-12)
    assert E[0] == pytest.approx(0.0, abs=1e-12)  # frame 0 is the reference geometry
    assert np.abs(F[1:]).max() > 1.0  # distorted frames have real forces


@pytest.mark.parametrize("batch_size", [1, 2, 7, 64])
def test_egnn_batch_size_invariance(egnn, frames, batch_size):
    R, z = frames
    E_ref, F_ref = one_at_a_time(egnn, R, z)
    E, F = predict(egnn, R, z, batch_size=batch_size)
    assert E.dtype == np.float64 and E.shape == (7,) and F.shape == R.shape
    np.testing.assert_allclose(E, E_ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(F, F_ref, rtol=1e-4, atol=1e-4)
    assert len(np.unique(np.round(E, 6))) == 7  # frames are not all mapped to one value


def test_predict_restores_mode_and_keeps_no_param_grads(egnn, frames):
    R, z = frames
    egnn.train()
    predict(egnn, R, z, batch_size=4)
    assert egnn.training
    assert all(p.grad is None for p in egnn.parameters())


def test_predict_rejects_wrong_shapes(egnn, frames):
    R, z = frames
    with pytest.raises(ValueError, match="expected"):
        predict(egnn, R[:, :5], z)


def test_evaluate_model_writes_metrics(tmp_path, egnn, frames):
    R, z = frames
    E_pred, F_pred = predict(egnn, R, z)
    # Reference labels (eV) = predictions (kcal/mol) shifted by 1 kcal/mol in energy.
    test = Dataset(R=R, z=z, E=units.kcal_to_ev(E_pred + 1.0), F=units.kcal_to_ev(F_pred + 0.25))
    save_npz(tmp_path / "test.npz", test)
    save_model(egnn, tmp_path / "model.pt", extra={"level": "toy"})
    res = evaluate_model(tmp_path / "model.pt", tmp_path / "test.npz", tmp_path / "m.json", tmp_path / "p.npz")
    assert res["energy_mae_kcal"] == pytest.approx(1.0, abs=1e-4)
    assert res["force_mae_kcal"] == pytest.approx(0.25, abs=1e-4)
    assert res["n_test"] == 7
    on_disk = json.loads((tmp_path / "m.json").read_text())
    assert on_disk["force_mae_kcal"] == pytest.approx(res["force_mae_kcal"])
    with np.load(tmp_path / "p.npz") as p:
        assert metrics(p["E_pred"], p["F_pred"], p["E_ref"], p["F_ref"])["force_rmse_kcal"] == pytest.approx(
            0.25, abs=1e-4
        )


def test_evaluate_command_scores_several_models_each_to_its_own_files(tmp_path, egnn, frames):
    """`python -m pipeline evaluate` with several models (rule evaluate_gammas): file i of --out-json
    and --out-pred belongs to model i; counts that disagree are refused before anything is written."""
    from pipeline.cli import main

    R, z = frames
    E_pred, F_pred = predict(egnn, R, z)
    save_npz(tmp_path / "test.npz", Dataset(R=R, z=z, E=units.kcal_to_ev(E_pred), F=units.kcal_to_ev(F_pred)))
    save_model(egnn, tmp_path / "a.pt", extra={"level": "a"})
    torch.manual_seed(1)
    other = build("egnn", **SMALL_EGNN)
    save_model(other, tmp_path / "b.pt", extra={"level": "b"})
    args = ["evaluate", "--test", str(tmp_path / "test.npz"), "--device", "cpu", "--model"]
    with pytest.raises(SystemExit, match="2 --model, 1 --out-json"):
        main(args + [str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out-json", "x.json", "--out-pred", "x.npz"])
    assert not (tmp_path / "x.json").exists()
    paths = [str(tmp_path / n) for n in ("a.pt", "b.pt", "a.json", "b.json", "a.npz", "b.npz")]
    main(args + paths[:2] + ["--out-json", *paths[2:4], "--out-pred", *paths[4:]])
    a, b = (json.loads((tmp_path / n).read_text()) for n in ("a.json", "b.json"))
    assert a["model_extra"]["level"] == "a" and b["model_extra"]["level"] == "b"
    assert a["force_mae_kcal"] == pytest.approx(0.0, abs=1e-4)  # the reference is model a's own prediction
    assert b["force_mae_kcal"] > 1e-3
    with np.load(tmp_path / "b.npz") as p:
        np.testing.assert_allclose(p["F_pred"], predict(other, R, z)[1], atol=1e-5)
