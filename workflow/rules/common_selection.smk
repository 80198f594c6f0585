# Input functions of selection in rounds (selection.smk; pipeline/selection.py, pipeline/methods/selected.py).


def get_selection_level(molecule):
    """The cheap level whose pool holds the candidates (checked with the config)."""
    if not pconf.selection_enabled(config, molecule):
        raise WorkflowError(f"selection is off for {molecule} (selection.enabled: false); set it to true")
    return config["selection"]["level"]


def get_round(wildcards):
    """The round named by the path (1 = the first that picks), checked against splits.train_sizes."""
    r, rounds = int(wildcards.round), len(pconf.selection_batch_sizes(config))
    if not 1 <= r <= rounds:
        raise WorkflowError(
            f"selection round {r} does not exist: splits.train_sizes {pconf.selection_rounds(config)} make rounds "
            f"1..{rounds}"
        )
    return r


def get_selected_n(wildcards):
    """The N of a model trained on selected frames (an N after round 0)."""
    n, sizes = int(wildcards.n), pconf.selection_rounds(config)
    if n not in sizes[1:]:
        raise WorkflowError(
            f"N = {n} is not a selection round's size; splits.train_sizes {sizes} (round 0, N = {sizes[0]}, is random)"
        )
    return n


def get_chain_dataset(molecule, level, n, seed):
    """The frames seed `seed`'s selection had labelled at N, at `level`: train[:N0] for round 0
    (sliced by --n-train), else the merged selected dataset."""
    if n == pconf.selection_rounds(config)[0]:
        return get_dataset(molecule, "train", level)
    return L.file("selected_data", molecule=molecule, level=level, n=n, seed=seed)


def get_committee_n_train(wildcards):
    """Frames a committee of round r trains on: N of round r - 1."""
    return pconf.selection_rounds(config)[get_round(wildcards) - 1]


def get_committee_seed(wildcards):
    return pselection.committee_seed(int(wildcards.seed), int(wildcards.member))


def get_committee_data(wildcards):
    """The accurate frames labelled before round r (and validation); for a Δ committee the same
    frames at the selection level."""
    mol = get_molecule(wildcards)
    lvl, acc = get_selection_level(mol), pconf.accurate_level(config, mol)
    n = get_committee_n_train(wildcards)
    out = {"train": get_chain_dataset(mol, acc, n, wildcards.seed), "val": get_dataset(mol, "val")}
    if config["selection"]["committee"] == "delta":
        out.update(cheap_train=get_chain_dataset(mol, lvl, n, wildcards.seed), cheap_val=get_dataset(mol, "val", lvl))
    return out


def get_committee_command(wildcards, input):
    """`train-delta` with its cheap level's files, or `train-standard`."""
    if config["selection"]["committee"] != "delta":
        return "train-standard"
    lvl = config["selection"]["level"]
    return (
        f"train-delta --cheap-train {input.cheap_train} --cheap-val {input.cheap_val} --cheap-level {lvl} "
        f"--cheap-entry {q(config['levels'][lvl])}"
    )


def get_committee_models(wildcards):
    m, size = config["selection"]["committee_model"], config["selection"]["committee_size"]
    return [L.run("committee", values=wildcards, model=m, member=j) for j in range(size)]


def get_select_inputs(wildcards):
    mol = get_molecule(wildcards)
    lvl, acc = get_selection_level(mol), pconf.accurate_level(config, mol)
    n = get_committee_n_train(wildcards)
    out = {
        "committee": get_committee_models(wildcards),
        "candidates": L.file("frames", molecule=mol, subset=f"cheap-{lvl}"),  # frames: its labels change no pick
        "labelled": get_chain_dataset(mol, acc, n, wildcards.seed),
        "val": get_dataset(mol, "val"),
    }
    if config["selection"]["committee"] == "delta":
        out["cheap_val"] = get_dataset(mol, "val", lvl)
    return out


def get_select_settings(wildcards):
    """n_labelled (frames before the round), n_pick, the committee's kind, diversity, --cheap-val."""
    r = get_round(wildcards)
    return {
        "n_labelled": pconf.selection_rounds(config)[r - 1],
        "n_pick": pconf.selection_batch_sizes(config)[r - 1],
        "kind": config["selection"]["committee"],
        "diversity": config["selection"]["diversity"],
    }


def get_select_cheap_val_flag(wildcards, input):
    return f"--cheap-val {input.cheap_val}" if hasattr(input, "cheap_val") else ""


