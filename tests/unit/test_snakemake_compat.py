"""The work-around for 'CANCELLED by <uid>' states in snakemake-executor-plugin-slurm."""

import asyncio
import inspect
import logging
import subprocess
import sys

import pytest

from pipeline import snakemake_compat


def test_normalise_state():
    assert snakemake_compat.normalise_state("CANCELLED by 0") == "CANCELLED"
    assert snakemake_compat.normalise_state("CANCELLED by 1000") == "CANCELLED"
    assert snakemake_compat.normalise_state("OUT_OF_MEMORY") == "OUT_OF_MEMORY"
    assert snakemake_compat.normalise_state("") == ""


def test_install_without_the_plugin_does_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, snakemake_compat.PLUGIN, raising=False)
    assert snakemake_compat.install(main_process=False) is False


def test_plugin_status_query_reports_cancelled_jobs_as_cancelled(monkeypatch):
    """The plugin's own query function, wrapped, on sacct-like output (printf stands in for sacct)."""
    plugin = pytest.importorskip(snakemake_compat.PLUGIN)
    monkeypatch.setattr(plugin, "query_job_status", plugin.query_job_status)  # restored after the test
    assert snakemake_compat.install(main_process=False) is True
    assert snakemake_compat.install(main_process=False) is True  # idempotent: wrapped once
    assert plugin.query_job_status.__wrapped__.__module__.endswith("job_status_query")
    command = "printf '11|CANCELLED by 0\\n12|COMPLETED\\n13|TIMEOUT\\n14|RUNNING\\n'"
    states, _ = asyncio.run(plugin.query_job_status(command, logging.getLogger("test")))
    assert states == {"11": "CANCELLED", "12": "COMPLETED", "13": "TIMEOUT", "14": "RUNNING"}
    assert "CANCELLED" in [s.split()[0] for s in states.values()]


class FakeRun:
    """subprocess.run standing in for squeue and scancel: records the commands."""

    def __init__(self, squeue_out: str, returncode: int = 0):
        self.squeue_out, self.returncode, self.calls = squeue_out, returncode, []

    def __call__(self, cmd, **kw):
        self.calls.append(cmd)
        out = ""
        if cmd[0] == "squeue":  # only the jobs asked for, as squeue --jobs does
            asked = cmd[-1].removeprefix("--jobs=").split(",")
            out = "".join(ln + "\n" for ln in self.squeue_out.splitlines() if ln.split("|")[0] in asked)
        return subprocess.CompletedProcess(cmd, self.returncode, out, "")


SQUEUE = (
    "21|PENDING|PartitionTimeLimit|short|rule_train_stage2_wildcards_ethanol_egnn\n"
    "22|PENDING|Resources|short|rule_evaluate_wildcards_x\n"
    "23|PENDING|QOSMaxWallDurationPerJobLimit|long|rule_label_chunk_wildcards_y\n"
    "24|PENDING|PartitionConfig|gpu|group_evaluations\n"
    "25|RUNNING|None|short|rule_collect\n"
)


def test_never_clearing_reasons_are_told_apart_from_waiting():
    assert "max_job_hours" in snakemake_compat.never_clears("PartitionTimeLimit")
    assert "training.device: cpu" in snakemake_compat.never_clears("PartitionConfig")
    assert snakemake_compat.never_clears("AssocMaxCpuPerJobLimit")
    for waits in ("Resources", "Priority", "Dependency", "ReqNodeNotAvail", "QOSGrpCpuLimit", "BeginTime"):
        assert snakemake_compat.never_clears(waits) is None, waits


def test_stuck_jobs_names_rule_partition_reason_and_fix():
    run = FakeRun(SQUEUE)
    stuck = snakemake_compat.stuck_jobs(["21", "22", "23", "24", "25"], run)
    assert set(stuck) == {"21", "23", "24"}
    assert "train_stage2" in stuck["21"] and "'short'" in stuck["21"] and "PartitionTimeLimit" in stuck["21"]
    assert "cluster.max_job_hours" in stuck["21"]
    assert "evaluations" in stuck["24"] and "training.device: cpu" in stuck["24"]
    assert run.calls[0][:2] == ["squeue", "--noheader"] and run.calls[0][-1] == "--jobs=21,22,23,24,25"
    assert snakemake_compat.stuck_jobs([], run) == {} and len(run.calls) == 1  # nothing pending: no squeue
    assert snakemake_compat.stuck_jobs(["21"], FakeRun(SQUEUE, returncode=1)) == {}  # squeue failed: wait on


def test_status_query_cancels_and_reports_jobs_that_can_never_start(caplog):
    async def original(command, logger):
        return {"21": "PENDING", "22": "PENDING", "25": "RUNNING", "26": "CANCELLED by 0"}, 0.1

    run = FakeRun(SQUEUE)
    query = snakemake_compat.wrap_status_query(original, run)
    with caplog.at_level(logging.ERROR):
        states, _ = asyncio.run(query("sacct ...", logging.getLogger("test")))
    assert states == {"21": "CANCELLED", "22": "PENDING", "25": "RUNNING", "26": "CANCELLED"}
    assert ["scancel", "21"] in run.calls and ["scancel", "22"] not in run.calls
    assert "SLURM job 21 (train_stage2) can never start" in caplog.text


