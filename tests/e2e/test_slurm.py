"""The tiny config through workflow/profiles/slurm as shipped, on a real single-node SLURM with
accounting (slurmdbd + MariaDB, so the plugin polls `sacct` as on a real cluster).

The command is the README's, with only what a user sets: partition and account. Two overlays on
the tiny config: `training.device: auto` (the tiny config trains on `cpu`, which switches the GPU
request off) so that training jobs ask for a GPU, and, for the first run only, a score-matching
stage that would run for hours, so that its job can be cancelled while it runs. The label cache of
the local e2e run is reused, so the jobs run real code without recomputing QM.

Checked: every job's request in the accounting database (a GPU for training jobs only, memory and
a time limit sized for the tiny config, more on the retry); `scancel` of the running training job
(and of its retry) is reported as a failure, the rest of the run finishes and Snakemake exits
non-zero; the same command again finishes the run without recomputing finished work.
"""

import re
import shutil
import subprocess
import sys
import threading
import time

import pytest
import yaml

from pipeline import resources as pres
from pipeline import snakemake_compat

from .conftest import make_workdir
from .slurm_local import LocalSlurm, available

pytestmark = pytest.mark.e2e
TRAINING_RULES = set(pres.TRAINING_RULES)  # the rules that request a GPU
CANCELLED_RULE = "train_score"


@pytest.fixture
def slurm(tmp_path_factory):
    reason = available()
    if reason:
        pytest.skip(reason)
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"), gpus=2).start()
    yield cluster
    cluster.stop()


def readme_command(cluster, *configfiles):
    """The README's cluster command with the partition and account of the local cluster."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--profile",
        "workflow/profiles/slurm",
        "--configfile",
        "config-tiny.yaml",
        *configfiles,
        "--default-resources",
        "slurm_partition=debug",
        f"slurm_account={cluster.account}",
    ]


rule_of = snakemake_compat.rule_of_comment  # the rule of a job from the plugin's sbatch comment


def cancel_running(cluster, rule, deadline):
    """scancel the first job of `rule` seen RUNNING; returns its job id."""
    while time.time() < deadline:
        out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], env=cluster.env, capture_output=True, text=True).stdout
        for line in out.splitlines():
            job, state, comment = line.split("|", 2)
            if state == "RUNNING" and rule_of(comment) == rule:
                time.sleep(3)  # let it get going (imports, first epochs)
                subprocess.run(["scancel", job], env=cluster.env, check=True)
                return job
        time.sleep(1)
    raise AssertionError(f"no {rule} job ran before the deadline")


def test_tiny_run_through_slurm_profile_as_shipped(finished_run, slurm, tmp_path):
    local_wd, _ = finished_run
    wd = make_workdir(tmp_path / "wd")
    shutil.copytree(local_wd / ".cache", wd / ".cache")
    (wd / "gpu.yaml").write_text(yaml.safe_dump({"training": {"device": "auto"}}))
    slow = {
        "training": {"device": "auto", "score_matching": {"max_epochs": 1000000, "early_stopping_patience": 1000000}}
    }
    (wd / "slow-score.yaml").write_text(yaml.safe_dump(slow))

    # Run 1: the training job is cancelled while it runs, then its retry too.
    proc = subprocess.Popen(
        readme_command(slurm, "slow-score.yaml"),
        cwd=wd,
        env=slurm.env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    lines = []  # (time seen, line) of Snakemake's output
    reader = threading.Thread(target=lambda: lines.extend((time.time(), ln) for ln in proc.stdout), daemon=True)
    reader.start()
    try:
        first = cancel_running(slurm, CANCELLED_RULE, time.time() + 600)
        retry = cancel_running(slurm, CANCELLED_RULE, time.time() + 300)
        cancelled_at = time.time()
        proc.wait(timeout=1500)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=30)
    out = "".join(ln for _, ln in lines)
    assert proc.returncode != 0, out[-6000:]
    reported_at = next(t for t, ln in lines if f"SLURM-job '{retry}' failed" in ln)
    # the first status check after the cancel (10 s after the last finished job, growing by 10 s
    # while none finishes) reports it
    assert reported_at - cancelled_at < 60, reported_at - cancelled_at
    assert f"SLURM-job '{first}' failed, SLURM status is: 'CANCELLED'" in out, out[-6000:]
    assert f"SLURM-job '{retry}' failed, SLURM status is: 'CANCELLED'" in out, out[-6000:]
    assert f"Error in rule {CANCELLED_RULE}" in out

    jobs = slurm.sacct("JobID,State,ReqTRES,Timelimit,Comment")
    by_rule = {}
    for j in jobs:
        by_rule.setdefault(rule_of(j["Comment"]), []).append(j)
    assert {j["JobID"] for j in by_rule[CANCELLED_RULE]} == {first, retry}
    assert all(j["State"].startswith("CANCELLED") for j in by_rule[CANCELLED_RULE])
    others = [j for j in jobs if rule_of(j["Comment"]) != CANCELLED_RULE]
    assert len(others) >= 30, f"every rule, evaluations in groups, goes through sbatch:\n{out[-8000:]}"
    assert all(j["State"] == "COMPLETED" for j in others), [j for j in others if j["State"] != "COMPLETED"]
    # the run went on without the cancelled job: everything that does not need it is done
    assert not (wd / "results/ethanol/results.csv").exists()  # collect needs the score model
    # (an evaluation shares its group job with up to 19 others: one that needs the score model
    # holds back its group until the rerun)
    assert (wd / "results/ethanol/models/egnn/finetune/xtb/g1/N8_s0/model.pt").exists()
    assert list((wd / "results/ethanol/stability/egnn").rglob("*.csv"))

    # What sbatch received: a GPU for training jobs only, tiny-config memory, a time limit.
    for j in jobs:
        tres = dict(kv.split("=") for kv in j["ReqTRES"].split(","))
        rule = rule_of(j["Comment"])
        assert (tres.get("gres/gpu") == "1") == (rule in TRAINING_RULES), (rule, j["ReqTRES"])
        mem_mb = float(tres["mem"].rstrip("M")) * (1024 if tres["mem"].endswith("G") else 1)
        # a group of evaluations (comment rule_evaluations_evaluate) adds up the memory of the
        # evaluations it runs at once (the profile's cores: 8)
        assert mem_mb <= (slurm.mem_mb if rule.startswith("evaluations") else 7000), (rule, j["ReqTRES"])
        assert re.fullmatch(r"(\d+-)?\d\d:\d\d:\d\d", j["Timelimit"]), (rule, j["Timelimit"])
    first_job, retry_job = sorted(by_rule[CANCELLED_RULE], key=lambda j: int(j["JobID"]))
    assert first_job["ReqTRES"] != retry_job["ReqTRES"], "the retry asks for more memory"

    # Run 2: the same command (the score stage back to the tiny config) finishes the run and
    # reruns only the cancelled job and what depends on it.
    r = subprocess.run(
        readme_command(slurm, "gpu.yaml"), cwd=wd, env=slurm.env, capture_output=True, text=True, timeout=1200
    )
    out2 = r.stdout + r.stderr
    assert r.returncode == 0, out2[-8000:]
    rerun = set(re.findall(r"^\s*rule (\w+):", out2, re.M))
    assert CANCELLED_RULE in rerun
    assert rerun <= {CANCELLED_RULE, "finetune_score", "evaluate", "collect", "report"}, rerun
    assert (wd / "results/ethanol/report.html").exists()
