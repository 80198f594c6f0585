"""MACE from mace-torch in the registry: what test_physics.py (every model) does not check.

The e3nn import guard (no weakened torch.load), the species table, the average number of
neighbours fitted on data and restored from a checkpoint, the settings in the configs.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

from pipeline.models import build, default_hparams, energy_and_forces, fit_data_statistics, load_model, save_model
from pipeline.models.graph import radius_graph

from .test_physics import SMALL, WATER_POS, WATER_Z, ethanol

ROOT = Path(__file__).resolve().parents[3]
TINY = dict(SMALL["mace"], avg_num_neighbors=None)


def test_import_works_under_weights_only_default_without_weakening_torch_load(tmp_path):
    """In a fresh interpreter (e3nn not imported yet): e3nn's constants file is refused by the
    default torch.load (the trap), building a MACE imports e3nn anyway, and afterwards the default
    torch.load still refuses a pickled ``slice`` (the allow-list entry did not outlive the import)."""
    script = textwrap.dedent(f"""
        import os, pickle, sys
        import torch
        assert "e3nn" not in sys.modules
        import importlib.util
        constants = os.path.join(os.path.dirname(importlib.util.find_spec("e3nn").origin), "o3", "constants.pt")
        try:
            torch.load(constants)
        except pickle.UnpicklingError:
            pass
        else:
            raise SystemExit("e3nn's constants load with the default torch.load: the import guard is not needed")

        from pipeline.models import build, energy_and_forces
        model = build("mace", **{SMALL["mace"]!r})
        z = torch.tensor([8, 1, 1]); pos = torch.tensor({WATER_POS!r}); batch = torch.zeros(3, dtype=torch.long)
        energy, forces = energy_and_forces(model, z, pos, batch)
        assert torch.isfinite(forces).all()

        assert slice not in torch.serialization.get_safe_globals()
        assert "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" not in os.environ  # set by `import mace`, put back
        torch.save({{"s": slice(1, 2)}}, "{tmp_path}/slice.pt")
        for kwargs in ({{}}, {{"weights_only": True}}):
            try:
                torch.load("{tmp_path}/slice.pt", **kwargs)
            except pickle.UnpicklingError:
                pass
            else:
                raise SystemExit(f"torch.load({{kwargs}}) accepted a slice after the MACE import")
        print("ok")
    """)
    r = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300, check=False
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr
    assert "cuequivariance" not in r.stdout  # mace's import notice goes to the log, not to stdout


def test_checkpoint_holds_only_plain_data(tmp_path):
    """A saved MACE has no e3nn/mace objects in it (irreps are strings): it loads with weights_only=True."""
    torch.manual_seed(0)
    model = build("mace", **SMALL["mace"])
    save_model(model, tmp_path / "m.pt", extra={"stage": "standard"})
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    assert ckpt["name"] == "mace" and ckpt["hparams"]["hidden_irreps"] == "8x0e + 8x1o"


def test_avg_num_neighbors_is_fitted_on_data_and_restored_from_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = build("mace", **TINY).double()
    batches = [ethanol(rattle=0.1, seed=s) for s in range(3)]
    fit_data_statistics(model, batches)
    # mean in-degree over atoms with neighbours (mace's compute_avg_num_neighbors), r_max = 3 A
    degrees = torch.cat(
        [torch.bincount(radius_graph(pos, batch, 3.0)[1], minlength=len(z)) for z, pos, batch in batches]
    )
    expected = float(degrees[degrees > 0].double().mean())
    assert 1.0 < expected < 8.0  # not every pair of ethanol is within 3 A
    assert model.hparams["avg_num_neighbors"] == pytest.approx(expected)
    assert all(block.avg_num_neighbors == pytest.approx(expected) for block in model.backbone.net.interactions)

    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert loaded.hparams["avg_num_neighbors"] == pytest.approx(expected)
    z, pos, batch = batches[0]
    e0, f0 = energy_and_forces(model, z, pos, batch)
    e1, f1 = energy_and_forces(loaded, z, pos, batch)
    assert torch.equal(e0, e1) and torch.equal(f0, f1)
    # the value changes the model: it is not a no-op normaliser
    fresh = build("mace", **dict(TINY, avg_num_neighbors=1.0)).double()
    fresh.load_state_dict(model.state_dict())
    assert not torch.allclose(energy_and_forces(fresh, z, pos, batch)[1], f0)

    # a value given explicitly is kept
    fixed = build("mace", **SMALL["mace"])
    fit_data_statistics(fixed, batches)
    assert fixed.hparams["avg_num_neighbors"] == SMALL["mace"]["avg_num_neighbors"]
    assert fixed.backbone.net.interactions[0].avg_num_neighbors == SMALL["mace"]["avg_num_neighbors"]


def test_element_outside_atomic_numbers_is_named():
    model = build("mace", **dict(SMALL["mace"], atomic_numbers=[1, 8]))
    z = torch.tensor(WATER_Z)
    pos = torch.tensor(WATER_POS)
    batch = torch.zeros(3, dtype=torch.long)
    energy_and_forces(model, z, pos, batch)  # water is fine
    with pytest.raises(ValueError, match=r"\[6\].*\[1, 8\].*training.hparams.mace.atomic_numbers"):
        energy_and_forces(model, torch.tensor([8, 1, 6]), pos, batch)
    with pytest.raises(ValueError, match=r"\[120\]"):
        energy_and_forces(model, torch.tensor([8, 1, 120]), pos, batch)


def test_configs_carry_the_cpu_and_the_paper_settings():
    """config.yaml's CPU-sized MACE and, merged over it, config.paper.yaml's rMD17 MACE (= the defaults)."""
    from snakemake.utils import update_config

    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cpu = dict(cfg["training"]["hparams"]["mace"])
    assert set(cpu) <= set(default_hparams("mace"))
    assert (cpu["hidden_irreps"], cpu["correlation"], cpu["num_interactions"], cpu["r_max"]) == (
        "32x0e + 32x1o",
        3,
        2,
        5.0,
    )
    update_config(cfg, yaml.safe_load((ROOT / "config.paper.yaml").read_text()))
    paper = cfg["training"]["hparams"]["mace"]
    defaults = default_hparams("mace")
    assert {k: paper[k] for k in cpu} == {k: defaults[k] for k in cpu}  # scalars and strings
    assert paper["hidden_irreps"] == "256x0e + 256x1o + 256x2e" and paper["max_ell"] == 3
    assert list(paper["radial_MLP"]) == list(defaults["radial_MLP"]) and paper["num_bessel"] == defaults["num_bessel"]
