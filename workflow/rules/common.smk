# Config validation at parse time and the get_* helpers the rules call.
import json
import shlex
from pathlib import Path

from snakemake.utils import validate

from pipeline import config as pconf
from pipeline import resources as pres
from pipeline import slurm_compat
from pipeline.labelling.levels import LEVELS
from pipeline.labelling.runner import n_chunks

validate(config, schema="../schemas/config.schema.yaml")
try:
    pconf.check_config(config)
except pconf.ConfigError as err:
    raise WorkflowError(f"invalid config: {err}") from None

# snakemake-executor-plugin-slurm 2.8 waits forever for a job cancelled with scancel ("CANCELLED by
# <uid>" in sacct); pipeline/slurm_compat.py makes it a failure. Does nothing without that plugin.
slurm_compat.install()

LEVEL_RE = "[A-Za-z0-9_]+"
SUBSET_RE = "train|val|test|unlabelled|cheap-[A-Za-z0-9_]+"
LOGS = "results/logs/{molecule}"
BENCH = "results/benchmarks/{molecule}"


wildcard_constraints:
    molecule="[A-Za-z0-9_]+",
    level=LEVEL_RE,
    subset=SUBSET_RE,
    chunk="[0-9]+",
    model="[a-z0-9_]+",
    n="[0-9]+",
    seed="[0-9]+",


def q(value):
    """A value as one shell word of JSON (for --flag '{...}' arguments)."""
    return shlex.quote(json.dumps(value, sort_keys=True))


CHECKED_MOLECULES = set()


def get_molecule(wildcards):
    """Check the molecule named by the target path (once); an unknown one fails here, before any job."""
    if wildcards.molecule not in CHECKED_MOLECULES:
        try:
            pconf.check_molecule(config, wildcards.molecule)
        except pconf.ConfigError as err:
            raise WorkflowError(f"invalid target results/{wildcards.molecule}/...: {err}") from None
        CHECKED_MOLECULES.add(wildcards.molecule)
    return wildcards.molecule


def get_molecule_spec(wildcards):
    spec = pconf.molecule_spec(config, get_molecule(wildcards))
    return q({"name": spec.name, "smiles": spec.smiles, "xyz": spec.xyz, "charge": spec.charge})


def get_molecule_inputs(wildcards):
    """A user molecule's xyz file is an input of the GAFF2 step (edits rerun it)."""
    spec = pconf.molecule_spec(config, get_molecule(wildcards))
    return [spec.xyz] if spec.xyz else []


def get_sampling(wildcards):
    return q(config["sampling"])


def get_subsets(molecule):
    return pconf.subsets(config, molecule)


def get_frames_source(wildcards):
    mol = get_molecule(wildcards)
    if wildcards.subset not in get_subsets(mol):
        raise WorkflowError(f"molecule {mol!r} has no subset {wildcards.subset!r}; subsets: {', '.join(get_subsets(mol))}")
    src = pconf.subset_source(config, mol, wildcards.subset)
    return f"results/{mol}/md/trajectory.npz" if src == "md" else f"results/{mol}/imported/{src}.npz"


def get_frames_block(wildcards):
    """(offset, size) of the subset in its source's seeded permutation."""
    return pconf.subset_block(config, get_molecule(wildcards), wildcards.subset)


def get_level_entry(wildcards):
    if wildcards.level not in config["levels"]:
        raise WorkflowError(f"unknown level {wildcards.level!r}; defined: {', '.join(sorted(config['levels']))}")
    return q(config["levels"][wildcards.level])


def get_level_revision(wildcards):
    """The engine's implementation revision: a fix that changes its numbers reruns its labels."""
    return LEVELS[config["levels"][wildcards.level]["engine"]].REVISION


def get_import_source(wildcards):
    entry = config["levels"][wildcards.level]
    if entry["engine"] != "file":
        raise WorkflowError(f"level {wildcards.level!r} is not a file level")
    return entry["path"]


def get_chunk_bounds(wildcards):
    size = config["labelling"]["chunk_size"]
    i = int(wildcards.chunk)
    return {"start": i * size, "stop": (i + 1) * size}


def get_dataset_inputs(wildcards):
    """Chunks of a computed level, or the frames file itself for free levels (GAFF2, imported)."""
    mol = get_molecule(wildcards)
    lvl = pconf.level(config, wildcards.level)
    frames = f"results/{mol}/frames/{wildcards.subset}.npz"
    if not lvl.COMPUTED:
        return [frames]
    n = pconf.subset_size(config, mol, wildcards.subset)
    return [
        f"results/{mol}/labels/{wildcards.level}/{wildcards.subset}/chunk{i:04d}.npz"
        for i in range(n_chunks(n, config["labelling"]["chunk_size"]))
    ]


