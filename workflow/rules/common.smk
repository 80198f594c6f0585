# Config validation at parse time and the get_* helpers the rules call.
import functools
import json
import shlex
import sys
from pathlib import Path

from snakemake.utils import validate

from pipeline import config as pconf
from pipeline.labelling import cost as lcost
from pipeline import resources as pres
from pipeline import slurm_compat
from pipeline.labelling.levels import LEVELS
from pipeline.labelling.runner import frames_per_job, n_chunks

# Fills every value the config leaves out with the schema's `default:` (the one source of defaults).
validate(config, schema="../schemas/config.schema.yaml", set_default=True)
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
        check_label_budget(wildcards.molecule)
    return wildcards.molecule


def get_label_cores():
    """Cores the label jobs share: --cores locally; --jobs x labelling.threads on a cluster."""
    if workflow.local_exec:
        return workflow._cores or 1
    return (workflow.nodes or 1) * config["labelling"]["threads"]


def check_label_budget(molecule):
    """Print the label cost preview of a target molecule and stop here (no job started) when it
    exceeds labelling.max_cpu_hours / max_wall_hours. Main Snakemake process only: jobs that
    re-parse the workflow (cluster or subprocess execution) skip it."""
    if not workflow.is_main_process:
        return
    plan = lcost.plan_labels(config, molecule, get_label_cores())
    try:
        lcost.check_budget(plan, config)
    except lcost.BudgetExceeded as err:
        raise WorkflowError(f"label budget exceeded: {err}") from None
    print(lcost.format_plan(plan, config), file=sys.stderr)


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
        raise WorkflowError(
            f"molecule {mol!r} has no subset {wildcards.subset!r}; subsets: {', '.join(get_subsets(mol))}"
        )
    src = pconf.subset_source(config, mol, wildcards.subset)
    return f"results/{mol}/md/trajectory.npz" if src == "md" else f"results/{mol}/imported/{src}.npz"


def get_frames_block(wildcards):
    """SIDE:START:STEP:SIZE of the subset in its source's seeded permutation (pipeline/splits.py)."""
    return pconf.subset_block(config, get_molecule(wildcards), wildcards.subset).token


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


@functools.lru_cache(maxsize=None)
def get_frames_per_job(molecule, level, subset):
    """Frames per labelling job: about labelling.job_cpu_minutes of CPU time as the cost model
    estimates it (uncalibrated, so job boundaries do not move as the label cache fills), at most
    labelling.max_frames_per_job."""
    from pipeline.labelling.cost import model_cpu_s_per_frame, molecule_z

    lab = config["labelling"]
    per_frame = model_cpu_s_per_frame(pconf.level(config, level), molecule_z(config, molecule))
    n = pconf.subset_size(config, molecule, subset)
    return frames_per_job(n, per_frame, lab["job_cpu_minutes"], lab["max_frames_per_job"])


def get_chunk_bounds(wildcards):
    size = get_frames_per_job(get_molecule(wildcards), wildcards.level, wildcards.subset)
    i = int(wildcards.chunk)
    return {"start": i * size, "stop": (i + 1) * size}


def get_label_priority(wildcards):
    """Accurate training frames first, then validation: every training job waits for both, while
    the test labels are needed only by the evaluations (BENCHMARKS.md section 1, scheduling)."""
    return {"train": 200, "val": 150}.get(wildcards.subset, 0)


