"""sGDML (Chmiela et al.) trained on the N accurate frames, σ chosen on validation: the kernel
baseline, compared with every neural model's standard training."""

from __future__ import annotations

from .. import layout
from .base import Method, train_sizes


class SGDML(Method):
    name = "sgdml"
    label = "sGDML (accurate labels only)"
    color = "#222222"
    kernel = True
    own_model = "sgdml"
    route = True

    def enabled(self, config, molecule):
        return config["evaluation"]["sgdml"]["enabled"]

    def evaluations(self, config, molecule):
        return [layout.run("sgdml", "eval.json", molecule=molecule, n=n) for n in train_sizes(config)]


METHODS = [SGDML()]
