"""The results tree: the one place where a path of the workflow is spelled.

Rules take their `output:`, `log:` and `benchmark:` templates from here (Snakemake wildcards in
braces); input functions, `collect`, the label-cost plan and the benchmark scripts fill the same
templates with values. What a file holds (a model's role, γ, N, seed) travels in its metadata;
nothing parses meaning back out of a path, except the γ candidate token, whose encoding and
decoding both live here (`gamma_token`, `gamma_from_token`).

    results/<molecule>/
      md/  frames/<subset>.npz  labels/<level>/<subset>/chunkNNNN.npz  data/<level>/<subset>.npz
      models/<model>/<run>/     model.pt, history.csv, eval.json, predictions.npz (RUNS)
      stability/<model>/<method>/<level>/N<n>_s<seed>.csv
      results.csv, reductions.csv, ... (TABLES), report.html, figures/, forcefield/
    results/logs/<molecule>/..., results/benchmarks/<molecule>/...   (LOGS, BENCHMARKS: per rule)
"""

from __future__ import annotations

import math
from pathlib import Path

ROOT = "results"
MOLECULE = f"{ROOT}/{{molecule}}"

# Files of one molecule, relative to results/<molecule>.
FILES = {
    "prmtop": "md/gaff2.prmtop",
    "inpcrd": "md/gaff2.inpcrd",
    "sdf": "md/molecule.sdf",
    "trajectory": "md/trajectory.npz",
    "thermo": "md/thermo.csv",
    "imported": "imported/{level}.npz",
    "frames": "frames/{subset}.npz",
    "chunk": "labels/{level}/{subset}/chunk{chunk}.npz",
    "dataset": "data/{level}/{subset}.npz",
    "bias": "models/{model}/bias/{level}/N{n}_s{seed}.npz",
    "bias_val": "models/{model}/bias/{level}/val_N{n}_s{seed}.csv",
    "stability": "stability/{model}/{method}/{level}/N{n}_s{seed}.csv",
    # bias-corrected pre-training: the cheap pool relabelled by the Δ model at N, u_j, its ranking
    "corrected_pool": "models/{model}/corrected/{level}/N{n}_s{seed}/pool.npz",
    "corrected_u": "models/{model}/corrected/{level}/N{n}_s{seed}/uncertainty.npz",
    "corrected_diag": "models/{model}/corrected/{level}/N{n}_s{seed}/uncertainty.csv",
    # selection in rounds (pipeline/selection.py): the frames a round picked (labelled as the subset
    # sel-s<seed>-r<round>), their scores, the committee on validation, the frames labelled so far
    "selection_frames": "frames/sel-s{seed}-r{round}.npz",
    "selection_scores": "selection/s{seed}/r{round}/scores.csv",
    "selection_val": "selection/s{seed}/r{round}/validation.csv",
    "selected_data": "data/{level}/selected/N{n}_s{seed}.npz",
    # ASTEROID's bias and corrected pre-training's corrected pool on a selection's frames at N
    "bias_selected": "models/{model}/selected/bias/{level}/N{n}_s{seed}.npz",
    "corrected_pool_selected": "models/{model}/selected/corrected/{level}/N{n}_s{seed}/pool.npz",
    "corrected_u_selected": "models/{model}/selected/corrected/{level}/N{n}_s{seed}/uncertainty.npz",
    "corrected_diag_selected": "models/{model}/selected/corrected/{level}/N{n}_s{seed}/uncertainty.csv",
    "label_plan": "label_plan.csv",
    "report": "report.html",
    "figures": "figures",
    "forcefield": "forcefield",
    "config_used": "config.used.yaml",
}
# What `dataset` writes beside <level>/<subset>.npz (same stem).
DATASET_SIDECARS = {"extxyz": ".extxyz", "failures": ".failures.csv", "outliers": ".outliers.csv"}

# The tables collect writes (results/<molecule>/<file>); their columns: pipeline/records.py.
TABLES = {
    "results": "results.csv",
    "reductions": "reductions.csv",
    "gamma": "gamma_selection.csv",
    "costs": "label_costs.csv",
    "stability": "stability.csv",
    "bias": "bias_diagnostic.csv",
    "bias_summary": "bias_correlation.csv",
    "corrected_uncertainty": "corrected_uncertainty.csv",
    "selection": "selection.csv",
    "selection_validation": "selection_validation.csv",
}

