"""The configuration: schema validation and the questions rules ask of it.

Snakemake validates config.yaml against workflow/schemas/config.schema.yaml at parse time
(`snakemake.utils.validate`); `check_config` then checks what a schema cannot (level engines and
their keys, basis sets, functionals, SMILES, split sizes against the trajectory). Both raise
`ConfigError` naming the value and the fix, before any job runs.
"""

from __future__ import annotations

import copy
import itertools
from pathlib import Path

import yaml

from .labelling.levels import Level, LevelError, make_level
from .molecules import MoleculeError, check_spec, get_spec, known_molecules

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
SUBSETS_ACCURATE = ("train", "val", "test")


class ConfigError(ValueError):
    pass


def load_schema() -> dict:
    return yaml.safe_load(SCHEMA.read_text())


def _validator_filling_defaults(schema: dict):
    """A Draft 2020-12 validator that fills each missing property that has a `default:` before
    checking it, as snakemake.utils.validate(..., set_default=True) does (defaults are copied, so no
    two configs share one)."""
    import jsonschema

    base = jsonschema.Draft202012Validator
    check_properties = base.VALIDATORS["properties"]

    def fill_then_check(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(base, {"properties": fill_then_check})(schema)


_SCALARS = {"integer": int, "number": float, "boolean": None}


def _coerce(value: str, types):
    for t in types:
        if t == "boolean" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if t in ("integer", "number"):
            try:
                num = float(value)
            except ValueError:
                continue
            if t == "integer" and num.is_integer():
                return int(num)
            if t == "number":
                return num
        if t == "null" and value.lower() in ("null", "none", "~"):
            return None
    return value


def coerce_command_line_values(config, schema: dict | None = None, root: dict | None = None):
    """Numbers and booleans that arrive as strings, as Snakemake's `--config key='{threads: 4}'`
    delivers every scalar inside a mapping (YAML's base loader): converted where the schema asks for
    an integer, number or boolean (in place; returns `config`)."""
    root = load_schema() if root is None else root
    schema = root if schema is None else schema
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].split("/")[-1]]
    if isinstance(config, dict):
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for k, v in list(config.items()):
            sub = props.get(k, extra if isinstance(extra, dict) else None)
            if sub is not None:
                config[k] = coerce_command_line_values(v, sub, root)
        return config
    if isinstance(config, list) and isinstance(schema.get("items"), dict):
        return [coerce_command_line_values(v, schema["items"], root) for v in config]
    if isinstance(config, str):
        types = schema.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        return _coerce(config, [t for t in types if t in (*_SCALARS, "null")]) if types else config
    return config


