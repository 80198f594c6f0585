"""Resource requests sized from the config (pipeline/resources.py): the per-unit estimates, the
label jobs' requests from the levels' own cost model, and `job_request` per rule, checked against
the workflow's former code (workflow/rules/common.smk, copied below as the reference)."""

import re
from pathlib import Path

import pytest

from pipeline import config as pconf
from pipeline import resources as pres
from pipeline.labelling import cost
from pipeline.labelling.levels import make_level
from pipeline.labelling.runner import frames_per_job, n_chunks

ROOT = Path(__file__).resolve().parents[2]
ETHANOL = pres.Composition(heavy=3, hydrogen=6)
ASPIRIN = pres.Composition(heavy=13, hydrogen=8)
ETHANOL_Z = [6, 6, 8, 1, 1, 1, 1, 1, 1]
ASPIRIN_Z = [6] * 9 + [8] * 4 + [1] * 8  # C9H8O4 (the order does not change a cost)
CCSD_T = {"engine": "ccsd_t", "basis": "6-31G", "frozen_core": True}
CCSD = {"engine": "ccsd", "basis": "6-31G", "frozen_core": True}
DFT = {"engine": "dft", "xc": "PBE", "basis": "6-31G", "density_fit": True, "grid_level": 1}
TINY_STAGE = {"batch_size": 4, "max_epochs": 4, "max_steps": None, "eval_every_steps": None}


def _label(entry: dict, n_frames: int, z, threads: int = 1, attempt: int = 1) -> pres.Request:
    return make_level("x", entry).request(n_frames, z, threads, attempt)


# ----------------------------------------------------------------------------- label jobs
def test_label_chunk_time_covers_measured_cost_with_margin():
    # measured: 13.5-18 CPU-s per ethanol CCSD(T)/6-31G frame (BENCHMARKS.md)
    r = _label(CCSD_T, 25, ETHANOL_Z)
    assert 25 * 18 / 60 < r.runtime <= 30
    assert r.mem_mb <= 1500  # measured peak RSS 296 MB


def test_label_request_is_the_budget_estimate_with_margins():
    """One cost model: the request's run time is the level's CPU-s per frame (the label budget's
    and the job sizing's number) x frames / thread speed-up, with the margins of `request`."""
    level = make_level("b", CCSD_T)
    per_frame = cost.model_cpu_s_per_frame(level, ASPIRIN_Z)
    assert level.cpu_s_per_frame(ASPIRIN_Z) == per_frame
    for n, threads, attempt in ((3, 1, 1), (7, 4, 1), (2, 1, 2)):
        want = pres.request(level.job_mem_mb(ASPIRIN_Z), n * per_frame / pres.thread_speedup(threads), attempt)
        assert level.request(n, ASPIRIN_Z, threads, attempt) == want


def test_label_chunk_grows_with_frames_molecule_basis_and_shrinks_with_threads():
    base = _label(CCSD_T, 25, ETHANOL_Z)
    assert _label(CCSD_T, 50, ETHANOL_Z).runtime > base.runtime
    assert _label({**CCSD_T, "basis": "cc-pVDZ"}, 25, ETHANOL_Z).runtime > base.runtime
    big = _label({**CCSD_T, "basis": "cc-pVDZ"}, 1, ASPIRIN_Z)
    assert big.runtime > base.runtime and big.mem_mb > base.mem_mb
    assert _label(DFT, 200, ASPIRIN_Z, threads=4).runtime < _label(DFT, 200, ASPIRIN_Z).runtime


def test_cheap_engines_ask_little(tmp_path):
    (tmp_path / "d.xyz").write_text("1\n\nH 0 0 0\n")
    free = make_level("f", {"engine": "file", "path": str(tmp_path / "d.xyz")})
    for level in (make_level("x", {"engine": "xtb"}), make_level("e", {"engine": "empirical"}), free):
        r = level.request(25, ETHANOL_Z)
        assert r.mem_mb <= 1500 and r.runtime == pres.MIN_RUNTIME_MIN


