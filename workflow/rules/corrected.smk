# Bias-corrected pre-training (pipeline/methods/corrected.py): the cheap pool relabelled by the Δ
# model of the same N, stage 2 weighted by exp(-u_j/γ) on the corrected pool, stage 3 fine-tuning.


def get_corrected_level(wildcards):
    """The level named by the path, checked: it needs a cheap pool and a Δ model."""
    mol = get_molecule(wildcards)
    ok = corrected_levels(config, mol)
    if wildcards.level not in ok:
        raise WorkflowError(
            f"{wildcards.level!r} is not a level of bias-corrected pre-training for {mol}; levels: {ok} "
            f"(corrected.enabled: {config['corrected']['enabled']}; a level must be in cheap_levels and delta.cheap_levels)"
        )
    return wildcards.level


def get_corrected_inputs(wildcards):
    """The Δ model of this N and seed first (it corrects), then, for a committee, those of the other seeds."""
    mol, lvl = get_molecule(wildcards), get_corrected_level(wildcards)
    own = int(wildcards.seed)
    committee = config["corrected"]["uncertainty"] != "distance"
    others = [s for s in methods.seeds(config) if s != own] if committee else []
    return {
        "delta": [L.run("delta", values=wildcards, seed=s) for s in [own, *others]],
        "cheap": get_dataset(mol, f"cheap-{lvl}", lvl),
        "train": get_dataset(mol, "train"),
        "val": get_dataset(mol, "val"),
        "cheap_val": get_dataset(mol, "val", lvl),
    }


rule correct_pool:
    input:
        unpack(get_corrected_inputs),
    output:
        pool=L.file("corrected_pool"),
        uncertainty=L.file("corrected_u"),
        csv=L.file("corrected_diag"),
    log:
        L.log("correct_pool"),
    benchmark:
        L.benchmark("correct_pool")
    priority: get_chain_priority
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("correct_pool"),
    params:
        uncertainty=config["corrected"]["uncertainty"],
        device=config["training"]["device"],
    shell:
        "python -m pipeline correct-pool --delta {input.delta} --cheap {input.cheap} --train {input.train} "
        "--val {input.val} --cheap-val {input.cheap_val} --uncertainty {params.uncertainty} "
        "--out-pool {output.pool} --out-uncertainty {output.uncertainty} --out-csv {output.csv} "
        "--device {params.device} --threads {threads} 2> {log}"


rule train_corrected:
    input:
        cheap=L.file("corrected_pool"),
        bias=L.file("corrected_u"),
    output:
        **train_outputs("corrected_stage2"),
    log:
        L.log("train_corrected"),
    benchmark:
        L.benchmark("train_corrected")
    wildcard_constraints:
        gamma=f"{L.GAMMA_RE}|inf",
    priority: get_chain_priority
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("train_corrected"),
    params:
        hparams=get_hparams,
        stage=get_stage("cheap"),
        training=get_training_common,
        device=config["training"]["device"],
    shell:
        train_command(
            "train-cheap --model-name {wildcards.model} --hparams {params.hparams} --cheap {input.cheap} "
            "--cheap-level {wildcards.level} --bias {input.bias} --gamma {wildcards.gamma} "
            "--role corrected_stage2 --for-n-train {wildcards.n}"
        )


rule finetune_corrected:
    input:
        unpack(get_accurate_data),
        init=L.run("corrected_stage2"),
    output:
        **train_outputs("corrected"),
    log:
        L.log("finetune_corrected"),
    benchmark:
        L.benchmark("finetune_corrected")
    wildcard_constraints:
        gamma=f"{L.GAMMA_RE}|inf",
    priority: get_chain_priority
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("finetune_corrected"),
    params:
        stage=get_stage("finetune"),
        training=get_training_common,
        device=config["training"]["device"],
    shell:
        train_command(
            "finetune --init {input.init} --train {input.train} --n-train {wildcards.n} --val {input.val} "
            "--role corrected"
        )
