# Δ-learning: the cheap level plus a learned correction (pipeline/methods/delta.py), with a neural
# model (train_delta) or sGDML (sgdml_delta); its evaluation and MD stability call the cheap level.


rule train_delta:
    """Δ-learning: a correction trained on accurate - cheap labels of the accurate train[:N], with the
    accurate stage's settings (the same budget as standard training)."""
    input:
        unpack(get_delta_training_data),
    output:
        **train_outputs("delta"),
    log:
        L.log("train_delta"),
    benchmark:
        L.benchmark("train_delta")
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
        role="",  # `--role <method>` where a method reuses this rule (train_delta_selected)
    shell:
        train_command(
            "train-delta --model-name {wildcards.model} --hparams {params.hparams} "
            "--train {input.train} --cheap-train {input.cheap_train} --n-train {wildcards.n} --val {input.val} "
            "--cheap-val {input.cheap_val} --cheap-level {wildcards.level} --cheap-entry {params.level} {params.role}"
        )


rule evaluate_delta:
    """A Δ model on the accurate test set: the cheap test labels plus the correction."""
    input:
        model=L.run("delta"),
        test=get_test_data,
        cheap_test=get_delta_cheap_test,
        prmtop=get_delta_prmtop,
    output:
        json=L.run("delta", "eval.json"),
        predictions=L.run("delta", "predictions.npz"),
    log:
        L.log("evaluate_delta"),
    benchmark:
        L.benchmark("evaluate_delta")
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        **get_resources("evaluate_delta"),
    params:
        prmtop=get_delta_prmtop_flag,
        device=config["training"]["device"],
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline evaluate-delta --model {input.model} --test {input.test} "
        "--cheap-test {input.cheap_test} {params.prmtop} --out-json {output.json} --out-pred {output.predictions} "
        "--device {params.device} 2> {log}"


rule sgdml_delta:
    """sGDML as a kernel Δ-model: trained on accurate - cheap of train[:N], sigma chosen on validation."""
    input:
        unpack(get_delta_data),
        prmtop=get_delta_prmtop,
    output:
        json=L.run("delta_sgdml", "eval.json"),
        predictions=L.run("delta_sgdml", "predictions.npz"),
        model=L.run("delta_sgdml", "sgdml_model.npz"),
    log:
        L.log("sgdml_delta"),
    benchmark:
        L.benchmark("sgdml_delta")
    conda:
        "../../envs/report.yaml"
    threads: 2
    resources:
        **get_resources("sgdml_delta"),
    params:
        sgdml=get_sgdml_settings,
        level=get_level_entry,
        prmtop=get_delta_prmtop_flag,
    shell:
        "OMP_NUM_THREADS=1 python -m pipeline sgdml-delta --train {input.train} --cheap-train {input.cheap_train} "
        "--val {input.val} --cheap-val {input.cheap_val} --test {input.test} --cheap-test {input.cheap_test} "
        "--n-train {wildcards.n} --cheap-level {wildcards.level} --cheap-entry {params.level} {params.prmtop} "
        "--sgdml {params.sgdml} --processes {threads} --out-json {output.json} --out-pred {output.predictions} "
        "--out-model {output.model} 2> {log}"


rule md_stability_delta:
    """MD stability of a Δ model: the cheap level and the correction at every step."""
    input:
        models=L.run("delta"),
        committee=get_delta_stability_committee,
        start=get_test_data,
        prmtop=get_delta_prmtop,
    output:
        L.file("stability", method="delta"),
    log:
        L.log("md_stability_delta"),
    benchmark:
        L.benchmark("md_stability_delta")
    conda:
        "../../envs/report.yaml"
    resources:
        **get_resources("md_stability_delta"),
    params:
        settings=get_stability_settings,
        label=get_delta_stability_label,
        prmtop=get_delta_prmtop_flag,
        device=config["training"]["device"],
    shell:
        "OMP_NUM_THREADS=1 python -m pipeline md-stability --model {input.models} --start {input.start} "
        "--md-stability {params.settings} --label {params.label} --seed {wildcards.seed} {params.prmtop} "
        "--committee {input.committee} --out {output} --device {params.device} 2> {log}"
