# Sampling: GAFF2 parameters, Langevin MD, seeded disjoint splits.


rule gaff2:
    input:
        get_molecule_inputs,
    output:
        prmtop="results/{molecule}/md/gaff2.prmtop",
        inpcrd="results/{molecule}/md/gaff2.inpcrd",
        sdf="results/{molecule}/md/molecule.sdf",
    log:
        "results/logs/{molecule}/gaff2.log",
    benchmark:
        "results/benchmarks/{molecule}/gaff2/gaff2.tsv"
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
        traj="results/{molecule}/md/trajectory.npz",
        log_csv="results/{molecule}/md/thermo.csv",
    log:
        "results/logs/{molecule}/md.log",
    benchmark:
        "results/benchmarks/{molecule}/md/md.tsv"
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
        "results/{molecule}/imported/{level}.npz",
    log:
        "results/logs/{molecule}/import/{level}.log",
    benchmark:
        "results/benchmarks/{molecule}/import/{level}.tsv"
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
        "results/{molecule}/frames/{subset}.npz",
    log:
        "results/logs/{molecule}/frames/{subset}.log",
    benchmark:
        "results/benchmarks/{molecule}/frames/{subset}.tsv"
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
