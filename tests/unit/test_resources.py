"""Resource requests sized from the config (pipeline/resources.py)."""

import pytest

from pipeline import resources as pres

ETHANOL = pres.Composition(heavy=3, hydrogen=6)
ASPIRIN = pres.Composition(heavy=13, hydrogen=8)
CCSD_T = {"engine": "ccsd_t", "basis": "6-31G", "frozen_core": True}
TINY_STAGE = {"batch_size": 4, "max_epochs": 4, "max_steps": None, "eval_every_steps": None}


def test_basis_function_count_known_and_unknown_basis():
    assert pres.n_basis_functions("6-31G", ETHANOL) == 39  # the reference of the label costs
    assert pres.n_basis_functions("cc-pVDZ", ASPIRIN) == 13 * 14 + 8 * 5
    assert pres.n_basis_functions("some-new-basis", ETHANOL) == pres.n_basis_functions("cc-pvtz", ETHANOL)


def test_label_chunk_time_covers_measured_cost_with_margin():
    # measured: 13.5-18 CPU-s per ethanol CCSD(T)/6-31G frame (BENCHMARKS.md)
    r = pres.label_chunk(CCSD_T, 25, ETHANOL)
    assert 25 * 18 / 60 < r.runtime <= 30
    assert r.mem_mb <= 1500  # measured peak RSS 296 MB


def test_label_chunk_grows_with_frames_molecule_basis_and_shrinks_with_threads():
    base = pres.label_chunk(CCSD_T, 25, ETHANOL)
    assert pres.label_chunk(CCSD_T, 50, ETHANOL).runtime > base.runtime
    assert pres.label_chunk({**CCSD_T, "basis": "cc-pVDZ"}, 25, ETHANOL).runtime > base.runtime
    big = pres.label_chunk({**CCSD_T, "basis": "cc-pVDZ"}, 1, ASPIRIN)
    assert big.runtime > base.runtime and big.mem_mb > base.mem_mb
    dft = {"engine": "dft", "xc": "PBE", "basis": "6-31G"}
    assert pres.label_chunk(dft, 200, ASPIRIN, threads=4).runtime < pres.label_chunk(dft, 200, ASPIRIN).runtime


def test_cheap_engines_ask_little():
    for engine in ("xtb", "empirical"):
        r = pres.label_chunk({"engine": engine}, 25, ETHANOL)
        assert r.mem_mb <= 1500 and r.runtime == pres.MIN_RUNTIME_MIN


def test_runtime_is_capped():
    r = pres.label_chunk({"engine": "ccsd_t", "basis": "cc-pVTZ"}, 50, ASPIRIN)
    assert r.runtime == pres.MAX_RUNTIME_MIN


def test_retry_asks_for_more_memory_and_time():
    first = pres.label_chunk(CCSD_T, 250, ETHANOL, attempt=1)
    second = pres.label_chunk(CCSD_T, 250, ETHANOL, attempt=2)
    assert second.mem_mb > first.mem_mb and second.runtime > 1.8 * first.runtime


def test_tiny_training_asks_little_and_gpu_adds_host_memory():
    cpu = pres.training("egnn", {"hidden": 16, "num_layers": 2}, TINY_STAGE, 8, 4, ETHANOL)
    gpu = pres.training("egnn", {"hidden": 16, "num_layers": 2}, TINY_STAGE, 8, 4, ETHANOL, gpu=True)
    assert cpu == pres.Request(1500, 10)
    assert cpu.mem_mb < gpu.mem_mb <= 5000


def test_training_time_follows_epochs_frames_and_model():
    stage = {"batch_size": 10, "max_epochs": 300, "max_steps": None, "eval_every_steps": None}
    # measured: train_standard, 300 epochs, N = 25/50/100 on ethanol, 276 s for the three jobs
    r = pres.training("egnn", {"hidden": 64}, stage, 100, 25, ETHANOL)
    assert 276 / 3 / 60 < r.runtime <= 60
    longer = pres.training("egnn", {"hidden": 64}, {**stage, "max_epochs": 2000}, 950, 50, ETHANOL)
    assert longer.runtime > r.runtime
    assert (
        pres.training("gemnet", {}, stage, 100, 25, ASPIRIN).runtime
        > pres.training("egnn", {"hidden": 64}, stage, 100, 25, ASPIRIN).runtime
    )


def test_sgdml_memory_follows_the_kernel_matrix():
    small = pres.sgdml(25, 25, 40, 4, ETHANOL)
    paper = pres.sgdml(950, 50, 500, 4, ASPIRIN)
    assert small.mem_mb <= 1500
    kernel_gb = (3 * 950 * 21) ** 2 * 8 / 1e9
    assert paper.mem_mb / 1000 > kernel_gb


@pytest.mark.parametrize(
    "symbols, expected",
    [(["C", "C", "O", "H", "H", "H", "H", "H", "H"], ETHANOL), ([6, 1, 1, 1, 1], pres.Composition(1, 4))],
)
def test_composition(symbols, expected):
    assert pres.composition_of_symbols(symbols) == expected
