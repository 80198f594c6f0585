"""The tiny config through the SLURM profile on a real single-node SLURM started for the test.

Only local overrides are added to workflow/profiles/slurm: the partition, no account, squeue for
status polling (no accounting database here), and no GPU request (this machine has none).
The label cache of the local e2e run is reused, so the jobs run real code without recomputing QM.
"""
import re
import shutil
import sys

import pandas as pd
import pytest

from .conftest import make_workdir
from .slurm_local import LocalSlurm, available

pytestmark = pytest.mark.e2e
GPU_RULES = ["train_standard", "train_stage2", "train_cheap_only", "train_score", "finetune_cheap", "finetune_score"]


@pytest.fixture
def slurm(tmp_path_factory):
    reason = available()
    if reason:
        pytest.skip(reason)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm")).start()
    yield cluster
    cluster.stop()


def test_tiny_run_through_slurm_profile(finished_run, slurm, tmp_path):
    import subprocess

    local_wd, _ = finished_run
    wd = make_workdir(tmp_path / "wd")
    shutil.copytree(local_wd / ".cache", wd / ".cache")
    cmd = [sys.executable, "-m", "snakemake", "--profile", "workflow/profiles/slurm", "results/ethanol/report.html",
           "--configfile", "config-tiny.yaml",
           "--default-resources", "slurm_partition=debug", "mem_mb=1000", "runtime=60",
           "--slurm-no-account", "--slurm-status-command", "squeue",
           "--slurm-init-seconds-before-status-checks", "2", "--latency-wait", "5", "--jobs", "4",
           "--set-resources", *[f"{rule}:{key}" for rule in GPU_RULES for key in ("slurm_extra=''", "mem_mb=1500")]]
    r = subprocess.run(cmd, cwd=wd, env=slurm.env, capture_output=True, text=True, timeout=2400)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-8000:]

    submitted = re.findall(r"submitted with SLURM jobid (\d+)", out)
    log = (slurm.root / "log" / "slurmctld.log").read_text()
    completed = re.findall(r"_job_complete: JobId=(\d+) done", log)  # started by the main or backfill scheduler
    assert len(submitted) >= 30, "every rule, label chunks and evaluations in groups, goes through sbatch"
    assert set(submitted) <= set(completed), "SLURM ran every job Snakemake submitted"

    local = pd.read_csv(local_wd / "results/ethanol/results.csv")
    remote = pd.read_csv(wd / "results/ethanol/results.csv")
    assert (wd / "results/ethanol/report.html").exists()
    assert sorted(remote["method"]) == sorted(local["method"])
