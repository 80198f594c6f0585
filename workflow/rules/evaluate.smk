# Evaluation: every trained model on the accurate test set, the sGDML baseline, MD stability,
# and the tidy tables (results.csv, gamma selection, label costs, stability).


rule evaluate:
    input:
        model=L.run("any_model"),
        test=get_test_data,
    output:
        json=L.run("any_model", "eval.json"),
        predictions=L.run("any_model", "predictions.npz"),
    log:
        L.log("evaluate"),
    benchmark:
        L.benchmark("evaluate")
    wildcard_constraints:
        run=L.ANY_MODEL_RUN_RE,
    conda:
        "../../envs/train.yaml"
    resources:
        **get_resources("evaluate"),
    params:
        device=config["training"]["device"],
    shell:
        "python -m pipeline evaluate --model {input.model} --test {input.test} --out-json {output.json} "
        "--out-pred {output.predictions} --device {params.device} 2> {log}"


# ASTEROID's γ candidates of one model, cheap level, N and seed in one job (the generic rule, which
# leaves their paths to this one, would run one job each: with the paper's γ grid most of a run's jobs).
rule evaluate_gammas:
    input:
        models=get_gamma_candidates("model.pt"),
        test=get_test_data,
    output:
        json=get_gamma_candidates("eval.json"),
        predictions=get_gamma_candidates("predictions.npz"),
    log:
        L.log("evaluate_gammas"),
    benchmark:
        L.benchmark("evaluate_gammas")
    conda:
        "../../envs/train.yaml"
    resources:
        **get_resources("evaluate_gammas"),
    params:
        device=config["training"]["device"],
    shell:
        "python -m pipeline evaluate --model {input.models} --test {input.test} --out-json {output.json} "
        "--out-pred {output.predictions} --device {params.device} 2> {log}"


rule sgdml:
    input:
        unpack(get_sgdml_data),
    output:
        json=L.run("sgdml", "eval.json"),
        predictions=L.run("sgdml", "predictions.npz"),
        model=L.run("sgdml", "sgdml_model.npz"),
    log:
        L.log("sgdml"),
    benchmark:
        L.benchmark("sgdml")
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
        committee=get_stability_committee,
        start=get_test_data,
    output:
        L.file("stability"),
    log:
        L.log("md_stability"),
    benchmark:
        L.benchmark("md_stability")
    wildcard_constraints:
        method=get_stability_methods(),
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
        "--committee {input.committee} --device {params.device} 2> {log}"


rule bias_diagnostic:
    input:
        unpack(get_bias_diagnostic_data),
        model=L.run("standard"),
    output:
        L.file("bias_val"),
    log:
        L.log("bias_diagnostic"),
    benchmark:
        L.benchmark("bias_diagnostic")
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
            L.table("results"),
            caption="../report/results.rst",
            category="Tables",
            subcategory="Accuracy and cost",
            labels={"table": "results.csv", "molecule": "{molecule}"},
        ),
        reductions=report(
            L.table("reductions"),
            caption="../report/reductions.rst",
            category="Tables",
            subcategory="Accuracy and cost",
            labels={"table": "reductions.csv", "molecule": "{molecule}"},
        ),
        gamma=report(
            L.table("gamma"),
            caption="../report/gamma_selection.rst",
            category="Tables",
            subcategory="ASTEROID",
            labels={"table": "gamma_selection.csv", "molecule": "{molecule}"},
        ),
        costs=report(
            L.table("costs"),
            caption="../report/label_costs.rst",
            category="Tables",
            subcategory="Label cost",
            labels={"table": "label_costs.csv", "molecule": "{molecule}"},
        ),
        stability=report(
            L.table("stability"),
            caption="../report/stability.rst",
            category="Tables",
            subcategory="MD stability",
            labels={"table": "stability.csv", "molecule": "{molecule}"},
        ),
        bias=L.table("bias"),
        bias_summary=report(
            L.table("bias_summary"),
            caption="../report/bias_correlation.rst",
            category="Tables",
            subcategory="ASTEROID",
            labels={"table": "bias_correlation.csv", "molecule": "{molecule}"},
        ),
        corrected=report(
            L.table("corrected_uncertainty"),
            caption="../report/corrected_uncertainty.rst",
            category="Tables",
            subcategory="Corrected pre-training",
            labels={"table": "corrected_uncertainty.csv", "molecule": "{molecule}"},
        ),
        selection=L.table("selection"),
        selection_validation=report(
            L.table("selection_validation"),
            caption="../report/selection_validation.rst",
            category="Tables",
            subcategory="Selection",
            labels={"table": "selection_validation.csv", "molecule": "{molecule}"},
        ),
        forcefield=directory(L.file("forcefield")),
    log:
        L.log("collect"),
    benchmark:
        L.benchmark("collect")
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
        selected=get_collect_selected_flags,
        selection_pool=get_collect_selection_pool_flag,
    shell:
        "python -m pipeline collect --molecule {wildcards.molecule} --evals {input.evals} --train {input.train} "
        "--cheap {params.cheap} {params.unlabelled} --datasets {params.datasets} --stability {input.stability} "
        "--bias-diagnostics {input.bias} --corrected-diagnostics {input.corrected} "
        "--out-corrected {output.corrected} --accurate-level {params.accurate_level} "
        "--out-results {output.results} --out-reductions {output.reductions} --out-gamma {output.gamma} "
        "--out-costs {output.costs} --out-stability {output.stability} --out-bias {output.bias} "
        "--out-bias-summary {output.bias_summary} --out-forcefield {output.forcefield} {params.prmtop} "
        "--selected {params.selected} {params.selection_pool} --selection-scores {input.selection_scores} "
        "--selection-validation {input.selection_validation} --out-selection {output.selection} "
        "--out-selection-validation {output.selection_validation} 2> {log}"
