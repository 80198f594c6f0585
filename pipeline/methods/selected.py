"""Methods trained on frames a committee selected (pipeline/selection.py) instead of the random
train[:N]: standard training and Δ-learning, run beside their random-frame rows with the same
validation and test frames, so that selected and random frames compare at every N.

With `selection.enabled`, `splits.train_sizes` are rounds: N0 (the smallest) is the random train[:N0]
of every method, and each larger N adds the frames that round's committee picked. One selection per
training seed: seed s trains its committees with their own seeds and its models on its own picks.
A row costs the accurate labels of its own frames, and its training CPU includes every committee it
needed and the scoring of the candidates (recorded in the selected frames' metadata).
"""

from __future__ import annotations

from .. import config as pconf
from .. import layout
from .base import Method, models, seeds


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


METHODS = [StandardSelected(), DeltaSelected()]
