# The report: results/{molecule}/report.html (self-contained) and figures/*.png|svg next to it.
# report(...) flags what `snakemake --report report.html|report.zip` shows (captions in
# workflow/report/); the tables are flagged in rule collect, the label plan in rule label_plan.


# Subcategories of the report figures (results/<molecule>/figures/<name>.png) in the Snakemake
# report; a figure not listed here is shown under "Other".


rule report:
    input:
        results=L.table("results"),
        gamma=L.table("gamma"),
        costs=L.table("costs"),
        stability=L.table("stability"),
        reductions=L.table("reductions"),
        bias=L.table("bias"),
        bias_summary=L.table("bias_summary"),
        corrected=L.table("corrected_uncertainty"),
        selection=L.table("selection"),
        selection_validation=L.table("selection_validation"),
        forcefield=L.file("forcefield"),
        plan=L.file("label_plan"),
    output:
        html=report(
            L.file("report"),
            caption="../report/report_html.rst",
            category="Summary",
            labels={"report": "report.html", "molecule": "{molecule}"},
        ),
        figures=report(
            directory(L.file("figures")),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            subcategory=get_report_figure_group,
            labels={"figure": "{name}", "molecule": "{molecule}"},
        ),
        config=L.file("config_used"),
    log:
        L.log("report"),
    benchmark:
        L.benchmark("report")
    conda:
        "../../envs/report.yaml"
    resources:
        **get_resources("report"),
    params:
        config=get_config_json,
        benchmarks=L.benchmarks_dir(),
    shell:
        "python -m pipeline report --molecule {wildcards.molecule} --results {input.results} "
        "--label-costs {input.costs} --gamma {input.gamma} --stability {input.stability} "
        "--reductions {input.reductions} --bias {input.bias} --bias-summary {input.bias_summary} "
        "--corrected {input.corrected} --selection {input.selection} "
        "--selection-validation {input.selection_validation} "
        "--forcefield {input.forcefield} "
        "--label-plan {input.plan} "
        "--benchmarks-dir {params.benchmarks} --config-json {params.config} --out-config {output.config} "
        "--out-html {output.html} --fig-dir {output.figures} 2> {log}"