def validate_schema(config: dict) -> dict:
    """Schema check outside Snakemake (tests, CLI), with the same schema file Snakemake uses; fills
    the schema's defaults into `config` (in place, as the workflow does) and returns it."""
    errors = sorted(_validator_filling_defaults(load_schema()).iter_errors(config), key=lambda e: list(e.path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.path) or "<top level>"
        raise ConfigError(f"config error at {where}: {e.message}")
    return config


def default_config() -> dict:
    """The configuration with nothing set: every value from the schema's defaults (= config.yaml)."""
    return validate_schema({})


def merge_configs(base: dict, over: dict) -> dict:
    """Recursive dict update, as Snakemake merges --configfile files over config.yaml."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge_configs(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(*paths) -> dict:
    """The configuration of config files merged in --configfile order, checked as the workflow
    checks it (schema defaults filled in); raises ConfigError."""
    config: dict = {}
    for path in paths:
        config = merge_configs(config, yaml.safe_load(Path(path).read_text()) or {})
    validate_schema(config)
    check_config(config)
    return config


def level(config: dict, name: str) -> Level:
    if name not in config["levels"]:
        raise ConfigError(f"unknown level {name!r}; defined levels: {', '.join(sorted(config['levels']))}")
    return make_level(name, config["levels"][name])


def accurate_level(config: dict, molecule: str) -> str:
    return config["molecules"].get(molecule, {}).get("accurate_level", config["accurate_level"])


def cheap_levels(config: dict, molecule: str) -> list[str]:
    return list(config["molecules"].get(molecule, {}).get("cheap_levels", config["cheap_levels"]))


def delta_levels(config: dict, molecule: str) -> list[str]:
    """Cheap levels of the Δ-learning baseline for a molecule ([] when delta.enabled is false)."""
    d = config["delta"]
    return list(d["cheap_levels"]) if d["enabled"] else []


def delta_stability_levels(config: dict, molecule: str) -> list[str]:
    return [lvl for lvl in config["delta"]["md_stability_levels"] if lvl in delta_levels(config, molecule)]


def _check_delta(config: dict, molecule: str) -> None:
    """Δ levels must be computable at the accurate frames (and at any geometry, for predictions)."""
    d = config["delta"]
    if not d["enabled"]:
        return
    acc = accurate_level(config, molecule)
    for lvl in d["cheap_levels"]:
        engine = level(config, lvl)
        if lvl == acc:
            raise ConfigError(
                f"delta.cheap_levels: {lvl!r} is the accurate level of {molecule}; a Δ model corrects a "
                f"cheaper level: remove it"
            )
        if not engine.DELTA_OK:
            raise ConfigError(
                f"delta.cheap_levels: {lvl!r} is an imported ({engine.ENGINE}) level, which has labels "
                f"only on its own frames; a Δ model calls its cheap level at new geometries: use a "
                f"computed level (xtb, dft) or empirical"
            )
        if engine.MD_FRAMES_ONLY:
            not_md = [s for s in SUBSETS_ACCURATE if subset_source(config, molecule, s) != "md"]
            if not_md:
                raise ConfigError(
                    f"delta.cheap_levels: {lvl!r} (GAFF2) labels only frames of the MD, but the "
                    f"{', '.join(not_md)} frames of {molecule} are imported; use a computed level "
                    f"(xtb, dft) for Δ-learning on imported frames"
                )
    extra = [lvl for lvl in d["md_stability_levels"] if lvl not in d["cheap_levels"]]
    if extra:
        raise ConfigError(
            f"delta.md_stability_levels: {extra} are not in delta.cheap_levels {d['cheap_levels']}; "
            f"add them there or remove them"
        )


def _check_corrected(config: dict, molecule: str) -> None:
    c = config["corrected"]
    if not c["enabled"]:
        return
    both = [lvl for lvl in cheap_levels(config, molecule) if lvl in delta_levels(config, molecule)]
    if not both:
        raise ConfigError(
            f"corrected.enabled: no level of {molecule} is both a cheap level {cheap_levels(config, molecule)} and a "
            f"Δ level {delta_levels(config, molecule)} (delta.enabled: {config['delta']['enabled']}); add one to "
            "both lists, or set corrected.enabled: false"
        )
    if c["uncertainty"] == "committee" and len(config["training"]["seeds"]) < 2:
        raise ConfigError(
            "corrected.uncertainty: committee needs Δ models of >= 2 seeds (training.seeds has "
            f"{config['training']['seeds']}); use distance or auto"
        )


# ----------------------------------------------------------------------------- selection in rounds
def selection_enabled(config: dict, molecule: str) -> bool:
    return bool(config["selection"]["enabled"])


def selection_batch(subset: str) -> tuple[int, int] | None:
    """(seed, round) of a selection batch subset (sel-s<seed>-r<round>), else None."""
    from .layout import selection_from_subset

    return selection_from_subset(subset)


def selection_rounds(config: dict) -> list[int]:
    """The number of accurate frames after each round: splits.train_sizes in order (round 0 first)."""
    return sorted(config["splits"]["train_sizes"])


def selection_batch_sizes(config: dict) -> list[int]:
    """Frames picked by rounds 1, 2, ... (the differences of consecutive train sizes)."""
    sizes = selection_rounds(config)
    return [b - a for a, b in itertools.pairwise(sizes)]


def selection_subsets(config: dict, molecule: str) -> list[str]:
    """Every batch subset the selections pick (one selection per training seed), [] when off."""
    from .layout import selection_subset

    if not selection_enabled(config, molecule):
        return []
    n_rounds = len(selection_batch_sizes(config))
    return [selection_subset(s, r) for s in config["training"]["seeds"] for r in range(1, n_rounds + 1)]


def selection_levels(config: dict, molecule: str) -> list[str]:
    """Levels the picked frames are labelled at: the accurate level, and the candidates' cheap
    level when a Δ model (committee or trained method) needs it on them."""
    sel = config["selection"]
    out = [accurate_level(config, molecule)]
    if sel["committee"] == "delta" or SELECTION_DELTA_METHODS & set(sel["methods"]):
        out.append(sel["level"])
    return out


# Methods on selected frames that train a Δ model on them at selection.level (corrected pre-training
# relabels the pool with the Δ models of the selections).
SELECTION_DELTA_METHODS = {"delta", "corrected"}


def _check_selection(config: dict, molecule: str) -> None:
    sel = config["selection"]
    if not sel["enabled"]:
        return
    lvl, cheap = sel["level"], cheap_levels(config, molecule)
    if lvl not in cheap:
        raise ConfigError(
            f"selection.level: {lvl!r} is not a cheap level of {molecule} {cheap}; the candidates are the frames of a "
            f"cheap level's pool: set selection.level to one of {cheap}"
        )
    delta_methods = sorted(SELECTION_DELTA_METHODS & set(sel["methods"]))
    why = "committee" if sel["committee"] == "delta" else "methods" if delta_methods else None
    if why and lvl not in delta_levels(config, molecule):
        raise ConfigError(
            f"selection.{why}: a Δ model on {lvl!r} needs {lvl!r} in delta.cheap_levels "
            f"{delta_levels(config, molecule)} (delta.enabled: {config['delta']['enabled']}); add it there, or set "
            f"selection.committee: standard and remove {', '.join(delta_methods) or 'delta'} from selection.methods"
        )
    if "corrected" in sel["methods"] and not config["corrected"]["enabled"]:
        raise ConfigError(
            "selection.methods: corrected (pre-training on Δ-corrected labels, on the selected frames) needs "
            "corrected.enabled: true; set it, or remove corrected from selection.methods"
        )
    sizes = selection_rounds(config)
    if len(sizes) < 2:
        raise ConfigError(
            f"selection.enabled: splits.train_sizes {sizes} is one round; selection needs at least two sizes "
            "(round 0 is the random train[:N0], each later size one round of picks), e.g. [25, 50, 100]"
        )
    picked, pool = sizes[-1] - sizes[0], subset_size(config, molecule, f"cheap-{lvl}")
    if picked > pool:
        raise ConfigError(
            f"selection: the rounds pick {picked} frames but the candidate pool splits.cheap.{lvl} has {pool}; "
            "grow the pool or shrink splits.train_sizes"
        )
    if sel["committee_model"] not in config["training"]["hparams"]:
        raise ConfigError(
            f"selection.committee_model: unknown model {sel['committee_model']!r}; models: "
            f"{', '.join(config['training']['hparams'])}"
        )


def molecule_spec(config: dict, molecule: str):
    try:
        return get_spec(molecule, config["molecules"])
    except MoleculeError as err:
        raise ConfigError(str(err)) from None


def subset_level(config: dict, molecule: str, subset: str) -> str | None:
    """The level a subset is labelled at (None for the unlabelled pool)."""
    if subset in SUBSETS_ACCURATE or selection_batch(subset) is not None:
        return accurate_level(config, molecule)
    if subset.startswith("cheap-"):
        return subset[len("cheap-") :]
    return None


def subsets(config: dict, molecule: str) -> list[str]:
    out = list(SUBSETS_ACCURATE) + [f"cheap-{lvl}" for lvl in cheap_levels(config, molecule)]
    if config["splits"]["unlabelled"] > 0:
        out.append("unlabelled")
    return out


def bias_diagnostic_levels(config: dict, molecule: str) -> list[str]:
    """Cheap levels whose labels can be computed on the validation frames (the bias diagnostic):
    computed engines, and GAFF2 (empirical) when the validation frames come from the MD.
    Imported (file) levels cannot."""
    md_val = subset_source(config, molecule, "val") == "md"
    out = []
    for name in cheap_levels(config, molecule):
        lvl = level(config, name)
        if lvl.COMPUTED or (lvl.MD_FRAMES_ONLY and md_val):
            out.append(name)
    return out


def labelling_tasks(config: dict, molecule: str) -> list[tuple[str, str]]:
    """Every (level, subset) the workflow labels for `molecule`: each subset at its own level,
    the validation frames at each cheap level of the bias diagnostic, and the accurate frames
    (train, val, test) at each Δ-learning level. The one list the cost preview counts."""
    tasks = [
        (subset_level(config, molecule, s), s)
        for s in subsets(config, molecule)
        if subset_level(config, molecule, s) is not None
    ]
    tasks += [(name, "val") for name in bias_diagnostic_levels(config, molecule)]
    tasks += [(name, s) for name in delta_levels(config, molecule) for s in SUBSETS_ACCURATE]
    for s in selection_subsets(config, molecule):  # the frames each selection round picked
        tasks += [(level_, s) for level_ in selection_levels(config, molecule)]
    return list(dict.fromkeys(tasks))


def splits(config: dict, molecule: str) -> dict:
    """The splits of one molecule: the global `splits`, with the molecule's own `splits` entry
    (validation and test sizes) over it."""
    return {**config["splits"], **config["molecules"].get(molecule, {}).get("splits", {})}


def subset_size(config: dict, molecule: str, subset: str) -> int:
    s = splits(config, molecule)
    if subset == "train":
        return max(s["train_sizes"])
    if subset in ("val", "test", "unlabelled"):
        return s[subset]
    batch = selection_batch(subset)
    if batch is not None:
        return selection_batch_sizes(config)[batch[1] - 1]
    return s["cheap"][subset[len("cheap-") :]]


def subset_source(config: dict, molecule: str, subset: str) -> str:
    """Where a subset's frames come from: 'md', or the name of a `file` level."""
    lvl = subset_level(config, molecule, subset)
    if lvl is not None and config["levels"][lvl]["engine"] == "file":
        return lvl
    return "md"


def _source_sizes(config: dict, molecule: str, source: str) -> dict[str, int]:
    return {
        s: subset_size(config, molecule, s)
        for s in subsets(config, molecule)
        if subset_source(config, molecule, s) == source
    }


def subset_block(config: dict, molecule: str, subset: str):
    """The splits.Block of a subset in the seeded permutation of its source."""
    from .splits import blocks

    return blocks(_source_sizes(config, molecule, subset_source(config, molecule, subset)))[subset]


def source_frames_needed(config: dict, molecule: str, subset: str) -> int:
    """Frames the source of `subset` must hold for all its subsets to be disjoint."""
    from .splits import frames_needed

    return frames_needed(_source_sizes(config, molecule, subset_source(config, molecule, subset)))


def check_molecule(config: dict, molecule: str) -> None:
    """Everything about one molecule that can be checked before a job runs."""
    spec = molecule_spec(config, molecule)
    try:
        check_spec(spec)
    except MoleculeError as err:
        raise ConfigError(str(err)) from None
    acc = accurate_level(config, molecule)
    cheap = cheap_levels(config, molecule)
    for name in [acc, *cheap]:
        level(config, name)
    if acc in cheap:
        raise ConfigError(f"molecule {molecule!r}: accurate level {acc!r} is also listed as a cheap level")
    missing = [c for c in cheap if c not in config["splits"]["cheap"]]
    if missing:
        raise ConfigError(
            f"molecule {molecule!r}: no cheap-pool size for level(s) {missing}; add them under splits.cheap "
            f"(e.g. `cheap: {{{missing[0]}: 500}}`)"
        )
    _check_file_sources(config, molecule, spec)
    _check_delta(config, molecule)
    _check_corrected(config, molecule)
    _check_selection(config, molecule)
    from .splits import frames_needed

    md_total = frames_needed(_source_sizes(config, molecule, "md"))
    if md_total > config["sampling"]["n_frames"]:
        raise ConfigError(
            f"molecule {molecule!r}: the splits need {md_total} MD frames but sampling.n_frames is "
            f"{config['sampling']['n_frames']}; raise sampling.n_frames or shrink the splits"
        )


def check_config(config: dict) -> None:
    """Semantic checks on the whole config (levels, targets). Raises ConfigError."""
    for name, entry in config["levels"].items():
        try:
            make_level(name, entry)
        except (LevelError, ValueError) as err:
            raise ConfigError(str(err)) from None
    for mol in config["targets"]:
        if mol not in known_molecules(config["molecules"]):
            raise ConfigError(
                str(
                    MoleculeError(
                        f"targets: unknown molecule {mol!r}; built-in and configured: "
                        f"{', '.join(known_molecules(config['molecules']))}. "
                        "Add it under `molecules:` with `smiles:` or `xyz:`."
                    )
                )
            )
        check_molecule(config, mol)


def _composition(z) -> dict:
    from collections import Counter

    return dict(sorted(Counter(int(x) for x in z).items()))


def _check_file_sources(config: dict, molecule: str, spec) -> None:
    """Imported files: readable, right shapes and units, enough frames, the molecule's atoms."""
    from .data import DatasetError
    from .splits import frames_needed

    sources = {subset_source(config, molecule, s) for s in subsets(config, molecule)} - {"md"}
    for src in sorted(sources):
        n = frames_needed(_source_sizes(config, molecule, src))
        try:
            ds = level(config, src).load()
        except DatasetError as err:
            raise ConfigError(f"level {src!r}: {err}") from None
        if not ds.labelled:
            raise ConfigError(
                f"level {src!r}: {level(config, src).settings['path']} has no energies/forces (keys E and F); "
                f"a file level supplies labels: point levels.{src}.path at a labelled file"
            )
        if len(ds) < n:
            raise ConfigError(
                f"molecule {molecule!r}: level {src!r} file {level(config, src).settings['path']} has {len(ds)} "
                f"frames but the splits drawn from it need {n}; shrink splits or import a larger file"
            )
        if spec.smiles is not None:
            from rdkit import Chem

            want = _composition(a.GetAtomicNum() for a in Chem.AddHs(Chem.MolFromSmiles(spec.smiles)).GetAtoms())
            if _composition(ds.z) != want:
                raise ConfigError(
                    f"molecule {molecule!r}: level {src!r} file {level(config, src).settings['path']} holds atoms "
                    f"{_composition(ds.z)} (Z: count) but the molecule's SMILES has {want}; point "
                    f"levels.{src}.path at a file of this molecule"
                )
