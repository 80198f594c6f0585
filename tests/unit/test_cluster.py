"""The plan against the cluster (pipeline/cluster.py): sinfo's partitions read from its real output
formats, every rule whose request a partition can never run named with the fix, the plan summary's
numbers, and the executor Snakemake was asked for."""

import subprocess
from types import SimpleNamespace

import pytest

from pipeline import cluster as pc

# `sinfo -h -N -o '%P|%l|%c|%m|%G'` on a site with a default CPU partition (two node types), a GPU
# partition (A100 nodes with socket affinity, an older V100 node with MPS) and a debug partition.
SINFO = """\
cpu*|1-00:00:00|48|192000|(null)
cpu*|1-00:00:00|64+|256000+|(null)
gpu|2-00:00:00|32|512000|gpu:a100:4(S:0-1)
gpu|2-00:00:00|16|128000|gpu:v100:2,mps:200
debug|2:00:00|8|16000|(null)
long|infinite|4|8000|gpu:1
"""


@pytest.mark.parametrize(
    "text, minutes",
    [
        ("infinite", None),
        ("UNLIMITED", None),
        ("1-00:00:00", 1440),
        ("2:00:00", 120),
        ("30:00", 30),
        ("45", 45),
        ("1-12", 36 * 60),
        ("2-06:30", 54 * 60 + 30),
        ("0:00:30", 0.5),
    ],
)
def test_time_limits(text, minutes):
    assert pc.parse_time_limit(text) == minutes


def test_unreadable_time_limit_is_an_error():
    with pytest.raises(pc.ClusterError, match="cannot read the sinfo time limit 'soon'"):
        pc.parse_time_limit("soon")


@pytest.mark.parametrize(
    "gres, gpus",
    [
        ("(null)", 0),
        ("gpu:a100:4", 4),
        ("gpu:4", 4),
        ("gpu:a100:4(S:0-1)", 4),
        ("gpu:v100:2,mps:200", 2),
        ("gpu:a100:2(S:0),gpu:v100:1(S:1)", 3),
        ("gpu", 1),
        ("mps:100", 0),
    ],
)
def test_gpus_from_gres(gres, gpus):
    assert pc.parse_gpus(gres) == gpus


def test_partitions_take_their_largest_node():
    parts = pc.parse_sinfo(SINFO)
    assert set(parts) == {"cpu", "gpu", "debug", "long"}
    assert parts["cpu"] == pc.Partition("cpu", True, 1440, 64, 256000, 0)
    assert parts["gpu"] == pc.Partition("gpu", False, 2880, 32, 512000, 4)
    assert parts["debug"].max_minutes == 120 and not parts["debug"].default
    assert parts["long"].max_minutes is None and parts["long"].gpus == 1


def test_a_malformed_sinfo_line_is_an_error():
    with pytest.raises(pc.ClusterError, match="cannot read the sinfo line"):
        pc.parse_sinfo("cpu*|1-00:00:00|48\n")


def test_query_runs_sinfo_node_by_node():
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, SINFO, "")

    assert set(pc.query_partitions(run)) == {"cpu", "gpu", "debug", "long"}
    assert calls == [["sinfo", "-h", "-N", "-o", pc.SINFO_FORMAT]]


def test_a_failing_sinfo_says_how_to_skip_the_check():
    def run(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "sinfo: fatal: Could not establish a configuration source")

    with pytest.raises(pc.ClusterError, match="Could not establish.*check_partitions: never"):
        pc.query_partitions(run)
    with pytest.raises(pc.ClusterError, match="no partition"):
        pc.query_partitions(lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, "\n", ""))


def _job(rule, threads=1, mem_mb=1000, runtime=60, gpus=0, estimate=None):
    return pc.JobRequest(rule, threads, mem_mb, runtime, gpus, runtime if estimate is None else estimate)


def test_requests_that_fit_pass():
    parts = pc.parse_sinfo(SINFO)
    largest = pc.largest_per_rule(
        [_job("label_chunk", threads=4, mem_mb=8000, runtime=1440), _job("train_standard", 4, 20000, 2880, 1)]
    )
    where = {"train_standard": "gpu"}.get
    assert pc.check_partitions(largest, where, parts) == []


def test_every_rule_beyond_its_partition_is_named():
    parts = pc.parse_sinfo(SINFO)
    largest = pc.largest_per_rule(
        [
            _job("label_chunk", threads=4, runtime=60),
            _job("label_chunk", threads=4, runtime=1500),  # past the default partition's 24 h
            _job("sgdml", threads=2, mem_mb=300000),  # more memory than a cpu node
            _job("bias", threads=96),  # more CPUs than a node
            _job("md", runtime=180),  # on the 2 h debug partition
            _job("gaff2", runtime=10),  # on a 5-minute partition
            _job("evaluate"),
        ]
    )
    parts["short"] = pc.Partition("short", False, 5, 8, 16000, 0)
    problems = pc.check_partitions(largest, {"md": "debug", "gaff2": "short"}.get, parts)
    assert problems == [
        "bias: 96 CPUs > partition 'cpu''s 64 CPUs per node",
        "gaff2: run time 10 min > partition 'short''s time limit 5 min (set cluster.max_job_hours to at most "
        "the limit)",
        "label_chunk: run time 25.0 h > partition 'cpu''s time limit 24.0 h (set cluster.max_job_hours to at most "
        "the limit)",
        "md: run time 3.0 h > partition 'debug''s time limit 2.0 h (set cluster.max_job_hours to at most the limit)",
        "sgdml: 300,000 MB memory > partition 'cpu''s 256,000 MB per node",
    ]
    with pytest.raises(pc.ClusterError) as err:
        pc.raise_problems(problems)
    msg = str(err.value)
    assert "can never run" in msg and "bias: 96 CPUs" in msg and "sgdml: 300,000 MB" in msg
    pc.raise_problems([])  # nothing to report: no error


