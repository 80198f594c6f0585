"""Label cost model: orbital counts, scaling per engine, calibration from the cache, cache hits,
the plan's wall time, and the budget that stops a run before anything is computed."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from pipeline import config as pconf
from pipeline.data import Dataset
from pipeline.labelling import cost
from pipeline.labelling.cache import LabelCache
from pipeline.labelling.levels import CCSD as CCSDLevel
from pipeline.labelling.levels import DFT as DFTLevel
from pipeline.labelling.levels import make_level
from pipeline.molecules import BUILTIN_SMILES

ROOT = Path(__file__).resolve().parents[3]
CCSD = {"engine": "ccsd", "basis": "6-31G", "frozen_core": True}
CCSD_T = {"engine": "ccsd_t", "basis": "6-31G", "frozen_core": True}
DFT = {"engine": "dft", "xc": "PBE", "basis": "6-31G", "density_fit": True, "grid_level": 1}


def _default():
    return yaml.safe_load((ROOT / "config.yaml").read_text())


def _z(name):
    return cost.molecule_z(_default(), name)


def test_orbital_counts_match_the_issue():
    """Ethanol: 10 active occupied x 26 virtual at 6-31G (fc); aspirin: 34 x 86."""
    eth = cost.orbitals(_z("ethanol"), "6-31G", frozen_core=True)
    asp = cost.orbitals(_z("aspirin"), "6-31G", frozen_core=True)
    assert (eth.n_bf, eth.o, eth.v) == (39, 10, 26)
    assert (asp.n_bf, asp.o, asp.v, asp.n_atoms) == (133, 34, 86, 21)
    assert cost.orbitals(_z("ethanol"), "6-31G").o == 13  # all electrons correlated


def test_molecule_z_from_smiles_and_xyz(tmp_path):
    assert list(_z("ethanol")) == [6, 6, 8, 1, 1, 1, 1, 1, 1]
    (tmp_path / "w.xyz").write_text("3\nwater\nO 0 0 0.117\nH 0 0.757 -0.469\nH 0 -0.757 -0.469\n")
    cfg = _default()
    cfg["molecules"]["water"] = {"xyz": str(tmp_path / "w.xyz")}
    assert list(cost.molecule_z(cfg, "water")) == [8, 1, 1]


def test_free_levels_cost_nothing_and_xtb_little(tmp_path):
    np.savez(tmp_path / "d.npz", R=np.zeros((2, 3, 3)), z=np.array([8, 1, 1]), E=np.zeros(2), F=np.zeros((2, 3, 3)))
    z = _z("aspirin")
    assert cost.model_cpu_s_per_frame(make_level("e", {"engine": "empirical"}), z) == 0.0
    assert cost.model_cpu_s_per_frame(make_level("f", {"engine": "file", "path": str(tmp_path / "d.npz")}), z) == 0.0
    assert 0 < cost.model_cpu_s_per_frame(make_level("x", {"engine": "xtb"}), z) < 0.1


def test_scaling_per_engine():
    """(T) adds c*o^3 v^4; CCSD's correlation term is o^2 v^4; DFT's size term is N^3."""
    eth, benz, asp = _z("ethanol"), _z("benzene"), _z("aspirin")
    ccsd, ccsd_t, dft = make_level("a", CCSD), make_level("b", CCSD_T), make_level("c", DFT)

    def triples(z):
        return cost.alone_cpu_s_per_frame(ccsd_t, z) - cost.alone_cpu_s_per_frame(ccsd, z)

    o3v4 = {n: cost.orbitals(z, "6-31G", frozen_core=True) for n, z in (("e", eth), ("a", asp))}
    ratio = (o3v4["a"].o ** 3 * o3v4["a"].v ** 4) / (o3v4["e"].o ** 3 * o3v4["e"].v ** 4)
    assert triples(asp) / triples(eth) == pytest.approx(ratio)

    def dft_size(z):
        return cost.alone_cpu_s_per_frame(dft, z) - DFTLevel.FIXED_S

    def ccsd_corr(z):
        orb = cost.orbitals(z, "6-31G", frozen_core=True)
        return cost.alone_cpu_s_per_frame(ccsd, z) - CCSDLevel.FIXED_S - CCSDLevel.N4_S * orb.n_bf**4

    assert dft_size(asp) / dft_size(eth) == pytest.approx((133 / 39) ** 3)
    assert ccsd_corr(asp) / ccsd_corr(eth) == pytest.approx((34 / 10) ** 2 * (86 / 26) ** 4)
    # the pipeline estimate is the benchmark fit times one factor
    assert cost.model_cpu_s_per_frame(ccsd, asp) == pytest.approx(
        cost.PIPELINE_FACTOR * cost.alone_cpu_s_per_frame(ccsd, asp)
    )
    # ordering: CCSD(T) > CCSD > DFT for every molecule, and cost grows with size
    for z in (eth, benz, asp):
        assert (
            cost.model_cpu_s_per_frame(ccsd_t, z)
            > cost.model_cpu_s_per_frame(ccsd, z)
            > cost.model_cpu_s_per_frame(dft, z)
        )
    assert (
        cost.model_cpu_s_per_frame(ccsd, asp)
        > cost.model_cpu_s_per_frame(ccsd, benz)
        > cost.model_cpu_s_per_frame(ccsd, eth)
    )
    # aspirin at CCSD(T) is more than 10x aspirin at CCSD (MD17's reason for CCSD)
    assert cost.model_cpu_s_per_frame(ccsd_t, asp) > 10 * cost.model_cpu_s_per_frame(ccsd, asp)


def test_settings_change_the_estimate():
    z = _z("benzene")
    base = cost.model_cpu_s_per_frame(make_level("a", CCSD_T), z)
    assert cost.model_cpu_s_per_frame(make_level("a", {**CCSD_T, "frozen_core": False}), z) > base
    assert cost.model_cpu_s_per_frame(make_level("a", {**CCSD_T, "basis": "cc-pVDZ"}), z) > base
    d = cost.model_cpu_s_per_frame(make_level("c", DFT), z)
    assert cost.model_cpu_s_per_frame(make_level("c", {**DFT, "density_fit": False}), z) > d
    assert cost.model_cpu_s_per_frame(make_level("c", {**DFT, "grid_level": 4}), z) > d
    assert cost.model_cpu_s_per_frame(make_level("c", {**DFT, "xc": "B3LYP"}), z) > d


def test_model_matches_the_measured_costs():
    """The constants reproduce the measured costs (BENCHMARKS.md sections 1 and 6) within 20%:
    ethanol in the default run CCSD(T)/6-31G fc 13.5 and PBE/6-31G 2.6 CPU-s per frame;
    benchmarks/cost_model.py frames: ethanol CCSD(T) 7.4, aspirin CCSD 659, aspirin PBE 33,
    toluene CCSD(T) 627 (not used in the fit)."""
    eth, asp = _z("ethanol"), _z("aspirin")
    for got, want in (
        (cost.model_cpu_s_per_frame(make_level("b", CCSD_T), eth), 13.5),
        (cost.model_cpu_s_per_frame(make_level("c", DFT), eth), 2.6),
        (cost.alone_cpu_s_per_frame(make_level("b", CCSD_T), eth), 7.3),
        (cost.alone_cpu_s_per_frame(make_level("a", CCSD), asp), 659.0),
        (cost.alone_cpu_s_per_frame(make_level("c", DFT), asp), 33.4),
        (cost.alone_cpu_s_per_frame(make_level("b", CCSD_T), _z("toluene")), 627.0),
    ):
        assert got == pytest.approx(want, rel=0.2)


def _put(cache, z, R, cpu_s):
    cache.put(z, R, energy=0.0, forces=np.zeros((len(z), 3)), converged=True, reason="", cpu_s=cpu_s, wall_s=cpu_s)


def test_model_is_pure_and_calibration_reads_the_cache(tmp_path):
    level = make_level("ccsd_t", CCSD_T)
    eth, mal = _z("ethanol"), _z("malonaldehyde")
    model_eth = cost.model_cpu_s_per_frame(level, eth)
    model_mal = cost.model_cpu_s_per_frame(level, mal)
    cache = LabelCache(tmp_path, level.cache_token())
    cal = cost.calibrated_cpu_s_per_frame(level, eth, tmp_path)
    assert cal.cpu_s_per_frame == model_eth and "cost model" in cal.source
    # other molecules' frames at the same level: the model scaled by measured/model
    rng = np.random.default_rng(0)
    for _ in range(4):
        _put(cache, mal, rng.normal(size=(len(mal), 3)), 3.0 * model_mal)
    cal = cost.calibrated_cpu_s_per_frame(level, eth, tmp_path)
    assert cal.cpu_s_per_frame == pytest.approx(3.0 * model_eth)
    assert "model x 3.00" in cal.source and "4 cached frames of other molecules" in cal.source
    # this molecule's own frames: their mean
    for cpu in (10.0, 20.0):
        _put(cache, eth, rng.normal(size=(len(eth), 3)), cpu)
    cal = cost.calibrated_cpu_s_per_frame(level, eth, tmp_path)
    assert cal.cpu_s_per_frame == pytest.approx(15.0) and "2 cached frames of this molecule" in cal.source
    # the pure model never changes with the cache
    assert cost.model_cpu_s_per_frame(level, eth) == model_eth
    # another level's records do not calibrate this one
    other = make_level("ccsd", CCSD)
    assert cost.calibrated_cpu_s_per_frame(other, eth, tmp_path).source == cost.MODEL_SOURCE


def test_calibration_samples_a_bounded_number_of_records(tmp_path):
    level = make_level("dft", DFT)
    eth = _z("ethanol")
    cache = LabelCache(tmp_path, level.cache_token())
    rng = np.random.default_rng(1)
    for i in range(12):
        _put(cache, eth, rng.normal(size=(9, 3)), 1.0 + i)
    assert len(cost.cache_timings(tmp_path, level, limit=5)) == 5
    # records written before z was stored are skipped, a hidden temporary is never read
    old = next(cache.dir.rglob("*.npz"))
    with np.load(old) as f:
        arrays = {k: f[k] for k in f.files if k != "z"}
    np.savez(old, **arrays)
    (old.parent / ".partial.npz.123.tmp.npz").write_bytes(b"half")
    timings = cost.cache_timings(tmp_path, level, limit=100)
    assert len(timings) == 12 and sum(z is None for z, _ in timings) == 1
    assert "11 cached frames of this molecule" in cost.calibrated_cpu_s_per_frame(level, eth, tmp_path).source


def _tiny_config(tmp_path):
    cfg = _default()
    cfg["labelling"]["cache_dir"] = str(tmp_path / "cache")
    cfg["cheap_levels"] = ["dft", "empirical"]
    cfg["splits"].update(train_sizes=[10], val=5, test=5, cheap={"dft": 20, "empirical": 20}, unlabelled=0)
    cfg["labelling"]["max_frames_per_job"] = 5
    return cfg


def test_plan_counts_frames_and_cache_hits(tmp_path):
    cfg = _tiny_config(tmp_path)
    plan = cost.plan_labels(cfg, "ethanol", cores=4, results_dir=tmp_path / "results", calibrate=False)
    by = {lp.level: lp for lp in plan.levels}
    assert set(by) == {"ccsd_t", "dft", "xtb"}  # empirical is free
    assert by["ccsd_t"].n_frames == 20 and by["ccsd_t"].subsets == ["train", "val", "test"]
    # the cheap pool and, for the bias diagnostic, the validation frames at the cheap level
    assert by["dft"].n_frames == 25 and by["dft"].subsets == ["cheap-dft", "val"]
    # the Δ-learning level (delta.cheap_levels: [xtb]) labels the accurate frames too
    assert by["xtb"].n_frames == 20 and by["xtb"].subsets == ["train", "val", "test"]
    assert by["ccsd_t"].n_cached == 0 and not plan.frames_known
    full = plan.cpu_h
    # frames sampled for `train`, 4 of its 10 already labelled at ccsd_t: they cost nothing
    z = _z("ethanol")
    R = np.random.default_rng(2).normal(size=(10, 9, 3))
    (tmp_path / "results" / "ethanol" / "frames").mkdir(parents=True)
    frames = tmp_path / "results" / "ethanol" / "frames" / "train.npz"
    block = pconf.subset_block(cfg, "ethanol", "train").token
    Dataset(R=R, z=z, meta={"block": block}).save(frames)
    level = pconf.level(cfg, "ccsd_t")
    cache = LabelCache(cfg["labelling"]["cache_dir"], level.cache_token())
    for i in (0, 1, 2, 7):
        _put(cache, z, R[i], 1.0)
    plan = cost.plan_labels(cfg, "ethanol", cores=4, results_dir=tmp_path / "results", calibrate=False)
    lp = {lp.level: lp for lp in plan.levels}["ccsd_t"]
    assert lp.n_cached == 4 and lp.n_to_label == 16
    # a frames file left by another config (another block of the trajectory) is not trusted
    Dataset(R=R, z=z, meta={"block": block.replace("front:0", "front:1")}).save(frames)
    stale = cost.plan_labels(cfg, "ethanol", cores=4, results_dir=tmp_path / "results", calibrate=False)
    assert {lp.level: lp for lp in stale.levels}["ccsd_t"].n_cached == 0
    Dataset(R=R, z=z, meta={"block": block}).save(frames)
    assert plan.cpu_h == pytest.approx(full - 4 * lp.cpu_s_per_frame / 3600)
    # chunks of 5: train [0,5) has 2 left, [5,10) 4 left; val, test 5 each
    assert sorted(np.round(np.array(lp.chunks) / lp.cpu_s_per_frame).astype(int)) == [2, 4, 5, 5]


def test_the_plan_sections_give_the_plan_of_the_whole_config(tmp_path):
    """The label_plan rule sees only cost.plan_config of the config: its plan (Δ-learning labels and
    each seed's selected frames included) must be the one the DAG-time preview makes from the whole config."""
    cfg = _tiny_config(tmp_path)
    cfg["training"]["seeds"] = [0, 1]
    cfg["splits"]["train_sizes"] = [5, 10]
    cfg["selection"].update(enabled=True, level="dft", committee="standard", methods=["standard"])
    pconf.check_config(cfg)
    assert pconf.delta_levels(cfg, "ethanol"), "the tiny config labels Δ frames"
    assert pconf.selection_subsets(cfg, "ethanol") == ["sel-s0-r1", "sel-s1-r1"], "and each seed's picks"
    whole = cost.plan_labels(cfg, "ethanol", cores=2, calibrate=False)
    part = cost.plan_labels(cost.plan_config(cfg), "ethanol", cores=2, calibrate=False)
    assert cost.plan_table(part).equals(cost.plan_table(whole))


def test_wall_time_is_total_over_cores_or_the_longest_chunk(tmp_path):
    cfg = _tiny_config(tmp_path)
    plan = cost.plan_labels(cfg, "ethanol", cores=2, calibrate=False)
    chunks = [c for lp in plan.levels for c in lp.chunks]
    assert plan.wall_h == pytest.approx(max(sum(chunks) / 2, max(chunks)) / 3600)
    plan.cores = 1000  # more cores than chunks: the longest chunk bounds the wall time
    assert plan.wall_h == pytest.approx(max(chunks) / 3600)
    plan.cores, plan.threads = 4, 2
    assert plan.wall_h == pytest.approx(max(sum(chunks) / 4, max(chunks) / 2) / 3600)


def test_preview_states_the_cores_it_assumed_and_where_they_come_from(tmp_path):
    """The wall time is quoted at a core count the user can trace: --cores, the machine's (--cores all),
    or a cluster's label jobs at once x their CPUs."""
    assert cost.label_cores(False, 8, None, 1, machine=2) == (8, "--cores 8")
    assert cost.label_cores(False, 2, None, 4, machine=2) == (2, "all of this machine's cores (--cores all)")
    cluster = cost.label_cores(True, 2, 100, 4, machine=2)  # the workstation's cores do not count
    assert cluster == (400, "--jobs 100 label jobs at once x labelling.threads 4 CPUs each")
    assert cost.label_cores(True, None, 2**63 - 1, 1, machine=2)[0] == 10000  # --jobs unlimited
    cfg = _tiny_config(tmp_path)
    plan = cost.plan_labels(cfg, "ethanol", cluster[0], cores_from=cluster[1], calibrate=False)
    text = cost.format_plan(plan)
    assert "; 400 cores: --jobs 100 label jobs at once x labelling.threads 4 CPUs each;" in text.splitlines()[0]
    assert "wall time at 400 cores" in text
    assert "--cores 2" not in text


def test_label_jobs_are_sized_by_the_level_and_cover_each_subset_once(tmp_path):
    """frames_per_chunk / chunk_frames: the workflow's label jobs, the plan's chunks and the label jobs'
    cluster requests use this one definition."""
    from pipeline.labelling.runner import n_chunks

    cfg = pconf.load_config(ROOT / "config.yaml")
    # about labelling.job_cpu_minutes (20) each: 100 CCSD(T) frames of ~14 s are 2 jobs, a 4,000-frame
    # xTB pool 2 jobs (labelling.max_frames_per_job 2,000), aspirin CCSD (~20 min a frame) 1 frame a job
    assert cost.frames_per_chunk(cfg, "ethanol", "ccsd_t", "train") == 50
    assert cost.frames_per_chunk(cfg, "ethanol", "xtb", "cheap-xtb") == 2000
    assert cost.frames_per_chunk(cfg, "aspirin", "ccsd", "val") == 1
    cfg = _tiny_config(tmp_path)
    for level, subset in pconf.labelling_tasks(cfg, "ethanol"):
        if not pconf.level(cfg, level).COMPUTED:
            continue
        n = pconf.subset_size(cfg, "ethanol", subset)
        size = cost.frames_per_chunk(cfg, "ethanol", level, subset)
        k = n_chunks(n, size)
        frames = [cost.chunk_frames(cfg, "ethanol", level, subset, i) for i in range(k)]
        assert sum(frames) == n and all(0 < f <= size for f in frames), (level, subset)
        assert cost.chunk_frames(cfg, "ethanol", level, subset, k) == 0


def test_budget_refuses_with_estimate_budget_and_ways_out(tmp_path):
    cfg = _tiny_config(tmp_path)
    plan = cost.plan_labels(cfg, "ethanol", cores=2, calibrate=False)
    cfg["labelling"].update(max_cpu_hours=plan.cpu_h * 2, max_wall_hours=plan.wall_h * 2)
    cost.check_budget(plan, cfg)  # within
    cfg["labelling"]["max_cpu_hours"] = plan.cpu_h / 2
    with pytest.raises(cost.BudgetExceeded) as err:
        cost.check_budget(plan, cfg)
    msg = str(err.value)
    assert f"{cost._fmt_h(plan.cpu_h)} CPU-hours > labelling.max_cpu_hours" in msg
    for way in (
        "raise labelling.max_cpu_hours",
        "fewer frames",
        "more --cores",
        "cheaper accurate level",
        "`file` level",
        "accurate_level: ccsd",
        "Nothing was computed",
        "EXCEEDED",
    ):
        assert way in msg
    cfg["labelling"].update(max_cpu_hours=None, max_wall_hours=plan.wall_h / 3)
    with pytest.raises(cost.BudgetExceeded, match="wall time at 2 cores > labelling.max_wall_hours"):
        cost.check_budget(plan, cfg)
    plan.cores = 1000  # the longest chunk sets the wall time: more cores would not help
    with pytest.raises(cost.BudgetExceeded, match="a smaller labelling.job_cpu_minutes"):
        cost.check_budget(plan, cfg)
    cfg["labelling"].update(max_cpu_hours=None, max_wall_hours=None)
    cost.check_budget(plan, cfg)


def test_default_config_fits_its_budget_for_every_builtin_molecule_on_32_cores():
    """The per-molecule defaults finish within the default budget on 32 cores (aspirin at CCSD)."""
    cfg = _default()
    assert pconf.accurate_level(cfg, "aspirin") == "ccsd"
    assert pconf.accurate_level(cfg, "benzene") == "ccsd_t"
    for mol in BUILTIN_SMILES:
        plan = cost.plan_labels(cfg, mol, cores=32, calibrate=False)
        cost.check_budget(plan, cfg)
    asp = cost.plan_labels(cfg, "aspirin", cores=32, calibrate=False)
    assert "molecules.aspirin.accurate_level" in cost.format_plan(asp, cfg)
    cfg_t = copy.deepcopy(cfg)
    cfg_t["molecules"]["aspirin"]["accurate_level"] = "ccsd_t"
    with pytest.raises(cost.BudgetExceeded):
        cost.check_budget(cost.plan_labels(cfg_t, "aspirin", cores=32, calibrate=False), cfg_t)


def test_plan_table_columns():
    cfg = _default()
    table = cost.plan_table(cost.plan_labels(cfg, "ethanol", cores=2, calibrate=False))
    assert list(table.columns) == cost.PLAN_COLUMNS
    assert set(table["level"]) == {"ccsd_t", "xtb"} and (table["cpu_h"] > 0).all()
    json.dumps(table.to_dict(orient="records"))  # plain values


def test_plan_command_prints_writes_and_refuses(tmp_path, capsys):
    from pipeline.cli import main

    out = tmp_path / "plan.csv"
    assert (
        main(
            [
                "plan",
                "--config",
                str(ROOT / "config.yaml"),
                "--molecule",
                "aspirin",
                "--cores",
                "32",
                "--results-dir",
                str(tmp_path / "results"),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "Label cost preview for aspirin" in err and "(within)" in err
    import pandas as pd

    table = pd.read_csv(out)
    assert list(table.columns) == cost.PLAN_COLUMNS and set(table["level"]) == {"ccsd", "xtb"}
    (tmp_path / "small.yaml").write_text("labelling: {max_cpu_hours: 1}\n")
    assert (
        main(
            [
                "plan",
                "--config",
                str(ROOT / "config.yaml"),
                str(tmp_path / "small.yaml"),
                "--molecule",
                "aspirin",
                "--cores",
                "32",
                "--results-dir",
                str(tmp_path / "results"),
            ]
        )
        == 1
    )
    assert "label budget exceeded" in capsys.readouterr().err
    assert (
        main(
            [
                "plan",
                "--config",
                str(ROOT / "config.yaml"),
                str(tmp_path / "small.yaml"),
                "--molecule",
                "aspirin",
                "--no-budget",
                "--results-dir",
                str(tmp_path / "results"),
            ]
        )
        == 0
    )
