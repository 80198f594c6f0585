"""Memory, run time and GPUs per job, sized from the config, for cluster executors (SLURM).

Every rule's `resources:` come from :func:`job_request` and :func:`gpus` (through `get_resources` in
workflow/rules/common.smk), keyed by the rule's name, so the requests follow the work: the
molecule's size, the level's engine and basis, the number of frames a job labels or trains on,
epochs, pool sizes and threads.

Label jobs ask the level itself (:meth:`pipeline.labelling.levels.Level.request`): the same
CPU-seconds per frame as the label budget and the job sizing (the one label-cost model, fitted on
measured frames; BENCHMARKS.md section 6). The other per-unit costs are anchored on measured runs
(BENCHMARKS.md: EGNN about 5 ms per frame and epoch, peak job RSS under 600 MB in the default run)
and scaled by power laws in the number of atoms. Every estimate then carries a margin (x2 run
time, x1.5 memory) and grows with Snakemake's `attempt` (a job that ran out of time or memory is
resubmitted with more; the SLURM profile sets `retries: 1`).

No job asks for more than ``cluster.max_job_hours`` (:func:`job_request`). A training job (or a
label chunk) estimated beyond it runs as several jobs of that length, each continuing from the
checkpoint (the label cache) the one before left: its rule gets that many more retries
(:func:`continuations`, added to the profile's `retries` by `check_plan` in workflow/rules/common.smk).
Other jobs cannot continue; :func:`over_limit` names the rules whose longest job is estimated
beyond the limit and what sizes them.

These are guesses, not measurements: a job that needs more than its request fails as TIMEOUT or
OUT_OF_MEMORY and is retried with more; `--set-resources rule:mem_mb=...` overrides any of them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

MIN_MEM_MB = 1000
MIN_RUNTIME_MIN = 10
MEM_MARGIN = 1.5
TIME_MARGIN = 2.0
JOB_START_S = 120  # interpreter, imports, reading inputs, writing outputs
PYTHON_MB = 500  # interpreter with numpy/pyscf or torch imported
TORCH_MB = 700
CUDA_HOST_MB = 2000  # host memory of a CUDA context
PYSCF_MAX_MEMORY_MB = 4000  # PySCF's default max_memory: larger intermediates go to disk

# Training cost per frame and epoch (forward + backward with forces), 1 thread, EGNN hidden 64,
# 5 layers on ethanol (9 atoms): about 5 ms. EGNN grows with atom pairs, GemNet-T with triplets.
# SO3LR (fine-tuning the pretrained model): 0.21 CPU-s a step of 10 ethanol frames.
TRAIN_S_PER_FRAME_EPOCH = {"egnn": 5e-3, "gemnet": 5e-2, "so3lr": 2e-2}
TRAIN_ATOM_POWER = {"egnn": 2, "gemnet": 3, "so3lr": 2}
REF_ATOMS = 9
SCORE_COST_FACTOR = 3.0  # sliced score matching: a second derivative per projection
GPU_SPEEDUP = 4.0


@dataclass(frozen=True)
class Composition:
    heavy: int
    hydrogen: int

    @property
    def atoms(self) -> int:
        return self.heavy + self.hydrogen


@dataclass(frozen=True)
class Request:
    mem_mb: int
    runtime: int  # minutes

    def as_dict(self) -> dict:
        return {"mem_mb": self.mem_mb, "runtime": self.runtime}


def composition_of_symbols(symbols) -> Composition:
    h = sum(1 for s in symbols if s in ("H", 1))
    return Composition(heavy=len(symbols) - h, hydrogen=h)


def request(mem_mb: float, runtime_s: float, attempt: int = 1) -> Request:
    """Margins, the attempt's growth (x1.5 memory, x2 time per retry), rounding and the minimums.
    The estimate is not capped here: :func:`job_request` caps it at cluster.max_job_hours."""
    grow_mem = 1 + 0.5 * (attempt - 1)
    grow_time = 2 ** (attempt - 1)
    mem = max(MIN_MEM_MB, 500 * math.ceil(mem_mb * MEM_MARGIN * grow_mem / 500))
    minutes = (runtime_s * TIME_MARGIN * grow_time + JOB_START_S) / 60
    minutes = max(MIN_RUNTIME_MIN, 5 * math.ceil(minutes / 5))
    return Request(int(mem), int(minutes))


def max_job_minutes(config: dict) -> int:
    """The longest run time any job may ask for: cluster.max_job_hours, in whole minutes (at least 1)."""
    return max(1, int(config["cluster"]["max_job_hours"] * 60))


def thread_speedup(threads: int) -> float:
    return 1 + 0.7 * (max(1, threads) - 1)  # 70% parallel efficiency per extra thread


# ----------------------------------------------------------------------------- training
def _per_frame_epoch(model: str, hparams: dict, comp: Composition) -> float:
    base = TRAIN_S_PER_FRAME_EPOCH.get(model, max(TRAIN_S_PER_FRAME_EPOCH.values()))
    scale = (comp.atoms / REF_ATOMS) ** TRAIN_ATOM_POWER.get(model, 3)
    width = hparams.get("hidden", 64) / 64 * hparams.get("num_layers", 5) / 5
    return base * scale * max(width, 0.1)


def _train_memory(model: str, hparams: dict, comp: Composition, batch_size: int, n_frames: int, gpu: bool) -> float:
    pairs = comp.atoms ** TRAIN_ATOM_POWER.get(model, 3)
    hidden, layers = hparams.get("hidden", 64), hparams.get("num_layers", 5)
    activations = batch_size * pairs * hidden * layers * 4 * 8 / 1e6  # float32, forward + backward copies
    data = n_frames * comp.atoms * 8 * 8 / 1e6
    return TORCH_MB + activations + data + (CUDA_HOST_MB if gpu else 0)


def training(
    model: str,
    hparams: dict,
    stage: dict,
    n_train: int,
    n_val: int,
    comp: Composition,
    threads: int = 1,
    gpu: bool = False,
    cost_factor: float = 1.0,
    attempt: int = 1,
) -> Request:
    """A training job: at most `stage['max_epochs']` passes over `n_train` frames and at most
    `stage['max_steps']` batches, with a validation pass over `n_val` frames per evaluation period
    (an epoch, or `eval_every_steps` steps)."""
    per = _per_frame_epoch(model, hparams, comp) * cost_factor
    batch = stage["batch_size"]
    frames = stage["max_epochs"] * n_train
    if stage["max_steps"]:
        frames = min(frames, stage["max_steps"] * batch)
    evaluations = frames / (stage["eval_every_steps"] * batch if stage["eval_every_steps"] else max(n_train, 1))
    seconds = (frames + evaluations * n_val / 3) * per
    seconds /= GPU_SPEEDUP if gpu else thread_speedup(threads)
    mem = _train_memory(model, hparams, comp, batch, n_train + n_val, gpu)
    return request(mem, seconds, attempt)


def inference(
    model: str, hparams: dict, n_frames: int, comp: Composition, threads: int = 1, attempt: int = 1
) -> Request:
    """Predictions with forces on `n_frames` frames (evaluation, bias, MD steps)."""
    seconds = n_frames * _per_frame_epoch(model, hparams, comp) / 2 / thread_speedup(threads)
    return request(_train_memory(model, hparams, comp, 16, n_frames, False), seconds, attempt)


# ----------------------------------------------------------------------------- the rest
def sgdml(
    n_train: int, n_val: int, n_test: int, n_sigmas: int, comp: Composition, threads: int = 2, attempt: int = 1
) -> Request:
    """sGDML's analytic solve: one (3 N atoms)^2 kernel matrix, a Cholesky per sigma tried."""
    dim = 3 * n_train * comp.atoms
    kernel_mb = dim**2 * 8 / 1e6
    mem = PYTHON_MB + 1.2 * kernel_mb + (n_val + n_test) * dim * 8 / 1e6
    flops = n_sigmas * (dim**3 / 3 + 2 * dim**2 * 3 * comp.atoms * (n_val + n_test))
    return request(mem, flops / (5e9 * thread_speedup(threads)), attempt)