def test_a_gpu_request_on_a_partition_without_gpus_names_training_device_cpu():
    parts = pc.parse_sinfo(SINFO)
    largest = pc.largest_per_rule([_job("train_standard", gpus=1), _job("train_stage2", gpus=1)])
    problems = pc.check_partitions(largest, lambda rule: None, parts)  # the default partition: cpu, no GPUs
    assert len(problems) == 2
    for rule, line in zip(("train_stage2", "train_standard"), sorted(problems)):
        assert line.startswith(f"{rule}: 1 GPU(s) on partition 'cpu': this partition has no GPUs")
        assert "training.device: cpu" in line and f"--set-resources {rule}:slurm_partition=" in line
    # on a GPU partition with too few GPUs per node the message says how many it has
    too_many = pc.largest_per_rule([_job("train_standard", gpus=8)])
    assert pc.check_partitions(too_many, lambda rule: "gpu", parts) == [
        "train_standard: 8 GPU(s) on partition 'gpu': its nodes have 4"
    ]


def test_unknown_or_missing_partition():
    parts = pc.parse_sinfo(SINFO)
    largest = pc.largest_per_rule([_job("md")])
    assert pc.check_partitions(largest, lambda rule: "gpus", parts) == [
        "md: partition 'gpus' is not in sinfo's list (cpu, debug, gpu, long)"
    ]
    no_default = {k: v for k, v in parts.items() if k != "cpu"}
    problems = pc.check_partitions(largest, lambda r: None, no_default)
    assert "no partition given and sinfo marks no default" in problems[0]


def test_largest_per_rule_takes_each_resource_from_any_job():
    largest = pc.largest_per_rule(
        [_job("x", threads=1, mem_mb=9000, runtime=10), _job("x", threads=4, mem_mb=1000, runtime=600, estimate=900)]
    )
    assert largest == {"x": pc.JobRequest("x", 4, 9000, 600, 0, 900)}


def test_summary_counts_jobs_cpu_and_gpu_hours_and_the_largest_job():
    jobs = [_job("label_chunk", threads=4, runtime=30)] * 1000 + [
        _job("train_stage2", threads=4, mem_mb=3500, runtime=1440, gpus=1),
        _job("train_stage2", threads=4, mem_mb=9000, runtime=720, gpus=1),
    ]
    text = pc.summarise(jobs)
    lines = text.splitlines()
    assert len(lines) == 5  # title, header, one line per rule, total: not one per job
    label = next(ln for ln in lines if ln.strip().startswith("label_chunk")).split()
    assert label[1:] == ["1,000", "2,000", "0", "4", "0", "1.0", "0.5", "h"]  # 1000 jobs x 4 CPUs x 0.5 h
    stage2 = next(ln for ln in lines if ln.strip().startswith("train_stage2")).split()
    # 4 CPUs x 36 h; 1 GPU x 36 h; the largest memory (9 GB) and run time (24 h) of any of its jobs
    assert stage2[1:] == ["2", "144", "36", "4", "1", "9.0", "24.0", "h"]
    total = lines[-1].split()
    assert total == ["total", "1,002", "2,144", "36", "longest", "job", "24.0", "h", "(train_stage2)"]
    # of jobs that all ask for the limit, the one estimated longest is named
    capped = [_job("md_stability", runtime=1440, estimate=2100), _job("train_stage2", runtime=1440, estimate=9000)]
    assert pc.summarise(capped).splitlines()[-1].endswith("longest job 24.0 h (train_stage2)")


def execute_workflow(executor, workflow):
    """Stands for snakemake.api.DAGApi.execute_workflow, the caller in a dry run."""
    return pc.intended_executor(workflow)


def test_the_executor_asked_for():
    slurm = SimpleNamespace(executor_plugin=SimpleNamespace(name="slurm"))
    dryrun = SimpleNamespace(executor_plugin=SimpleNamespace(name="dryrun"))
    assert pc.intended_executor(slurm) == "slurm"  # a real run: the plugin that runs the jobs
    assert execute_workflow("slurm", dryrun) == "slurm"  # a dry run: what the API call validates against
    assert execute_workflow("local", dryrun) == "local"
    assert pc.intended_executor(dryrun) == "local"  # no API call on the stack: nothing runs elsewhere
    assert pc.intended_executor(SimpleNamespace(executor_plugin=None)) == "local"
    assert pc.should_check("auto", "slurm") and not pc.should_check("auto", "local")
    assert pc.should_check("always", "local") and not pc.should_check("never", "slurm")


def test_group_request_adds_up_what_runs_at_once_and_the_rounds():
    one = pc.JobRequest("evaluate", 1, 1500, 12, 0, 10)
    g = pc.group_request("evaluations", one, 20, cores=8)
    assert (g.rule, g.threads, g.mem_mb, g.runtime, g.estimate) == ("group evaluations", 8, 12000, 36, 30)
    assert pc.group_request("evaluations", one, 20, cores=None).threads == 20  # nothing caps it
    assert pc.group_request("evaluations", one, 3, cores=8).runtime == 12  # fewer jobs than cores
    two = pc.JobRequest("sgdml", 2, 1000, 10, 0, 10)
    assert pc.group_request("g", two, 5, cores=5).threads == 4  # two 2-CPU jobs at once
    assert pc.group_request("g", two, 5, cores=1).threads == 2  # at least one job


def test_cap_threads():
    assert pc.cap_threads(8, 4) == 4 and pc.cap_threads(2, 4) == 2 and pc.cap_threads(8, None) == 8
