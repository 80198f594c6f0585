"""Chunk jobs: cache resume after a kill (no frame recomputed) and the failure policy."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from pipeline.data import Dataset, load_npz
from pipeline.labelling.cache import LabelCache
from pipeline.labelling.levels import make_level
from pipeline.labelling.runner import LabellingFailed, label_chunk, merge_chunks, write_chunk
from tests.conftest import WATER_R, WATER_Z, cached_entries

DFT = {"engine": "dft", "xc": "PBE", "basis": "sto-3g", "density_fit": True, "grid_level": 0}


def _frames(ethanol_frames, tmp_path):
    z, R = ethanol_frames
    ds = Dataset(R=R, z=z, frame_id=np.arange(10, 10 + len(R)), name="ethanol")
    ds.save(tmp_path / "frames.npz")
    return ds


def _cached(cache_dir):
    return sorted(cached_entries(cache_dir))


def test_killed_chunk_resumes_without_recomputing(ethanol_frames, tmp_path, monkeypatch):
    _frames(ethanol_frames, tmp_path)
    cache_dir = tmp_path / "cache"
    cmd = [
        sys.executable,
        "-m",
        "pipeline",
        "label",
        "--frames",
        str(tmp_path / "frames.npz"),
        "--level-name",
        "dft",
        "--level",
        '{"engine": "dft", "xc": "PBE", "basis": "sto-3g", "density_fit": true, "grid_level": 0}',
        "--start",
        "0",
        "--stop",
        "5",
        "--cache-dir",
        str(cache_dir),
        "--out",
        str(tmp_path / "chunk.npz"),
    ]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600  # a safety net only: on a loaded machine two frames can take minutes
    while len(_cached(cache_dir)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail(f"the label job ended (exit {proc.returncode}) before the test could kill it mid-chunk")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = {p.name: p.stat().st_mtime_ns for p in _cached(cache_dir)}
    assert 2 <= len(done_before) < 5, "the job should have been killed mid-chunk"
    assert not (tmp_path / "chunk.npz").exists()

    # Rerun in-process, counting real engine calls.
    level = make_level("dft", DFT)
    calls = set()  # the geometries the engine was asked to compute
    real = level.compute
    monkeypatch.setattr(level, "compute", lambda z, R, **kw: calls.add(R.tobytes()) or real(z, R, **kw))
    frames = load_npz(tmp_path / "frames.npz")
    ds, failures = label_chunk(frames, level, LabelCache(cache_dir, level.cache_token()), 0, 5)
    assert len(calls) == 5 - len(done_before), (
        f"cached frames must not be recomputed: {len(calls)} computed, {len(done_before)} cached"
    )
    assert len(ds) == 5 and failures.empty
    for p in _cached(cache_dir):  # the finished frames' cache entries were not rewritten
        if p.name in done_before:
            assert p.stat().st_mtime_ns == done_before[p.name]
    # a second pass computes nothing at all
    calls.clear()
    label_chunk(frames, level, LabelCache(cache_dir, level.cache_token()), 0, 5)
    assert not calls


def test_changed_settings_use_a_new_cache_key(ethanol_frames, tmp_path):
    frames = _frames(ethanol_frames, tmp_path)
    a = make_level("dft", DFT)
    b = make_level("dft", {**DFT, "xc": "B3LYP"})
    assert LabelCache(tmp_path, a.cache_token()).path(frames.z, frames.R[0]) != LabelCache(
        tmp_path, b.cache_token()
    ).path(frames.z, frames.R[0])


def test_engine_revision_uses_a_new_cache_key(ethanol_frames, tmp_path, monkeypatch):
    """A fix that changes an engine's numbers (REVISION) must not reuse labels cached before it."""
    frames = _frames(ethanol_frames, tmp_path)
    level = make_level("dft", DFT)
    before = LabelCache(tmp_path, level.cache_token()).path(frames.z, frames.R[0])
    monkeypatch.setattr(type(level), "REVISION", type(level).REVISION + 1)
    assert LabelCache(tmp_path, level.cache_token()).path(frames.z, frames.R[0]) != before
    assert '"revision": 2' in make_level("ccsd_t", {"engine": "ccsd_t"}).cache_token()


