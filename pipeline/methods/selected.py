"""Methods trained on frames a committee selected (pipeline/selection.py) instead of the random
train[:N]: standard training, Δ-learning, ASTEROID and bias-corrected pre-training, run beside their
random-frame rows with the same validation and test frames, so that selected and random frames
compare at every N (`selection.methods` says which).

ASTEROID on selected frames: stage 1 is standard training on them (`standard_selected`), the bias of
the pool of selection.level comes from that model, stage 2 trains on that pool (γ = inf: the shared
cheap-only model) and stage 3 fine-tunes on the selected frames. Corrected pre-training on selected
frames: the pool of selection.level relabelled by the Δ model on the selected frames
(`delta_selected`; the committee uncertainty is the spread of every seed's, each on its own
selection's frames), stage 2 on it and fine-tuning on the selected frames.

With `selection.enabled`, `splits.train_sizes` are rounds: N0 (the smallest) is the random train[:N0]
of every method, and each larger N adds the frames that round's committee picked. One selection per
training seed: seed s trains its committees with their own seeds and its models on its own picks.
A row costs the accurate labels of its own frames, and its training CPU includes every committee it
needed and the scoring of the candidates (recorded in the selected frames' metadata).
"""

from __future__ import annotations

from .. import config as pconf
from .. import layout
from .asteroid import Asteroid, candidate_runs
from .base import Method, models, seeds
from .corrected import Corrected


def selected_sizes(config: dict) -> list[int]:
    """The N that selection changes: every train size after round 0."""
    return pconf.selection_rounds(config)[1:]


def _enabled(config, molecule, name) -> bool:
    return pconf.selection_enabled(config, molecule) and name in config["selection"]["methods"]


class StandardSelected(Method):
    name = "standard_selected"
    label = "standard on committee-selected frames"
    color = "#08306b"
    route = True
    forcefield = True
    product = True
    selected_frames = True

    def enabled(self, config, molecule):
        return _enabled(config, molecule, "standard")

    def runs(self, config, molecule):
        return [
            layout.run("standard_selected", molecule=molecule, model=m, n=n, seed=s)
            for m in models(config)
            for s in seeds(config)
            for n in selected_sizes(config)
        ]


class DeltaSelected(Method):
    name = "delta_selected"
    label = "Δ-learning on committee-selected frames"
    color = "#00666e"
    route = True
    runtime_level = True
    forcefield = True
    selected_frames = True
    cheap_labels = "own"
    compare_with = ("delta",)

    def enabled(self, config, molecule):
        return _enabled(config, molecule, "delta")

    def runs(self, config, molecule):
        lvl = config["selection"]["level"]
        return [
            layout.run("delta_selected", molecule=molecule, model=m, level=lvl, n=n, seed=s)
            for m in models(config)
            for s in seeds(config)
            for n in selected_sizes(config)
        ]


def _chains(config, molecule):
    """(molecule, model, selection.level, N, seed) of every run on selected frames after round 0."""
    lvl = config["selection"]["level"]
    for m in models(config):
        for s in seeds(config):
            for n in selected_sizes(config):
                yield dict(molecule=molecule, model=m, level=lvl, n=n, seed=s)


class AsteroidSelected(Asteroid):
    name = "asteroid_selected"
    label = "ASTEROID on committee-selected frames"
    color = "#67000d"
    ablation_order = None
    card = None
    selected_frames = True
    gamma_role = "finetune_selected"
    stage1_role = "standard_selected"
    stage2_role = "stage2_selected"
    compare_with = ("asteroid",)

    def enabled(self, config, molecule):
        return _enabled(config, molecule, "asteroid")

    def runs(self, config, molecule):
        kinds = ("stage2_selected", "finetune_selected")
        return [p for kw in _chains(config, molecule) for p in candidate_runs(config, values=kw, kinds=kinds)]

    def stability_runs(self, config, molecule):
        return []  # as the other methods on selected frames: MD stability runs on the random frames' models


class CorrectedSelected(Corrected):
    name = "corrected_selected"
    label = "corrected pre-training on committee-selected frames"
    color = "#7f2704"
    card = None
    selected_frames = True
    gamma_role = "corrected_selected"
    stage2_role = "corrected_selected_stage2"
    kinds = ("corrected_selected_stage2", "corrected_selected")
    compare_with = ("corrected", "delta_selected")

    def enabled(self, config, molecule):
        return _enabled(config, molecule, "corrected")

    def chains(self, config, molecule):
        return _chains(config, molecule)

    def stability_runs(self, config, molecule):
        return []


METHODS = [StandardSelected(), DeltaSelected(), AsteroidSelected(), CorrectedSelected()]