def get_n_requested(wildcards):
    return pconf.subset_size(config, get_molecule(wildcards), wildcards.subset)


def get_dataset(molecule, subset, level=None):
    """Path of a labelled dataset; the level defaults to the one the subset is labelled at."""
    level = level or pconf.subset_level(config, molecule, subset)
    return f"results/{molecule}/data/{level}/{subset}.npz"


def get_all_datasets(molecule):
    return [get_dataset(molecule, s) for s in get_subsets(molecule) if s != "unlabelled"]


# ----------------------------------------------------------------------------- training
GAMMA_RE = "[0-9][0-9.e+-]*"
GAMMA_OR_INF_RE = f"{GAMMA_RE}|inf"


def get_gammas():
    """The gamma grid as path strings (kcal/mol/A)."""
    return [f"{g:g}" for g in config["asteroid"]["gammas"]]


def get_train_sizes():
    return sorted(config["splits"]["train_sizes"])


def get_training_common(wildcards):
    t = config["training"]
    return q({k: t[k] for k in ("rho", "ema_decay", "grad_clip", "n_projections") if k in t})


def get_hparams(wildcards):
    return q(config["training"]["hparams"].get(wildcards.model, {}))


def get_stage(name):
    """A function giving the JSON of training section `name` (accurate, cheap, finetune, score_matching)."""

    def _stage(wildcards):
        return q(config["training"][name])

    _stage.__name__ = f"get_stage_{name}"
    return _stage


def get_accurate_data(wildcards):
    mol = get_molecule(wildcards)
    if int(wildcards.n) not in config["splits"]["train_sizes"]:
        raise WorkflowError(f"N = {wildcards.n} is not in splits.train_sizes {config['splits']['train_sizes']}")
    return {"train": get_dataset(mol, "train"), "val": get_dataset(mol, "val")}


def get_cheap_data(wildcards):
    mol = get_molecule(wildcards)
    if wildcards.level not in pconf.cheap_levels(config, mol):
        raise WorkflowError(
            f"{wildcards.level!r} is not a cheap level of {mol}; cheap levels: {pconf.cheap_levels(config, mol)}"
        )
    return get_dataset(mol, f"cheap-{wildcards.level}", wildcards.level)


def get_finetune_init(wildcards):
    base = f"results/{wildcards.molecule}/models/{wildcards.model}/stage2/{wildcards.level}"
    if wildcards.gamma == "inf":
        return f"{base}/ginf/s{wildcards.seed}/model.pt"
    return f"{base}/g{wildcards.gamma}/N{wildcards.n}_s{wildcards.seed}/model.pt"


def get_models_dir(molecule, model):
    return f"results/{molecule}/models/{model}"


def get_trained_models(molecule):
    """Every model file the comparison needs, for every configured model and seed."""
    out = []
    sizes = get_train_sizes()
    for model in config["training"]["models"]:
        d = get_models_dir(molecule, model)
        for seed in config["training"]["seeds"]:
            for n in sizes:
                out.append(f"{d}/standard/N{n}_s{seed}/model.pt")
                for lvl in pconf.cheap_levels(config, molecule):
                    for g in get_gammas():
                        out.append(f"{d}/stage2/{lvl}/g{g}/N{n}_s{seed}/model.pt")
                        out.append(f"{d}/finetune/{lvl}/g{g}/N{n}_s{seed}/model.pt")
                    out.append(f"{d}/finetune/{lvl}/ginf/N{n}_s{seed}/model.pt")
                if config["splits"]["unlabelled"] > 0:
                    out.append(f"{d}/finetune/score/N{n}_s{seed}/model.pt")
            for lvl in pconf.cheap_levels(config, molecule):
                out.append(f"{d}/stage2/{lvl}/ginf/s{seed}/model.pt")
            if config["splits"]["unlabelled"] > 0:
                out.append(f"{d}/score/s{seed}/model.pt")
    return out


def get_final_outputs():
    return [f"results/{m}/report.html" for m in config["targets"]]


# ----------------------------------------------------------------------------- evaluation
def get_test_data(wildcards):
    return get_dataset(get_molecule(wildcards), "test")


