"""Bad input fails at DAG construction (`snakemake -n`) with a message naming the value and the fix."""

import copy
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline import config as pconf

ROOT = Path(__file__).resolve().parents[2]


def _default():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def test_default_config_is_valid():
    cfg = _default()
    pconf.validate_schema(cfg)
    pconf.check_config(cfg)


def test_paper_config_keeps_the_papers_settings_when_merged_over_the_default():
    """config.paper.yaml is used with --configfile over config.yaml: what it does not set is inherited,
    so it must undo the default's laptop choices (64 EGNN features, step budgets, relative gammas)."""
    from snakemake.utils import update_config

    cfg = _default()
    update_config(cfg, yaml.safe_load((ROOT / "config.paper.yaml").read_text()))
    pconf.validate_schema(cfg)
    assert cfg["training"]["hparams"]["egnn"] == {"hidden": 128, "num_layers": 5}
    for stage in ("accurate", "cheap", "corrected", "finetune"):
        assert (
            cfg["training"][stage].get("max_steps") is None and cfg["training"][stage].get("eval_every_steps") is None
        )
    assert cfg["asteroid"]["relative_gammas"] == [] and 0.5 in cfg["asteroid"]["gammas"]
    assert pconf.subset_size(cfg, "ethanol", "test") == 1000 and pconf.subset_size(cfg, "toluene", "test") == 500
    assert pconf.accurate_level(cfg, "aspirin") == "ccsd"


@pytest.mark.parametrize("name", ["config.benchmark.yaml", "config.paper-regime.yaml"])
def test_shipped_overlays_are_valid_merged_over_the_default(name):
    """The benchmark overlays BENCHMARKS.md names are used with --configfile over config.yaml."""
    from snakemake.utils import update_config

    cfg = _default()
    update_config(cfg, yaml.safe_load((ROOT / name).read_text()))
    pconf.validate_schema(cfg)
    pconf.check_config(cfg)
    assert pconf.subset_size(cfg, "ethanol", "test") == 200
    # ASTEROID's stage 2 trains with the corrected pre-training's stage-2 budget (BENCHMARKS.md 16)
    assert cfg["training"]["cheap"] == cfg["training"]["corrected"]


@pytest.mark.parametrize("name", ["config.benchmark-mace.yaml", "config.benchmark-foundation.yaml"])
def test_model_overlays_add_runs_to_the_benchmark_run_without_moving_its_data(name):
    """The MACE and SO3LR overlays go over config.yaml + config.benchmark.yaml in the same run: they
    may change which models train, never the frames, levels, pools or training budgets."""
    from snakemake.utils import update_config

    bench = _default()
    update_config(bench, yaml.safe_load((ROOT / "config.benchmark.yaml").read_text()))
    cfg = copy.deepcopy(bench)
    update_config(cfg, yaml.safe_load((ROOT / name).read_text()))
    for c in (bench, cfg):  # validation fills the schema's defaults in
        pconf.validate_schema(c)
        pconf.check_config(c)
    data_keys = ("molecules", "sampling", "levels", "accurate_level", "cheap_levels", "splits", "labelling")
    for key in (*data_keys, "asteroid", "delta", "corrected"):
        assert cfg.get(key) == bench.get(key), key
    for stage in ("accurate", "cheap", "corrected", "finetune", "foundation", "hparams"):
        assert cfg["training"][stage] == bench["training"][stage], stage


