# A shipped foundation model (pipeline/methods/foundation.py): SO3LR fine-tuned on the N accurate
# frames with the standard stage's early stopping (training.foundation), and zero-shot.


use rule train_standard as train_foundation with:
    input:
        unpack(get_accurate_data),
    output:
        **train_outputs("foundation"),
    log:
        L.log("train_foundation"),
    benchmark:
        L.benchmark("train_foundation")
    resources:
        **get_resources("train_foundation"),
    params:
        hparams=get_hparams,
        stage=get_stage("foundation"),
        training=get_training_common,
        device=config["training"]["device"],
        role=get_role_flag("foundation"),


rule zero_shot:
    """The pretrained model as it is: only its energy offset fitted to train[:N]."""
    input:
        unpack(get_accurate_data),
    output:
        model=L.run("foundation_zero_shot"),
    log:
        L.log("zero_shot"),
    benchmark:
        L.benchmark("zero_shot")
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("zero_shot"),
    params:
        hparams=get_hparams,
        device=config["training"]["device"],
    shell:
        "python -m pipeline zero-shot --model-name {wildcards.model} --hparams {params.hparams} --train {input.train} "
        "--n-train {wildcards.n} --val {input.val} --role foundation_zero_shot --device {params.device} "
        "--threads {threads} --out-model {output.model} 2> {log}"