def md(steps: int, comp: Composition, attempt: int = 1) -> Request:
    """OpenMM Langevin MD with GAFF2: about 13 microseconds per step for ethanol (Reference)."""
    return request(PYTHON_MB, steps * 13e-6 * (comp.atoms / REF_ATOMS) ** 2, attempt)


def small(n_frames: int = 0, comp: Composition | None = None, attempt: int = 1) -> Request:
    """Bookkeeping jobs (GAFF2 set-up, frame selection, dataset merge, tables, report)."""
    atoms = comp.atoms if comp else REF_ATOMS
    return request(PYTHON_MB + n_frames * atoms * 200 / 1e6, 60 + n_frames * 1e-3, attempt)


# ----------------------------------------------------------------------------- per rule
# What a job of each workflow rule asks for, from the config and the job's wildcards (a mapping,
# or Snakemake's Wildcards: read as wildcards["name"]). Only the wildcards a rule has are read.
Frames = Callable[[dict, str, Mapping[str, str]], int]


def _train_size(config: dict, molecule: str, wildcards: Mapping[str, str]) -> int:
    """The N of the path: accurate frames."""
    return int(wildcards["n"])


def _cheap_pool(config: dict, molecule: str, wildcards: Mapping[str, str]) -> int:
    """The cheap pool of the level of the path."""
    from . import config as pconf

    return pconf.subset_size(config, molecule, f"cheap-{wildcards['level']}")


