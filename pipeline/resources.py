"""Memory and run-time requests per job, sized from the config, for cluster executors (SLURM).

Every rule's `resources:` come from here (through `get_resources` in workflow/rules/common.smk), so
the requests follow the work: the molecule's size, the level's engine and basis, the number of
frames a job labels or trains on, epochs, pool sizes and threads. The per-unit costs are anchored
on measured runs (BENCHMARKS.md: ethanol CCSD(T)/6-31G 13-18 CPU-s per frame, PBE/6-31G 2.7 s and
aspirin 53 s, EGNN about 5 ms per frame and epoch, peak job RSS under 600 MB in the default run)
and scaled by power laws in the number of basis functions or atoms; every estimate then carries a
margin (x2 run time, x1.5 memory) and grows with Snakemake's `attempt` (a job that ran out of time
or memory is resubmitted with more; the SLURM profile sets `retries: 1`).

These are guesses, not measurements: a job that needs more than its request fails as TIMEOUT or
OUT_OF_MEMORY and is retried with more; `--set-resources rule:mem_mb=...` overrides any of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIN_MEM_MB = 1000
MIN_RUNTIME_MIN = 10
MAX_RUNTIME_MIN = 72 * 60  # longer jobs ask for 72 h: labels resume from the cache, training from its checkpoint
MEM_MARGIN = 1.5
TIME_MARGIN = 2.0
JOB_START_S = 120  # interpreter, imports, reading inputs, writing outputs
PYTHON_MB = 500  # interpreter with numpy/pyscf or torch imported
TORCH_MB = 700
CUDA_HOST_MB = 2000  # host memory of a CUDA context
PYSCF_MAX_MEMORY_MB = 4000  # PySCF's default max_memory: larger intermediates go to disk

# Basis functions per hydrogen and per heavy (first/second-row) atom, by basis name (lower case).
# An unknown basis counts as cc-pVTZ (large): the request errs on the safe side.
BASIS_FUNCTIONS = {
    "sto-3g": (1, 5),
    "3-21g": (2, 9),
    "6-31g": (2, 9),
    "6-31g*": (2, 15),
    "6-31g(d)": (2, 15),
    "6-31g**": (5, 15),
    "6-31g(d,p)": (5, 15),
    "6-311g": (3, 13),
    "6-311g**": (6, 18),
    "cc-pvdz": (5, 14),
    "aug-cc-pvdz": (9, 23),
    "cc-pvtz": (14, 30),
    "aug-cc-pvtz": (23, 46),
    "def2-svp": (5, 14),
    "def2-svpd": (7, 19),
    "def2-tzvp": (6, 31),
    "def2-tzvpp": (14, 31),
}
UNKNOWN_BASIS = BASIS_FUNCTIONS["cc-pvtz"]

# Label cost per frame, 1 thread: CPU seconds at the reference (ethanol, 6-31G: 39 basis functions)
# and the power of the basis size it grows with. CCSD(T) formally o^3 v^4 (7), CCSD o^2 v^4 (6),
# DFT with density fitting about 3 (PBE: ethanol 2.7 s -> aspirin 6-31G 53 s measured; 107 s here).
REF_NBF = 39
LABEL_COST = {"ccsd_t": (15.0, 7), "ccsd": (10.0, 6), "dft": (2.7, 3)}
XTB_S_PER_ATOM2 = 5e-5  # GFN2-xTB: 0.006 s ethanol, 0.02 s aspirin per frame

# Training cost per frame and epoch (forward + backward with forces), 1 thread, EGNN hidden 64,
# 5 layers on ethanol (9 atoms): about 5 ms. EGNN grows with atom pairs, GemNet-T with triplets.
TRAIN_S_PER_FRAME_EPOCH = {"egnn": 5e-3, "gemnet": 5e-2}
TRAIN_ATOM_POWER = {"egnn": 2, "gemnet": 3}
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


def n_basis_functions(basis: str | None, comp: Composition) -> int:
    per_h, per_heavy = BASIS_FUNCTIONS.get((basis or "").lower().replace(" ", ""), UNKNOWN_BASIS)
    return per_h * comp.hydrogen + per_heavy * comp.heavy


def request(mem_mb: float, runtime_s: float, attempt: int = 1) -> Request:
    """Margins, the attempt's growth (x1.5 memory, x2 time per retry), rounding and bounds."""
    grow_mem = 1 + 0.5 * (attempt - 1)
    grow_time = 2 ** (attempt - 1)
    mem = max(MIN_MEM_MB, 500 * math.ceil(mem_mb * MEM_MARGIN * grow_mem / 500))
    minutes = (runtime_s * TIME_MARGIN * grow_time + JOB_START_S) / 60
    minutes = min(MAX_RUNTIME_MIN, max(MIN_RUNTIME_MIN, 5 * math.ceil(minutes / 5)))
    return Request(int(mem), int(minutes))


def _thread_speedup(threads: int) -> float:
    return 1 + 0.7 * (max(1, threads) - 1)  # 70% parallel efficiency per extra thread


# ----------------------------------------------------------------------------- labels
def label_chunk(level_entry: dict, n_frames: int, comp: Composition, threads: int = 1, attempt: int = 1) -> Request:
    """A labelling job of `n_frames` frames at one level: per-frame cost of the engine x frames."""
    engine = level_entry["engine"]
    if engine == "xtb":
        per_frame, mem = XTB_S_PER_ATOM2 * comp.atoms**2, PYTHON_MB + 200
    elif engine in LABEL_COST:
        nbf = n_basis_functions(level_entry.get("basis"), comp)
        ref_s, power = LABEL_COST[engine]
        per_frame = ref_s * (nbf / REF_NBF) ** power
        if engine == "dft":  # density fitting: three-index tensor, about 3 nbf auxiliary functions
            work = 8 * 3 * nbf**3 / 1e6 * 2
        else:  # CCSD: two-electron integrals (8-fold symmetry) and amplitudes, a few copies
            work = 3 * nbf**4 / 1e6
        mem = PYTHON_MB + min(work, PYSCF_MAX_MEMORY_MB)
    else:  # empirical, file: nothing computed per frame
        per_frame, mem = 0.0, PYTHON_MB
    return request(mem, n_frames * per_frame / _thread_speedup(threads), attempt)


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
    seconds /= GPU_SPEEDUP if gpu else _thread_speedup(threads)
    mem = _train_memory(model, hparams, comp, batch, n_train + n_val, gpu)
    return request(mem, seconds, attempt)


def inference(
    model: str, hparams: dict, n_frames: int, comp: Composition, threads: int = 1, attempt: int = 1
) -> Request:
    """Predictions with forces on `n_frames` frames (evaluation, bias, MD steps)."""
    seconds = n_frames * _per_frame_epoch(model, hparams, comp) / 2 / _thread_speedup(threads)
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
    return request(mem, flops / (5e9 * _thread_speedup(threads)), attempt)


def md(steps: int, comp: Composition, attempt: int = 1) -> Request:
    """OpenMM Langevin MD with GAFF2: about 13 microseconds per step for ethanol (Reference)."""
    return request(PYTHON_MB, steps * 13e-6 * (comp.atoms / REF_ATOMS) ** 2, attempt)


def small(n_frames: int = 0, comp: Composition | None = None, attempt: int = 1) -> Request:
    """Bookkeeping jobs (GAFF2 set-up, frame selection, dataset merge, tables, report)."""
    atoms = comp.atoms if comp else REF_ATOMS
    return request(PYTHON_MB + n_frames * atoms * 200 / 1e6, 60 + n_frames * 1e-3, attempt)
