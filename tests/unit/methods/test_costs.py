"""A method's training cost counts every model its final model needed; one the run has not
evaluated makes the cost unknown (NaN), never silently smaller."""

import math

import pytest

from pipeline.evaluation.collect import Index
from pipeline.methods import get as get_method


def _rec(role, train_cpu_s, **extra):
    """An evaluation record as pipeline.evaluation.collect.evaluation_record makes it."""
    base = dict(model="egnn", cheap_level="xtb", n_train=25, seed=0, gamma_spec="inf", gamma=math.inf)
    return dict(base, role=role, train_cpu_s=train_cpu_s, extra={"best_val_loss": 0.1, **extra})


def _corrected_records(with_stage2: bool) -> list[dict]:
    recs = [_rec("corrected", 40.0)]
    if with_stage2:
        recs.append(_rec("corrected_stage2", 2000.0, delta_cpu_s=300.0))
    return recs


@pytest.mark.parametrize("with_stage2", [True, False])
def test_corrected_pretraining_pays_for_the_delta_model_stage_2_and_fine_tuning(with_stage2):
    method = get_method("corrected")
    idx = Index(_corrected_records(with_stage2))
    (sel,) = method.select(idx)
    cost = method.train_cpu_s(sel, idx)
    if with_stage2:
        assert cost == pytest.approx(300.0 + 2000.0 + 40.0)
    else:  # a partial run (only the fine-tuned model evaluated) cannot know what stage 2 cost
        assert math.isnan(cost)


def test_asteroid_without_its_stage_1_record_has_an_unknown_cost():
    method = get_method("asteroid")
    ft = _rec("finetune", 30.0)
    cheap_only = dict(_rec("cheap_only", 1000.0), n_train=None)
    full = Index([dict(_rec("standard", 100.0), gamma_spec=None), cheap_only, ft])
    (sel,) = method.select(full)
    assert method.train_cpu_s(sel, full) == pytest.approx(100.0 + 1000.0 + 30.0)
    partial = Index([cheap_only, ft])
    (sel,) = method.select(partial)
    assert math.isnan(method.train_cpu_s(sel, partial))


@pytest.mark.parametrize("chosen", ["inf", "r1"])
def test_bias_aware_without_fine_tuning_pays_for_stage_1_only_when_it_weights(chosen):
    """Its row is the stage 2 of the γ chosen on validation: at γ = inf the cheap-only model (shared by
    every N, no stage 1), at a finite γ stage 1 at the row's N, the bias pass and the weighted stage 2."""
    method = get_method("bias_aware_no_finetune")
    loss = {"inf": 0.1 if chosen == "inf" else 0.9, "r1": 0.1 if chosen == "r1" else 0.9}
    recs = [
        dict(_rec("standard", 100.0), gamma_spec=None),
        dict(_rec("cheap_only", 1000.0), n_train=0),
        dict(_rec("stage2", 800.0, bias_cpu_s=9.0), gamma_spec="r1", gamma=0.7),
        dict(_rec("finetune", 30.0, best_val_loss=loss["inf"])),
        dict(_rec("finetune", 40.0, best_val_loss=loss["r1"]), gamma_spec="r1", gamma=0.7),
    ]
    idx = Index(recs)
    (sel,) = method.select(idx)
    assert sel.n_train == 25
    expected = 1000.0 if chosen == "inf" else 100.0 + 9.0 + 800.0
    assert method.train_cpu_s(sel, idx) == pytest.approx(expected)