def get_dataset_inputs(wildcards):
    """Chunks of a computed level, or the frames file itself for free levels (GAFF2, imported)."""
    mol = get_molecule(wildcards)
    lvl = pconf.level(config, wildcards.level)
    frames = f"results/{mol}/frames/{wildcards.subset}.npz"
    if not lvl.COMPUTED:
        return [frames]
    n = pconf.subset_size(config, mol, wildcards.subset)
    size = get_frames_per_job(mol, wildcards.level, wildcards.subset)
    return [
        f"results/{mol}/labels/{wildcards.level}/{wildcards.subset}/chunk{i:04d}.npz" for i in range(n_chunks(n, size))
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
GAMMA_RE = "r?[0-9][0-9.e+-]*"
GAMMA_OR_INF_RE = f"{GAMMA_RE}|inf"


def get_gammas():
    """The finite gamma candidates as path strings: absolute ones in kcal/mol/A ('1'), relative
    ones as 'r<c>' (c times the spread of the stage-1 model's B). gamma = inf ('ginf', no bias
    weights) is always a candidate too; its models are built for every level and N anyway."""
    a = config["asteroid"]
    return [f"{g:g}" for g in a["gammas"]] + [f"r{c:g}" for c in a["relative_gammas"]]


def get_gamma_candidates():
    return get_gammas() + ["inf"]


def get_train_sizes():
    return sorted(config["splits"]["train_sizes"])


def get_training_common(wildcards):
    t = config["training"]
    return q({k: t[k] for k in ("rho", "ema_decay", "grad_clip", "n_projections")})


def get_hparams(wildcards):
    return q(config["training"]["hparams"][wildcards.model])


def get_stage(name):
    """A function giving the JSON of training section `name` (accurate, cheap, finetune, score_matching)."""

    def _stage(wildcards):
        return q(config["training"][name])

    _stage.__name__ = f"get_stage_{name}"
    return _stage


# The arguments every training rule's command ends with (see train_command).
TRAIN_ARGS = (
    "--stage {params.stage} --training {params.training} --seed {wildcards.seed} --device {params.device} "
    "--threads {threads} --out-model {output.model} --out-history {output.history} "
    "--checkpoint {output.model}.ckpt 2> {log}"
)


def train_command(args):
    """The shell command of a training rule: `python -m pipeline <args>` and then TRAIN_ARGS."""
    return f"python -m pipeline {args} {TRAIN_ARGS}"


def get_chain_priority(wildcards):
    """The longest chains first: standard training -> bias -> stage 2 -> fine-tuning of the largest
    N before smaller ones (the cheap-only model, which has no N, and the unweighted fine-tunings,
    gamma = inf, that hang off it fill the gaps); on 2 cores the default run's last minutes were
    otherwise one N = 100 chain on one core (BENCHMARKS.md section 1, scheduling)."""
    n = getattr(wildcards, "n", None)
    if n is None or getattr(wildcards, "gamma", None) == "inf":
        return 0
    return int(n)


def get_stage2_weights(wildcards, input):
    """The bias weights of stage 2, `--bias B.npz --gamma g`; the cheap-only model (train_cheap_only,
    no bias input) is unweighted, `--gamma inf`."""
    if hasattr(input, "bias"):
        return f"--bias {input.bias} --gamma {wildcards.gamma}"
    return "--gamma inf"


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
    """standard: the model at N; asteroid: every gamma candidate's stage-3 model, inf included (the
    run picks by validation, with the same function as results.csv);
    cheap_only: the unweighted stage-2 model (path N0: it used no accurate labels)."""
    d = get_models_dir(get_molecule(wildcards), wildcards.model)
    n, s, lvl = wildcards.n, wildcards.seed, wildcards.level
    if wildcards.method == "standard":
        return [f"{d}/standard/N{n}_s{s}/model.pt"]
    if wildcards.method == "asteroid":
        return [f"{d}/finetune/{lvl}/g{g}/N{n}_s{s}/model.pt" for g in get_gamma_candidates()]
    return [f"{d}/stage2/{lvl}/ginf/s{s}/model.pt"]


def get_stability_label(wildcards):
    cheap = "" if wildcards.method == "standard" else wildcards.level
    n = 0 if wildcards.method == "cheap_only" else int(wildcards.n)
    return q(
        {
            "model": wildcards.model,
            "method": wildcards.method,
            "cheap_level": cheap,
            "n_train": n,
            "seed": int(wildcards.seed),
        }
    )


def get_stability_runs(molecule):
    """Standard vs ASTEROID (each cheap level) at the smallest N, the cheap-only models, and the Δ
    models of delta.md_stability_levels (their cheap level is called at every step)."""
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
            for lvl in pconf.delta_stability_levels(config, molecule):
                out.append(f"{base}/delta/{lvl}/N{n}_s{seed}.csv")
    return out


def get_evaluations(molecule):
    evals = [str(Path(p).with_name("eval.json")) for p in get_trained_models(molecule) + get_delta_models(molecule)]
    if config["evaluation"]["sgdml"]["enabled"]:
        evals += [f"results/{molecule}/baselines/sgdml/N{n}/eval.json" for n in get_train_sizes()]
    evals += get_delta_sgdml_evaluations(molecule)
    return evals


def get_bias_diagnostic_levels(molecule):
    return pconf.bias_diagnostic_levels(config, molecule)


def get_bias_diagnostics(molecule):
    out = []
    for model in config["training"]["models"]:
        for seed in config["training"]["seeds"]:
            for lvl in get_bias_diagnostic_levels(molecule):
                for n in get_train_sizes():
                    out.append(f"results/{molecule}/models/{model}/bias/{lvl}/val_N{n}_s{seed}.csv")
    return out


def get_bias_diagnostic_data(wildcards):
    mol = get_molecule(wildcards)
    if wildcards.level not in get_bias_diagnostic_levels(mol):
        raise WorkflowError(
            f"level {wildcards.level!r} cannot label the validation frames of {mol}; bias diagnostics exist for "
            f"{get_bias_diagnostic_levels(mol)}"
        )
    return {"cheap_val": get_dataset(mol, "val", wildcards.level), "accurate_val": get_dataset(mol, "val")}


def get_accurate_level(wildcards):
    return pconf.accurate_level(config, get_molecule(wildcards))


def get_collect_inputs(wildcards):
    mol = get_molecule(wildcards)
    return {
        "evals": get_evaluations(mol),
        "train": get_dataset(mol, "train"),
        "datasets": get_all_datasets(mol) + get_delta_datasets(mol),
        "stability": get_stability_runs(mol),
        "bias": get_bias_diagnostics(mol),
        "unlabelled": [f"results/{mol}/frames/unlabelled.npz"] if config["splits"]["unlabelled"] > 0 else [],
        "prmtop": get_collect_prmtop(wildcards),
    }


def get_collect_prmtop(wildcards):
    """The GAFF2 prmtop when a Δ level is GAFF2: a Δ model recommended as the force field needs it."""
    mol = get_molecule(wildcards)
    return get_gaff2_prmtop(mol, pconf.delta_levels(config, mol))


def get_collect_prmtop_flag(wildcards):
    return get_prmtop_flag(get_collect_prmtop(wildcards))


def get_collect_cheap_flags(wildcards):
    mol = wildcards.molecule
    return " ".join(f"{lvl}={get_dataset(mol, f'cheap-{lvl}', lvl)}" for lvl in pconf.cheap_levels(config, mol))


def get_collect_unlabelled_flag(wildcards):
    return (
        f"--unlabelled results/{wildcards.molecule}/frames/unlabelled.npz" if config["splits"]["unlabelled"] > 0 else ""
    )


def get_collect_dataset_flags(wildcards):
    """LEVEL:SUBSET=PATH of every labelled dataset: each subset at its own level, and the train,
    validation and test frames at each Δ level (their cost is counted to the Δ methods)."""
    mol = wildcards.molecule
    out = []
    for s in get_subsets(mol):
        if s != "unlabelled":
            lvl = pconf.subset_level(config, mol, s)
            out.append(f"{lvl}:{s}={get_dataset(mol, s, lvl)}")
    for lvl in pconf.delta_levels(config, mol):
        out += [f"{lvl}:{s}={get_dataset(mol, s, lvl)}" for s in pconf.SUBSETS_ACCURATE]
    return " ".join(out)


def get_config_json(wildcards):
    return q(config)


def get_label_plan_config(wildcards):
    """The config sections the label cost estimate depends on (other edits do not rerun it)."""
    return q({k: config[k] for k in lcost.PLAN_SECTIONS})


# ----------------------------------------------------------------------------- Δ-learning
def get_delta_level(wildcards):
    """The Δ level named by the path, checked against delta.cheap_levels."""
    mol = get_molecule(wildcards)
    if wildcards.level not in pconf.delta_levels(config, mol):
        raise WorkflowError(
            f"{wildcards.level!r} is not a Δ-learning level of {mol}; delta.cheap_levels: "
            f"{pconf.delta_levels(config, mol)} (delta.enabled: {config['delta']['enabled']})"
        )
    return wildcards.level


def get_delta_data(wildcards):
    """Accurate train/val and the same frames at the Δ level (train, val), plus the test frames."""
    mol, lvl = get_molecule(wildcards), get_delta_level(wildcards)
    return {
        "train": get_dataset(mol, "train"),
        "val": get_dataset(mol, "val"),
        "test": get_dataset(mol, "test"),
        "cheap_train": get_dataset(mol, "train", lvl),
        "cheap_val": get_dataset(mol, "val", lvl),
        "cheap_test": get_dataset(mol, "test", lvl),
    }


def get_delta_cheap_test(wildcards):
    mol, lvl = get_molecule(wildcards), get_delta_level(wildcards)
    return get_dataset(mol, "test", lvl)


def get_gaff2_prmtop(molecule, levels):
    """[the molecule's GAFF2 prmtop] when one of the levels is GAFF2 (computed at new geometries
    through OpenMM), else []."""
    gaff2 = any(pconf.level(config, lvl).ENGINE == "empirical" for lvl in levels)
    return [f"results/{molecule}/md/gaff2.prmtop"] if gaff2 else []


def get_prmtop_flag(paths):
    return f"--prmtop {paths[0]}" if paths else ""


def get_delta_prmtop(wildcards):
    """The GAFF2 prmtop when the Δ level is GAFF2."""
    return get_gaff2_prmtop(get_molecule(wildcards), [get_delta_level(wildcards)])


def get_delta_prmtop_flag(wildcards):
    return get_prmtop_flag(get_delta_prmtop(wildcards))


def get_delta_models(molecule):
    out = []
    for model in config["training"]["models"]:
        for lvl in pconf.delta_levels(config, molecule):
            for seed in config["training"]["seeds"]:
                for n in get_train_sizes():
                    out.append(f"results/{molecule}/delta/{model}/{lvl}/N{n}_s{seed}/model.pt")
    return out


def get_delta_sgdml_evaluations(molecule):
    if not (config["evaluation"]["sgdml"]["enabled"] and config["delta"]["sgdml"]):
        return []
    return [
        f"results/{molecule}/baselines/delta_sgdml/{lvl}/N{n}/eval.json"
        for lvl in pconf.delta_levels(config, molecule)
        for n in get_train_sizes()
    ]


def get_delta_datasets(molecule):
    return [
        get_dataset(molecule, s, lvl) for lvl in pconf.delta_levels(config, molecule) for s in pconf.SUBSETS_ACCURATE
    ]


def get_delta_stability_label(wildcards):
    return q(
        {
            "model": wildcards.model,
            "method": "delta",
            "cheap_level": wildcards.level,
            "n_train": int(wildcards.n),
            "seed": int(wildcards.seed),
        }
    )


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
    return model, config["training"]["hparams"][model]


def _training_work(rule_name, wildcards, mol):
    """(config section of the stage, frames trained on) of a training rule."""
    if rule_name in ("train_stage2", "train_cheap_only"):
        return "cheap", pconf.subset_size(config, mol, f"cheap-{wildcards.level}")
    if rule_name == "train_score":
        return "score_matching", config["splits"]["unlabelled"]
    return ("accurate" if rule_name in ("train_standard", "train_delta") else "finetune"), int(wildcards.n)


def _request(rule_name, wildcards, attempt):
    """The Request (mem_mb, runtime) of one job of the rule rule_name."""
    mol = get_molecule(wildcards)
    comp = get_composition(mol)
    splits, t = config["splits"], config["training"]
    if rule_name == "label_chunk":
        return pres.label_chunk(
            config["levels"][wildcards.level],
            get_chunk_frames(wildcards),
            comp,
            config["labelling"]["threads"],
            attempt,
        )
    if rule_name in TRAINING_RULES:
        stage, n_train = _training_work(rule_name, wildcards, mol)
        factor = pres.SCORE_COST_FACTOR * t["n_projections"] if rule_name == "train_score" else 1.0
        return pres.training(
            *_model_args(wildcards.model),
            t[stage],
            n_train,
            splits["val"],
            comp,
            t["threads"],
            bool(get_gpus(wildcards)),
            factor,
            attempt,
        )
    if rule_name in ("bias", "bias_diagnostic", "evaluate", "evaluate_delta", "md_stability", "md_stability_delta"):
        if rule_name == "bias":
            models, frames = [wildcards.model], pconf.subset_size(config, mol, f"cheap-{wildcards.level}")
        elif rule_name == "bias_diagnostic":
            models, frames = [wildcards.model], splits["val"]
        elif rule_name in ("evaluate", "evaluate_delta"):  # the model may not be a wildcard: size for the largest
            models, frames = t["models"], splits["test"]
        else:  # MD steps (a Δ model also calls its cheap level each step: counted twice)
            s = config["evaluation"]["md_stability"]
            models = [wildcards.model]
            frames = s["n_runs"] * s["n_steps"] * (2 if rule_name == "md_stability_delta" else 1) + splits["val"] * len(
                get_gamma_candidates()
            )
        threads = t["threads"] if rule_name in ("bias", "bias_diagnostic") else 1
        reqs = [pres.inference(*_model_args(m), frames, comp, threads, attempt) for m in models]
        return max(reqs, key=lambda r: (r.runtime, r.mem_mb))
    if rule_name in ("sgdml", "sgdml_delta"):
        return pres.sgdml(
            int(wildcards.n),
            splits["val"],
            splits["test"],
            len(config["evaluation"]["sgdml"]["sigmas"]),
            comp,
            2,
            attempt,
        )
    if rule_name == "md":
        s = config["sampling"]
        return pres.md(s["equilibration_steps"] + s["n_frames"] * s["stride"], comp, attempt)
    if rule_name == "dataset":
        return pres.small(pconf.subset_size(config, mol, wildcards.subset), comp, attempt)
    if rule_name == "collect":
        return pres.small(sum(splits["cheap"].values()) + splits["unlabelled"], comp, attempt)
    return pres.small(config["sampling"]["n_frames"], comp, attempt)  # gaff2, import_level, frames, report


def get_resources(rule_name):
    """The `resources:` of a rule named rule_name (mem_mb and runtime functions, gpu for training rules)."""

    def mem_mb(wildcards, attempt):
        return _request(rule_name, wildcards, attempt).mem_mb

    def runtime(wildcards, attempt):
        return _request(rule_name, wildcards, attempt).runtime

    mem_mb.__name__, runtime.__name__ = f"get_mem_mb_{rule_name}", f"get_runtime_{rule_name}"
    out = {"mem_mb": mem_mb, "runtime": runtime}
    if rule_name in TRAINING_RULES:
        out["gpu"] = get_gpus
    return out


TRAINING_RULES = (
    "train_standard",
    "train_stage2",
    "train_cheap_only",
    "train_score",
    "finetune_cheap",
    "finetune_score",
    "train_delta",
)


# ----------------------------------------------------------------------------- Snakemake report
# Subcategories of the report figures (results/<molecule>/figures/<name>.png) in the Snakemake
# report; a figure not listed here is shown under "Other".
REPORT_FIGURE_GROUPS = {
    "learning_curves": "Accuracy and cost",
    "error_vs_cost": "Accuracy and cost",
    "error_vs_total_cost": "Accuracy and cost",
    "gamma_selection": "ASTEROID",
    "bias_diagnostic": "ASTEROID",
    "cheap_only": "ASTEROID",
    "md_stability": "MD stability",
    "stage_timings": "Compute",
    "label_cost": "Label cost",
}


def get_report_figure_group(wildcards):
    return REPORT_FIGURE_GROUPS.get(wildcards.name, "Other")
