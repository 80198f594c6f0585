"""ASTEROID (Bukharin et al., ICML 2023) and its ablations.

Stage 1 is standard training; the bias B_j of each cheap frame is the stage-1 model's force error
against the cheap label; stage 2 trains from scratch on the cheap pool weighted exp(-B_j/γ)
(γ = inf: unweighted, the cheap-only model, shared by every N); stage 3 fine-tunes on the N
accurate frames. γ is chosen per (model, cheap level, N, seed) among every candidate, γ = inf
included, by the fine-tuned model's validation loss (`best_by_validation`, never test error).

Rows: `asteroid` (the chosen stage 3), `finetune_unweighted` (stage 3 from the cheap-only model),
`bias_aware_no_finetune` (the chosen γ's stage 2), `cheap_only` (stage 2 at γ = inf, no accurate
labels).
"""

from __future__ import annotations

import math

from .. import config as pconf
from .. import layout
from .base import Method, Selected, cpu_s, gamma_tokens, is_inf, models, seeds, train_sizes


def best_by_validation(model_extras: dict) -> object:
    """Key of the candidate with the lowest validation loss (stage-3 `best_val_loss`).

    The one γ choice of the workflow: the results table and the MD stability runs both call it."""

    def loss(k):
        v = model_extras[k].get("best_val_loss")
        return math.inf if v is None else float(v)

    return min(model_extras, key=loss)


def _chains(config, molecule):
    for m in models(config):
        for s in seeds(config):
            for lvl in pconf.cheap_levels(config, molecule):
                yield m, s, lvl


def stage2_of(idx, rec: dict, stage2_role: str = "stage2") -> dict | None:
    """The stage-2 model a stage-3 (or bias-aware) record of γ rec['gamma_spec'] started from (records
    of `stage2_role` for a finite γ; the cheap-only model, shared by every N and selection, for inf)."""
    m, lvl, n, s = rec["model"], rec["cheap_level"], rec["n_train"], rec["seed"]
    if is_inf(rec):
        return idx.one("cheap_only", m, lvl, seed=s)
    return idx.one(stage2_role, m, lvl, n, s, gamma_spec=rec["gamma_spec"])


def chosen_candidates(idx, role: str = "finetune") -> list[Selected]:
    """Per (model, cheap level, N, seed): the stage-3 model (records of `role`) of the γ chosen on
    validation, among all candidates."""
    groups: dict[tuple, list[dict]] = {}
    for rec in idx.find(role):
        groups.setdefault((rec["model"], rec["cheap_level"], rec["n_train"], rec["seed"]), []).append(rec)
    out = []
    for _, cands in sorted(groups.items()):
        chosen = cands[best_by_validation({i: c["extra"] for i, c in enumerate(cands)})]
        out.append(Selected(chosen, tuple(cands)))
    return out


def candidate_runs(
    config: dict, name: str = "model.pt", values=None, kinds: tuple[str, str] = ("stage2", "finetune")
) -> list[str]:
    """The γ candidates of one (molecule, model, cheap level, N, seed) chain, as run files (templates
    where `values` leaves wildcards): every finite γ's stage 2 and stage 3, and γ = inf's stage 3
    (`kinds`: the RUNS of stage 2 and 3; ASTEROID on selected frames has its own).
    The workflow evaluates the random frames' candidates in one job (rule evaluate_gammas): with the
    paper's grid of seven γ they are most of a run's models, and one job per model made the plan
    ~7,000 jobs larger."""
    stage2, stage3 = kinds
    out = []
    for g in gamma_tokens(config):
        out += [layout.run(stage2, name, values, gamma=g), layout.run(stage3, name, values, gamma=g)]
    return out + [layout.run(stage3, name, values, gamma="inf")]