def test_paper_regime_trains_stage_2_to_a_plateau_and_keeps_the_default_fine_tuning():
    """Stage 2 on the PBE pool gets the long budget (2,500 steps left it 2.4-2.8 kcal/mol/A from PBE,
    BENCHMARKS.md 16); the fine-tuning and standard-training budgets stay those of config.yaml."""
    from snakemake.utils import update_config

    cfg, default = _default(), _default()
    update_config(cfg, yaml.safe_load((ROOT / "config.paper-regime.yaml").read_text()))
    assert cfg["training"]["cheap"]["max_steps"] == 30000 and cfg["training"]["cheap"]["batch_size"] == 32
    assert cfg["training"]["cheap"]["warmup_epochs"] == default["training"]["cheap"]["warmup_epochs"]  # merged
    for stage in ("accurate", "finetune"):
        assert cfg["training"][stage] == default["training"][stage]
    assert 1.0 in cfg["asteroid"]["gammas"]


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c.update(colour="blue"), "Additional properties are not allowed \\('colour'"),
        (lambda c: c["splits"].update(tset=5), "Additional properties are not allowed \\('tset'"),
        (lambda c: c["training"].update(models=["schnet"]), "'schnet' is not one of \\['egnn', 'gemnet', 'mace'\\]"),
        (lambda c: c["sampling"].update(temperature_K=-5), "-5 is less than or equal to the minimum of 0"),
    ],
)
def test_schema_errors(edit, message):
    cfg = _default()
    edit(cfg)
    with pytest.raises(pconf.ConfigError, match=message):
        pconf.validate_schema(cfg)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c.update(targets=["ethanoll"]), "unknown molecule 'ethanoll'.*Add it under `molecules:`"),
        (
            lambda c: (c["molecules"].update(bad={"smiles": "C1CC"}), c.update(targets=["bad"])),
            "cannot parse SMILES 'C1CC'",
        ),
        (lambda c: c["levels"]["dft"].update(basis="6-31GXX"), "unknown basis set '6-31GXX'"),
        (lambda c: c["levels"]["ccsd_t"].update(engine="mp2"), "unknown engine 'mp2'"),
        (lambda c: c["splits"]["cheap"].pop("xtb"), r"no cheap-pool size for level\(s\) \['xtb'\]"),
        (lambda c: c.update(accurate_level="ccsdt"), "unknown level 'ccsdt'; defined levels"),
        (lambda c: c["sampling"].update(n_frames=100), r"need \d+ MD frames but sampling.n_frames is 100"),
        (lambda c: c["delta"].update(cheap_levels=["ccsd_t"]), "delta.cheap_levels: 'ccsd_t' is the accurate level"),
        (
            lambda c: c["delta"].update(cheap_levels=["dft"], md_stability_levels=["xtb"]),
            r"delta.md_stability_levels: \['xtb'\] are not in delta.cheap_levels",
        ),
        (
            lambda c: (
                c["levels"].update(md17={"engine": "file", "path": str(ROOT / "config.yaml")}),
                c["delta"].update(cheap_levels=["md17"]),
            ),
            "'md17' is an imported",
        ),
        (
            lambda c: c["selection"].update(enabled=True, level="dft"),
            r"selection.level: 'dft' is not a cheap level of ethanol \['xtb'\]",
        ),
        (
            lambda c: (c["selection"].update(enabled=True), c["delta"].update(enabled=False)),
            r"selection.committee: a Δ model on 'xtb' needs 'xtb' in delta.cheap_levels",
        ),
        (
            lambda c: (
                c["selection"].update(enabled=True, committee="standard"),
                c["delta"].update(enabled=False),
            ),
            r"selection.methods: a Δ model on 'xtb'.*remove delta from selection.methods",
        ),
        (
            lambda c: (c["selection"].update(enabled=True), c["splits"].update(train_sizes=[50])),
            r"splits.train_sizes \[50\] is one round",
        ),
        (
            lambda c: (c["selection"].update(enabled=True), c["splits"].update(train_sizes=[25, 5000])),
            r"the rounds pick 4975 frames but the candidate pool splits.cheap.xtb has",
        ),
        (
            lambda c: c["selection"].update(enabled=True, methods=["standard", "corrected"]),
            r"selection.methods: corrected .* needs corrected.enabled: true",
        ),
        (
            lambda c: (
                c.update(cheap_levels=["xtb", "empirical"]),
                c["selection"].update(enabled=True, committee="standard", methods=["corrected"]),
                c["corrected"].update(enabled=True),
                c["delta"].update(cheap_levels=["empirical"], md_stability_levels=[]),
            ),
            r"selection.methods: a Δ model on 'xtb'.*remove corrected from selection.methods",
        ),
        (
            lambda c: c["selection"].update(enabled=True, committee_model="nequip"),
            r"selection.committee_model: unknown model 'nequip'; models: egnn, gemnet, mace",
        ),
    ],
)
def test_semantic_errors(edit, message):
    cfg = _default()
    edit(cfg)
    with pytest.raises(pconf.ConfigError, match=message):
        pconf.check_config(cfg)


