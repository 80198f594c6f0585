"""The training engine records how a run ended (stop reason and step), also when resumed."""

import numpy as np
import pytest
import torch

from pipeline.data import Dataset
from pipeline.models import build
from pipeline.records import LATE_IMPROVEMENT_WARN
from pipeline.training import engine
from pipeline.training.batching import TensorData
from pipeline.training.engine import StageConfig, stop_reason, train
from tests.conftest import ETHANOL_R, ETHANOL_Z

N_TRAIN, BATCH = 12, 4  # 3 optimisation steps per epoch


def _data(n, seed):
    rng = np.random.default_rng(seed)
    R = ETHANOL_R[None] + 0.08 * rng.standard_normal((n, 9, 3))
    ds = Dataset(R=R, z=ETHANOL_Z, E=rng.standard_normal(n), F=rng.standard_normal((n, 9, 3)), cpu_s=np.ones(n))
    return TensorData.from_dataset(ds)


def _model():
    torch.manual_seed(0)
    model = build("egnn", hidden=8, num_layers=1)
    model.set_normalization(0.0, 1.0)
    return model


def _train(tmp_path, checkpoint="c.ckpt", **stage):
    cfg = StageConfig(**{"batch_size": BATCH, "lr": 1e-3, "rho": 0.01, "ema_decay": 0.5, **stage})
    model = _model()
    best, summary = train(
        model, _data(N_TRAIN, 0), _data(4, 1), cfg, seed=0, checkpoint=tmp_path / checkpoint, history_csv=None
    )
    return (model, best), summary


# lr = 0: the weights never change, so the validation metric never improves after the first period
# and early stopping with patience p ends the run after period 1 + p.
ENDINGS = {
    "early_stopping": ({"max_epochs": 50, "lr": 0.0, "early_stopping_patience": 2}, 3, 3 * 3, 3),
    "step_cap": ({"max_epochs": 50, "max_steps": 5, "eval_every_steps": 2}, 3, 5, None),
    "epoch_cap": ({"max_epochs": 2}, 2, 2 * 3, None),
    # patience and a budget run out in the same period: early stopping is named
    "early_stopping_at_cap": ({"max_epochs": 3, "lr": 0.0, "early_stopping_patience": 2}, 3, 3 * 3, 3),
}


@pytest.mark.parametrize("ending", sorted(ENDINGS))
def test_summary_records_how_training_ended(tmp_path, ending):
    stage, epochs, steps, best_step = ENDINGS[ending]
    _, summary = _train(tmp_path, **stage)
    assert summary["stop_reason"] == ending.removesuffix("_at_cap")
    assert summary["stop_reason"] in engine.STOP_REASONS
    assert (summary["epochs"], summary["stop_step"], summary["steps"]) == (epochs, steps, steps)
    if best_step is not None:
        assert summary["best_step"] == best_step
    assert summary["best_step"] == summary["best_epoch"] * (2 if ending == "step_cap" else 3)


@pytest.mark.parametrize("budget", [{"max_epochs": 0}, {"max_epochs": 5, "max_steps": 0}])
def test_no_budget_ends_before_the_first_step(tmp_path, budget):
    _, summary = _train(tmp_path, **budget)
    expected = "epoch_cap" if budget["max_epochs"] == 0 else "step_cap"
    assert (summary["stop_reason"], summary["stop_step"], summary["best_step"]) == (expected, 0, None)


def _kill_at_evaluation(monkeypatch, n: int):
    """Make the n-th validation of the next run raise, as a killed job would stop."""
    calls = {"n": 0}
    real = engine.evaluate

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", dying)


@pytest.mark.parametrize("ending", ["early_stopping", "step_cap", "epoch_cap"])
def test_a_resumed_run_ends_for_the_same_reason_at_the_same_step(tmp_path, monkeypatch, ending):
    stage = {**ENDINGS[ending][0], "checkpoint_every_s": 0.0}  # a checkpoint after every period
    models, summary = _train(tmp_path, "whole.ckpt", **stage)

    # killed during its second period, resumed from the checkpoint of the first
    with monkeypatch.context() as m:
        _kill_at_evaluation(m, 2)
        with pytest.raises(KeyboardInterrupt):
            _train(tmp_path, "killed.ckpt", **stage)
    resumed_models, resumed = _train(tmp_path, "killed.ckpt", **stage)
    # rerun after it finished: the checkpoint of the last period ends it at once, nothing more is trained
    rerun_models, rerun = _train(tmp_path, "whole.ckpt", **stage)

    for other, other_models in ((resumed, resumed_models), (rerun, rerun_models)):
        for key in ("stop_reason", "stop_step", "best_step", "best_epoch", "epochs", "steps"):
            assert other[key] == summary[key], key
        for model, other_model in zip(models, other_models):  # the trained and the best weights
            for key, value in model.state_dict().items():
                assert torch.equal(other_model.state_dict()[key], value), key


