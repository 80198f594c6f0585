"""Faults through the real workflow: a labelling job SIGKILLed mid-chunk loses nothing."""
import os
import signal
import subprocess
import sys
import time

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
