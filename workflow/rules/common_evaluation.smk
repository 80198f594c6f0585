# Input functions of evaluation, collect (evaluate.smk) and the report (report.smk).


def get_gamma_candidates(name):
    """ASTEROID's γ candidates of one (molecule, model, cheap level, N, seed), as `name` files of
    their run directories (templates: the rule's wildcards fill them)."""
    return asteroid.candidate_runs(config, name)


def get_stability_models(wildcards):
    """The model(s) of one MD stability run, as the method's module names them."""
    return methods.get(wildcards.method).stability_models(config, wildcards)


def get_stability_committee(wildcards):
    """The same method's models of the other training seeds, whose force disagreement every MD step
    records; none for a method that chooses among candidates per seed (γ) or with one seed."""
    own = methods.get(wildcards.method).stability_models(config, wildcards)
    others = [s for s in methods.seeds(config) if s != int(wildcards.seed)]
    if len(own) != 1 or not others:
        return []
    values = dict(wildcards.items())
    return [methods.get(wildcards.method).stability_models(config, {**values, "seed": s})[0] for s in others]


def get_delta_stability_committee(wildcards):
    """The Δ models of the other training seeds (same level and N): their corrections' spread."""
    return [L.run("delta", values=wildcards, seed=s) for s in methods.seeds(config) if s != int(wildcards.seed)]


def get_stability_methods():
    """The {method} of the generic md_stability rule: methods with a plain-model stability run."""
    return "|".join(n for n, m in methods.METHODS.items() if m.has_generic_stability())


def get_stability_label(wildcards):
    cheap = "" if wildcards.level == "none" else wildcards.level  # "none": a method without a cheap level
    n = 0 if wildcards.method == "cheap_only" else int(wildcards.n)
    return q(
        {
            "model": wildcards.model,
            "method": wildcards.method,
            "cheap_level": cheap,
            "n_train": n,
            "seed": int(wildcards.seed),
        }
    )


def get_stability_runs(molecule):
    """The MD stability runs of every active method (each method's module lists its own)."""
    if not config["evaluation"]["md_stability"]["enabled"]:
        return []
    return [p for m in methods.active(config, molecule) for p in m.stability_runs(config, molecule)]


def get_collect_inputs(wildcards):
    mol = get_molecule(wildcards)
    datasets = [get_dataset(mol, s) for s in pconf.subsets(config, mol) if s != "unlabelled"]
    return {
        "evals": get_evaluations(mol),
        "train": get_dataset(mol, "train"),
        "datasets": datasets + get_delta_datasets(mol) + list(get_selection_batch_datasets(mol).values()),
        "selected": list(get_selected_datasets(mol).values()),
        "selection_scores": get_selection_tables(mol)["scores"],
        "selection_validation": get_selection_tables(mol)["validation"],
        "stability": get_stability_runs(mol),
        "bias": get_bias_diagnostics(mol),
        "corrected": get_corrected_diagnostics(mol),
        "unlabelled": get_unlabelled(mol),
        "prmtop": get_collect_prmtop(wildcards),
    }


def get_collect_prmtop(wildcards):
    """The GAFF2 prmtop when a Δ level is GAFF2: a Δ model recommended as the force field needs it."""
    mol = get_molecule(wildcards)
    return get_gaff2_prmtop(mol, pconf.delta_levels(config, mol))


def get_collect_prmtop_flag(wildcards):
    return get_prmtop_flag(get_collect_prmtop(wildcards))


def get_collect_cheap_flags(wildcards):
    mol = wildcards.molecule
    return " ".join(f"{lvl}={get_dataset(mol, f'cheap-{lvl}', lvl)}" for lvl in pconf.cheap_levels(config, mol))


def get_collect_unlabelled_flag(wildcards):
    return " ".join(f"--unlabelled {p}" for p in get_unlabelled(wildcards.molecule))


def get_collect_dataset_flags(wildcards):
    """LEVEL:SUBSET=PATH of every labelled dataset: each subset at its own level, and the train,
    validation and test frames at each Δ level (their cost is counted to the Δ methods)."""
    mol = wildcards.molecule
    out = []
    for s in pconf.subsets(config, mol):
        if s != "unlabelled":
            lvl = pconf.subset_level(config, mol, s)
            out.append(f"{lvl}:{s}={get_dataset(mol, s, lvl)}")
    for lvl in pconf.delta_levels(config, mol):
        out += [f"{lvl}:{s}={get_dataset(mol, s, lvl)}" for s in pconf.SUBSETS_ACCURATE]
    out += [f"{k}={v}" for k, v in get_selection_batch_datasets(mol).items()]
    return " ".join(out)


def get_config_json(wildcards):
    return q(config)


REPORT_FIGURE_GROUPS = {
    "learning_curves": "Accuracy and cost",
    "error_vs_cost": "Accuracy and cost",
    "error_vs_total_cost": "Accuracy and cost",
    "gamma_selection": "ASTEROID",
    "bias_diagnostic": "ASTEROID",
    "cheap_only": "ASTEROID",
    "md_stability": "MD stability",
    "stage_timings": "Compute",
    "label_cost": "Label cost",
    "selection": "Selection",
}


def get_report_figure_group(wildcards):
    return REPORT_FIGURE_GROUPS.get(wildcards.name, "Other")