def test_estimates_are_not_capped_job_requests_are():
    """The estimate is what the work needs; no job asks for more than cluster.max_job_hours."""
    r = _label({"engine": "ccsd_t", "basis": "cc-pVTZ"}, 50, ASPIRIN_Z)
    assert r.runtime > 72 * 60
    config = _config("default")
    config["levels"]["ccsd_t"] = {"engine": "ccsd_t", "basis": "cc-pVTZ", "frozen_core": True}
    wc = {"molecule": "aspirin", "level": "ccsd_t", "subset": "train", "chunk": "0"}
    assert pres.estimate(config, "label_chunk", wc).runtime > 24 * 60
    for hours, attempt in ((24, 1), (24, 2), (2.5, 1), (0.05, 1)):
        config["cluster"]["max_job_hours"] = hours
        assert pres.job_request(config, "label_chunk", wc, attempt).runtime == max(1, int(hours * 60))
        assert (
            pres.job_request(config, "label_chunk", wc, attempt).mem_mb
            == pres.estimate(config, "label_chunk", wc, attempt).mem_mb
        )


def test_retry_asks_for_more_memory_and_time():
    first = _label(CCSD_T, 250, ETHANOL_Z, attempt=1)
    second = _label(CCSD_T, 250, ETHANOL_Z, attempt=2)
    assert second.mem_mb > first.mem_mb and second.runtime > 1.8 * first.runtime


# ----------------------------------------------------------------------------- training and the rest
def test_tiny_training_asks_little_and_gpu_adds_host_memory():
    cpu = pres.training("egnn", {"hidden": 16, "num_layers": 2}, TINY_STAGE, 8, 4, ETHANOL)
    gpu = pres.training("egnn", {"hidden": 16, "num_layers": 2}, TINY_STAGE, 8, 4, ETHANOL, gpu=True)
    assert cpu == pres.Request(1500, 10)
    assert cpu.mem_mb < gpu.mem_mb <= 5000


def test_training_time_follows_epochs_frames_and_model():
    stage = {"batch_size": 10, "max_epochs": 300, "max_steps": None, "eval_every_steps": None}
    # measured: train_standard, 300 epochs, N = 25/50/100 on ethanol, 276 s for the three jobs
    r = pres.training("egnn", {"hidden": 64}, stage, 100, 25, ETHANOL)
    assert 276 / 3 / 60 < r.runtime <= 60
    longer = pres.training("egnn", {"hidden": 64}, {**stage, "max_epochs": 2000}, 950, 50, ETHANOL)
    assert longer.runtime > r.runtime
    assert (
        pres.training("gemnet", {}, stage, 100, 25, ASPIRIN).runtime
        > pres.training("egnn", {"hidden": 64}, stage, 100, 25, ASPIRIN).runtime
    )


def test_sgdml_memory_follows_the_kernel_matrix():
    small = pres.sgdml(25, 25, 40, 4, ETHANOL)
    paper = pres.sgdml(950, 50, 500, 4, ASPIRIN)
    assert small.mem_mb <= 1500
    kernel_gb = (3 * 950 * 21) ** 2 * 8 / 1e9
    assert paper.mem_mb / 1000 > kernel_gb


@pytest.mark.parametrize(
    "symbols, expected",
    [(["C", "C", "O", "H", "H", "H", "H", "H", "H"], ETHANOL), ([6, 1, 1, 1, 1], pres.Composition(1, 4))],
)
def test_composition(symbols, expected):
    assert pres.composition_of_symbols(symbols) == expected


# ----------------------------------------------------------------------------- the former code (reference)
# workflow/rules/common.smk's resources section and pipeline/resources.py's label_chunk before the
# requests moved into the package (label jobs then had their own power-law cost table).
OLD_BASIS_FUNCTIONS = {"sto-3g": (1, 5), "6-31g": (2, 9), "cc-pvdz": (5, 14), "cc-pvtz": (14, 30)}
OLD_LABEL_COST = {"ccsd_t": (15.0, 7), "ccsd": (10.0, 6), "dft": (2.7, 3)}


