# Bias-corrected pre-training (pipeline/methods/corrected.py): the cheap pool relabelled by the Δ
# model of the same N, stage 2 weighted by exp(-u_j/γ) on the corrected pool, stage 3 fine-tuning.


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
        stage=get_stage("corrected"),
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