def _committee_size(config: dict, molecule: str, wildcards: Mapping[str, str]) -> int:
    """A committee of round r trains on the frames labelled before it: N of round r - 1."""
    from . import config as pconf

    return pconf.selection_rounds(config)[int(wildcards["round"]) - 1]


def _candidates(config: dict, molecule: str, wildcards: Mapping[str, str]) -> int:
    """A selection round predicts the candidate pool and the validation frames with each member."""
    from . import config as pconf

    sel = config["selection"]
    n = pconf.subset_size(config, molecule, f"cheap-{sel['level']}") + config["splits"]["val"]
    return n * sel["committee_size"]


def _unlabelled(config: dict, molecule: str, wildcards: Mapping[str, str]) -> int:
    return config["splits"]["unlabelled"]


def _val(config: dict, molecule: str, wildcards: Mapping[str, str]) -> int:
    return config["splits"]["val"]


def _test(config: dict, molecule: str, wildcards: Mapping[str, str]) -> int:
    return config["splits"]["test"]


def _gamma_candidates_test(config: dict, molecule: str, wildcards: Mapping[str, str]) -> int:
    """The test frames, predicted once per ASTEROID γ candidate (rule evaluate_gammas)."""
    from .methods.asteroid import candidate_runs

    return config["splits"]["test"] * len(candidate_runs(config))


def _md_steps(calls_per_step: int) -> Frames:
    """Predictions of an MD stability run: its MD steps (a Δ model also calls its cheap level each
    step: counted `calls_per_step` times) and the validation frames of every gamma candidate."""

    def frames(config: dict, molecule: str, wildcards: Mapping[str, str]) -> int:
        s = config["evaluation"]["md_stability"]
        # the γ candidates of the method with the most (ASTEROID's or corrected pre-training's), and inf
        candidates = 1 + max(
            len(config[m]["gammas"]) + len(config[m]["relative_gammas"]) for m in ("asteroid", "corrected")
        )
        return s["n_runs"] * s["n_steps"] * calls_per_step + config["splits"]["val"] * candidates

    return frames


# Training rules: rule -> (section of `training:` with the stage's batch size, epochs and steps;
# frames trained on). A new training method's rule is one line here. The score-matching stage
# costs SCORE_COST_FACTOR x n_projections per frame.
TRAINING_RULES: dict[str, tuple[str, Frames]] = {
    "train_standard": ("accurate", _train_size),
    "train_delta": ("accurate", _train_size),
    "train_stage2": ("cheap", _cheap_pool),
    "train_cheap_only": ("cheap", _cheap_pool),
    "train_score": ("score_matching", _unlabelled),
    "finetune_cheap": ("finetune", _train_size),
    "finetune_score": ("finetune", _train_size),
    "train_corrected": ("corrected", _cheap_pool),
    "finetune_corrected": ("finetune", _train_size),
    "train_committee": ("accurate", _committee_size),
    "train_standard_selected": ("accurate", _train_size),
    "train_delta_selected": ("accurate", _train_size),
    "train_stage2_selected": ("cheap", _cheap_pool),
    "finetune_selected": ("finetune", _train_size),
    "train_corrected_selected": ("corrected", _cheap_pool),
    "finetune_corrected_selected": ("finetune", _train_size),
    "train_foundation": ("foundation", _train_size),
}