def old_label_chunk(level_entry, n_frames, comp, threads=1, attempt=1):
    engine = level_entry["engine"]
    if engine == "xtb":
        per_frame, mem = 5e-5 * comp.atoms**2, pres.PYTHON_MB + 200
    elif engine in OLD_LABEL_COST:
        per_h, per_heavy = OLD_BASIS_FUNCTIONS.get(level_entry["basis"].lower(), OLD_BASIS_FUNCTIONS["cc-pvtz"])
        nbf = per_h * comp.hydrogen + per_heavy * comp.heavy
        ref_s, power = OLD_LABEL_COST[engine]
        per_frame = ref_s * (nbf / 39) ** power
        work = 8 * 3 * nbf**3 / 1e6 * 2 if engine == "dft" else 3 * nbf**4 / 1e6
        mem = pres.PYTHON_MB + min(work, pres.PYSCF_MAX_MEMORY_MB)
    else:
        per_frame, mem = 0.0, pres.PYTHON_MB
    return pres.request(mem, n_frames * per_frame / pres.thread_speedup(threads), attempt)


OLD_TRAINING_RULES = (
    "train_standard",
    "train_stage2",
    "train_cheap_only",
    "train_score",
    "finetune_cheap",
    "finetune_score",
    "train_delta",
)


def old_chunk_frames(config, mol, wildcards):
    lab = config["labelling"]
    per_frame = cost.model_cpu_s_per_frame(pconf.level(config, wildcards["level"]), cost.molecule_z(config, mol))
    n = pconf.subset_size(config, mol, wildcards["subset"])
    size = frames_per_job(n, per_frame, lab["job_cpu_minutes"], lab["max_frames_per_job"])
    i = int(wildcards["chunk"])
    return max(0, min((i + 1) * size, n) - i * size)


def old_request(config, rule_name, wildcards, attempt):
    from rdkit import Chem

    mol = wildcards["molecule"]
    spec = pconf.molecule_spec(config, mol)
    comp = pres.composition_of_symbols([a.GetSymbol() for a in Chem.AddHs(Chem.MolFromSmiles(spec.smiles)).GetAtoms()])
    splits, t = config["splits"], config["training"]
    gpu = config["training"]["device"] != "cpu"
    n_gamma_candidates = len(config["asteroid"]["gammas"]) + len(config["asteroid"]["relative_gammas"]) + 1
    if rule_name == "label_chunk":
        entry = config["levels"][wildcards["level"]]
        return old_label_chunk(
            entry, old_chunk_frames(config, mol, wildcards), comp, config["labelling"]["threads"], attempt
        )
    if rule_name in OLD_TRAINING_RULES:
        if rule_name in ("train_stage2", "train_cheap_only"):
            stage, n_train = "cheap", pconf.subset_size(config, mol, f"cheap-{wildcards['level']}")
        elif rule_name == "train_score":
            stage, n_train = "score_matching", config["splits"]["unlabelled"]
        else:
            stage = "accurate" if rule_name in ("train_standard", "train_delta") else "finetune"
            n_train = int(wildcards["n"])
        factor = pres.SCORE_COST_FACTOR * t["n_projections"] if rule_name == "train_score" else 1.0
        model = wildcards["model"]
        return pres.training(
            model, t["hparams"][model], t[stage], n_train, splits["val"], comp, t["threads"], gpu, factor, attempt
        )
    if rule_name in ("bias", "bias_diagnostic", "evaluate", "evaluate_delta", "md_stability", "md_stability_delta"):
        if rule_name == "bias":
            models, frames = [wildcards["model"]], pconf.subset_size(config, mol, f"cheap-{wildcards['level']}")
        elif rule_name == "bias_diagnostic":
            models, frames = [wildcards["model"]], splits["val"]
        elif rule_name in ("evaluate", "evaluate_delta"):
            models, frames = t["models"], splits["test"]
        else:
            s = config["evaluation"]["md_stability"]
            models = [wildcards["model"]]
            frames = (
                s["n_runs"] * s["n_steps"] * (2 if rule_name == "md_stability_delta" else 1)
                + splits["val"] * n_gamma_candidates
            )
        threads = t["threads"] if rule_name in ("bias", "bias_diagnostic") else 1
        reqs = [pres.inference(m, t["hparams"][m], frames, comp, threads, attempt) for m in models]
        return max(reqs, key=lambda r: (r.runtime, r.mem_mb))
    if rule_name in ("sgdml", "sgdml_delta"):
        n_sigmas = len(config["evaluation"]["sgdml"]["sigmas"])
        return pres.sgdml(int(wildcards["n"]), splits["val"], splits["test"], n_sigmas, comp, 2, attempt)
    if rule_name == "md":
        s = config["sampling"]
        return pres.md(s["equilibration_steps"] + s["n_frames"] * s["stride"], comp, attempt)
    if rule_name == "dataset":
        return pres.small(pconf.subset_size(config, mol, wildcards["subset"]), comp, attempt)
    if rule_name == "collect":
        return pres.small(sum(splits["cheap"].values()) + splits["unlabelled"], comp, attempt)
    return pres.small(config["sampling"]["n_frames"], comp, attempt)


