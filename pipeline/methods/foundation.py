"""Fine-tuning a shipped foundation model: SO3LR (pipeline/models/so3lr.py), pretrained by its
authors, fine-tuned on the N accurate frames with the standard stage's early stopping on validation
(training.foundation: a smaller learning rate), and the same model zero-shot (only its energy offset
fitted to train[:N]) as a reference row.

Its pre-training costs the user nothing (the weights ship in so3krates-torch), so its cost is its
accurate labels and its fine-tuning; the report's label says so. It is a plain model (no cheap level
at run time) and a candidate for the recommended force field.
"""

from __future__ import annotations

from .. import layout
from .base import Method, seeds, train_sizes

MODEL = "so3lr"  # the foundation model (pipeline.models.MODELS)


def _enabled(config) -> bool:
    return bool(config["foundation"]["enabled"])


class Foundation(Method):
    name = "foundation"
    label = "SO3LR foundation model fine-tuned (pre-training free)"
    color = "#6a3d9a"
    route = True
    forcefield = True
    product = True
    card = "Fine-tuned SO3LR"
    own_model = MODEL

    def enabled(self, config, molecule):
        return _enabled(config)

    def runs(self, config, molecule):
        return [
            layout.run("foundation", molecule=molecule, model=MODEL, n=n, seed=s)
            for s in seeds(config)
            for n in train_sizes(config)
        ]

    def stability_runs(self, config, molecule):
        return [
            layout.file("stability", molecule=molecule, model=MODEL, method=self.name, level="none", n=n, seed=s)
            for s in seeds(config)
            for n in train_sizes(config)
        ]

    def stability_models(self, config, values):
        return [layout.run("foundation", values=values)]


class FoundationZeroShot(Method):
    name = "foundation_zero_shot"
    label = "SO3LR zero-shot (energy offset fitted only)"
    color = "#cab2d6"
    own_model = MODEL
    forcefield = True
    product = True

    def enabled(self, config, molecule):
        return _enabled(config)

    def runs(self, config, molecule):
        return [layout.run("foundation_zero_shot", molecule=molecule, model=MODEL, n=n) for n in train_sizes(config)]


METHODS = [Foundation(), FoundationZeroShot()]