# Run directories of trained models (model.pt, history.csv, eval.json, predictions.npz), relative
# to results/<molecule>. {gamma} is a γ candidate token (gamma_token).
RUNS = {
    "standard": "models/{model}/standard/N{n}_s{seed}",
    "stage2": "models/{model}/stage2/{level}/g{gamma}/N{n}_s{seed}",
    "cheap_only": "models/{model}/stage2/{level}/ginf/s{seed}",
    "score": "models/{model}/score/s{seed}",
    "finetune": "models/{model}/finetune/{level}/g{gamma}/N{n}_s{seed}",
    "finetune_score": "models/{model}/finetune/score/N{n}_s{seed}",
    "delta": "delta/{model}/{level}/N{n}_s{seed}",
    "sgdml": "baselines/sgdml/N{n}",
    "delta_sgdml": "baselines/delta_sgdml/{level}/N{n}",
    "corrected_stage2": "models/{model}/corrected/{level}/g{gamma}/N{n}_s{seed}/stage2",
    "corrected": "models/{model}/corrected/{level}/g{gamma}/N{n}_s{seed}/finetune",
    "committee": "selection/s{seed}/r{round}/{model}/m{member}",
    "standard_selected": "models/{model}/selected/standard/N{n}_s{seed}",
    "delta_selected": "delta/{model}/{level}/selected/N{n}_s{seed}",
    "stage2_selected": "models/{model}/selected/stage2/{level}/g{gamma}/N{n}_s{seed}",
    "finetune_selected": "models/{model}/selected/finetune/{level}/g{gamma}/N{n}_s{seed}",
    "corrected_selected_stage2": "models/{model}/selected/corrected/{level}/g{gamma}/N{n}_s{seed}/stage2",
    "corrected_selected": "models/{model}/selected/corrected/{level}/g{gamma}/N{n}_s{seed}/finetune",
    "foundation": "models/{model}/foundation/N{n}_s{seed}",
    "foundation_zero_shot": "models/{model}/zero_shot/N{n}",
    "any_model": "models/{run}",  # the generic evaluate rule: any run under models/ (ANY_MODEL_RUN_RE)
}

# The {run} of the generic evaluate rule: any run under models/ except ASTEROID's finite-γ stage-2
# and stage-3 runs and its γ = inf stage 3 (RUNS stage2, finetune with N), which rule evaluate_gammas
# evaluates together. Without the exclusion Snakemake would build both rules' jobs for each of those
# files and discard one (a ruleorder), which costs as much planning time as the jobs saved.
ANY_MODEL_RUN_RE = r"(?![^/]+/(?:stage2|finetune)/[^/]+/g[^/]+/N[0-9]+_s[0-9]+/)[A-Za-z0-9_./-]+"

