# Δ-learning: the cheap level plus a learned correction (pipeline/methods/delta.py), with a neural
# model (train_delta) or sGDML (sgdml_delta); its evaluation and MD stability call the cheap level.


def get_delta_level(wildcards):
    """The Δ level named by the path, checked against delta.cheap_levels."""
    mol = get_molecule(wildcards)
    if wildcards.level not in pconf.delta_levels(config, mol):
        raise WorkflowError(
            f"{wildcards.level!r} is not a Δ-learning level of {mol}; delta.cheap_levels: "
            f"{pconf.delta_levels(config, mol)} (delta.enabled: {config['delta']['enabled']})"
        )
    return wildcards.level


def get_delta_data(wildcards, subsets=pconf.SUBSETS_ACCURATE):
    """Accurate train/val/test and the same frames at the Δ level (cheap_train, cheap_val, cheap_test)."""
    mol, lvl = get_molecule(wildcards), get_delta_level(wildcards)
    out = {s: get_dataset(mol, s) for s in subsets}
    return {**out, **{f"cheap_{s}": get_dataset(mol, s, lvl) for s in subsets}}


def get_delta_training_data(wildcards):
    """What a neural Δ model trains on: train and validation frames at both levels (not the test
    frames: growing the test set must not retrain it)."""
    return get_delta_data(wildcards, ("train", "val"))


def get_delta_cheap_test(wildcards):
    return get_dataset(get_molecule(wildcards), "test", get_delta_level(wildcards))


def get_gaff2_prmtop(molecule, levels):
    """[the molecule's GAFF2 prmtop] when one of the levels is GAFF2 (computed at new geometries
    through OpenMM), else []."""
    gaff2 = any(pconf.level(config, lvl).ENGINE == "empirical" for lvl in levels)
    return [L.file("prmtop", molecule=molecule)] if gaff2 else []


def get_prmtop_flag(paths):
    return f"--prmtop {paths[0]}" if paths else ""


def get_delta_prmtop(wildcards):
    """The GAFF2 prmtop when the Δ level is GAFF2."""
    return get_gaff2_prmtop(get_molecule(wildcards), [get_delta_level(wildcards)])


def get_delta_prmtop_flag(wildcards):
    return get_prmtop_flag(get_delta_prmtop(wildcards))


def get_delta_datasets(molecule):
    levels = pconf.delta_levels(config, molecule)
    return [get_dataset(molecule, s, lvl) for lvl in levels for s in pconf.SUBSETS_ACCURATE]


def get_delta_stability_label(wildcards):
    label = {"model": wildcards.model, "method": "delta", "cheap_level": wildcards.level}
    return q({**label, "n_train": int(wildcards.n), "seed": int(wildcards.seed)})


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
    shell:
        train_command(
            "train-delta --model-name {wildcards.model} --hparams {params.hparams} "
            "--train {input.train} --cheap-train {input.cheap_train} --n-train {wildcards.n} --val {input.val} "
            "--cheap-val {input.cheap_val} --cheap-level {wildcards.level} --cheap-entry {params.level}"
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
        "--out {output} --device {params.device} 2> {log}"
