# Evaluation: every trained model on the accurate test set, the sGDML baseline, MD stability,
# and the tidy tables (results.csv, gamma selection, label costs, stability).


rule evaluate:
    input:
        model="results/{molecule}/models/{run}/model.pt",
        test=get_test_data,
    output:
        json="results/{molecule}/models/{run}/eval.json",
        predictions="results/{molecule}/models/{run}/predictions.npz",
    wildcard_constraints:
        run="[A-Za-z0-9_./-]+",
    params:
        device=config["training"]["device"],
    resources:
        **get_resources("evaluate"),
    log:
        "results/logs/{molecule}/evaluate/{run}.log",
    benchmark:
        "results/benchmarks/{molecule}/evaluate/{run}.tsv"
    conda:
        "../../envs/train.yaml"
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
    params:
        sgdml=get_sgdml_settings,
    threads: 2
    resources:
        **get_resources("sgdml"),
    log:
        "results/logs/{molecule}/sgdml/N{n}.log",
    benchmark:
        "results/benchmarks/{molecule}/sgdml/N{n}.tsv"
    conda:
        "../../envs/report.yaml"
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
    wildcard_constraints:
        method="standard|asteroid|cheap_only",
    params:
        settings=get_stability_settings,
        label=get_stability_label,
        device=config["training"]["device"],
    resources:
        **get_resources("md_stability"),
    log:
        "results/logs/{molecule}/stability/{model}/{method}/{level}/N{n}_s{seed}.log",
    benchmark:
        "results/benchmarks/{molecule}/md_stability/{model}/{method}_{level}_N{n}_s{seed}.tsv"
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m pipeline md-stability --model {input.models} --start {input.start} "
        "--md-stability {params.settings} --label {params.label} --seed {wildcards.seed} --out {output} "
        "--device {params.device} 2> {log}"


rule collect:
    input:
        unpack(get_collect_inputs),
    output:
        results="results/{molecule}/results.csv",
        gamma="results/{molecule}/gamma_selection.csv",
        costs="results/{molecule}/label_costs.csv",
        stability="results/{molecule}/stability.csv",
    params:
        cheap=get_collect_cheap_flags,
        datasets=get_collect_dataset_flags,
        unlabelled=get_collect_unlabelled_flag,
    resources:
        **get_resources("collect"),
    log:
        "results/logs/{molecule}/collect.log",
    benchmark:
        "results/benchmarks/{molecule}/collect/collect.tsv"
    conda:
        "../../envs/report.yaml"
    shell:
        "python -m pipeline collect --molecule {wildcards.molecule} --evals {input.evals} --train {input.train} "
        "--cheap {params.cheap} {params.unlabelled} --datasets {params.datasets} --stability {input.stability} "
        "--out-results {output.results} --out-gamma {output.gamma} --out-costs {output.costs} "
        "--out-stability {output.stability} 2> {log}"