# Log (results/logs/<molecule>/<x>.log) and benchmark (results/benchmarks/<molecule>/<x>.tsv)
# of each rule. The first directory of a benchmark is the stage the report's timings show.
LOGS = {
    "gaff2": "gaff2",
    "md": "md",
    "import_level": "import/{level}",
    "frames": "frames/{subset}",
    "label_chunk": "label/{level}/{subset}/chunk{chunk}",
    "dataset": "dataset/{level}/{subset}",
    "label_plan": "label_plan",
    "train_standard": "train/{model}/standard/N{n}_s{seed}",
    "bias": "train/{model}/bias/{level}/N{n}_s{seed}",
    "train_stage2": "train/{model}/stage2/{level}/g{gamma}/N{n}_s{seed}",
    "train_cheap_only": "train/{model}/stage2/{level}/ginf/s{seed}",
    "train_score": "train/{model}/score/s{seed}",
    "finetune_cheap": "train/{model}/finetune/{level}/g{gamma}/N{n}_s{seed}",
    "finetune_score": "train/{model}/finetune/score/N{n}_s{seed}",
    "train_delta": "train/{model}/delta/{level}/N{n}_s{seed}",
    "evaluate": "evaluate/{run}",
    "evaluate_gammas": "evaluate_gammas/{model}/{level}/N{n}_s{seed}",
    "evaluate_delta": "evaluate_delta/{model}/{level}/N{n}_s{seed}",
    "sgdml": "sgdml/N{n}",
    "sgdml_delta": "sgdml_delta/{level}/N{n}",
    "md_stability": "stability/{model}/{method}/{level}/N{n}_s{seed}",
    "md_stability_delta": "stability/{model}/delta/{level}/N{n}_s{seed}",
    "bias_diagnostic": "bias_diagnostic/{model}/{level}/N{n}_s{seed}",
    "correct_pool": "train/{model}/corrected/{level}/N{n}_s{seed}",
    "train_corrected": "train/{model}/corrected/{level}/g{gamma}/N{n}_s{seed}/stage2",
    "finetune_corrected": "train/{model}/corrected/{level}/g{gamma}/N{n}_s{seed}/finetune",
    "train_committee": "selection/s{seed}/r{round}/{model}/m{member}",
    "select_frames": "selection/s{seed}/r{round}/select",
    "selected_data": "selection/data/{level}/N{n}_s{seed}",
    "train_standard_selected": "train/{model}/selected/standard/N{n}_s{seed}",
    "train_delta_selected": "train/{model}/selected/delta/{level}/N{n}_s{seed}",
    "evaluate_delta_selected": "evaluate_delta/{model}/{level}/selected/N{n}_s{seed}",
    "bias_selected": "train/{model}/selected/bias/{level}/N{n}_s{seed}",
    "train_stage2_selected": "train/{model}/selected/stage2/{level}/g{gamma}/N{n}_s{seed}",
    "finetune_selected": "train/{model}/selected/finetune/{level}/g{gamma}/N{n}_s{seed}",
    "correct_pool_selected": "train/{model}/selected/corrected/{level}/N{n}_s{seed}",
    "train_corrected_selected": "train/{model}/selected/corrected/{level}/g{gamma}/N{n}_s{seed}/stage2",
    "finetune_corrected_selected": "train/{model}/selected/corrected/{level}/g{gamma}/N{n}_s{seed}/finetune",
    "train_foundation": "train/{model}/foundation/N{n}_s{seed}",
    "zero_shot": "train/{model}/zero_shot/N{n}",
    "collect": "collect",
    "report": "report",
}
BENCHMARKS = {
    "gaff2": "gaff2/gaff2",
    "md": "md/md",
    "import_level": "import/{level}",
    "frames": "frames/{subset}",
    "label_chunk": "label/{level}/{subset}/chunk{chunk}",
    "dataset": "dataset/{level}/{subset}",
    "label_plan": "label_plan/label_plan",
    "train_standard": "train_standard/{model}/N{n}_s{seed}",
    "bias": "bias/{model}/{level}/N{n}_s{seed}",
    "train_stage2": "train_stage2/{model}/{level}/g{gamma}_N{n}_s{seed}",
    "train_cheap_only": "train_cheap_only/{model}/{level}/s{seed}",
    "train_score": "train_score/{model}/s{seed}",
    "finetune_cheap": "finetune/{model}/{level}/g{gamma}_N{n}_s{seed}",
    "finetune_score": "finetune/{model}/score/N{n}_s{seed}",
    "train_delta": "train_delta/{model}/{level}/N{n}_s{seed}",
    "evaluate": "evaluate/{run}",
    "evaluate_gammas": "evaluate_gammas/{model}/{level}/N{n}_s{seed}",
    "evaluate_delta": "evaluate_delta/{model}/{level}/N{n}_s{seed}",
    "sgdml": "sgdml/N{n}",
    "sgdml_delta": "sgdml_delta/{level}/N{n}",
    "md_stability": "md_stability/{model}/{method}_{level}_N{n}_s{seed}",
    "md_stability_delta": "md_stability/{model}/delta_{level}_N{n}_s{seed}",
    "bias_diagnostic": "bias_diagnostic/{model}/{level}_N{n}_s{seed}",
    "correct_pool": "correct_pool/{model}/{level}/N{n}_s{seed}",
    "train_corrected": "train_corrected/{model}/{level}/g{gamma}_N{n}_s{seed}",
    "finetune_corrected": "finetune_corrected/{model}/{level}/g{gamma}_N{n}_s{seed}",
    "train_committee": "selection/committee/s{seed}_r{round}_{model}_m{member}",
    "select_frames": "selection/select/s{seed}_r{round}",
    "selected_data": "selection/data/{level}_N{n}_s{seed}",
    "train_standard_selected": "train_standard/{model}/selected_N{n}_s{seed}",
    "train_delta_selected": "train_delta/{model}/{level}/selected_N{n}_s{seed}",
    "evaluate_delta_selected": "evaluate_delta/{model}/{level}/selected_N{n}_s{seed}",
    "bias_selected": "bias/{model}/{level}/selected_N{n}_s{seed}",
    "train_stage2_selected": "train_stage2/{model}/{level}/selected_g{gamma}_N{n}_s{seed}",
    "finetune_selected": "finetune/{model}/{level}/selected_g{gamma}_N{n}_s{seed}",
    "correct_pool_selected": "correct_pool/{model}/{level}/selected_N{n}_s{seed}",
    "train_corrected_selected": "train_corrected/{model}/{level}/selected_g{gamma}_N{n}_s{seed}",
    "finetune_corrected_selected": "finetune_corrected/{model}/{level}/selected_g{gamma}_N{n}_s{seed}",
    "train_foundation": "train_foundation/{model}/N{n}_s{seed}",
    "zero_shot": "zero_shot/{model}/N{n}",
    "collect": "collect/collect",
    "report": "report/report",
}


