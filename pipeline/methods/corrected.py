"""Bias-corrected pre-training: ASTEROID's three stages with the cheap labels corrected instead of
only down-weighted (pipeline/training/corrected.py).

1. The Δ model trained on the same N accurate frames relabels the cheap pool: cheap + correction.
2. Stage 2 from scratch on the corrected pool, frames weighted exp(−u_j/γ), u_j an estimate of the
   corrected label's remaining error (γ = inf: unweighted; γ chosen on validation).
3. Stage 3 fine-tunes on the N accurate frames.

The result is a plain model: no cheap level at run time. It needs a level that is both a cheap level
(its pool) and a Δ level (its correction); its cost counts the Δ model's training, the relabelling,
every γ candidate's stages 2 and 3, the cheap pool and the Δ level's own labels.
"""

from __future__ import annotations

from .. import config as pconf
from .. import layout
from .asteroid import chosen_candidates
from .base import Method, cpu_s, gamma_tokens, models, seeds, train_sizes


def levels(config: dict, molecule: str) -> list[str]:
    """Levels with a cheap pool and a Δ model."""
    if not config["corrected"]["enabled"]:
        return []
    delta = pconf.delta_levels(config, molecule)
    return [lvl for lvl in pconf.cheap_levels(config, molecule) if lvl in delta]


def _chains(config, molecule):
    for m in models(config):
        for s in seeds(config):
            for lvl in levels(config, molecule):
                for n in train_sizes(config):
                    yield dict(molecule=molecule, model=m, level=lvl, n=n, seed=s)


class Corrected(Method):
    name = "corrected"
    label = "pre-training on Δ-corrected cheap labels + fine-tune"
    color = "#e6550d"
    route = True
    forcefield = True
    product = True
    card = "Corrected pre-training"
    cheap_labels = "pool+own"
    gamma_role = "corrected"
    pretraining = "corrected"
    stage2_role = "corrected_stage2"  # records of its stage 2 (train_cpu_s)
    kinds = ("corrected_stage2", "corrected")  # RUNS of its stages 2 and 3
    compare_with = ("delta",)  # its goal: Δ-learning's accuracy without the cheap level at run time

    def enabled(self, config, molecule):
        return bool(levels(config, molecule))

    def chains(self, config, molecule):
        """The (molecule, model, level, N, seed) of its runs."""
        return _chains(config, molecule)

    def runs(self, config, molecule):
        return [
            layout.run(kind, gamma=g, **kw)
            for kw in self.chains(config, molecule)
            for g in gamma_tokens(config, "corrected") + ["inf"]
            for kind in self.kinds
        ]

    def stability_runs(self, config, molecule):
        return [layout.file("stability", method=self.name, **kw) for kw in _chains(config, molecule)]

    def stability_models(self, config, values):
        """Every γ candidate's fine-tuned model: the run picks by validation, as results.csv does."""
        return [layout.run("corrected", values=values, gamma=g) for g in gamma_tokens(config, "corrected") + ["inf"]]

    def select(self, idx):
        return chosen_candidates(idx, self.gamma_role)

    def train_cpu_s(self, sel, idx):
        """The Δ model(s) and the relabelling (recorded with stage 2), every γ candidate's stages 2 and 3."""
        total, shared = 0.0, 0.0
        for c in sel.candidates:
            s2 = idx.one(self.stage2_role, c["model"], c["cheap_level"], c["n_train"], c["seed"], c["gamma_spec"])
            extra = (s2 or {}).get("extra", {})
            shared = max(shared, float(extra.get("delta_cpu_s") or 0.0) + float(extra.get("bias_cpu_s") or 0.0))
            total += cpu_s(s2) + cpu_s(c)
        return total + shared


METHODS = [Corrected()]
