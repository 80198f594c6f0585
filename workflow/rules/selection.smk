# Selection in rounds (pipeline/selection.py): with selection.enabled, splits.train_sizes are rounds.
# Round 0 is the random train[:N0]; round r trains a committee on the frames labelled before it,
# scores the candidate pool (the cheap pool of selection.level) and picks the next batch, which is
# labelled as the subset sel-s<seed>-r<round> (label.smk). Standard training and Δ-learning then
# train on each selection's frames (pipeline/methods/selected.py) beside their random-frame runs.


rule train_committee:
    """Member `member` of round `round`'s committee of seed `seed`'s selection, on the frames that
    selection had labelled before the round (a Δ model on selection.level, or a plain model)."""
    input:
        unpack(get_committee_data),
    output:
        **train_outputs("committee"),
    log:
        L.log("train_committee"),
    benchmark:
        L.benchmark("train_committee")
    wildcard_constraints:
        round="[0-9]+",
        member="[0-9]+",
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("train_committee"),
    params:
        command=get_committee_command,
        hparams=get_hparams,
        n_train=get_committee_n_train,
        committee_seed=get_committee_seed,
        stage=get_stage("accurate"),
        training=get_training_common,
        device=config["training"]["device"],
    shell:
        "python -m pipeline {params.command} --model-name {wildcards.model} --hparams {params.hparams} "
        "--train {input.train} --n-train {params.n_train} --val {input.val} --role committee "
        "--stage {params.stage} --training {params.training} --seed {params.committee_seed} "
        "--device {params.device} --threads {threads} --out-model {output.model} "
        "--out-history {output.history} --checkpoint {output.model}.ckpt 2> {log}"


rule select_frames:
    """One round: the committee's disagreement with a diversity term picks the next frames."""
    input:
        unpack(get_select_inputs),
    output:
        frames=L.file("selection_frames"),
        scores=L.file("selection_scores"),
        validation=L.file("selection_val"),
    log:
        L.log("select_frames"),
    benchmark:
        L.benchmark("select_frames")
    wildcard_constraints:
        round="[0-9]+",
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("select_frames"),
    params:
        settings=get_select_settings,
        cheap_val=get_select_cheap_val_flag,
        device=config["training"]["device"],
    shell:
        "python -m pipeline select --committee {input.committee} --kind {params.settings[kind]} "
        "--candidates {input.candidates} --labelled {input.labelled} --n-labelled {params.settings[n_labelled]} "
        "--n-pick {params.settings[n_pick]} --diversity {params.settings[diversity]} --val {input.val} "
        "{params.cheap_val} --seed {wildcards.seed} --round {wildcards.round} --out-frames {output.frames} "
        "--out-scores {output.scores} --out-validation {output.validation} --device {params.device} "
        "--threads {threads} 2> {log}"


rule selected_data:
    """The frames seed `seed`'s selection had labelled by N, at one level: round 0 and each batch."""
    input:
        unpack(get_selected_data_inputs),
    output:
        L.file("selected_data"),
    log:
        L.log("selected_data"),
    benchmark:
        L.benchmark("selected_data")
    conda:
        "../../envs/train.yaml"
    resources:
        **get_resources("selected_data"),
    params:
        n_first=pconf.selection_rounds(config)[0],
    shell:
        "python -m pipeline merge-selected --first {input.first} --n-first {params.n_first} "
        "--batches {input.batches} --batch-frames {input.frames} --out {output} 2> {log}"


use rule train_standard as train_standard_selected with:
    input:
        unpack(get_selected_training_data),
    output:
        **train_outputs("standard_selected"),
    log:
        L.log("train_standard_selected"),
    benchmark:
        L.benchmark("train_standard_selected")
    resources:
        **get_resources("train_standard_selected"),
    params:
        hparams=get_hparams,
        stage=get_stage("accurate"),
        training=get_training_common,
        device=config["training"]["device"],
        role=get_role_flag("standard_selected"),


use rule train_delta as train_delta_selected with:
    input:
        unpack(get_selected_delta_data),
    output:
        **train_outputs("delta_selected"),
    log:
        L.log("train_delta_selected"),
    benchmark:
        L.benchmark("train_delta_selected")
    resources:
        **get_resources("train_delta_selected"),
    params:
        hparams=get_hparams,
        stage=get_stage("accurate"),
        training=get_training_common,
        level=get_level_entry,
        device=config["training"]["device"],
        role=get_role_flag("delta_selected"),


use rule evaluate_delta as evaluate_delta_selected with:
    input:
        model=L.run("delta_selected"),
        test=get_test_data,
        cheap_test=get_delta_cheap_test,
        prmtop=get_delta_prmtop,
    output:
        json=L.run("delta_selected", "eval.json"),
        predictions=L.run("delta_selected", "predictions.npz"),
    log:
        L.log("evaluate_delta_selected"),
    benchmark:
        L.benchmark("evaluate_delta_selected")
    resources:
        **get_resources("evaluate_delta_selected"),


