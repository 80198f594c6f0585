# Evaluation: every trained model on the accurate test set, the sGDML baseline, MD stability,
# and the tidy tables (results.csv, gamma selection, label costs, stability).


rule evaluate:
    input:
        model="results/{molecule}/models/{run}/model.pt",
        test=get_test_data,
    output:
        json="results/{molecule}/models/{run}/eval.json",
        predictions="results/{molecule}/models/{run}/predictions.npz",
    log:
        "results/logs/{molecule}/evaluate/{run}.log",
    benchmark:
        "results/benchmarks/{molecule}/evaluate/{run}.tsv"
    wildcard_constraints:
        run="[A-Za-z0-9_./-]+",
    conda:
        "../../envs/train.yaml"
    resources:
        **get_resources("evaluate"),
    params:
        device=config["training"]["device"],
    shell:
        "python -m pipeline evaluate --model {input.model} --test {input.test} --out-json {output.json} "
        "--out-pred {output.predictions} --device {params.device} 2> {log}"


rule sgdml:
    input:
        unpack(get_sgdml_data),
    output:
        json="results/{molecule}/baselines/sgdml/N{n}/eval.json",
        predictions="results/{molecule}/baselines/sgdml/N{n}/predictions.npz",
        model="results/{molecule}/baselines/sgdml/N{n}/sgdml_model.npz",
    log:
        "results/logs/{molecule}/sgdml/N{n}.log",
    benchmark:
        "results/benchmarks/{molecule}/sgdml/N{n}.tsv"
    conda:
        "../../envs/report.yaml"
    threads: 2
    resources:
        **get_resources("sgdml"),
    params:
        sgdml=get_sgdml_settings,
    shell:
        "python -m pipeline sgdml --train {input.train} --n-train {wildcards.n} --val {input.val} --test {input.test} "
        "--sgdml {params.sgdml} --processes {threads} --out-json {output.json} --out-pred {output.predictions} "
        "--out-model {output.model} 2> {log}"


rule md_stability:
    input:
        models=get_stability_models,
        start=get_test_data,
    output:
        "results/{molecule}/stability/{model}/{method}/{level}/N{n}_s{seed}.csv",
    log:
        "results/logs/{molecule}/stability/{model}/{method}/{level}/N{n}_s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/md_stability/{model}/{method}_{level}_N{n}_s{seed}.tsv"
    wildcard_constraints:
        method="standard|asteroid|cheap_only",
    conda:
        "../../envs/report.yaml"
    resources:
        **get_resources("md_stability"),
    params:
        settings=get_stability_settings,
        label=get_stability_label,
        device=config["training"]["device"],
    shell:
        "python -m pipeline md-stability --model {input.models} --start {input.start} "
        "--md-stability {params.settings} --label {params.label} --seed {wildcards.seed} --out {output} "
        "--device {params.device} 2> {log}"


rule evaluate_delta:
    """A Δ model on the accurate test set: the cheap test labels plus the correction."""
    input:
        model="results/{molecule}/delta/{model}/{level}/N{n}_s{seed}/model.pt",
        test=get_test_data,
        cheap_test=get_delta_cheap_test,
        prmtop=get_delta_prmtop,
    output:
        json="results/{molecule}/delta/{model}/{level}/N{n}_s{seed}/eval.json",
        predictions="results/{molecule}/delta/{model}/{level}/N{n}_s{seed}/predictions.npz",
    log:
        "results/logs/{molecule}/evaluate_delta/{model}/{level}/N{n}_s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/evaluate_delta/{model}/{level}/N{n}_s{seed}.tsv"
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
        json="results/{molecule}/baselines/delta_sgdml/{level}/N{n}/eval.json",
        predictions="results/{molecule}/baselines/delta_sgdml/{level}/N{n}/predictions.npz",
        model="results/{molecule}/baselines/delta_sgdml/{level}/N{n}/sgdml_model.npz",
    log:
        "results/logs/{molecule}/sgdml_delta/{level}/N{n}.log",
    benchmark:
        "results/benchmarks/{molecule}/sgdml_delta/{level}/N{n}.tsv"
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
        models="results/{molecule}/delta/{model}/{level}/N{n}_s{seed}/model.pt",
        start=get_test_data,
        prmtop=get_delta_prmtop,
    output:
        "results/{molecule}/stability/{model}/delta/{level}/N{n}_s{seed}.csv",
    log:
        "results/logs/{molecule}/stability/{model}/delta/{level}/N{n}_s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/md_stability/{model}/delta_{level}_N{n}_s{seed}.tsv"
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