def get_sgdml_data(wildcards):
    mol = get_molecule(wildcards)
    return {"train": get_dataset(mol, "train"), "val": get_dataset(mol, "val"), "test": get_dataset(mol, "test")}


def get_sgdml_settings(wildcards):
    return q(config["evaluation"]["sgdml"])


def get_stability_settings(wildcards):
    return q(config["evaluation"]["md_stability"])


def get_stability_models(wildcards):
    """standard: the model at N; asteroid: every gamma's stage-3 model (the run picks by validation);
    cheap_only: the unweighted stage-2 model (path N0: it used no accurate labels)."""
    d = get_models_dir(get_molecule(wildcards), wildcards.model)
    n, s, lvl = wildcards.n, wildcards.seed, wildcards.level
    if wildcards.method == "standard":
        return [f"{d}/standard/N{n}_s{s}/model.pt"]
    if wildcards.method == "asteroid":
        return [f"{d}/finetune/{lvl}/g{g}/N{n}_s{s}/model.pt" for g in get_gammas()]
    return [f"{d}/stage2/{lvl}/ginf/s{s}/model.pt"]


def get_stability_label(wildcards):
    cheap = "" if wildcards.method == "standard" else wildcards.level
    n = 0 if wildcards.method == "cheap_only" else int(wildcards.n)
    return q({"model": wildcards.model, "method": wildcards.method, "cheap_level": cheap, "n_train": n,
              "seed": int(wildcards.seed)})


def get_stability_runs(molecule):
    """Standard vs ASTEROID (each cheap level) at the smallest N, and the cheap-only models."""
    if not config["evaluation"]["md_stability"]["enabled"]:
        return []
    n = get_train_sizes()[0]
    out = []
    for model in config["training"]["models"]:
        for seed in config["training"]["seeds"]:
            base = f"results/{molecule}/stability/{model}"
            out.append(f"{base}/standard/none/N{n}_s{seed}.csv")
            for lvl in pconf.cheap_levels(config, molecule):
                out.append(f"{base}/asteroid/{lvl}/N{n}_s{seed}.csv")
                out.append(f"{base}/cheap_only/{lvl}/N0_s{seed}.csv")
    return out


def get_evaluations(molecule):
    evals = [str(Path(p).with_name("eval.json")) for p in get_trained_models(molecule)]
    if config["evaluation"]["sgdml"]["enabled"]:
        evals += [f"results/{molecule}/baselines/sgdml/N{n}/eval.json" for n in get_train_sizes()]
    return evals


def get_collect_inputs(wildcards):
    mol = get_molecule(wildcards)
    return {
        "evals": get_evaluations(mol),
        "train": get_dataset(mol, "train"),
        "datasets": get_all_datasets(mol),
        "stability": get_stability_runs(mol),
        "unlabelled": [f"results/{mol}/frames/unlabelled.npz"] if config["splits"]["unlabelled"] > 0 else [],
    }


def get_collect_cheap_flags(wildcards):
    mol = wildcards.molecule
    return " ".join(f"{lvl}={get_dataset(mol, f'cheap-{lvl}', lvl)}" for lvl in pconf.cheap_levels(config, mol))


def get_collect_unlabelled_flag(wildcards):
    return f"--unlabelled results/{wildcards.molecule}/frames/unlabelled.npz" if config["splits"]["unlabelled"] > 0 else ""


def get_collect_dataset_flags(wildcards):
    mol = wildcards.molecule
    out = []
    for s in get_subsets(mol):
        if s != "unlabelled":
            lvl = pconf.subset_level(config, mol, s)
            out.append(f"{lvl}:{s}={get_dataset(mol, s, lvl)}")
    return " ".join(out)


def get_config_json(wildcards):
    return q(config)


# ----------------------------------------------------------------------------- cluster resources
# Memory (MB), run time (min) and GPUs per job for cluster executors, sized from the config by
# pipeline/resources.py (molecule size, engine and basis, frames, epochs, pool sizes; margins, and
# more on each retry). A rule's `resources: **get_resources("<rule>")` is all it needs; on SLURM a
# `--default-resources slurm_partition=...` on the command line keeps these.
COMPOSITIONS = {}


