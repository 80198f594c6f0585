"""The method registry: every method declares what the workflow, collect and the report need,
and those loop over the registry (a new method is one module)."""

import re
from pathlib import Path

import pytest

from pipeline import config as pconf
from pipeline import layout, methods
from pipeline.report import figures, metrics

ROOT = Path(__file__).resolve().parents[3]


def test_every_method_is_described_for_the_report():
    assert methods.METHODS, "no method registered"
    for name, m in methods.METHODS.items():
        assert m.name == name and m.label and re.fullmatch(r"#[0-9a-f]{6}", m.color), name
        assert figures.METHOD_LABELS[name] == m.label and figures.METHOD_COLORS[name] == m.color
        assert m.cheap_labels in ("none", "pool", "own", "pool+own")
        if m.forcefield:
            assert not m.kernel, f"{name}: kernel models are not exported"
    assert len({m.color for m in methods.METHODS.values()}) == len(methods.METHODS), "colours must differ"
    assert set(metrics.ROUTE_METHODS) == {n for n, m in methods.METHODS.items() if m.route}
    assert metrics.ABLATION_METHODS[0] == "standard"


def test_unknown_method_names_the_valid_ones():
    with pytest.raises(KeyError, match="unknown method 'nope'; methods: standard, asteroid"):
        methods.get("nope")


def test_workflow_paths_come_from_the_methods_and_the_layout():
    cfg = pconf.load_config(ROOT / "config.yaml", ROOT / "tests/e2e/config-tiny.yaml")
    runs = [p for m in methods.active(cfg, "ethanol") for p in m.evaluations(cfg, "ethanol")]
    assert len(runs) == len(set(runs)), "two methods claim one run"
    assert all(p.startswith("results/ethanol/") and p.endswith("eval.json") for p in runs)
    assert "{" not in "".join(runs)
    stab = [p for m in methods.active(cfg, "ethanol") for p in m.stability_runs(cfg, "ethanol")]
    assert sorted(stab) == sorted(set(stab)) and len(stab) == 14  # at every N
    for m in methods.active(cfg, "ethanol"):
        if m.has_generic_stability():
            for p in m.stability_runs(cfg, "ethanol"):
                assert m.stability_models(
                    cfg, {"molecule": "ethanol", "model": "egnn", "level": "xtb", "n": 4, "seed": 0}
                )
                assert p.startswith(layout.fill(layout.MOLECULE, molecule="ethanol"))


def test_no_results_path_is_spelled_in_the_rules():
    """Paths live in pipeline/layout.py; the rules and helpers ask it (issue: one owner of the tree)."""
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        text = smk.read_text()
        assert not re.search(r"[\"']results/", text), f"{smk.name} spells a results/ path"


def test_every_rule_has_its_log_and_benchmark_in_the_layout():
    rules = set()
    for smk in (ROOT / "workflow" / "rules").glob("*.smk"):
        rules |= set(re.findall(r"^(?:rule|use rule \w+ as) (\w+)", smk.read_text(), re.M))
    assert rules == set(layout.LOGS) == set(layout.BENCHMARKS)


def test_fill_keeps_the_wildcards_it_is_not_given():
    t = layout.run("standard", molecule="ethanol")
    assert t == "results/ethanol/models/{model}/standard/N{n}_s{seed}/model.pt"
    assert layout.fill(t, {"model": "egnn", "n": 25, "seed": 0}).endswith("egnn/standard/N25_s0/model.pt")
    assert layout.dataset("ethanol", "xtb", "val", "failures") == "results/ethanol/data/xtb/val.failures.csv"


@pytest.mark.parametrize("levels", [["xtb"], ["empirical"], ["xtb", "empirical"]])
def test_corrected_pretraining_runs_on_every_level_that_is_both_cheap_and_delta(levels):
    """Any level with a cheap pool and a Δ model (xTB, GAFF2, DFT) gets bias-corrected pre-training."""
    from snakemake.utils import update_config

    cfg = pconf.load_config(ROOT / "config.yaml", ROOT / "tests/e2e/config-tiny.yaml")
    update_config(cfg, {"delta": {"cheap_levels": levels, "md_stability_levels": []}})
    runs = methods.get("corrected").runs(cfg, "ethanol")
    assert {p.split("/corrected/")[1].split("/")[0] for p in runs} == set(levels)
    # per level: 2 N x 3 γ candidates (1, r1, inf) x (stage 2, fine-tuning)
    assert len(runs) == 12 * len(levels)


def test_corrected_pretraining_has_its_own_gamma_candidates():
    from snakemake.utils import update_config

    cfg = pconf.load_config(ROOT / "config.yaml", ROOT / "tests/e2e/config-tiny.yaml")
    update_config(cfg, {"corrected": {"gammas": [], "relative_gammas": []}})
    runs = methods.get("corrected").runs(cfg, "ethanol")
    assert runs and all("/ginf/" in p for p in runs)  # γ = inf alone: one stage 2 per N
    assert any("/g1/" in p for p in methods.get("asteroid").runs(cfg, "ethanol"))  # ASTEROID keeps its own