rule bias_diagnostic:
    input:
        unpack(get_bias_diagnostic_data),
        model="results/{molecule}/models/{model}/standard/N{n}_s{seed}/model.pt",
    output:
        "results/{molecule}/models/{model}/bias/{level}/val_N{n}_s{seed}.csv",
    log:
        "results/logs/{molecule}/bias_diagnostic/{model}/{level}/N{n}_s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/bias_diagnostic/{model}/{level}_N{n}_s{seed}.tsv"
    conda:
        "../../envs/train.yaml"
    resources:
        **get_resources("bias_diagnostic"),
    params:
        device=config["training"]["device"],
    shell:
        "python -m pipeline bias-diagnostic --model {input.model} --cheap-val {input.cheap_val} "
        "--accurate-val {input.accurate_val} --cheap-level {wildcards.level} --out {output} "
        "--device {params.device} 2> {log}"


rule collect:
    input:
        unpack(get_collect_inputs),
    output:
        results=report(
            "results/{molecule}/results.csv",
            caption="../report/results.rst",
            category="Tables",
            subcategory="Accuracy and cost",
            labels={"table": "results.csv", "molecule": "{molecule}"},
        ),
        reductions=report(
            "results/{molecule}/reductions.csv",
            caption="../report/reductions.rst",
            category="Tables",
            subcategory="Accuracy and cost",
            labels={"table": "reductions.csv", "molecule": "{molecule}"},
        ),
        gamma=report(
            "results/{molecule}/gamma_selection.csv",
            caption="../report/gamma_selection.rst",
            category="Tables",
            subcategory="ASTEROID",
            labels={"table": "gamma_selection.csv", "molecule": "{molecule}"},
        ),
        costs=report(
            "results/{molecule}/label_costs.csv",
            caption="../report/label_costs.rst",
            category="Tables",
            subcategory="Label cost",
            labels={"table": "label_costs.csv", "molecule": "{molecule}"},
        ),
        stability=report(
            "results/{molecule}/stability.csv",
            caption="../report/stability.rst",
            category="Tables",
            subcategory="MD stability",
            labels={"table": "stability.csv", "molecule": "{molecule}"},
        ),
        bias="results/{molecule}/bias_diagnostic.csv",
        bias_summary=report(
            "results/{molecule}/bias_correlation.csv",
            caption="../report/bias_correlation.rst",
            category="Tables",
            subcategory="ASTEROID",
            labels={"table": "bias_correlation.csv", "molecule": "{molecule}"},
        ),
        forcefield=directory("results/{molecule}/forcefield"),
    log:
        "results/logs/{molecule}/collect.log",
    benchmark:
        "results/benchmarks/{molecule}/collect/collect.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        **get_resources("collect"),
    params:
        cheap=get_collect_cheap_flags,
        datasets=get_collect_dataset_flags,
        unlabelled=get_collect_unlabelled_flag,
        accurate_level=get_accurate_level,
        prmtop=get_collect_prmtop_flag,
    shell:
        "python -m pipeline collect --molecule {wildcards.molecule} --evals {input.evals} --train {input.train} "
        "--cheap {params.cheap} {params.unlabelled} --datasets {params.datasets} --stability {input.stability} "
        "--bias-diagnostics {input.bias} --accurate-level {params.accurate_level} "
        "--out-results {output.results} --out-reductions {output.reductions} --out-gamma {output.gamma} "
        "--out-costs {output.costs} --out-stability {output.stability} --out-bias {output.bias} "
        "--out-bias-summary {output.bias_summary} --out-forcefield {output.forcefield} {params.prmtop} 2> {log}"