def get_composition(molecule):
    """Heavy atoms and hydrogens of a molecule (RDKit with explicit hydrogens, or the xyz file)."""
    if molecule not in COMPOSITIONS:
        spec = pconf.molecule_spec(config, molecule)
        if spec.smiles:
            from rdkit import Chem

            symbols = [a.GetSymbol() for a in Chem.AddHs(Chem.MolFromSmiles(spec.smiles)).GetAtoms()]
        else:
            lines = Path(spec.xyz).read_text().splitlines()
            symbols = [line.split()[0] for line in lines[2 : 2 + int(lines[0])]]
        COMPOSITIONS[molecule] = pres.composition_of_symbols(symbols)
    return COMPOSITIONS[molecule]


def get_chunk_frames(wildcards):
    """Frames labelled by one label_chunk job (the last chunk of a subset may be short)."""
    bounds = get_chunk_bounds(wildcards)
    n = pconf.subset_size(config, get_molecule(wildcards), wildcards.subset)
    return max(0, min(bounds["stop"], n) - bounds["start"])


def get_gpus(wildcards):
    """One GPU per training job unless training.device is cpu (the switch for CPU-only clusters)."""
    return 0 if config["training"]["device"] == "cpu" else 1


def _model_args(model):
    return model, config["training"]["hparams"].get(model, {})


def _training_work(rule, wildcards, mol):
    """(config section of the stage, frames trained on) of a training rule."""
    if rule in ("train_stage2", "train_cheap_only"):
        return "cheap", pconf.subset_size(config, mol, f"cheap-{wildcards.level}")
    if rule == "train_score":
        return "score_matching", config["splits"]["unlabelled"]
    return ("accurate" if rule == "train_standard" else "finetune"), int(wildcards.n)


def _request(rule, wildcards, attempt):
    """The Request (mem_mb, runtime) of one job of `rule`."""
    mol = get_molecule(wildcards)
    comp = get_composition(mol)
    splits, t = config["splits"], config["training"]
    if rule == "label_chunk":
        return pres.label_chunk(config["levels"][wildcards.level], get_chunk_frames(wildcards), comp,
                                config["labelling"]["threads"], attempt)
    if rule in TRAINING_RULES:
        stage, n_train = _training_work(rule, wildcards, mol)
        factor = pres.SCORE_COST_FACTOR * t.get("n_projections", 1) if rule == "train_score" else 1.0
        return pres.training(*_model_args(wildcards.model), t[stage], n_train, splits["val"], comp, t["threads"],
                             bool(get_gpus(wildcards)), factor, attempt)
    if rule in ("bias", "evaluate", "md_stability"):
        if rule == "bias":
            models, frames = [wildcards.model], pconf.subset_size(config, mol, f"cheap-{wildcards.level}")
        elif rule == "evaluate":  # the model's name is not a wildcard here: size for the largest
            models, frames = t["models"], splits["test"]
        else:
            s = config["evaluation"]["md_stability"]
            models, frames = [wildcards.model], s["n_runs"] * s["n_steps"] + splits["val"] * len(get_gammas())
        threads = t["threads"] if rule == "bias" else 1
        reqs = [pres.inference(*_model_args(m), frames, comp, threads, attempt) for m in models]
        return max(reqs, key=lambda r: (r.runtime, r.mem_mb))
    if rule == "sgdml":
        return pres.sgdml(int(wildcards.n), splits["val"], splits["test"], len(config["evaluation"]["sgdml"]["sigmas"]),
                          comp, 2, attempt)
    if rule == "md":
        s = config["sampling"]
        return pres.md(s["equilibration_steps"] + s["n_frames"] * s["stride"], comp, attempt)
    if rule == "dataset":
        return pres.small(pconf.subset_size(config, mol, wildcards.subset), comp, attempt)
    if rule == "collect":
        return pres.small(sum(splits["cheap"].values()) + splits["unlabelled"], comp, attempt)
    return pres.small(config["sampling"]["n_frames"], comp, attempt)  # gaff2, import_level, frames, report


def get_resources(rule):
    """`resources:` of `rule`: mem_mb and runtime functions (and gpu for training rules)."""

    def mem_mb(wildcards, attempt):
        return _request(rule, wildcards, attempt).mem_mb

    def runtime(wildcards, attempt):
        return _request(rule, wildcards, attempt).runtime

    mem_mb.__name__, runtime.__name__ = f"get_mem_mb_{rule}", f"get_runtime_{rule}"
    out = {"mem_mb": mem_mb, "runtime": runtime}
    if rule in TRAINING_RULES:
        out["gpu"] = get_gpus
    return out


TRAINING_RULES = ("train_standard", "train_stage2", "train_cheap_only", "train_score", "finetune_cheap", "finetune_score")