# ----------------------------------------------------------------------------- job_request per rule
OTHER_RULES = ("md", "collect", "gaff2", "frames", "import_level", "label_plan", "report")


def representative_jobs(config: dict, mol: str):
    """(rule, wildcards) of jobs of every rule, over the config's models, sizes, levels, subsets
    and each level's first and last label chunk."""
    sizes = config["splits"]["train_sizes"]
    models = list(config["training"]["hparams"])  # every model with hyperparameters, not only the run's
    cheap = pconf.cheap_levels(config, mol) + list(config["delta"]["cheap_levels"])
    base = {"molecule": mol, "seed": "0"}
    for level, subset in pconf.labelling_tasks(config, mol):
        if pconf.level(config, level).COMPUTED:
            n = pconf.subset_size(config, mol, subset)
            size = cost.frames_per_chunk(config, mol, level, subset)
            for chunk in sorted({0, n_chunks(n, size) - 1}):
                yield "label_chunk", {**base, "level": level, "subset": subset, "chunk": str(chunk)}
        yield "dataset", {**base, "level": level, "subset": subset}
    for model in models:
        for n in sizes:
            wc = {**base, "model": model, "n": str(n)}
            for rule in ("train_standard", "finetune_score", "evaluate", "sgdml"):
                yield rule, wc
            for level in cheap:
                for rule in (
                    "train_delta",
                    "finetune_cheap",
                    "bias",
                    "bias_diagnostic",
                    "evaluate_delta",
                    "sgdml_delta",
                ):
                    yield rule, {**wc, "level": level, "gamma": "1"}
                yield "md_stability", {**wc, "level": level, "method": "asteroid"}
                yield "md_stability_delta", {**wc, "level": level}
        for level in cheap:
            yield "train_cheap_only", {**base, "model": model, "level": level}
            yield "train_stage2", {**base, "model": model, "level": level, "gamma": "1", "n": str(sizes[0])}
        yield "train_score", {**base, "model": model}
    for rule in OTHER_RULES:
        yield rule, {**base, "level": cheap[0]}


CONFIGS = {
    "default": (ROOT / "config.yaml",),
    "tiny": (ROOT / "config.yaml", ROOT / "tests" / "e2e" / "config-tiny.yaml"),
}


def _config(name: str, **overrides) -> dict:
    config = pconf.load_config(*CONFIGS[name])
    config["splits"]["unlabelled"] = max(config["splits"]["unlabelled"], 100)  # score matching sized too
    for key, value in overrides.items():
        config["training"][key] = value
    return config


@pytest.mark.parametrize("device", ["auto", "cpu"])
@pytest.mark.parametrize("name, molecules", [("default", ("ethanol", "aspirin")), ("tiny", ("ethanol",))])
def test_job_request_gives_the_former_requests(name, molecules, device):
    """Every rule's request is the one workflow/rules/common.smk computed (first try and retry),
    except label_chunk's, which now comes from the levels' cost model (see the next test); its job
    sizes (frames per chunk) and memory are unchanged."""
    config = _config(name, device=device)
    seen = set()
    for mol in molecules:
        z = cost.molecule_z(config, mol)
        for rule, wc in representative_jobs(config, mol):
            seen.add(rule)
            for attempt in (1, 2):
                new = pres.job_request(config, rule, wc, attempt)
                old = old_request(config, rule, wc, attempt)
                if rule == "label_chunk":
                    n = cost.chunk_frames(config, mol, wc["level"], wc["subset"], int(wc["chunk"]))
                    assert n == old_chunk_frames(config, mol, wc) > 0
                    level = pconf.level(config, wc["level"])
                    assert new == level.request(n, z, config["labelling"]["threads"], attempt)
                    assert new.mem_mb == old.mem_mb, (rule, wc)
                else:
                    # the estimate is the former request; the cap is cluster.max_job_hours (formerly 72 h)
                    assert pres.estimate(config, rule, wc, attempt) == old, (rule, wc, attempt)
                    assert new == pres.Request(old.mem_mb, min(old.runtime, pres.max_job_minutes(config)))
    assert seen >= {"label_chunk", *OLD_TRAINING_RULES, "bias", "md_stability_delta", "collect", "md", "dataset"}