# Prediction rules: rule -> (True: the model named by the path, False: sized for the largest of
# training.models (the path names no model); frames predicted; True: training.threads threads, False: 1).
INFERENCE_RULES: dict[str, tuple[bool, Frames, bool]] = {
    "bias": (True, _cheap_pool, True),
    "bias_diagnostic": (True, _val, True),
    "evaluate": (False, _test, False),
    "evaluate_gammas": (True, _gamma_candidates_test, False),
    "evaluate_delta": (False, _test, False),
    "md_stability": (True, _md_steps(1), False),
    "md_stability_delta": (True, _md_steps(2), False),
    "correct_pool": (True, _cheap_pool, True),
    "select_frames": (False, _candidates, True),
    "evaluate_delta_selected": (False, _test, False),
    "bias_selected": (True, _cheap_pool, True),
    "correct_pool_selected": (True, _cheap_pool, True),
}


def gpus(config: dict, rule: str) -> int:
    """GPUs of a job of `rule`: one per training job unless training.device is cpu (the switch for
    CPU-only clusters); none for other rules."""
    return 1 if rule in TRAINING_RULES and config["training"]["device"] != "cpu" else 0


def molecule_composition(config: dict, molecule: str) -> Composition:
    """Heavy atoms and hydrogens of `molecule`, from its atomic numbers (RDKit with explicit
    hydrogens, or its xyz file; cached per molecule spec by :func:`pipeline.labelling.cost.molecule_z`)."""
    from .labelling.cost import molecule_z

    return composition_of_symbols(molecule_z(config, molecule).tolist())


def job_request(config: dict, rule: str, wildcards: Mapping[str, str], attempt: int = 1) -> Request:
    """The Request (mem_mb, runtime in minutes) of one job of the workflow rule `rule` with these
    wildcards, at Snakemake's `attempt` (1 first, more on each retry): the :func:`estimate`, its run
    time capped at cluster.max_job_hours."""
    return capped(config, estimate(config, rule, wildcards, attempt))


def capped(config: dict, r: Request) -> Request:
    """An estimate with its run time capped at cluster.max_job_hours (what the job asks for)."""
    return Request(r.mem_mb, min(r.runtime, max_job_minutes(config)))


def estimate(config: dict, rule: str, wildcards: Mapping[str, str], attempt: int = 1) -> Request:
    """The uncapped Request of one job of `rule` (see :func:`job_request`). A rule not listed here
    is a bookkeeping job (`small`: GAFF2 set-up, frame selection, imports, plan, report)."""
    from . import config as pconf
    from .labelling import cost

    mol = wildcards["molecule"]
    comp = molecule_composition(config, mol)
    splits, t = config["splits"], config["training"]
    if rule == "label_chunk":
        level = pconf.level(config, wildcards["level"])
        n = cost.chunk_frames(config, mol, wildcards["level"], wildcards["subset"], int(wildcards["chunk"]))
        return level.request(n, cost.molecule_z(config, mol), config["labelling"]["threads"], attempt)
    if rule in TRAINING_RULES:
        stage, frames = TRAINING_RULES[rule]
        factor = SCORE_COST_FACTOR * t["n_projections"] if stage == "score_matching" else 1.0
        model = wildcards["model"]
        return training(
            model,
            t["hparams"][model],
            t[stage],
            frames(config, mol, wildcards),
            splits["val"],
            comp,
            t["threads"],
            bool(gpus(config, rule)),
            factor,
            attempt,
        )
    if rule in INFERENCE_RULES:
        own_model, frames, training_threads = INFERENCE_RULES[rule]
        models = [wildcards["model"]] if own_model else t["models"]
        n = frames(config, mol, wildcards)
        threads = t["threads"] if training_threads else 1
        reqs = [inference(m, t["hparams"][m], n, comp, threads, attempt) for m in models]
        return max(reqs, key=lambda r: (r.runtime, r.mem_mb))
    if rule in ("sgdml", "sgdml_delta"):
        n_sigmas = len(config["evaluation"]["sgdml"]["sigmas"])
        return sgdml(int(wildcards["n"]), splits["val"], splits["test"], n_sigmas, comp, 2, attempt)
    if rule == "md":
        s = config["sampling"]
        return md(s["equilibration_steps"] + s["n_frames"] * s["stride"], comp, attempt)
    if rule == "dataset":
        return small(pconf.subset_size(config, mol, wildcards["subset"]), comp, attempt)
    if rule == "collect":
        return small(sum(splits["cheap"].values()) + splits["unlabelled"], comp, attempt)
    return small(config["sampling"]["n_frames"], comp, attempt)