class Asteroid(Method):
    name = "asteroid"
    label = "ASTEROID"
    color = "#d62728"
    route = True
    forcefield = True
    product = True
    ablation_order = 3
    card = "ASTEROID"
    cheap_labels = "pool"
    gamma_role = "finetune"
    pretraining = "cheap"
    stage1_role = "standard"  # records of its stage 1 and finite-γ stage 2 (train_cpu_s)
    stage2_role = "stage2"

    def runs(self, config, molecule):
        out = []
        for m, s, lvl in _chains(config, molecule):
            for n in train_sizes(config):
                out += candidate_runs(config, values=dict(molecule=molecule, model=m, level=lvl, n=n, seed=s))
        return out

    def stability_runs(self, config, molecule):
        return [
            layout.file("stability", molecule=molecule, model=m, method="asteroid", level=lvl, n=n, seed=s)
            for m, s, lvl in _chains(config, molecule)
            for n in train_sizes(config)
        ]

    def stability_models(self, config, values):
        """Every γ candidate's stage-3 model, inf included: the run picks by validation, with the
        same function as results.csv."""
        return [layout.run("finetune", values=values, gamma=g) for g in gamma_tokens(config) + ["inf"]]

    def select(self, idx):
        return chosen_candidates(idx, self.gamma_role)

    def train_cpu_s(self, sel, idx):
        """Stage 1, the bias pass and every γ candidate's stage 2 and 3: choosing γ needs them all."""
        rec = sel.rec
        total = cpu_s(idx.one(self.stage1_role, rec["model"], n=rec["n_train"], seed=rec["seed"]))
        bias_cpu = float(rec["extra"].get("bias_cpu_s") or 0.0)
        for c in sel.candidates:
            s2 = stage2_of(idx, c, self.stage2_role)
            if not is_inf(c):
                bias_cpu = float((s2 or {}).get("extra", {}).get("bias_cpu_s") or bias_cpu)
            total += cpu_s(s2) + cpu_s(c)
        return total + bias_cpu


class FinetuneUnweighted(Method):
    name = "finetune_unweighted"
    pretraining = "cheap"
    label = "fine-tune, no bias weights"
    color = "#ff7f0e"
    forcefield = True
    product = True
    ablation_order = 1
    cheap_labels = "pool"

    def select(self, idx):
        return [Selected(r) for r in idx.find("finetune") if is_inf(r)]

    def train_cpu_s(self, sel, idx):
        r = sel.rec
        return cpu_s(idx.one("cheap_only", r["model"], r["cheap_level"], seed=r["seed"])) + cpu_s(r)


class BiasAwareNoFinetune(Method):
    name = "bias_aware_no_finetune"
    label = "bias-aware, no fine-tuning"
    color = "#2ca02c"
    ablation_order = 2
    cheap_labels = "pool"

    def select(self, idx):
        out = []
        for sel in chosen_candidates(idx):
            s2 = stage2_of(idx, sel.rec)
            if s2 is not None:
                out.append(Selected(s2, n_train=sel.rec["n_train"]))
        return out

    def train_cpu_s(self, sel, idx):
        """Stage 1 at the row's N and the bias pass, then stage 2; at γ = inf stage 2 is the cheap-only
        model, which needs no stage 1."""
        r = sel.rec
        if is_inf(r):
            return cpu_s(r)
        n = r["n_train"] if sel.n_train is None else sel.n_train
        stage1 = cpu_s(idx.one("standard", r["model"], n=n, seed=r["seed"]))
        return stage1 + float(r["extra"].get("bias_cpu_s") or 0.0) + cpu_s(r)


class CheapOnly(Method):
    name = "cheap_only"
    label = "cheap labels only"
    color = "#9467bd"
    no_accurate_labels = True
    cheap_labels = "pool"

    def runs(self, config, molecule):
        return [
            layout.run("cheap_only", molecule=molecule, model=m, level=lvl, seed=s)
            for m, s, lvl in _chains(config, molecule)
        ]

    def stability_runs(self, config, molecule):
        return [
            layout.file("stability", molecule=molecule, model=m, method="cheap_only", level=lvl, n=0, seed=s)
            for m, s, lvl in _chains(config, molecule)
        ]

    def stability_models(self, config, values):
        return [layout.run("cheap_only", values=values)]


METHODS = [Asteroid(), FinetuneUnweighted(), BiasAwareNoFinetune(), CheapOnly()]
