# Sampling: GAFF2 parameters, Langevin MD, seeded disjoint splits.


rule gaff2:
    input:
        get_molecule_inputs,
    output:
        prmtop=L.file("prmtop"),
        inpcrd=L.file("inpcrd"),
        sdf=L.file("sdf"),
    log:
        L.log("gaff2"),
    benchmark:
        L.benchmark("gaff2")
    conda:
        "../../envs/md.yaml"
    resources:
        **get_resources("gaff2"),
    params:
        molecule=get_molecule_spec,
        seed=config["sampling"]["seed"],
    shell:
        "python -m pipeline gaff2 --molecule {params.molecule} --seed {params.seed} "
        "--prmtop {output.prmtop} --inpcrd {output.inpcrd} --sdf {output.sdf} --tool-log {log} 2>> {log}"


rule md:
    input:
        prmtop=rules.gaff2.output.prmtop,
        inpcrd=rules.gaff2.output.inpcrd,
    output:
        traj=L.file("trajectory"),
        log_csv=L.file("thermo"),
    log:
        L.log("md"),
    benchmark:
        L.benchmark("md")
    conda:
        "../../envs/md.yaml"
    resources:
        **get_resources("md"),
    params:
        sampling=get_sampling,
    shell:
        "python -m pipeline md --prmtop {input.prmtop} --inpcrd {input.inpcrd} --sampling {params.sampling} "
        "--name {wildcards.molecule} --out {output.traj} --log-csv {output.log_csv} 2> {log}"


rule import_level:
    input:
        get_import_source,
    output:
        L.file("imported"),
    log:
        L.log("import_level"),
    benchmark:
        L.benchmark("import_level")
    conda:
        "../../envs/md.yaml"
    resources:
        **get_resources("import_level"),
    params:
        level=get_level_entry,
    shell:
        "python -m pipeline import --level-name {wildcards.level} --level {params.level} --out {output} 2> {log}"


rule frames:
    input:
        get_frames_source,
    output:
        L.file("frames"),
    log:
        L.log("frames"),
    benchmark:
        L.benchmark("frames")
    wildcard_constraints:
        subset="train|val|test|unlabelled|cheap-[A-Za-z0-9_]+",  # a selection's batches: select_frames
    conda:
        "../../envs/md.yaml"
    resources:
        **get_resources("frames"),
    params:
        block=get_frames_block,
        seed=config["splits"]["seed"],
    shell:
        "python -m pipeline frames --source {input} --subset {wildcards.subset} --block {params.block} "
        "--seed {params.seed} --out {output} 2> {log}"
