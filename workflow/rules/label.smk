# Labelling: chunked, cached, restartable jobs at computed levels; merged datasets per subset.


rule label_chunk:
    input:
        L.file("frames"),
    output:
        L.file("chunk"),
    log:
        L.log("label_chunk"),
    benchmark:
        L.benchmark("label_chunk")
    priority: get_label_priority
    conda:
        "../../envs/qm.yaml"
    threads: config["labelling"]["threads"]
    resources:
        **get_resources("label_chunk"),
    params:
        level=get_level_entry,
        revision=get_level_revision,  # not passed on: a change reruns the chunk (params trigger)
        bounds=get_chunk_bounds,
        cache_dir=config["labelling"]["cache_dir"],
    shell:
        "OMP_NUM_THREADS={threads} python -m pipeline label --frames {input} --level-name {wildcards.level} "
        "--level {params.level} --start {params.bounds[start]} --stop {params.bounds[stop]} "
        "--cache-dir {params.cache_dir} --threads {threads} --out {output} 2> {log}"


rule dataset:
    input:
        get_dataset_inputs,
    output:
        npz=L.file("dataset"),
        extxyz=L.dataset(sidecar="extxyz"),
        failures=L.dataset(sidecar="failures"),
        outliers=L.dataset(sidecar="outliers"),
    log:
        L.log("dataset"),
    benchmark:
        L.benchmark("dataset")
    conda:
        "../../envs/qm.yaml"
    resources:
        **get_resources("dataset"),
    params:
        level=get_level_entry,
        n_requested=get_n_requested,
        max_failure_fraction=config["labelling"]["max_failure_fraction"],
        outliers=q(config["labelling"]["outliers"]),
    shell:
        "python -m pipeline dataset --level-name {wildcards.level} --level {params.level} --chunks {input} "
        "--n-requested {params.n_requested} --max-failure-fraction {params.max_failure_fraction} "
        "--out {output.npz} --failures {output.failures} --extxyz {output.extxyz} "
        "--outliers {params.outliers} --outliers-csv {output.outliers} 2> {log}"


rule label_plan:
    """The label cost estimate at the start of the run (the report sets it against what was spent).
    No inputs and a high priority: it runs first, before frames and labels exist."""
    output:
        report(
            L.file("label_plan"),
            caption="../report/label_plan.rst",
            category="Tables",
            subcategory="Label cost",
            labels={"table": "label_plan.csv", "molecule": "{molecule}"},
        ),
    log:
        L.log("label_plan"),
    benchmark:
        L.benchmark("label_plan")
    priority: 100
    conda:
        "../../envs/qm.yaml"
    resources:
        **get_resources("label_plan"),
    params:
        config=get_label_plan_config,
        molecule=get_molecule,
    shell:
        "python -m pipeline plan --config-json {params.config} --molecule {params.molecule} --no-budget "
        "--out {output} 2> {log}"