def test_submitted_jobs_lose_their_old_logs(tmp_path):
    old = [tmp_path / "a.log", tmp_path / "b.log"]
    for f in old:
        f.write_text("the previous run's log\n")

    class Job:
        def __init__(self, logs, members=None):
            self.log, self.jobs = logs, members

        def is_group(self):
            return self.jobs is not None

    submitted = []
    run_jobs = snakemake_compat.wrap_run_jobs(lambda self, jobs: submitted.extend(jobs))
    group = Job([], [Job([str(old[1])]), Job([str(tmp_path / "never-written.log")])])
    run_jobs(None, [Job([str(old[0])]), group])
    assert not any(f.exists() for f in old) and len(submitted) == 2


def test_sigterm_takes_the_ctrl_c_path(monkeypatch):
    from snakemake.scheduling import job_scheduler

    monkeypatch.setattr(job_scheduler.JobScheduler, "exit_gracefully", job_scheduler.JobScheduler.exit_gracefully)
    assert snakemake_compat.install_sigterm() is True
    with pytest.raises(KeyboardInterrupt):
        job_scheduler.JobScheduler.exit_gracefully(object(), 15, None)


def test_install_wraps_job_submission_once(monkeypatch):
    plugin = pytest.importorskip(snakemake_compat.PLUGIN)
    monkeypatch.setattr(plugin, "query_job_status", plugin.query_job_status)
    monkeypatch.setattr(plugin.Executor, "run_jobs", plugin.Executor.run_jobs)
    assert snakemake_compat.install(main_process=False) is True
    first = plugin.Executor.run_jobs
    assert snakemake_compat.install(main_process=False) is True
    assert plugin.Executor.run_jobs is first and first.__wrapped__.__module__ == plugin.__name__


def test_group_check_finds_a_path_out_of_a_group_and_back_as_snakemake_does():
    """The one-pass check against Snakemake's own DAG._check_groups on small DAGs: a group {a, b}
    with a -> x -> b (x outside) depends on itself; a -> b inside the group, or x only upstream,
    does not; both checks agree on every case."""
    import snakemake.api  # noqa: F401  (before snakemake.dag: a circular import otherwise)
    from snakemake.dag import DAG
    from snakemake.exceptions import WorkflowError

    class Group(set):
        groupid = "g"

        @property
        def jobs(self):
            return self

    class Job:
        def __init__(self, name):
            self.rule = type("R", (), {"name": name, "lineno": 1, "snakefile": "Snakefile"})()

    def verdicts(deps, group):
        dag = DAG.__new__(DAG)
        dag._dependencies, dag._group = deps, dict.fromkeys(group, group)
        out = []
        for check in (getattr(DAG._check_groups, "__wrapped__", DAG._check_groups), snakemake_compat.check_groups):
            try:
                check(dag)
                out.append("ok")
            except WorkflowError as err:
                out.append("refused" if "depends on itself" in str(err) else str(err))
        return out

    a, b, c, x, y = (Job(n) for n in "abcxy")
    g = Group({a, b})
    assert verdicts({a: {x}, x: {b}, b: set()}, g) == ["refused", "refused"]
    assert verdicts({a: {x}, x: {y}, y: {b}, b: set()}, g) == ["refused", "refused"]  # two jobs outside
    assert verdicts({a: {b}, b: {x}, x: set()}, g) == ["ok", "ok"]  # a -> b inside the group
    assert verdicts({a: {x}, b: {x}, x: {y}, y: set()}, g) == ["ok", "ok"]  # shared upstream only
    assert verdicts({a: {c}, c: {x}, x: set(), b: set()}, g) == ["ok", "ok"]
    assert snakemake_compat.group_reentry({a, b}, {a: {x}, x: {b}, b: set()}) == (x, b)

    # a one-job group is not searched (its path back would be a cycle)
    calls = []
    validate = snakemake_compat.validate_group_skipping_single_jobs(lambda self, group: calls.append(group))
    validate(None, Group({a}))
    validate(None, g)
    assert calls == [g]


def test_function_parameters_are_looked_up_once_per_function():
    looked_up = []

    def original(func):
        looked_up.append(func)
        return inspect.signature(func).parameters

    def get_input(wildcards, attempt):
        return []

    cached = snakemake_compat.cache_function_params(original)
    assert list(cached(get_input)) == ["wildcards", "attempt"]
    assert list(cached(get_input)) == ["wildcards", "attempt"] and looked_up == [get_input]

    def forced(*args):
        return []

    forced._overwrite_params = ["wildcards"]  # Snakemake's own override is never cached
    cached(forced)
    cached(forced)
    assert looked_up.count(forced) == 2
