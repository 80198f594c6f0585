# Training: standard (= ASTEROID stage 1), bias, stage 2 (bias-weighted / unweighted cheap-only),
# score matching, stage 3 fine-tuning, and the Δ-learning baseline (a correction to a cheap level).
# Each model is cached; a killed job resumes from <model>.ckpt when rerun.
#
# Every training command ends with the same arguments (train_command in common.smk: stage settings,
# seed, device, the model and history files, the checkpoint); rules that differ only in their files
# are derived with `use rule ... with:` (train_cheap_only from train_stage2, finetune_score from
# finetune_cheap).


rule train_standard:
    input:
        unpack(get_accurate_data),
    output:
        model="results/{molecule}/models/{model}/standard/N{n}_s{seed}/model.pt",
        history="results/{molecule}/models/{model}/standard/N{n}_s{seed}/history.csv",
    log:
        "results/logs/{molecule}/train/{model}/standard/N{n}_s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/train_standard/{model}/N{n}_s{seed}.tsv"
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
    shell:
        train_command(
            "train-standard --model-name {wildcards.model} --hparams {params.hparams} "
            "--train {input.train} --n-train {wildcards.n} --val {input.val}"
        )


rule bias:
    input:
        model=rules.train_standard.output.model,
        cheap=get_cheap_data,
    output:
        "results/{molecule}/models/{model}/bias/{level}/N{n}_s{seed}.npz",
    log:
        "results/logs/{molecule}/train/{model}/bias/{level}/N{n}_s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/bias/{model}/{level}/N{n}_s{seed}.tsv"
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
        bias="results/{molecule}/models/{model}/bias/{level}/N{n}_s{seed}.npz",
    output:
        model="results/{molecule}/models/{model}/stage2/{level}/g{gamma}/N{n}_s{seed}/model.pt",
        history="results/{molecule}/models/{model}/stage2/{level}/g{gamma}/N{n}_s{seed}/history.csv",
    log:
        "results/logs/{molecule}/train/{model}/stage2/{level}/g{gamma}/N{n}_s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/train_stage2/{model}/{level}/g{gamma}_N{n}_s{seed}.tsv"
    wildcard_constraints:
        gamma=GAMMA_RE,
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
        model="results/{molecule}/models/{model}/stage2/{level}/ginf/s{seed}/model.pt",
        history="results/{molecule}/models/{model}/stage2/{level}/ginf/s{seed}/history.csv",
    log:
        "results/logs/{molecule}/train/{model}/stage2/{level}/ginf/s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/train_cheap_only/{model}/{level}/s{seed}.tsv"
    resources:
        **get_resources("train_cheap_only"),


rule train_score:
    input:
        unlabelled="results/{molecule}/frames/unlabelled.npz",
    output:
        model="results/{molecule}/models/{model}/score/s{seed}/model.pt",
        history="results/{molecule}/models/{model}/score/s{seed}/history.csv",
    log:
        "results/logs/{molecule}/train/{model}/score/s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/train_score/{model}/s{seed}.tsv"
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
        model="results/{molecule}/models/{model}/finetune/{level}/g{gamma}/N{n}_s{seed}/model.pt",
        history="results/{molecule}/models/{model}/finetune/{level}/g{gamma}/N{n}_s{seed}/history.csv",
    log:
        "results/logs/{molecule}/train/{model}/finetune/{level}/g{gamma}/N{n}_s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/finetune/{model}/{level}/g{gamma}_N{n}_s{seed}.tsv"
    wildcard_constraints:
        gamma=GAMMA_OR_INF_RE,
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
        init="results/{molecule}/models/{model}/score/s{seed}/model.pt",
    output:
        model="results/{molecule}/models/{model}/finetune/score/N{n}_s{seed}/model.pt",
        history="results/{molecule}/models/{model}/finetune/score/N{n}_s{seed}/history.csv",
    log:
        "results/logs/{molecule}/train/{model}/finetune/score/N{n}_s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/finetune/{model}/score/N{n}_s{seed}.tsv"
    resources:
        **get_resources("finetune_score"),


rule train_delta:
    """Δ-learning: a correction trained on accurate - cheap labels of the accurate train[:N], with the
    accurate stage's settings (the same budget as standard training)."""
    input:
        unpack(get_delta_data),
    output:
        model="results/{molecule}/delta/{model}/{level}/N{n}_s{seed}/model.pt",
        history="results/{molecule}/delta/{model}/{level}/N{n}_s{seed}/history.csv",
    log:
        "results/logs/{molecule}/train/{model}/delta/{level}/N{n}_s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/train_delta/{model}/{level}/N{n}_s{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("train_delta"),
    params:
        hparams=get_hparams,
        stage=get_stage("accurate"),
        training=get_training_common,
        level=get_level_entry,
        device=config["training"]["device"],
    shell:
        train_command(
            "train-delta --model-name {wildcards.model} --hparams {params.hparams} "
            "--train {input.train} --cheap-train {input.cheap_train} --n-train {wildcards.n} --val {input.val} "
            "--cheap-val {input.cheap_val} --cheap-level {wildcards.level} --cheap-entry {params.level}"
        )