# ----------------------------------------------------------------------------- the run-time limit
# Rules whose jobs continue where a job stopped by its time limit left off: training from its
# checkpoint (<model>.ckpt, written every 30 s; pipeline/training/engine.py), label chunks from the
# per-frame label cache. Any other job stopped by the limit starts again from nothing.
def resumable(rule: str) -> bool:
    return rule in TRAINING_RULES or rule == "label_chunk"


# What sizes the jobs of each rule (the settings to change when one is estimated beyond the limit).
SIZED_BY = {
    "md": "sampling.n_frames, sampling.stride, sampling.equilibration_steps",
    "sgdml": "splits.train_sizes (the kernel solve grows as N^3), evaluation.sgdml.sigmas",
    "sgdml_delta": "splits.train_sizes (the kernel solve grows as N^3), evaluation.sgdml.sigmas",
    "md_stability": "evaluation.md_stability.n_runs, evaluation.md_stability.n_steps",
    "md_stability_delta": "evaluation.md_stability.n_runs, n_steps, delta.md_stability_levels",
    "bias": "splits.cheap, training.threads",
    "correct_pool": "splits.cheap, training.threads",
    "select_frames": "splits.cheap of selection.level, selection.committee_size",
    "evaluate": "splits.test",
    "evaluate_gammas": "splits.test, asteroid.gammas, asteroid.relative_gammas",
    "evaluate_delta": "splits.test",
    "label_chunk": "labelling.threads, or a cheaper level or basis, when one frame alone exceeds the limit",
}


def sized_by(rule: str) -> str:
    if rule in TRAINING_RULES:
        stage = TRAINING_RULES[rule][0]
        return f"the stage budget training.{stage}.max_steps / max_epochs"
    return SIZED_BY.get(rule, "its inputs")


def continuations(config: dict, rule: str, longest_minutes: int) -> int:
    """Resubmissions that continue a job of a resumable `rule` estimated at `longest_minutes`
    (uncapped, first try) beyond cluster.max_job_hours: k times the limit runs as k jobs (k - 1 more),
    at most cluster.max_continuations (so that a job failing for another reason is not resubmitted
    without end)."""
    if not resumable(rule):
        return 0
    needed = math.ceil(longest_minutes / max_job_minutes(config)) - 1
    return max(0, min(needed, config["cluster"]["max_continuations"]))


@dataclass(frozen=True)
class OverLimit:
    rule: str
    minutes: int  # the longest job's estimate
    jobs: int  # jobs of cluster.max_job_hours it needs (0: it cannot continue)
    allowed: int  # jobs it may run as (1 + cluster.max_continuations; 0: it cannot continue)

    def describe(self, limit_h: float) -> str:
        est = f"{self.rule}: longest job estimated {self.minutes / 60:,.1f} h > cluster.max_job_hours {limit_h:g}"
        if not self.jobs:
            return f"{est}, and it cannot continue from a checkpoint: reduce {sized_by(self.rule)}"
        if self.jobs <= self.allowed:
            return (
                f"{est}: runs as up to {self.jobs} jobs of {limit_h:g} h, each continuing from the last "
                f"checkpoint (fewer: {sized_by(self.rule)})"
            )
        return (
            f"{est}: would need {self.jobs} jobs of {limit_h:g} h, more than 1 + cluster.max_continuations "
            f"= {self.allowed}; unless it stops early, it fails after those: set {sized_by(self.rule)}"
        )


def over_limit(config: dict, longest: Mapping[str, int]) -> list[OverLimit]:
    """The rules whose longest job (`longest`: rule -> uncapped minutes of its first try) is
    estimated beyond cluster.max_job_hours, with the jobs of that length a resumable one needs and
    may run as."""
    cap = max_job_minutes(config)
    allowed = 1 + config["cluster"]["max_continuations"]
    return [
        OverLimit(rule, minutes, *((math.ceil(minutes / cap), allowed) if resumable(rule) else (0, 0)))
        for rule, minutes in sorted(longest.items())
        if minutes > cap
    ]
