"""Standard training: the model trained on the N accurate frames only (also ASTEROID's stage 1)."""

from __future__ import annotations

from .. import layout
from .base import Method, models, seeds, train_sizes


class Standard(Method):
    name = "standard"
    label = "standard (accurate labels only)"
    color = "#1f77b4"
    route = True
    forcefield = True
    product = True
    ablation_order = 0

    def runs(self, config, molecule):
        return [
            layout.run("standard", molecule=molecule, model=m, n=n, seed=s)
            for m in models(config)
            for s in seeds(config)
            for n in train_sizes(config)
        ]

    def stability_runs(self, config, molecule):
        return [
            layout.file("stability", molecule=molecule, model=m, method="standard", level="none", n=n, seed=s)
            for m in models(config)
            for s in seeds(config)
            for n in train_sizes(config)
        ]

    def stability_models(self, config, values):
        return [layout.run("standard", values=values)]


METHODS = [Standard()]
