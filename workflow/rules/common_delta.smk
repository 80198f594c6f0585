# Input functions of Δ-learning (delta.smk) and bias-corrected pre-training (corrected.smk).


def get_delta_level(wildcards):
    """The Δ level named by the path, checked against delta.cheap_levels."""
    mol = get_molecule(wildcards)
    if wildcards.level not in pconf.delta_levels(config, mol):
        raise WorkflowError(
            f"{wildcards.level!r} is not a Δ-learning level of {mol}; delta.cheap_levels: "
            f"{pconf.delta_levels(config, mol)} (delta.enabled: {config['delta']['enabled']})"
        )
    return wildcards.level


def get_delta_data(wildcards, subsets=pconf.SUBSETS_ACCURATE):
    """Accurate train/val/test and the same frames at the Δ level (cheap_train, cheap_val, cheap_test)."""
    mol, lvl = get_molecule(wildcards), get_delta_level(wildcards)
    out = {s: get_dataset(mol, s) for s in subsets}
    return {**out, **{f"cheap_{s}": get_dataset(mol, s, lvl) for s in subsets}}


def get_delta_training_data(wildcards):
    """What a neural Δ model trains on: train and validation frames at both levels (not the test
    frames: growing the test set must not retrain it)."""
    return get_delta_data(wildcards, ("train", "val"))


def get_delta_cheap_test(wildcards):
    return get_dataset(get_molecule(wildcards), "test", get_delta_level(wildcards))


def get_gaff2_prmtop(molecule, levels):
    """[the molecule's GAFF2 prmtop] when one of the levels is GAFF2 (computed at new geometries
    through OpenMM), else []."""
    gaff2 = any(pconf.level(config, lvl).ENGINE == "empirical" for lvl in levels)
    return [L.file("prmtop", molecule=molecule)] if gaff2 else []


def get_prmtop_flag(paths):
    return f"--prmtop {paths[0]}" if paths else ""


def get_delta_prmtop(wildcards):
    """The GAFF2 prmtop when the Δ level is GAFF2."""
    return get_gaff2_prmtop(get_molecule(wildcards), [get_delta_level(wildcards)])


def get_delta_prmtop_flag(wildcards):
    return get_prmtop_flag(get_delta_prmtop(wildcards))


def get_delta_datasets(molecule):
    levels = pconf.delta_levels(config, molecule)
    return [get_dataset(molecule, s, lvl) for lvl in levels for s in pconf.SUBSETS_ACCURATE]


def get_delta_stability_label(wildcards):
    label = {"model": wildcards.model, "method": "delta", "cheap_level": wildcards.level}
    return q({**label, "n_train": int(wildcards.n), "seed": int(wildcards.seed)})


def get_corrected_level(wildcards):
    """The level named by the path, checked: it needs a cheap pool and a Δ model."""
    mol = get_molecule(wildcards)
    ok = corrected_levels(config, mol)
    if wildcards.level not in ok:
        raise WorkflowError(
            f"{wildcards.level!r} is not a level of bias-corrected pre-training for {mol}; levels: {ok} "
            f"(corrected.enabled: {config['corrected']['enabled']}; a level must be in cheap_levels and delta.cheap_levels)"
        )
    return wildcards.level


def get_corrected_delta_seeds(wildcards):
    """The seed of the path first (its Δ model corrects), then, for a committee, the other seeds."""
    own = int(wildcards.seed)
    committee = config["corrected"]["uncertainty"] != "distance"
    return [own, *([s for s in methods.seeds(config) if s != own] if committee else [])]


def get_corrected_inputs(wildcards):
    """The Δ model of this N and seed first (it corrects), then, for a committee, those of the other seeds."""
    mol, lvl = get_molecule(wildcards), get_corrected_level(wildcards)
    return {
        "delta": [L.run("delta", values=wildcards, seed=s) for s in get_corrected_delta_seeds(wildcards)],
        "cheap": get_dataset(mol, f"cheap-{lvl}", lvl),
        "train": get_dataset(mol, "train"),
        "val": get_dataset(mol, "val"),
        "cheap_val": get_dataset(mol, "val", lvl),
    }
