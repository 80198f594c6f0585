"""The label cache under concurrency: claims exclude other processes, die with their holder
(SIGKILL included), and two jobs labelling the same frames at once compute each frame once."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from pipeline.data import Dataset, load_npz
from pipeline.labelling.cache import LabelCache
from pipeline.labelling.levels import make_level
from pipeline.labelling.runner import label_chunk
from tests.conftest import ETHANOL_R, ETHANOL_Z, cached_entries

DFT = '{"engine": "dft", "xc": "PBE", "basis": "sto-3g", "density_fit": true, "grid_level": 0}'
TOKEN = "test-level"


def _holder(cache_dir, seconds=60):
    """A separate process that claims the ethanol frame and holds the claim (prints 'held')."""
    code = textwrap.dedent(f"""
        import time
        from pipeline.labelling.cache import LabelCache
        from tests.conftest import ETHANOL_R, ETHANOL_Z
        with LabelCache({str(cache_dir)!r}, {TOKEN!r}).claim(ETHANOL_Z, ETHANOL_R, wait=False) as ok:
            print("held" if ok else "refused", flush=True)
            time.sleep({seconds})
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_claim_excludes_other_processes_and_dies_with_a_sigkilled_holder(tmp_path):
    cache = LabelCache(tmp_path, TOKEN)
    proc = _holder(tmp_path)
    try:
        with cache.claim(ETHANOL_Z, ETHANOL_R, wait=False) as ok:
            assert not ok, "a frame claimed by another live process must not be claimed again"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert cache.lock_path(ETHANOL_Z, ETHANOL_R).exists()  # the killed holder could not clean up...
    with cache.claim(ETHANOL_Z, ETHANOL_R, wait=False) as ok:  # ...but its claim is gone at once
        assert ok
    assert not cache.lock_path(ETHANOL_Z, ETHANOL_R).exists()
    assert cached_entries(tmp_path) == {}


def test_a_waiting_claim_is_granted_when_the_holder_dies(tmp_path):
    cache = LabelCache(tmp_path, TOKEN)
    proc = _holder(tmp_path)
    subprocess.Popen(["sh", "-c", f"sleep 1; kill -9 {proc.pid}"])
    t0 = time.perf_counter()
    with cache.claim(ETHANOL_Z, ETHANOL_R, wait=True) as ok:
        assert ok
    assert 0.5 < time.perf_counter() - t0 < 30
    proc.wait()


def test_unreadable_entry_is_recomputed(tmp_path):
    cache = LabelCache(tmp_path, TOKEN)
    cache.put(ETHANOL_Z, ETHANOL_R, energy=1.0, forces=np.zeros((9, 3)), converged=True, reason="", cpu_s=1, wall_s=1)
    assert cache.get(ETHANOL_Z, ETHANOL_R)["energy"] == 1.0
    p = cache.path(ETHANOL_Z, ETHANOL_R)
    p.write_bytes(p.read_bytes()[:40])  # a truncated file (e.g. copied by hand from a full disk)
    assert cache.get(ETHANOL_Z, ETHANOL_R) is None


def test_two_jobs_labelling_the_same_frames_at_once_compute_each_frame_once(tmp_path):
    rng = np.random.default_rng(3)
    frames = Dataset(R=ETHANOL_R[None] + 0.05 * rng.standard_normal((6, 9, 3)), z=ETHANOL_Z, name="ethanol")
    frames.save(tmp_path / "frames.npz")
    cache_dir = tmp_path / "shared-cache"
    procs = []
    for job in ("a", "b"):
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
            DFT,
            "--start",
            "0",
            "--stop",
            "6",
            "--cache-dir",
            str(cache_dir),
            "--out",
            str(tmp_path / f"{job}.npz"),
        ]
        procs.append(subprocess.Popen(cmd, stderr=open(tmp_path / f"{job}.log", "w")))
    for p in procs:
        assert p.wait(timeout=600) == 0
    logs = {job: (tmp_path / f"{job}.log").read_text() for job in ("a", "b")}
    computed = {job: log.count(": ok in ") for job, log in logs.items()}
    assert sum(computed.values()) == 6, f"each frame computed exactly once across both jobs: {computed}\n{logs}"
    entries = cached_entries(cache_dir)
    assert len(entries) == 6
    assert not [p for p in cache_dir.rglob("*") if p.is_file() and p.name.startswith(".")], (
        "no temporaries or locks left"
    )
    a, b = load_npz(tmp_path / "a.npz"), load_npz(tmp_path / "b.npz")
    assert len(a) == len(b) == 6
    np.testing.assert_array_equal(a.E, b.E)
    np.testing.assert_array_equal(a.F, b.F)
    # every entry is whole and equals what a fresh computation gives for one frame
    level = make_level("dft", {"engine": "dft", "xc": "PBE", "basis": "sto-3g", "density_fit": True, "grid_level": 0})
    fresh, _ = label_chunk(frames, level, LabelCache(tmp_path / "fresh", level.cache_token()), 2, 3)
    assert fresh.E[0] == pytest.approx(a.E[2], abs=1e-6)
