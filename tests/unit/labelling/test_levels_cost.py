"""Each level engine class owns its cost: CPU-seconds per frame, a labelling job's request, and
whether a Δ-learning model can use it as its cheap level."""

import numpy as np
import pytest

from pipeline import resources as pres
from pipeline.labelling import cost
from pipeline.labelling.levels import LEVELS, PIPELINE_FACTOR, Level, make_level

ETHANOL_Z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
COMPUTED = {
    "dft": {"engine": "dft", "xc": "PBE", "basis": "6-31G", "density_fit": True, "grid_level": 1},
    "ccsd": {"engine": "ccsd", "basis": "6-31G", "frozen_core": True},
    "ccsd_t": {"engine": "ccsd_t", "basis": "6-31G", "frozen_core": True},
    "xtb": {"engine": "xtb"},
}


@pytest.mark.parametrize("name", sorted(COMPUTED))
def test_computed_levels_own_their_cost_and_request(name):
    level = make_level(name, COMPUTED[name])
    per_frame = level.cpu_s_per_frame(ETHANOL_Z)
    assert per_frame == PIPELINE_FACTOR * level.alone_cpu_s_per_frame(ETHANOL_Z) > 0
    assert per_frame == cost.model_cpu_s_per_frame(level, ETHANOL_Z)  # the budget's number
    assert level.cpu_s_per_frame(list(ETHANOL_Z)) == per_frame  # any sequence of atomic numbers
    r = level.request(10, ETHANOL_Z, threads=1, attempt=1)
    assert r == pres.request(level.job_mem_mb(ETHANOL_Z), 10 * per_frame, 1)
    assert pres.MIN_MEM_MB <= r.mem_mb and pres.MIN_RUNTIME_MIN <= r.runtime <= 60


def test_free_levels_cost_nothing(tmp_path):
    np.savez(tmp_path / "d.npz", R=np.zeros((2, 3, 3)), z=np.array([8, 1, 1]), E=np.zeros(2), F=np.zeros((2, 3, 3)))
    for level in (
        make_level("e", {"engine": "empirical"}),
        make_level("f", {"engine": "file", "path": str(tmp_path / "d.npz")}),
    ):
        assert level.cpu_s_per_frame(ETHANOL_Z) == 0.0
        assert level.request(1000, ETHANOL_Z) == pres.Request(pres.MIN_MEM_MB, pres.MIN_RUNTIME_MIN)


def test_a_computed_engine_without_a_cost_model_says_so():
    class NewEngine(Level):
        ENGINE = "new"

    with pytest.raises(ValueError, match="no cost model for engine 'new'.*NewEngine"):
        NewEngine("n").cpu_s_per_frame(ETHANOL_Z)


def test_delta_flags():
    """Δ-learning calls its cheap level at new geometries: computed engines and GAFF2 (through
    OpenMM) can be one, imported labels cannot; GAFF2 labels exist only for the MD's frames."""
    assert {e for e, cls in LEVELS.items() if cls.DELTA_OK} == {"dft", "ccsd", "ccsd_t", "xtb", "empirical"}
    assert {e for e, cls in LEVELS.items() if cls.MD_FRAMES_ONLY} == {"empirical"}
    # the rule pipeline/config.py applied by engine name: computed, or empirical
    for engine, cls in LEVELS.items():
        assert cls.DELTA_OK == (cls.COMPUTED or engine == "empirical")