# ASTEROID on selected frames: stage 1 is standard training on them (train_standard_selected), the
# bias of selection.level's pool comes from that model, stage 2 trains on the pool and stage 3
# fine-tunes on the selected frames (γ = inf starts from the shared cheap-only model). The rules that
# record a role are written out (not `use rule`): a role param on train_stage2 or finetune_cheap
# would change their params and retrain every existing run's models (params rerun trigger).
use rule bias as bias_selected with:
    input:
        model=L.run("standard_selected"),
        cheap=get_selected_cheap_data,
    output:
        L.file("bias_selected"),
    log:
        L.log("bias_selected"),
    benchmark:
        L.benchmark("bias_selected")
    resources:
        **get_resources("bias_selected"),


rule train_stage2_selected:
    input:
        cheap=get_selected_cheap_data,
        bias=L.file("bias_selected"),
    output:
        **train_outputs("stage2_selected"),
    log:
        L.log("train_stage2_selected"),
    benchmark:
        L.benchmark("train_stage2_selected")
    wildcard_constraints:
        gamma=L.GAMMA_RE,
    priority: get_chain_priority
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("train_stage2_selected"),
    params:
        hparams=get_hparams,
        stage=get_stage("cheap"),
        training=get_training_common,
        device=config["training"]["device"],
    shell:
        train_command(
            "train-cheap --model-name {wildcards.model} --hparams {params.hparams} --cheap {input.cheap} "
            "--cheap-level {wildcards.level} --bias {input.bias} --gamma {wildcards.gamma} "
            "--role stage2_selected --for-n-train {wildcards.n}"
        )


rule finetune_selected:
    input:
        unpack(get_selected_training_data),
        init=get_selected_finetune_init,
    output:
        **train_outputs("finetune_selected"),
    log:
        L.log("finetune_selected"),
    benchmark:
        L.benchmark("finetune_selected")
    wildcard_constraints:
        gamma=f"{L.GAMMA_RE}|inf",
    priority: get_chain_priority
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("finetune_selected"),
    params:
        stage=get_stage("finetune"),
        training=get_training_common,
        device=config["training"]["device"],
    shell:
        train_command(
            "finetune --init {input.init} --train {input.train} --n-train {wildcards.n} --val {input.val} "
            "--role finetune_selected"
        )


# Corrected pre-training on selected frames: the pool of selection.level relabelled by the Δ models
# of the selections (delta_selected), stage 2 on it, fine-tuning on the selected frames.
use rule correct_pool as correct_pool_selected with:
    input:
        unpack(get_corrected_selected_inputs),
    output:
        pool=L.file("corrected_pool_selected"),
        uncertainty=L.file("corrected_u_selected"),
        csv=L.file("corrected_diag_selected"),
    log:
        L.log("correct_pool_selected"),
    benchmark:
        L.benchmark("correct_pool_selected")
    resources:
        **get_resources("correct_pool_selected"),


rule train_corrected_selected:
    input:
        cheap=L.file("corrected_pool_selected"),
        bias=L.file("corrected_u_selected"),
    output:
        **train_outputs("corrected_selected_stage2"),
    log:
        L.log("train_corrected_selected"),
    benchmark:
        L.benchmark("train_corrected_selected")
    wildcard_constraints:
        gamma=f"{L.GAMMA_RE}|inf",
    priority: get_chain_priority
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("train_corrected_selected"),
    params:
        hparams=get_hparams,
        stage=get_stage("corrected"),
        training=get_training_common,
        device=config["training"]["device"],
    shell:
        train_command(
            "train-cheap --model-name {wildcards.model} --hparams {params.hparams} --cheap {input.cheap} "
            "--cheap-level {wildcards.level} --bias {input.bias} --gamma {wildcards.gamma} "
            "--role corrected_selected_stage2 --for-n-train {wildcards.n}"
        )


rule finetune_corrected_selected:
    input:
        unpack(get_selected_training_data),
        init=L.run("corrected_selected_stage2"),
    output:
        **train_outputs("corrected_selected"),
    log:
        L.log("finetune_corrected_selected"),
    benchmark:
        L.benchmark("finetune_corrected_selected")
    wildcard_constraints:
        gamma=f"{L.GAMMA_RE}|inf",
    priority: get_chain_priority
    conda:
        "../../envs/train.yaml"
    threads: config["training"]["threads"]
    resources:
        **get_resources("finetune_corrected_selected"),
    params:
        stage=get_stage("finetune"),
        training=get_training_common,
        device=config["training"]["device"],
    shell:
        train_command(
            "finetune --init {input.init} --train {input.train} --n-train {wildcards.n} --val {input.val} "
            "--role corrected_selected"
        )
