"""The Method base class and the helpers method modules share (see pipeline/methods/__init__.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import layout


@dataclass(frozen=True)
class Selected:
    """One results row a method takes from the evaluations: the record that is scored on the test
    set, the candidates it was chosen among (γ for ASTEROID), and overrides of its N."""

    rec: dict
    candidates: tuple = ()
    n_train: int | None = None


class Method:
    name: str = ""
    label: str = ""
    color: str = "#7f7f7f"
    kernel: bool = False  # sGDML: no neural model, overlaid on every model's panel
    route: bool = False  # a route to a target error in the cheapest-route table
    no_accurate_labels: bool = False  # in the cheap-only figure (n_train = 0)
    runtime_level: bool = False  # calls its cheap level at every prediction
    forcefield: bool = False  # can be the exported force field (runs as this package's ASE calculator)
    product: bool = False  # ends on accurate data without a cheap level at run time
    ablation_order: int | None = None  # position in ASTEROID's ablation table (None: not in it)
    card: str | None = None  # a summary card of its reduction vs standard training, with this name
    gamma_role: str | None = None  # records of its γ candidates (chosen on validation; gamma_selection.csv)
    compare_with: tuple[str, ...] = ()  # methods (same model, level, N) reductions.csv also compares it with
    own_model: str | None = None  # a model of its own, not one of training.models (sgdml, so3lr):
    # reductions.csv compares it with each neural model's standard training
    selected_frames: bool = False  # trains on frames a committee selected (pipeline/selection.py)
    pretraining: str | None = None  # training.<stage> of the pre-training its fine-tuning starts from
    cheap_labels: str = "none"  # cheap labels it pays for: none, "pool" (its level's whole pool),
    # "own" (Δ: its level on the N training frames and every validation and test frame) or "pool+own"

    # ---- workflow
    def enabled(self, config: dict, molecule: str) -> bool:
        return True

    def runs(self, config: dict, molecule: str) -> list[str]:
        """model.pt of every run this method owns (the workflow trains and evaluates them)."""
        return []

    def evaluations(self, config: dict, molecule: str) -> list[str]:
        return [layout.sibling(p, "eval.json") for p in self.runs(config, molecule)]

    def stability_runs(self, config: dict, molecule: str) -> list[str]:
        """The MD stability CSVs of this method (layout FILES['stability'])."""
        return []

    def stability_models(self, config: dict, values) -> list[str]:
        """model.pt files the generic md_stability rule runs for one of its stability CSVs
        (values: the CSV's wildcards); several are candidates chosen on validation."""
        raise NotImplementedError(f"method {self.name!r} has no generic MD stability run")

    def has_generic_stability(self) -> bool:
        return type(self).stability_models is not Method.stability_models

    # ---- collect
    def select(self, idx) -> list[Selected]:
        """The records of this method's results rows (idx: pipeline.evaluation.collect.Index)."""
        return [Selected(r) for r in idx.find(self.name)]

    def train_cpu_s(self, sel: Selected, idx) -> float:
        """CPU seconds of every training step the final model needed."""
        return cpu_s(sel.rec)


def cpu_s(rec: dict | None) -> float:
    """A record's training CPU seconds; NaN for a record the cost needs but the run has not evaluated
    (e.g. a stage 2 whose eval.json a partial run never made): unknown, not free."""
    return float("nan") if rec is None else float(rec["train_cpu_s"])


def seeds(config: dict) -> list[int]:
    return list(config["training"]["seeds"])


def train_sizes(config: dict) -> list[int]:
    return sorted(config["splits"]["train_sizes"])


def models(config: dict) -> list[str]:
    return list(config["training"]["models"])


def gamma_tokens(config: dict, section: str = "asteroid") -> list[str]:
    """The finite γ candidates of a config section (asteroid, corrected) as path tokens; γ = inf is
    always a candidate too."""
    a = config[section]
    return [layout.gamma_token("absolute", g) for g in a["gammas"]] + [
        layout.gamma_token("relative", c) for c in a["relative_gammas"]
    ]


def is_inf(rec: dict) -> bool:
    return math.isinf(rec["gamma"])