@pytest.mark.parametrize("name", ["default", "tiny"])
def test_gpus_for_training_rules_only(name):
    config = _config(name)
    gpu = 0 if config["training"]["device"] == "cpu" else 1
    assert [pres.gpus(config, r) for r in OLD_TRAINING_RULES] == [gpu] * len(OLD_TRAINING_RULES)
    assert pres.gpus(config, "evaluate") == pres.gpus(config, "label_chunk") == 0
    assert pres.gpus(_config(name, device="cpu"), "train_standard") == 0
    # the rules of methods added since (bias-corrected pre-training) are one line each
    new = {
        "train_corrected",
        "finetune_corrected",
        "train_committee",
        "train_standard_selected",
        "train_delta_selected",
        "train_stage2_selected",
        "finetune_selected",
        "train_corrected_selected",
        "finetune_corrected_selected",
        "train_foundation",
    }
    assert set(pres.TRAINING_RULES) == {*OLD_TRAINING_RULES, *new}


def test_a_new_training_rule_is_one_line(monkeypatch):
    config = _config("default")
    wc = {"molecule": "ethanol", "model": "egnn", "n": "50", "seed": "0"}
    monkeypatch.setitem(pres.TRAINING_RULES, "train_new_method", ("accurate", lambda config, mol, w: int(w["n"])))
    assert pres.job_request(config, "train_new_method", wc, 1) == pres.job_request(config, "train_standard", wc, 1)
    assert pres.gpus(config, "train_new_method") == 1


# Label jobs, former (a power law in the basis-function count, referenced to ethanol/6-31G) vs now
# (the levels' fitted model, the one the label budget and the job sizing use): (level, molecule,
# frames, threads, attempt) -> (former Request, Request now). Memory is unchanged (the same
# formulas, now with PySCF's exact basis-function count, equal to the former table's for these
# bases); run time follows the CPU-s per frame, former -> now: ethanol CCSD(T)/6-31G 15.0 -> 14.0,
# aspirin CCSD/6-31G 15,700 -> 1,200 (measured 659 alone, x PIPELINE_FACTOR 1.85), aspirin
# CCSD(T)/6-31G 80,500 -> 48,900, aspirin PBE/6-31G 107 -> 61 (measured 33 alone), ethanol
# CCSD(T)/STO-3G 0.2 -> 1.7 (the fixed cost of a frame), xTB aspirin 0.022 -> 0.019.
# In config.yaml this changes the aspirin CCSD chunk jobs (1 frame each) from 530 to 45 minutes
# (retry 1055 -> 85) and the retries of ethanol's 50- and 40-frame CCSD(T) chunks from 55 and 45
# to 50 and 40 minutes; the first tries of ethanol's jobs and every job of the tiny config are unchanged.
LABEL_CHANGES = [
    (CCSD_T, "ethanol", 50, 1, 1, pres.Request(1000, 30), pres.Request(1000, 30)),
    (CCSD_T, "ethanol", 50, 1, 2, pres.Request(1500, 55), pres.Request(1500, 50)),
    (CCSD_T, "ethanol", 40, 1, 2, pres.Request(1500, 45), pres.Request(1500, 40)),
    (CCSD, "aspirin", 1, 1, 1, pres.Request(2500, 530), pres.Request(2500, 45)),
    (CCSD, "aspirin", 1, 1, 2, pres.Request(3500, 1055), pres.Request(3500, 85)),
    (CCSD_T, "aspirin", 1, 1, 1, pres.Request(2500, 2685), pres.Request(2500, 1635)),
    (DFT, "aspirin", 300, 1, 1, pres.Request(1000, 1075), pres.Request(1000, 610)),
    (DFT, "ethanol", 300, 4, 1, pres.Request(1000, 15), pres.Request(1000, 15)),
    ({"engine": "xtb"}, "aspirin", 4000, 1, 1, pres.Request(1500, 10), pres.Request(1500, 10)),
    ({**CCSD_T, "basis": "sto-3g"}, "ethanol", 5, 1, 1, pres.Request(1000, 10), pres.Request(1000, 10)),
]


