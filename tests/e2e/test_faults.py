"""Faults through the real workflow: a labelling job SIGKILLed mid-chunk loses nothing; two runs
sharing one label cache at once compute each frame once; a SIGKILLed Snakemake resumes after
--unlock without recomputing what was finished."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from pipeline.data import load_npz
from tests.conftest import cached_entries

from .conftest import make_workdir, snakemake

pytestmark = pytest.mark.e2e
TARGET = "results/ethanol/data/ccsd_t/val.npz"  # 4 CCSD(T) frames in one chunk


def _cached(workdir):
    return cached_entries(workdir / ".cache" / "labels")


def test_sigkilled_labelling_job_resumes_without_recomputing(tmp_path):
    wd = make_workdir(tmp_path)
    snakemake(wd, "results/ethanol/frames/val.npz")  # sampling first, so the kill lands in labelling
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", TARGET, "--configfile", "config-tiny.yaml"]
    proc = subprocess.Popen(cmd, cwd=wd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None and len(_cached(wd)) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job: Snakemake and the labelling process
    proc.wait()
    before = _cached(wd)
    assert 2 <= len(before) < 4, "the kill should land mid-chunk"
    assert not (wd / TARGET).exists()

    snakemake(wd, TARGET, "--unlock")  # a killed Snakemake leaves its lock behind
    snakemake(wd, TARGET, "--rerun-incomplete")
    after = _cached(wd)
    assert len(after) == 4 and len(load_npz(wd / TARGET)) == 4
    assert all(after[p] == t for p, t in before.items()), "frames finished before the kill were not recomputed"


LABEL_TARGETS = [
    "results/ethanol/data/ccsd_t/val.npz",
    "results/ethanol/data/ccsd_t/test.npz",
    "results/ethanol/data/dft/cheap-dft.npz",
]  # 4 + 6 CCSD(T) frames, 12 DFT frames
FRAMES = ["results/ethanol/frames/val.npz", "results/ethanol/frames/test.npz", "results/ethanol/frames/cheap-dft.npz"]


def _dft_workdir(path):
    """A tiny working directory whose cheap levels include PBE (seconds a frame): labelling then
    lasts long enough for two runs to overlap and for a kill to land mid-labelling (xTB is ms)."""
    wd = make_workdir(path)
    with open(wd / "config-tiny.yaml", "a") as f:
        f.write("cheap_levels: [dft, xtb, empirical]\n")
    return wd


def _computed_frames(wd) -> int:
    """Frames the run's labelling jobs computed (not taken from the cache), from their logs."""
    return sum(p.read_text().count(": ok in ") for p in (wd / "results/logs/ethanol/label").rglob("*.log"))


def _snakemake_cmd(cores, *targets):
    return [sys.executable, "-m", "snakemake", "--cores", str(cores), *targets, "--configfile", "config-tiny.yaml"]


def test_two_runs_sharing_one_label_cache_store_each_frame_once_and_intact(tmp_path):
    """Two working directories (two configs of one molecule) with one absolute labelling.cache_dir,
    started at once: every frame is computed once, by whichever run claims it first, stored once and
    whole, and both runs' datasets hold the same labels."""
    cache = tmp_path / "shared-label-cache"
    wds = []
    for name, edit in (("run-a", None), ("run-b", ("seeds: [0]", "seeds: [1]"))):  # two configs
        wd = _dft_workdir(tmp_path / name)
        cfg = (wd / "config-tiny.yaml").read_text().replace("cache_dir: .cache/labels", f"cache_dir: {cache}")
        if edit:
            cfg = cfg.replace(*edit)
        (wd / "config-tiny.yaml").write_text(cfg)
        snakemake(wd, *FRAMES)  # sampling first, so that both runs reach labelling together
        wds.append(wd)
    procs = [
        subprocess.Popen(
            _snakemake_cmd(1, *LABEL_TARGETS), cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        for wd in wds
    ]
    outs = [p.communicate(timeout=1200)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-4000:] for o in outs)

    n_frames = 4 + 6 + 12
    computed = [_computed_frames(wd) for wd in wds]
    assert sum(computed) == n_frames, f"each frame computed once across both runs; computed per run: {computed}"
    assert min(computed) > 0, f"the runs did not overlap (computed per run: {computed}); the test proves nothing"
    entries = cached_entries(cache)
    assert len(entries) == n_frames
    for p in entries:  # whole entries
        with np.load(p) as f:
            assert bool(f["converged"]) and np.isfinite(f["forces"]).all() and np.isfinite(f["energy"])
    assert not [p for p in cache.rglob(".*") if p.is_file()], "no temporaries or claim files left behind"
    for target in LABEL_TARGETS:
        a, b = (load_npz(wd / target) for wd in wds)
        np.testing.assert_array_equal(a.frame_id, b.frame_id)
        np.testing.assert_array_equal(a.E, b.E)
        np.testing.assert_array_equal(a.F, b.F)


def test_sigkilled_snakemake_resumes_after_unlock_without_recomputing(tmp_path):
    """SIGKILL to Snakemake itself (its jobs live on): `snakemake --unlock`, then the same command,
    finishes; nothing finished (sampling, frames, cached labels) is computed again."""
    wd = _dft_workdir(tmp_path)
    proc = subprocess.Popen(
        _snakemake_cmd(2, *LABEL_TARGETS),
        cwd=wd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 600
        while time.time() < deadline and proc.poll() is None and len(_cached(wd)) < 3:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # Snakemake only, not its jobs
        proc.wait()
        before = _cached(wd)
        assert 3 <= len(before) < 22, "the kill should land mid-labelling"
        finished = {
            p: p.stat().st_mtime_ns
            for p in [wd / "results/ethanol/md/trajectory.npz", *(wd / f for f in FRAMES)]
            if p.exists()
        }  # whichever frames files were written before the kill
        assert wd / "results/ethanol/md/trajectory.npz" in finished
        assert not (wd / LABEL_TARGETS[-1]).exists()

        snakemake(wd, "--unlock", *LABEL_TARGETS)  # a killed Snakemake leaves its lock behind
        snakemake(wd, *LABEL_TARGETS)  # the same command (the profile reruns incomplete jobs)
        after = _cached(wd)
        assert len(after) == 22
        assert all(after[p] == t for p, t in before.items()), "frames cached before the kill were not recomputed"
        assert all(p.stat().st_mtime_ns == t for p, t in finished.items()), "sampling and frames were not rerun"
        assert [len(load_npz(wd / t)) for t in LABEL_TARGETS] == [4, 6, 12]
        r = snakemake(wd, "-n", *LABEL_TARGETS)
        assert "Nothing to be done" in r.stdout + r.stderr
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # jobs orphaned by the kill, if any are left
        except ProcessLookupError:
            pass
