# Training: standard (= ASTEROID stage 1), bias, stage 2 (bias-weighted / unweighted cheap-only),
# score matching, stage 3 fine-tuning, and the Δ-learning baseline (a correction to a cheap level).
# Each model is cached; a killed job resumes from <model>.ckpt when rerun.
#
# Every training command ends with the same arguments (train_command in common_training.smk: stage settings,
# seed, device, the model and history files, the checkpoint); rules that differ only in their files
# are derived with `use rule ... with:` (train_cheap_only from train_stage2, finetune_score from
# finetune_cheap).


rule train_standard:
    input:
        unpack(get_accurate_data),
    output:
        **train_outputs("standard"),
    log:
        L.log("train_standard"),
    benchmark:
        L.benchmark("train_standard")
    priority: get_chain_priority
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("train_standard"),
    params:
        hparams=get_hparams,
        stage=get_stage("accurate"),
        training=get_training_common,
        device=config["training"]["device"],
        role="",  # `--role <method>` where a method reuses this rule (train_standard_selected)
    shell:
        train_command(
            "train-standard --model-name {wildcards.model} --hparams {params.hparams} "
            "--train {input.train} --n-train {wildcards.n} --val {input.val} {params.role}"
        )


rule bias:
    input:
        model=rules.train_standard.output.model,
        cheap=get_cheap_data,
    output:
        L.file("bias"),
    log:
        L.log("bias"),
    benchmark:
        L.benchmark("bias")
    priority: get_chain_priority
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("bias"),
    params:
        device=config["training"]["device"],
    shell:
        "python -m pipeline bias --model {input.model} --cheap {input.cheap} --out {output} "
        "--device {params.device} --threads {threads} 2> {log}"


rule train_stage2:
    input:
        cheap=get_cheap_data,
        bias=L.file("bias"),
    output:
        **train_outputs("stage2"),
    log:
        L.log("train_stage2"),
    benchmark:
        L.benchmark("train_stage2")
    wildcard_constraints:
        gamma=L.GAMMA_RE,
    priority: get_chain_priority
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("train_stage2"),
    params:
        hparams=get_hparams,
        weights=get_stage2_weights,
        stage=get_stage("cheap"),
        training=get_training_common,
        device=config["training"]["device"],
    shell:
        train_command(
            "train-cheap --model-name {wildcards.model} --hparams {params.hparams} "
            "--cheap {input.cheap} --cheap-level {wildcards.level} {params.weights}"
        )


# The unweighted stage 2 (gamma = inf): no bias, no N (it uses no accurate labels).
use rule train_stage2 as train_cheap_only with:
    input:
        cheap=get_cheap_data,
    output:
        **train_outputs("cheap_only"),
    log:
        L.log("train_cheap_only"),
    benchmark:
        L.benchmark("train_cheap_only")
    resources:
        **get_resources("train_cheap_only"),


rule train_score:
    input:
        unlabelled=L.file("frames", subset="unlabelled"),
    output:
        **train_outputs("score"),
    log:
        L.log("train_score"),
    benchmark:
        L.benchmark("train_score")
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("train_score"),
    params:
        hparams=get_hparams,
        stage=get_stage("score_matching"),
        training=get_training_common,
        temperature=config["sampling"]["temperature_K"],
        device=config["training"]["device"],
    shell:
        train_command(
            "train-score --model-name {wildcards.model} --hparams {params.hparams} "
            "--unlabelled {input.unlabelled} --temperature {params.temperature}"
        )


rule finetune_cheap:
    input:
        unpack(get_accurate_data),
        init=get_finetune_init,
    output:
        **train_outputs("finetune"),
    log:
        L.log("finetune_cheap"),
    benchmark:
        L.benchmark("finetune_cheap")
    wildcard_constraints:
        gamma=f"{L.GAMMA_RE}|inf",
    priority: get_chain_priority
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("finetune_cheap"),
    params:
        stage=get_stage("finetune"),
        training=get_training_common,
        device=config["training"]["device"],
    shell:
        train_command("finetune --init {input.init} --train {input.train} --n-train {wildcards.n} " "--val {input.val}")


# Stage 3 from the score-matching model instead of a stage-2 model.
use rule finetune_cheap as finetune_score with:
    input:
        unpack(get_accurate_data),
        init=L.run("score"),
    output:
        **train_outputs("finetune_score"),
    log:
        L.log("finetune_score"),
    benchmark:
        L.benchmark("finetune_score")
    resources:
        **get_resources("finetune_score"),
