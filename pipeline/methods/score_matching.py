"""Sliced score matching on unlabelled Boltzmann samples (label-free pre-training), then
fine-tuning on the N accurate frames; enabled by splits.unlabelled > 0. Rows: `score_matching`
(fine-tuned) and `score_matching_no_finetune` (the pre-trained model alone)."""

from __future__ import annotations

from .. import layout
from .base import Method, cpu_s, models, seeds, train_sizes


class ScoreMatching(Method):
    name = "score_matching"
    pretraining = "score_matching"
    label = "score matching + fine-tune"
    color = "#8c564b"
    route = True
    forcefield = True
    product = True
    cheap_labels = "pool"  # the unlabelled pool (its positions cost nothing but the MD)

    def enabled(self, config, molecule):
        return config["splits"]["unlabelled"] > 0

    def runs(self, config, molecule):
        return [
            layout.run("finetune_score", molecule=molecule, model=m, n=n, seed=s)
            for m in models(config)
            for s in seeds(config)
            for n in train_sizes(config)
        ]

    def train_cpu_s(self, sel, idx):
        r = sel.rec
        return cpu_s(idx.one("score_matching_no_finetune", r["model"], seed=r["seed"])) + cpu_s(r)


class ScoreMatchingNoFinetune(ScoreMatching):
    name = "score_matching_no_finetune"
    pretraining = None  # it is the pre-training
    label = "score matching, no fine-tuning"
    color = "#e377c2"
    route = forcefield = product = False
    no_accurate_labels = True

    def runs(self, config, molecule):
        return [layout.run("score", molecule=molecule, model=m, seed=s) for m in models(config) for s in seeds(config)]

    def train_cpu_s(self, sel, idx):
        return cpu_s(sel.rec)


METHODS = [ScoreMatching(), ScoreMatchingNoFinetune()]