def test_imported_file_with_wrong_shapes(tmp_path):
    np.savez(
        tmp_path / "acc.npz",
        R=np.zeros((400, 9, 3)),
        z=np.array([6, 6, 8, 1, 1, 1, 1, 1, 1]),
        E=np.zeros(400),
        F=np.zeros((400, 8, 3)),
        e_unit="kcal/mol",
        r_unit="Ang",
    )
    cfg = _default()
    cfg["levels"]["md17"] = {"engine": "file", "path": str(tmp_path / "acc.npz")}
    cfg["accurate_level"] = "md17"
    with pytest.raises(pconf.ConfigError, match=r"level 'md17'.*F has shape \(400, 8, 3\)"):
        pconf.check_config(cfg)


def test_imported_file_of_another_molecule(tmp_path):
    np.savez(
        tmp_path / "acc.npz",
        R=np.zeros((400, 3, 3)),
        z=np.array([8, 1, 1]),
        E=np.zeros(400),
        F=np.zeros((400, 3, 3)),
        e_unit="eV",
        r_unit="Ang",
    )
    cfg = _default()
    cfg["levels"]["md17"] = {"engine": "file", "path": str(tmp_path / "acc.npz")}
    cfg["accurate_level"] = "md17"
    with pytest.raises(pconf.ConfigError, match="acc.npz holds atoms .*SMILES has.*point levels.md17.path"):
        pconf.check_config(cfg)


def _md17_level(tmp_path, **arrays):
    z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
    rng = np.random.default_rng(0)
    data = dict(
        R=rng.normal(size=(400, 9, 3)),
        E=rng.normal(size=400),
        F=rng.normal(size=(400, 9, 3)),
        e_unit="kcal/mol",
        r_unit="Ang",
    )
    data.update(arrays)
    np.savez(tmp_path / "acc.npz", z=z, **data)
    cfg = _default()
    cfg["levels"]["md17"] = {"engine": "file", "path": str(tmp_path / "acc.npz")}
    cfg["accurate_level"] = "md17"
    return cfg


def test_imported_file_with_nan_forces_fails_at_dag_construction(tmp_path):
    F = np.random.default_rng(1).normal(size=(400, 9, 3))
    F[17, 2, 1] = np.nan
    cfg = _md17_level(tmp_path, F=F)
    with pytest.raises(pconf.ConfigError) as err:
        pconf.check_config(cfg)
    msg = str(err.value)
    assert "level 'md17'" in msg and str(tmp_path / "acc.npz") in msg and "frame 17 key F: NaN" in msg


def test_imported_file_with_unknown_unit_names_the_file_and_config_key(tmp_path):
    cfg = _md17_level(tmp_path, e_unit="kcal_per_mol")
    with pytest.raises(pconf.ConfigError) as err:
        pconf.check_config(cfg)
    msg = str(err.value)
    assert str(tmp_path / "acc.npz") in msg and "e_unit='kcal_per_mol'" in msg
    assert "levels.md17.energy_unit" in msg and "kcal/mol" in msg
    cfg["levels"]["md17"]["energy_unit"] = "kcal/mol"  # the fix the message names
    pconf.check_config(cfg)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda c: c["labelling"]["outliers"].update(action="flag"), "'flag' is not one of \\['drop', 'keep'\\]"),
        (lambda c: c["labelling"]["outliers"].update(max_robust_z=0), "0 is less than or equal to the minimum"),
        (lambda c: c["labelling"]["outliers"].update(cutoff=3), "Additional properties are not allowed \\('cutoff'"),
    ],
)
def test_outlier_settings_are_validated(edit, message):
    cfg = _default()
    edit(cfg)
    with pytest.raises(pconf.ConfigError, match=message):
        pconf.validate_schema(cfg)


def _snakemake(workdir, *args):
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def workdir(tmp_path):
    """A copy of the workflow (Snakefile, rules, schema, default config) in a scratch dir."""
    shutil.copytree(ROOT / "workflow", tmp_path / "workflow")
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "envs", tmp_path / "envs")
    return tmp_path


