"""The plan-time hook of workflow/rules/common.smk (check_plan), through Snakemake's own API as the
command line calls it: a dry run validated against the SLURM executor is seen as a cluster run
(the preview counts the cluster's label jobs, not this machine's cores), the plan summary is
printed once, and rules whose jobs are estimated beyond cluster.max_job_hours get one retry more
per continuation on top of the profile's `retries` (each continues from the checkpoint)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, ExecutionSettings, OutputSettings, ResourceSettings

hours = float(sys.argv[1])
with SnakemakeApi(OutputSettings()) as api:
    wf = api.workflow(
        resource_settings=ResourceSettings(cores=1, nodes=10),
        config_settings=ConfigSettings(
            configfiles=[Path("config.yaml")],
            config={"cluster": {"max_job_hours": hours, "check_partitions": "never"}},
        ),
        snakefile=Path("workflow/Snakefile"),
    )
    dag = wf.dag()
    dag.execute_workflow(executor="slurm", pseudo_executor="dryrun", execution_settings=ExecutionSettings(retries=1))
    print("RESTART_TIMES " + json.dumps({r.name: r.restart_times for r in wf._workflow.rules}))
"""


@pytest.fixture
def workdir(tmp_path):
    shutil.copytree(ROOT / "workflow", tmp_path / "workflow")
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "envs", tmp_path / "envs")
    (tmp_path / "plan.py").write_text(SCRIPT)
    return tmp_path


def _dry_run(workdir, hours):
    r = subprocess.run(
        [sys.executable, "plan.py", str(hours)], cwd=workdir, capture_output=True, text=True, timeout=600
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("RESTART_TIMES "))
    return json.loads(line.split(" ", 1)[1]), out


def test_slurm_dry_run_plan_summary_and_continuations(workdir):
    from pipeline import resources as pres

    times, out = _dry_run(workdir, 24)
    # the SLURM executor is seen in a dry run: the preview counts --jobs x labelling.threads
    assert "10 cores: --jobs 10 label jobs at once x labelling.threads 1 CPUs each" in out
    assert "all of this machine's cores" not in out
    assert out.count("Plan summary (requested run time") == 1
    assert "train_standard" in out.split("Plan summary")[1].split("\n\n")[0]
    # the default config's jobs fit in a day: every rule keeps the profile's retries
    assert set(times.values()) == {1}, times

    times, out = _dry_run(workdir, 0.1)  # 6 minutes
    assert "train_standard: longest job estimated" in out and "each continuing from the last checkpoint" in out
    resumable = {rule for rule in times if pres.resumable(rule)}
    assert "train_standard" in resumable and "label_chunk" in resumable
    over = {rule for rule, n in times.items() if n > 1}
    assert over and over <= resumable, over  # only training and label rules continue
    assert "train_standard" in over
    assert all(n == 1 for rule, n in times.items() if rule not in resumable)


def _dry_run_with_sinfo(workdir, sinfo_script, *args):
    """`snakemake -n *args` with `sinfo_script` as the sinfo on PATH; the run must stop (the check
    refuses the plan): returns its output."""
    bin_dir = workdir / "bin"
    bin_dir.mkdir()
    (bin_dir / "sinfo").write_text(sinfo_script)
    (bin_dir / "sinfo").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    r = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", *args],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = r.stdout + r.stderr
    assert r.returncode != 0, out[-3000:]
    return out


FAKE_SINFO = """#!/bin/sh
# a CPU-only cluster: the default partition has no time limit, `short` allows 5 minutes a job
echo 'long*|infinite|8|32000|(null)'
echo 'short|5:00|8|32000|(null)'
echo 'short|5:00|16+|64000+|(null)'
"""


def test_partition_check_names_every_rule_a_partition_can_never_run(workdir):
    """A faked sinfo (a partition without GPUs and a 5-minute limit, chosen as the user does with
    --default-resources): the dry run stops at DAG construction naming each rule, the GPU rules with
    training.device: cpu as the fix."""
    from pipeline import resources as pres

    out = _dry_run_with_sinfo(
        workdir,
        FAKE_SINFO,
        "--config",
        "cluster={check_partitions: always}",
        "training={device: auto}",
        "--default-resources",
        "slurm_partition=short",
    )
    assert "cluster check: these jobs can never run on their partitions (sinfo):" in out, out[-3000:]
    assert "rule label_chunk:" not in out  # nothing was listed as run
    for rule in ("label_chunk", "evaluate", "train_standard", "sgdml"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"{rule}: run time "))
        assert " min > partition 'short''s time limit 5 min (set cluster.max_job_hours" in line
    for rule in ("train_standard", "train_stage2", "finetune_cheap"):
        assert rule in pres.TRAINING_RULES
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"{rule}: 1 GPU(s)"))
        assert "this partition has no GPUs: train on CPUs with training.device: cpu" in line
    assert not any(ln.strip().startswith("evaluate: 1 GPU") for ln in out.splitlines())


SMALL_SINFO = """#!/bin/sh
# a CPU-only cluster of 2-CPU nodes without a time limit
echo 'small*|infinite|2|32000|(null)'
"""


def test_cpu_counts_come_from_the_rules_capped_at_cores_and_groups_are_checked(workdir):
    """--cores on a cluster is the most CPUs one job asks for: labelling.threads 8 becomes 4 (and the
    plan says so), an evaluation group of 20 runs 4 at once in a 4-CPU job; on 2-CPU nodes both are
    named before anything is submitted."""
    out = _dry_run_with_sinfo(
        workdir,
        SMALL_SINFO,
        *("--cores", "4", "--groups", "evaluate=evaluations", "--group-components", "evaluations=20"),
        *("--config", "cluster={check_partitions: always}", "labelling={threads: 8}", "training={device: cpu}"),
    )
    assert "label_chunk: asks for 8 threads, capped at cores = 4" in out, out[-3000:]
    group = next(ln for ln in out.splitlines() if ln.strip().startswith("group evaluations: one job asks for"))
    assert "4 CPUs" in group, group
    problems = out.split("can never run on their partitions")[1]
    assert "group evaluations: 4 CPUs > partition 'small''s 2 CPUs per node" in problems
    assert "label_chunk: 4 CPUs > partition 'small''s 2 CPUs per node" in problems
    assert "evaluate: " not in problems  # one evaluation fits; its group does not