def get_selected_data_inputs(wildcards):
    """Round 0 (train at the level) and every batch up to N, labelled at the level, with their frames files."""
    mol, n = get_molecule(wildcards), get_selected_n(wildcards)
    if wildcards.level not in pconf.selection_levels(config, mol):
        raise WorkflowError(
            f"selected frames are labelled at {pconf.selection_levels(config, mol)}, not {wildcards.level!r}"
        )
    rounds = range(1, pconf.selection_rounds(config).index(n) + 1)
    subsets = [L.selection_subset(int(wildcards.seed), r) for r in rounds]
    return {
        "first": get_dataset(mol, "train", wildcards.level),
        "batches": [get_dataset(mol, s, wildcards.level) for s in subsets],
        "frames": [L.file("selection_frames", molecule=mol, seed=wildcards.seed, round=r) for r in rounds],
    }


def get_selected_training_data(wildcards):
    """A model on selected frames: the selection's accurate frames at N and the validation frames."""
    mol, n = get_molecule(wildcards), get_selected_n(wildcards)
    acc = pconf.accurate_level(config, mol)
    return {"train": get_chain_dataset(mol, acc, n, wildcards.seed), "val": get_dataset(mol, "val")}


def get_selected_delta_data(wildcards):
    """A Δ model on selected frames: those frames at both levels, and validation at both levels."""
    mol, n = get_molecule(wildcards), get_selected_n(wildcards)
    lvl = get_delta_level(wildcards)
    if lvl != config["selection"]["level"]:
        raise WorkflowError(f"Δ models on selected frames use selection.level {config['selection']['level']!r}")
    return {
        **get_selected_training_data(wildcards),
        "cheap_train": get_chain_dataset(mol, lvl, n, wildcards.seed),
        "cheap_val": get_dataset(mol, "val", lvl),
    }


def get_selected_cheap_data(wildcards):
    """The pool of selection.level (ASTEROID's stage 2 on selected frames), checked."""
    get_selected_n(wildcards)
    if wildcards.level != config["selection"]["level"]:
        raise WorkflowError(
            f"methods on selected frames use the pool of selection.level {config['selection']['level']!r}, "
            f"not {wildcards.level!r}"
        )
    return get_cheap_data(wildcards)


def get_selected_finetune_init(wildcards):
    """ASTEROID's stage 3 on selected frames starts from its stage 2 (γ = inf: the cheap-only model)."""
    if wildcards.gamma == "inf":
        return L.run("cheap_only", values=wildcards)
    return L.run("stage2_selected", values=wildcards)


def get_corrected_selected_inputs(wildcards):
    """As get_corrected_inputs, with the Δ models of the selections at N and their frames."""
    mol, n = get_molecule(wildcards), get_selected_n(wildcards)
    get_selected_cheap_data(wildcards)
    return {
        **get_corrected_inputs(wildcards),
        "delta": [L.run("delta_selected", values=wildcards, seed=s) for s in get_corrected_delta_seeds(wildcards)],
        "train": get_chain_dataset(mol, pconf.accurate_level(config, mol), n, wildcards.seed),
    }


# ----------------------------------------------------------------------------- collect
def get_selection_tables(molecule):
    """Every round's candidate scores and committee-on-validation CSVs ([] when selection is off)."""
    if not pconf.selection_enabled(config, molecule):
        return {"scores": [], "validation": []}
    rounds = range(1, len(pconf.selection_batch_sizes(config)) + 1)
    keys = [dict(molecule=molecule, seed=s, round=r) for s in methods.seeds(config) for r in rounds]
    return {
        "scores": [L.file("selection_scores", **k) for k in keys],
        "validation": [L.file("selection_val", **k) for k in keys],
    }


def get_selected_datasets(molecule):
    """LEVEL:N:SEED -> the frames each selection labelled by N (the costs of models trained on them)."""
    if not pconf.selection_enabled(config, molecule):
        return {}
    return {
        f"{lvl}:{n}:{s}": L.file("selected_data", molecule=molecule, level=lvl, n=n, seed=s)
        for lvl in pconf.selection_levels(config, molecule)
        for n in pconf.selection_rounds(config)[1:]
        for s in methods.seeds(config)
    }


def get_collect_selection_pool_flag(wildcards):
    """The candidates' pool level: collect adds their energies and forces at it to selection.csv."""
    return (
        f"--selection-pool {config['selection']['level']}"
        if pconf.selection_enabled(config, wildcards.molecule)
        else ""
    )


def get_collect_selected_flags(wildcards):
    return " ".join(f"{k}={v}" for k, v in get_selected_datasets(wildcards.molecule).items())


def get_selection_batch_datasets(molecule):
    """The accurate labels of every picked batch (label_costs.csv counts them; the selection level's
    labels of the same frames come from its pool's label cache and are not counted again)."""
    acc = pconf.accurate_level(config, molecule)
    return {f"{acc}:{s}": get_dataset(molecule, s, acc) for s in pconf.selection_subsets(config, molecule)}