def test_stop_reason_of_a_state():
    cfg = StageConfig(batch_size=4, max_epochs=10, lr=1e-3, max_steps=100, early_stopping_patience=3)
    state = {"epoch": 0, "step": 0, "best_epoch": -1}
    assert stop_reason(state, cfg) is None  # patience is not checked before the first period
    assert stop_reason({**state, "epoch": 4, "step": 40, "best_epoch": 2}, cfg) is None
    assert stop_reason({**state, "epoch": 5, "step": 50, "best_epoch": 2}, cfg) == "early_stopping"
    assert stop_reason({**state, "epoch": 5, "step": 100, "best_epoch": 4}, cfg) == "step_cap"
    assert stop_reason({**state, "epoch": 10, "step": 99, "best_epoch": 9}, cfg) == "epoch_cap"


@pytest.mark.parametrize("evaluate_start", [True, False])
def test_evaluate_start_keeps_the_start_when_no_step_beats_it(tmp_path, evaluate_start):
    """Fine-tuning validates its starting weights first: steps that only make validation worse
    (here a learning rate far too large) return the start, with best_step 0; without it they
    return the least bad trained weights."""
    start = {k: v.clone() for k, v in _model().state_dict().items()}
    (_, best), summary = _train(tmp_path, max_epochs=3, lr=50.0, evaluate_start=evaluate_start)
    same = all(torch.equal(best.state_dict()[k], v) for k, v in start.items())
    assert same is evaluate_start
    assert (summary["best_step"] == 0) is evaluate_start
    assert summary["epochs"] == 3 and summary["steps"] == 9  # period 0 is no period of training


def _history(values, every=100):
    return [{"step": every * (i + 1), "val_force_mae": v} for i, v in enumerate(values)]


@pytest.mark.parametrize(
    "values,expected",
    [
        ([4.0, 3.0, 2.0, 1.9, 1.9, 1.9, 1.9, 1.9], 0.0),  # flat over the last quarter: converged at the cap
        ([4.0, 3.0, 2.8, 2.7, 2.6, 2.5, 2.4, 2.2], 0.3 / 2.5),  # still falling: best up to step 600 is 2.5
        ([2.0, 1.0, 1.5, 1.4, 1.3, 1.2, 1.1, 1.05], 0.0),  # the tail improves on itself, not on the best
        ([], 0.0),
    ],
)
def test_late_improvement_is_the_tail_gain_over_the_best_before_it(values, expected):
    assert engine.late_improvement(_history(values), "val_force_mae") == pytest.approx(expected)


@pytest.mark.parametrize(
    "caps, reason, setting",
    [
        (dict(max_epochs=100000, max_steps=40), "step_cap", "max_steps"),
        (dict(max_epochs=20, max_steps=None), "epoch_cap", "max_epochs"),  # 20 periods of 2 steps
    ],
)
def test_a_cap_that_ends_a_still_improving_run_warns_and_is_recorded(tmp_path, caplog, caps, reason, setting):
    """Learning zero labels at a small lr lowers the validation error steadily (15% over the last
    quarter of 40 steps here): the cap that ends it warns and names the setting to raise, and the
    summary's late_improvement says by how much. Early stopping never warns."""
    rng = np.random.default_rng(0)
    R = ETHANOL_R[None] + 0.08 * rng.standard_normal((N_TRAIN, 9, 3))
    zero = Dataset(R=R, z=ETHANOL_Z, E=np.zeros(N_TRAIN), F=np.zeros((N_TRAIN, 9, 3)), cpu_s=np.ones(N_TRAIN))
    data = TensorData.from_dataset(zero)
    cfg = StageConfig(batch_size=BATCH, lr=1e-4, rho=0.01, ema_decay=0.5, eval_every_steps=2, **caps)
    with caplog.at_level("WARNING", logger=engine.log.name):
        _, summary = train(_model(), data, data, cfg, seed=0, checkpoint=tmp_path / "c.ckpt", history_csv=None)
    assert summary["stop_reason"] == reason
    assert summary["late_improvement"] > 2 * LATE_IMPROVEMENT_WARN
    warned = [r.getMessage() for r in caplog.records if "not converged" in r.getMessage()]
    assert len(warned) == 1 and reason in warned[0] and f"training.<stage>.{setting}" in warned[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger=engine.log.name):
        _, summary = _train(tmp_path, checkpoint="d.ckpt", **ENDINGS["early_stopping"][0])
    assert summary["stop_reason"] == "early_stopping" and summary["late_improvement"] == 0.0
    assert not any("not converged" in r.getMessage() for r in caplog.records)
