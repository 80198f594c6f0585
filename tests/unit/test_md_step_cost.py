"""benchmarks/md_step_cost.py times each force field as the workflow runs it: a Δ model with its cheap
level at every step (DeltaCalculator), a plain model alone, labelled from its own metadata."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import md_step_cost

from pipeline.evaluation.calculator import ModelCalculator
from pipeline.evaluation.delta_prediction import DeltaCalculator
from pipeline.models import build, save_model
from tests.conftest import ETHANOL_R, ETHANOL_Z

from .evaluation.test_delta_prediction import XTB
from .evaluation.test_predict import SMALL_EGNN


def test_a_delta_model_runs_with_its_cheap_level_and_a_plain_model_alone(tmp_path):
    torch.manual_seed(0)
    save_model(build("egnn", **SMALL_EGNN), tmp_path / "plain.pt", extra={"stage": "standard", "model_name": "egnn"})
    plain, plain_extra = md_step_cost.calculator(str(tmp_path / "plain.pt"), ETHANOL_Z)
    extra = {"stage": "delta", "model_name": "egnn", "cheap_level": "xtb", "cheap_entry": XTB, "n_train": 4}
    save_model(build("egnn", **SMALL_EGNN), tmp_path / "d.pt", extra=extra)
    delta, delta_extra = md_step_cost.calculator(str(tmp_path / "d.pt"), ETHANOL_Z)
    assert type(plain) is ModelCalculator and isinstance(delta, DeltaCalculator)
    assert md_step_cost.describe(delta_extra) == "egnn delta on xtb, N = 4"
    assert md_step_cost.describe(plain_extra) == "egnn standard"
    # untrained models may stop early (the stability checks): the time is per completed step
    for calc in (plain, delta):
        per_step, _ = md_step_cost.time_block(calc, ETHANOL_R, ETHANOL_Z, n_steps=5, seed=0)
        assert per_step > 0
    assert delta.potential is not None  # the cheap level it calls at every step
