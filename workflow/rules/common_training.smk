# Input functions of the training rules (train.smk): stage settings, the shared command tail, priorities.


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


def train_outputs(kind):
    """model.pt and history.csv of a run directory (pipeline/layout.py RUNS)."""
    return {"model": L.run(kind, "model.pt"), "history": L.run(kind, "history.csv")}


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
    """The bias weights of stage 2, `--bias B.npz --gamma <token>` (a γ candidate, pipeline/layout.py);
    the cheap-only model (train_cheap_only, no bias input) is unweighted, `--gamma inf`."""
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
    if wildcards.gamma == "inf":
        return L.run("cheap_only", values=wildcards)
    return L.run("stage2", values=wildcards)


def get_role_flag(role):
    """A function giving `--role <role>` (the method's role in the model metadata)."""

    def _role(wildcards):
        return f"--role {role}"

    _role.__name__ = f"get_role_{role}"
    return _role
