"""Δ-learning: the cheap level plus a correction trained on accurate − cheap labels of the same N
frames, with a neural model (`delta`) or sGDML (`delta_sgdml`). It calls its cheap level at every
prediction, and pays for cheap labels on its N training frames and on every validation and test
frame (to stop training and to predict)."""

from __future__ import annotations

from .. import config as pconf
from .. import layout
from .base import Method, models, seeds, train_sizes


class Delta(Method):
    name = "delta"
    label = "Δ-learning: cheap level + neural correction"
    color = "#17becf"
    route = True
    runtime_level = True
    forcefield = True
    card = "Δ-learning"
    cheap_labels = "own"

    def enabled(self, config, molecule):
        return bool(pconf.delta_levels(config, molecule))

    def runs(self, config, molecule):
        return [
            layout.run("delta", molecule=molecule, model=m, level=lvl, n=n, seed=s)
            for m in models(config)
            for lvl in pconf.delta_levels(config, molecule)
            for s in seeds(config)
            for n in train_sizes(config)
        ]

    def stability_runs(self, config, molecule):
        return [
            layout.file("stability", molecule=molecule, model=m, method="delta", level=lvl, n=n, seed=s)
            for m in models(config)
            for s in seeds(config)
            for lvl in pconf.delta_stability_levels(config, molecule)
            for n in train_sizes(config)
        ]


class DeltaSGDML(Method):
    name = "delta_sgdml"
    label = "Δ-learning: cheap level + sGDML correction"
    color = "#bcbd22"
    kernel = True
    own_model = "sgdml"
    route = True
    runtime_level = True
    cheap_labels = "own"

    def enabled(self, config, molecule):
        return bool(
            config["evaluation"]["sgdml"]["enabled"]
            and config["delta"]["sgdml"]
            and pconf.delta_levels(config, molecule)
        )

    def evaluations(self, config, molecule):
        return [
            layout.run("delta_sgdml", "eval.json", molecule=molecule, level=lvl, n=n)
            for lvl in pconf.delta_levels(config, molecule)
            for n in train_sizes(config)
        ]


METHODS = [Delta(), DeltaSGDML()]