def test_nonconverged_frames_are_dropped_recorded_and_policed(tmp_path):
    rng = np.random.default_rng(1)
    frames = _frames((WATER_Z, WATER_R[None] + 0.03 * rng.standard_normal((5, 3, 3))), tmp_path)
    # max_cycle=1 cannot converge, and neither can the safer retry (2 cycles): a real failure.
    level = make_level("dft", {**DFT, "max_cycle": 1})
    cache = LabelCache(tmp_path / "cache", level.cache_token())
    ds, failures = label_chunk(frames, level, cache, 0, 2)
    assert len(ds) == 0 and len(failures) == 2
    assert list(failures["frame_id"]) == [10, 11]
    assert failures["reason"].str.contains("SCF did not converge").all()
    assert failures["reason"].str.contains("safer settings").all()
    write_chunk(tmp_path / "bad.npz", ds, failures)

    good = make_level("dft", DFT)
    ds_ok, f_ok = label_chunk(frames, good, LabelCache(tmp_path / "cache", good.cache_token()), 2, 5)
    write_chunk(tmp_path / "good.npz", ds_ok, f_ok)

    with pytest.raises(LabellingFailed, match=r"2 of 5 frames \(40.0%\) failed.*max_failure_fraction = 0.1"):
        merge_chunks([tmp_path / "bad.npz", tmp_path / "good.npz"], 5, 0.1, tmp_path / "out.npz", tmp_path / "f.csv")
    assert not (tmp_path / "out.npz").exists()
    assert len(pd.read_csv(tmp_path / "f.csv")) == 2  # the failures table is written even when the rule fails

    merged = merge_chunks(
        [tmp_path / "bad.npz", tmp_path / "good.npz"], 5, 0.5, tmp_path / "out.npz", tmp_path / "f.csv"
    )
    assert len(merged) == 3 and list(merged.frame_id) == [12, 13, 14]
    assert merged.meta["n_failed"] == 2
    assert (merged.cpu_s > 0).all() and (merged.wall_s > 0).all()


def test_labelling_jobs_are_sized_by_cost():
    from pipeline.labelling.runner import frames_per_job, n_chunks

    # nearly free xTB: the frame cap alone splits the pool
    assert frames_per_job(4000, 0.005, 20, 2000) == 2000
    # ~13 s CCSD(T) frames: 100 frames are two equal jobs of about 20 CPU-minutes
    assert frames_per_job(100, 13.0, 20, 2000) == 50 and n_chunks(100, 50) == 2
    # an hour a frame (aspirin CCSD on one core): one frame per job
    assert frames_per_job(165, 3600.0, 20, 2000) == 1
    # free levels and tiny subsets never give empty or zero-sized jobs
    assert frames_per_job(7, 0.0, 20, 2000) == 7 and frames_per_job(0, 1.0, 20, 5) == 1
    # equal split: 11 frames with a 5-frame cap are 3 jobs of at most 4
    assert frames_per_job(11, 0.0, 20, 5) == 4 and n_chunks(11, 4) == 3


@pytest.mark.parametrize("bad", ["forces", "energy"])
def test_nonfinite_engine_labels_fail_the_frame_with_a_reason(ethanol_frames, tmp_path, monkeypatch, bad):
    """An engine that 'converges' to NaN or inf: retried, then dropped and listed, never trained on."""
    frames = _frames(ethanol_frames, tmp_path)
    level = make_level("xtb", {"engine": "xtb"})
    real = level.compute
    poisoned = frames.R[1].tobytes()

    def compute(z, R, **kw):
        label = real(z, R, **kw)
        if R.tobytes() == poisoned:
            if bad == "forces":
                label.forces[3, 1] = np.nan
            else:
                label.energy = np.inf
        return label

    monkeypatch.setattr(level, "compute", compute)
    cache = LabelCache(tmp_path / "cache", level.cache_token())
    ds, failures = label_chunk(frames, level, cache, 0, 3)
    assert list(ds.frame_id) == [10, 12] and np.isfinite(ds.F).all() and np.isfinite(ds.E).all()
    assert list(failures["frame_id"]) == [11]
    key, what = ("F", "NaN") if bad == "forces" else ("E", "+inf")
    assert f"non-finite {key} ({what}) from the xtb engine" in failures["reason"][0]
    assert "safer settings" in failures["reason"][0]  # it was retried
    write_chunk(tmp_path / "c.npz", ds, failures)
    merged = merge_chunks([tmp_path / "c.npz"], 3, 0.5, tmp_path / "out.npz", tmp_path / "f.csv")
    assert len(merged) == 2 and pd.read_csv(tmp_path / "f.csv")["reason"].str.contains(f"non-finite {key}").all()
    with pytest.raises(LabellingFailed, match=r"out2.npz: 1 of 3 frames .*non-finite labels.*f2.csv"):
        merge_chunks([tmp_path / "c.npz"], 3, 0.1, tmp_path / "out2.npz", tmp_path / "f2.csv")
    assert not (tmp_path / "out2.npz").exists()
