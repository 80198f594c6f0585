# The report: results/{molecule}/report.html (self-contained) and figures/*.png|svg next to it.
# report(...) flags what `snakemake --report report.html|report.zip` shows (captions in
# workflow/report/); the tables are flagged in rule collect, the label plan in rule label_plan.


rule report:
    input:
        results="results/{molecule}/results.csv",
        gamma="results/{molecule}/gamma_selection.csv",
        costs="results/{molecule}/label_costs.csv",
        stability="results/{molecule}/stability.csv",
        reductions="results/{molecule}/reductions.csv",
        bias="results/{molecule}/bias_diagnostic.csv",
        bias_summary="results/{molecule}/bias_correlation.csv",
        forcefield="results/{molecule}/forcefield",
        plan="results/{molecule}/label_plan.csv",
    output:
        html=report(
            "results/{molecule}/report.html",
            caption="../report/report_html.rst",
            category="Summary",
            labels={"report": "report.html", "molecule": "{molecule}"},
        ),
        figures=report(
            directory("results/{molecule}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            subcategory=get_report_figure_group,
            labels={"figure": "{name}", "molecule": "{molecule}"},
        ),
        config="results/{molecule}/config.used.yaml",
    log:
        "results/logs/{molecule}/report.log",
    benchmark:
        "results/benchmarks/{molecule}/report/report.tsv"
    conda:
        "../../envs/report.yaml"
    resources:
        **get_resources("report"),
    params:
        config=get_config_json,
        benchmarks=BENCH,
    shell:
        "python -m pipeline report --molecule {wildcards.molecule} --results {input.results} "
        "--label-costs {input.costs} --gamma {input.gamma} --stability {input.stability} "
        "--reductions {input.reductions} --bias {input.bias} --bias-summary {input.bias_summary} "
        "--forcefield {input.forcefield} "
        "--label-plan {input.plan} "
        "--benchmarks-dir {params.benchmarks} --config-json {params.config} --out-config {output.config} "
        "--out-html {output.html} --fig-dir {output.figures} 2> {log}"
