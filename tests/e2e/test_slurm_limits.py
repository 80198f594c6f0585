"""The cluster's limits as a cluster user meets them, on a real single-node SLURM with accounting:
the SLURM profile as shipped, the README's command with only the partition and account set.

The node has no GPUs and declares 8 CPUs (more than this machine has, as a cluster node has more
than the submitting host); beside the default partition `debug` (no time limit) there is `short`
(1 minute). Checked:
- a job over its partition's time limit is named before anything is submitted (the plan check), and
  with that check off, the job that pends for ever (PartitionTimeLimit) is reported with its reason
  and cancelled, and the run ends non-zero instead of waiting;
- a GPU request on a cluster without GPUs stops the run at plan time with training.device: cpu as
  the fix;
- labelling.threads: 4, given on the command line, reaches sbatch as 4 CPUs from this 2-core host;
- SIGTERM of the head job (what `timeout` or a batch system ending it sends) cancels the queued
  and running jobs as Ctrl-C does.
"""

import signal
import subprocess
import time

import pytest

from .conftest import make_workdir
from .slurm_local import LocalSlurm, available
from .test_slurm import readme_command, rule_of

pytestmark = pytest.mark.e2e
LABELS = "results/ethanol/data/ccsd_t/train.npz"  # MD, then two label jobs
SCORE_MODEL = "results/ethanol/models/egnn/score/s0/model.pt"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    reason = available()
    if reason:
        pytest.skip(reason)
    c = LocalSlurm(tmp_path_factory.mktemp("slurm-limits"), cpus=8, gpus=0, partitions={"short": 1}).start()
    yield c
    c.stop()


@pytest.fixture
def workdir(tmp_path):
    """A fresh working directory (its MD and CCSD(T)/STO-3G labels of 8 frames take about a minute)."""
    return make_workdir(tmp_path / "wd")


def run(cmd, wd, cluster, timeout=900):
    r = subprocess.run(cmd, cwd=wd, env=cluster.env, capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def our_jobs(cluster):
    out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], env=cluster.env, capture_output=True, text=True).stdout
    return [line.split("|", 2) for line in out.splitlines()]


def test_plan_time_names_over_limit_and_gpu_requests(cluster, workdir):
    n_before = len(cluster.sacct("JobID"))
    # every rule on the 1-minute partition
    cmd = readme_command(cluster)
    cmd[cmd.index("slurm_partition=debug")] = "slurm_partition=short"
    rc, out = run(cmd + ["--", LABELS], workdir, cluster)
    assert rc != 0, out[-4000:]
    assert "these jobs can never run on their partitions (sinfo)" in out, out[-4000:]
    assert "label_chunk: run time" in out and "> partition 'short''s time limit 1 min" in out
    assert "set cluster.max_job_hours to at most the limit" in out

    # a GPU request (training.device: auto) where no node has a GPU
    (workdir / "gpu.yaml").write_text("training: {device: auto}\n")
    rc, out = run(readme_command(cluster, "gpu.yaml"), workdir, cluster)
    assert rc != 0, out[-4000:]
    line = next(ln for ln in out.splitlines() if ln.strip().startswith("train_standard: 1 GPU(s)"))
    assert "this partition has no GPUs: train on CPUs with training.device: cpu" in line
    assert len(cluster.sacct("JobID")) == n_before, "nothing was submitted"


def test_a_job_that_can_never_start_is_reported_not_waited_for(cluster, workdir):
    cmd = readme_command(cluster) + ["--config", "cluster={check_partitions: never}"]
    cmd[cmd.index("slurm_partition=debug")] = "slurm_partition=short"
    t0 = time.time()
    rc, out = run(cmd + ["--", LABELS], workdir, cluster, timeout=600)
    assert rc != 0, out[-4000:]
    assert "can never start on partition 'short': pending with reason PartitionTimeLimit" in out, out[-4000:]
    assert "cluster.max_job_hours" in out
    assert time.time() - t0 < 480
    assert not our_jobs(cluster), "nothing is left in the queue"


def test_cpus_from_the_rules_and_sigterm_cancels_the_jobs(cluster, workdir):
    """labelling.threads 4 from the command line (a number inside a mapping) reaches sbatch as 4 CPUs;
    then SIGTERM while a long training job runs: every job leaves the queue and Snakemake exits."""
    slow = "training:\n  score_matching: {max_epochs: 1000000, early_stopping_patience: 1000000}\n"
    (workdir / "slow-score.yaml").write_text(slow)
    cmd = readme_command(cluster, "slow-score.yaml") + ["--config", "labelling={threads: 4}", "--"]
    proc = subprocess.Popen(
        cmd + [LABELS, SCORE_MODEL],
        cwd=workdir,
        env=cluster.env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 900
        while time.time() < deadline:
            running = [j for j, state, comment in our_jobs(cluster) if state == "RUNNING" and "train_score" in comment]
            if running and (workdir / LABELS).exists():
                break
            assert proc.poll() is None, proc.stdout.read()[-4000:]
            time.sleep(2)
        else:
            raise AssertionError("the score training never ran beside finished labels")
        time.sleep(3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, out[-4000:]
    assert "Terminating processes on user request" in out, out[-4000:]
    deadline = time.time() + 60
    while our_jobs(cluster) and time.time() < deadline:
        time.sleep(2)
    assert not our_jobs(cluster), our_jobs(cluster)

    jobs = cluster.sacct("JobID,State,AllocCPUS,ReqCPUS,Comment")
    labels = [j for j in jobs if rule_of(j["Comment"]) == "label_chunk"]
    assert labels and all(j["State"] == "COMPLETED" and j["ReqCPUS"] == "4" for j in labels), labels
    score = [j for j in jobs if rule_of(j["Comment"]) == "train_score"]
    assert score and score[-1]["State"].startswith("CANCELLED"), score