class _KeepMissing(dict):
    """format_map mapping that leaves wildcards it has no value for as they are."""

    def __missing__(self, key):
        return "{" + key + "}"


def fill(template: str, values: dict | None = None, **kw) -> str:
    """`template` with the wildcards given (values and keywords) filled in; the others stay."""
    given = dict(values.items()) if values is not None else {}  # a dict or Snakemake's wildcards
    return template.format_map(_KeepMissing({**given, **kw}))


def _under(rel: str, values, kw, root: str = MOLECULE) -> str:
    return fill(f"{root}/{rel}", values, **kw)


def file(key: str, values=None, **kw) -> str:
    """A file of one molecule: file("dataset", molecule="ethanol", level="xtb", subset="val")."""
    return _under(FILES[key], values, kw)


def dataset(molecule: str = "{molecule}", level: str = "{level}", subset: str = "{subset}", sidecar=None) -> str:
    """A labelled dataset (.npz), or what `dataset` writes beside it (sidecar: extxyz, failures, outliers)."""
    path = file("dataset", molecule=molecule, level=level, subset=subset)
    return path if sidecar is None else path[: -len(".npz")] + DATASET_SIDECARS[sidecar]


def table(key: str, values=None, **kw) -> str:
    return _under(TABLES[key], values, kw)


def run(kind: str, name: str = "model.pt", values=None, **kw) -> str:
    """A file of a trained model's run directory: run("standard", "eval.json", molecule=..., ...)."""
    return _under(f"{RUNS[kind]}/{name}", values, kw)


def run_dir(kind: str, values=None, **kw) -> str:
    return _under(RUNS[kind], values, kw)


def log(rule: str, values=None, **kw) -> str:
    return _under(f"{LOGS[rule]}.log", values, kw, root=f"{ROOT}/logs/{{molecule}}")


def benchmark(rule: str, values=None, **kw) -> str:
    return _under(f"{BENCHMARKS[rule]}.tsv", values, kw, root=f"{ROOT}/benchmarks/{{molecule}}")


def benchmarks_dir(molecule: str = "{molecule}") -> str:
    return f"{ROOT}/benchmarks/{molecule}"


def sibling(path: str, name: str) -> str:
    """Another file of the same run directory (eval.json beside model.pt)."""
    return str(Path(path).with_name(name))


# ----------------------------------------------------------------------------- selection batches
SELECTION_SUBSET_RE = "sel-s[0-9]+-r[0-9]+"


def selection_subset(seed: int, round_: int) -> str:
    """The subset name of the frames round `round_` (1, 2, ...) of seed `seed`'s selection picked;
    its frames file is FILES['selection_frames'] and it is labelled like any subset."""
    return f"sel-s{seed}-r{round_}"


def selection_from_subset(subset: str) -> tuple[int, int] | None:
    """(seed, round) of a selection batch's subset name, None for any other subset."""
    if not subset.startswith("sel-s"):
        return None
    seed, _, round_ = subset[len("sel-s") :].partition("-r")
    return int(seed), int(round_)


# ----------------------------------------------------------------------------- γ candidates
GAMMA_RE = "r?[0-9][0-9.e+-]*"  # a finite candidate's token; "inf" is the unweighted one


def gamma_token(kind: str, value: float) -> str:
    """The path token of a γ candidate: absolute '1' (kcal/mol/Å), relative 'r1' (× the spread of
    B), 'inf' (no bias weights)."""
    if kind == "inf" or math.isinf(value):
        return "inf"
    return f"r{value:g}" if kind == "relative" else f"{value:g}"


def gamma_from_token(token: str) -> tuple[str, float]:
    """(kind, value) of a γ token: ('absolute', 1.0), ('relative', 0.5) or ('inf', inf)."""
    try:
        if token == "inf":
            return "inf", math.inf
        if token.startswith("r"):
            value, kind = float(token[1:]), "relative"
        else:
            value, kind = float(token), "absolute"
    except ValueError:
        raise ValueError(f"gamma candidate {token!r} is not a number, 'r<number>' or 'inf'") from None
    if not value > 0 or math.isinf(value):
        raise ValueError(f"gamma candidate {token!r} must be positive and finite (or 'inf')")
    return kind, value