@pytest.mark.parametrize("entry, mol, n, threads, attempt, old, new", LABEL_CHANGES)
def test_label_requests_former_and_now(entry, mol, n, threads, attempt, old, new):
    config = _config("default")
    z = cost.molecule_z(config, mol)
    comp = pres.molecule_composition(config, mol)
    assert old_label_chunk(entry, n, comp, threads, attempt) == old
    assert make_level("x", entry).request(n, z, threads, attempt) == new


def test_snakemake_wildcards_are_read_by_name():
    iocontainers = pytest.importorskip("snakemake.iocontainers")
    config = _config("default")
    for rule, wc in (
        ("label_chunk", {"molecule": "ethanol", "level": "ccsd_t", "subset": "train", "chunk": "1"}),
        (
            "train_stage2",
            {"molecule": "ethanol", "model": "egnn", "level": "xtb", "gamma": "1", "n": "25", "seed": "0"},
        ),
        ("md_stability", {"molecule": "ethanol", "model": "egnn", "method": "standard", "level": "none", "n": "25"}),
    ):
        wildcards = iocontainers.Wildcards(fromdict=wc)
        assert pres.job_request(config, rule, wildcards, 2) == pres.job_request(config, rule, wc, 2)


# ----------------------------------------------------------------------------- the run-time limit
def test_jobs_beyond_the_limit_continue_when_they_can():
    config = _config("default")
    config["cluster"].update(max_job_hours=24, max_continuations=4)
    day = 24 * 60
    assert pres.max_job_minutes(config) == day
    # training and label chunks continue from their checkpoint / label cache: k x the limit is k jobs
    for rule in (*pres.TRAINING_RULES, "label_chunk"):
        assert pres.resumable(rule)
        minutes = (60, day, day + 5, 3 * day, 3 * day + 1, 5 * day, 50 * day)
        assert [pres.continuations(config, rule, m) for m in minutes] == [0, 0, 1, 2, 3, 4, 4]
    config["cluster"]["max_continuations"] = 0
    assert pres.continuations(config, "train_stage2", 3 * day) == 0
    config["cluster"]["max_continuations"] = 4
    # the rest cannot: no continuation, and the over-limit report says what sizes them
    for rule in ("sgdml", "md_stability", "evaluate", "md", "bias"):
        assert not pres.resumable(rule) and pres.continuations(config, rule, 10 * day) == 0
    longest = {"train_stage2": int(2.5 * day), "train_score": 8 * day, "sgdml": 2 * day, "evaluate": 30, "md": day}
    rows = pres.over_limit(config, longest)
    assert rows == [
        pres.OverLimit("sgdml", 2 * day, 0, 0),
        pres.OverLimit("train_score", 8 * day, 8, 5),
        pres.OverLimit("train_stage2", int(2.5 * day), 3, 5),
    ]
    sgdml, score, stage2 = (r.describe(24) for r in rows)
    assert "train_stage2: longest job estimated 60.0 h > cluster.max_job_hours 24: runs as up to 3 jobs" in stage2
    assert "training.cheap.max_steps" in stage2  # the stage budget that bounds it
    assert "would need 8 jobs of 24 h, more than 1 + cluster.max_continuations = 5" in score
    assert "training.score_matching.max_steps" in score
    assert "cannot continue from a checkpoint: reduce splits.train_sizes" in sgdml


def test_every_settings_name_in_the_over_limit_report_exists():
    """The settings the report tells a user to change are keys of the config."""
    config = _config("default")
    for rule in (*pres.SIZED_BY, *pres.TRAINING_RULES):
        for name in re.findall(r"\b([a-z_]+(?:\.[a-z_]+)+)\b", pres.sized_by(rule)):
            node = config
            for key in name.split("."):
                assert key in node, (rule, name)
                node = node[key]