def test_dag_construction_rejects_bad_input_and_keeps_outputs(workdir):
    finished = workdir / "results" / "ethanol" / "md" / "trajectory.npz"
    finished.parent.mkdir(parents=True)
    finished.write_bytes(b"finished work")
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["levels"]["dft"]["basis"] = "6-31GXX"
    (workdir / "bad.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(workdir, "--configfile", "bad.yaml")
    assert r.returncode != 0
    assert "unknown basis set '6-31GXX'" in r.stdout + r.stderr
    r = _snakemake(workdir, "results/ethanoll/report.html")
    assert r.returncode != 0
    assert "unknown molecule 'ethanoll'" in r.stdout + r.stderr
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["splits"]["tset"] = 3
    (workdir / "bad2.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(workdir, "--configfile", "bad2.yaml")
    assert r.returncode != 0 and "tset" in r.stdout + r.stderr
    F = np.random.default_rng(1).normal(size=(400, 9, 3))
    F[5, 0, 0] = np.nan
    np.savez(
        workdir / "md17.npz",
        R=np.random.default_rng(0).normal(size=(400, 9, 3)),
        z=np.array([6, 6, 8, 1, 1, 1, 1, 1, 1]),
        E=np.zeros(400),
        F=F,
        e_unit="kcal/mol",
        r_unit="Ang",
    )
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["levels"]["md17"] = {"engine": "file", "path": "md17.npz"}
    cfg["accurate_level"] = "md17"
    (workdir / "bad3.yaml").write_text(yaml.safe_dump(cfg))
    r = _snakemake(workdir, "--configfile", "bad3.yaml")
    assert r.returncode != 0 and "md17.npz: non-finite values in 1 frame(s): frame 5 key F: NaN" in r.stdout + r.stderr
    assert finished.read_bytes() == b"finished work"


def test_label_budget_stops_dag_construction_and_touches_nothing(workdir):
    """An estimate over labelling.max_cpu_hours stops `snakemake` before any job: no results, no cache."""
    cfg = yaml.safe_load((workdir / "config.yaml").read_text())
    cfg["labelling"]["max_cpu_hours"] = 0.01
    (workdir / "budget.yaml").write_text(yaml.safe_dump(cfg))
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "budget.yaml"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0
    assert "label budget exceeded" in out and "labelling.max_cpu_hours = 0.01" in out
    assert "Label cost preview for ethanol" in out and "Ways out" in out
    assert not (workdir / "results").exists() and not (workdir / ".cache").exists()


def test_aspirin_dry_run_prints_the_preview_within_its_budget(workdir):
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "32", "results/aspirin/report.html"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "Label cost preview for aspirin (accurate level 'ccsd', from molecules.aspirin.accurate_level" in out
    assert "CCSD/6-31G (fc)" in out and "--cores 32" in out
    assert "labelling.max_cpu_hours 100 CPU-h (within); labelling.max_wall_hours 12 h wall (within)" in out
    assert "label_plan" in out


def test_delta_lists_its_levels_and_switches_off():
    cfg = _default()
    assert pconf.delta_levels(cfg, "ethanol") == ["xtb"] and pconf.delta_stability_levels(cfg, "ethanol") == ["xtb"]
    cfg["delta"] = {"enabled": False}
    pconf.validate_schema(cfg)
    pconf.check_config(cfg)
    assert pconf.delta_levels(cfg, "ethanol") == [] and pconf.delta_stability_levels(cfg, "ethanol") == []
    assert cfg["delta"]["sgdml"] is True  # the rest of the section from the schema's defaults


def _leaves(tree, path=()):
    """(path, value) of every leaf of a nested dict (lists are leaves)."""
    if isinstance(tree, dict) and tree:
        for k, v in tree.items():
            yield from _leaves(v, (*path, k))
    else:
        yield path, tree


def test_every_value_of_config_yaml_is_the_schema_default():
    """config.yaml is the commented copy of the schema's defaults: the two cannot disagree."""
    defaults = pconf.default_config()
    for path, value in _leaves(_default()):
        node = defaults
        for k in path:
            assert k in node, f"config.yaml sets {'.'.join(path)} = {value!r}; the schema has no default for it"
            node = node[k]
        assert node == value and type(node) is type(value), (
            f"config.yaml sets {'.'.join(path)} = {value!r} but the schema's default is {node!r}"
        )
    # and config.yaml leaves nothing to a default of its own: filling it adds only keys it does not list
    assert pconf.validate_schema(_default()) == defaults


def test_snakemake_validate_fills_a_minimal_config():
    """snakemake.utils.validate(set_default=True), as common.smk calls it, fills absent sections and the
    absent keys of present ones (nested, through $ref), like pipeline.config.validate_schema."""
    from snakemake.utils import validate

    minimal = {
        "targets": ["aspirin"],
        "training": {"cheap": {"lr": 1.0e-3}},
        "evaluation": {"sgdml": {"enabled": False}},
    }
    filled = copy.deepcopy(minimal)
    validate(filled, str(pconf.SCHEMA), set_default=True)
    assert filled == pconf.validate_schema(copy.deepcopy(minimal))
    defaults = pconf.default_config()
    assert filled["targets"] == ["aspirin"] and filled["sampling"] == defaults["sampling"]
    assert filled["training"]["cheap"] == {**defaults["training"]["cheap"], "lr": 1.0e-3}
    assert filled["training"]["accurate"] == defaults["training"]["accurate"]
    assert filled["evaluation"]["sgdml"] == {"enabled": False, "sigmas": defaults["evaluation"]["sgdml"]["sigmas"]}
    assert filled["evaluation"]["md_stability"] == defaults["evaluation"]["md_stability"]
    assert filled["labelling"]["outliers"] == {"action": "drop", "max_robust_z": 20, "min_frames": 20}
    pconf.check_config(filled)


def test_every_training_stage_gets_every_setting():
    """Each stage's settings have a default (in the stage or shared by all): the engine's own defaults
    (pipeline.training.engine.StageConfig) are never what the workflow trains with."""
    schema = pconf.load_schema()
    keys = set(schema["$defs"]["stage"]["properties"])
    sections = [
        k for k, v in schema["properties"]["training"]["properties"].items() if v.get("$ref") == "#/$defs/stage"
    ]
    assert {"accurate", "cheap", "corrected", "finetune", "score_matching"} <= set(sections)
    filled = pconf.validate_schema({"training": {s: {} for s in sections}})
    for stage in sections:
        assert set(filled["training"][stage]) == keys, stage


def test_numbers_from_the_command_line_are_numbers():
    """`snakemake --config labelling='{threads: 4}'` delivers '4' (YAML base loader): coerced by the schema."""
    cfg = pconf.coerce_command_line_values(
        {"labelling": {"threads": "4", "max_cpu_hours": "null"}, "splits": {"train_sizes": ["25", "50"], "val": "10"}}
    )
    assert cfg["labelling"] == {"threads": 4, "max_cpu_hours": None}
    assert cfg["splits"] == {"train_sizes": [25, 50], "val": 10}
    cfg = pconf.coerce_command_line_values({"training": {"accurate": {"lr": "1e-3"}, "device": "cpu"}})
    assert cfg["training"]["accurate"]["lr"] == 0.001 and cfg["training"]["device"] == "cpu"
    assert pconf.coerce_command_line_values({"labelling": {"threads": "four"}})["labelling"]["threads"] == "four"


def test_selection_rounds_label_only_their_picks_at_the_levels_that_need_them():
    cfg = _default()
    cfg["selection"].update(enabled=True)
    cfg["splits"].update(train_sizes=[25, 50, 100])
    cfg["training"].update(seeds=[0, 1])
    pconf.validate_schema(cfg)
    pconf.check_config(cfg)
    assert pconf.selection_batch_sizes(cfg) == [25, 50]
    assert pconf.selection_subsets(cfg, "ethanol") == ["sel-s0-r1", "sel-s0-r2", "sel-s1-r1", "sel-s1-r2"]
    assert pconf.subset_size(cfg, "ethanol", "sel-s1-r2") == 50
    assert pconf.subset_level(cfg, "ethanol", "sel-s1-r2") == "ccsd_t"
    tasks = pconf.labelling_tasks(cfg, "ethanol")
    assert ("ccsd_t", "sel-s0-r1") in tasks and ("xtb", "sel-s0-r1") in tasks  # a Δ committee needs xTB there
    cfg["selection"].update(committee="standard", methods=["standard"])
    assert ("xtb", "sel-s0-r1") not in pconf.labelling_tasks(cfg, "ethanol")
    cfg["selection"].update(enabled=False)
    assert pconf.selection_subsets(cfg, "ethanol") == [] and "sel-s0-r1" not in pconf.subsets(cfg, "ethanol")
