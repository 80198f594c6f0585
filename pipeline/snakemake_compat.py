"""Work-arounds for Snakemake 9 and snakemake-executor-plugin-slurm (tested with Snakemake 9.27.1 and
plugin 2.8.0, the newest release): how a cluster run reports and ends its jobs, and the cost of
planning a large DAG. `install()` (from workflow/rules/common.smk) applies each; the plugin's only
matter with the SLURM executor.

1. **Cancelled jobs.** With accounting (what real clusters run) the plugin polls job states with
   `sacct`. A job cancelled with `scancel` shows there as `CANCELLED by <uid>`, which the plugin
   compares verbatim against its list of failed states ("CANCELLED", ...): no match, so it treats the
   job as still running and the whole run waits forever with an empty queue. Only the first word of
   each state reaches the plugin ("CANCELLED by 0" -> "CANCELLED"); every other state (COMPLETED,
   TIMEOUT, OUT_OF_MEMORY, RUNNING, ...) is one word already and passes unchanged.
2. **Jobs that can never start.** A job pending for a reason that never clears (its time request
   above the partition's MaxTime, more CPUs, memory or GPUs per node than the partition has, a
   per-job QOS limit) would wait silently for ever. At each status check the pending jobs' reasons
   are read from `squeue`; such a job is reported with its reason and the setting that fixes it, and
   cancelled, so Snakemake reports it as failed and goes on with the rest (keep-going).
3. **A failed job's log is its own.** The plugin submits a job without removing the rule's `log:`
   files (Snakemake's job preparation does that inside the job, once it runs), so a job cancelled
   before it started was reported with the log of an earlier, successful run. Log files are removed
   when a job is submitted; a job that never ran is reported with "Logfile ... not found".
4. **SIGTERM ends the run as Ctrl-C does.** Snakemake's SIGTERM handler waits for the running jobs
   to finish and leaves queued cluster jobs in the queue (a batch system ending the head job, or
   `timeout`, kills it a little later). Here SIGTERM raises KeyboardInterrupt in the main thread,
   so Snakemake cancels every submitted job (scancel) and marks their outputs incomplete.

5. **Group checks in one pass per group.** Snakemake 9 checks each group job for paths that leave
   and re-enter it once per *member* (its job -> group map lists a group of 20 evaluations 20
   times), each a depth-first search of everything upstream, and before that validates every
   one-job group the same way: 20 of the 26 minutes of the paper config's dry run. Here a group is
   refused exactly when a job outside it, reachable from a member, depends on a member (one
   traversal per group), and a one-job group is not searched (a path out of a job and back into it
   would be a cycle, which a DAG has not).

6. **Input functions' signatures once.** Snakemake inspects the signature of a rule's input, params
   and resource functions every time it calls one (`inspect.signature`, 700,000 calls and a tenth
   of the paper config's dry run); the parameters of each function are looked up once here.

Idempotent, and harmless once the plugin or Snakemake handles these cases itself.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

PLUGIN = "snakemake_executor_plugin_slurm"

# squeue's pending reasons that no amount of waiting clears, and what fixes each.
_PARTITION_FIX = "send the rule to a partition that can run it (--set-resources <rule>:slurm_partition=<name>)"
NEVER_CLEARS = {
    "PartitionTimeLimit": "its time request is above the partition's MaxTime: lower cluster.max_job_hours "
    "below it (long jobs then continue from their checkpoints) or " + _PARTITION_FIX,
    "PartitionConfig": "it asks for more than the partition's nodes have (CPUs, memory or GPUs; for GPUs set "
    "training.device: cpu), or " + _PARTITION_FIX,
    "PartitionNodeLimit": "it asks for more nodes than the partition allows: " + _PARTITION_FIX,
    "BadConstraints": "no node satisfies its constraints: " + _PARTITION_FIX,
    "InvalidQOS": "its QOS is not valid for the account or partition: fix slurm_qos or slurm_account",
    "InvalidAccount": "its account is not valid: fix slurm_account (--default-resources slurm_account=...)",
}
_PER_JOB_LIMIT = re.compile(r"^(Assoc|QOS)\w*PerJob\w*$")


def normalise_state(state: str) -> str:
    """A SLURM job state without sacct's trailing detail: 'CANCELLED by 0' -> 'CANCELLED'."""
    words = state.split()
    return words[0] if words else state


def never_clears(reason: str) -> str | None:
    """What fixes a pending reason that never clears; None for a reason that may (Resources,
    Priority, Dependency, ReqNodeNotAvail, a group's running limit, ...)."""
    if reason in NEVER_CLEARS:
        return NEVER_CLEARS[reason]
    if _PER_JOB_LIMIT.match(reason):
        return (
            "a per-job limit of your QOS or association: lower the request (cluster.max_job_hours, "
            "threads) or ask your administrators"
        )
    return None


def rule_of_comment(comment: str) -> str:
    """The rule (or group) of a job from the plugin's sbatch comment (rule_<name>_wildcards_...)."""
    m = re.match(r"(?:rule|group)_(.+?)(?:_wildcards_.*)?$", comment)
    return m.group(1) if m else comment


def stuck_jobs(job_ids, run=subprocess.run) -> dict[str, str]:
    """The jobs among `job_ids` pending for a reason that never clears: {job id: message naming the
    job's rule, partition, reason and fix}."""
    if not job_ids:
        return {}
    out = run(
        ["squeue", "--noheader", "--format=%i|%T|%r|%P|%k", f"--jobs={','.join(job_ids)}"],
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        return {}
    stuck = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split("|", 4)
        if len(parts) != 5 or parts[1] != "PENDING":
            continue
        job, _, reason, partition, comment = parts
        fix = never_clears(reason)
        if fix:
            stuck[job] = (
                f"SLURM job {job} ({rule_of_comment(comment)}) can never start on partition {partition!r}: "
                f"pending with reason {reason}; {fix}. Cancelled."
            )
    return stuck


def wrap_status_query(original, run=subprocess.run):
    """The plugin's status query with one-word states and never-starting jobs cancelled."""

    async def query_job_status(command, logger):
        states, duration = await original(command, logger)
        if states is not None:
            states = {job: normalise_state(state) for job, state in states.items()}
            pending = [job for job, state in states.items() if state == "PENDING"]
            for job, message in stuck_jobs(pending, run).items():
                logger.error(message)
                run(["scancel", job], capture_output=True, text=True)
                states[job] = "CANCELLED"
        return states, duration

    query_job_status.asteroid_wrapped = True
    query_job_status.__wrapped__ = original
    return query_job_status


def remove_logs(job) -> None:
    """Delete the `log:` files of a job (each job of a group job) before it is submitted."""
    members = job.jobs if job.is_group() else [job]
    for member in members:
        for f in member.log:
            Path(f).unlink(missing_ok=True)


def wrap_run_jobs(original):
    def run_jobs(self, jobs):
        for job in jobs:
            remove_logs(job)
        return original(self, jobs)

    run_jobs.asteroid_wrapped = True
    run_jobs.__wrapped__ = original
    return run_jobs


def exit_on_sigterm(self, *args):
    """SIGTERM handler of Snakemake's scheduler: the Ctrl-C path (cancel every job, then exit)."""
    raise KeyboardInterrupt


def install_sigterm() -> bool:
    """SIGTERM cancels the run's jobs as Ctrl-C does (Snakemake's scheduler binds its handler when it
    starts, after the Snakefile is read, so patching the class here is in time)."""
    try:
        from snakemake.scheduling.job_scheduler import JobScheduler
    except ImportError:  # another Snakemake layout: keep its own handling
        return False
    if not hasattr(JobScheduler, "exit_gracefully"):
        return False
    JobScheduler.exit_gracefully = exit_on_sigterm
    return True


def group_reentry(group_jobs, dependencies):
    """(outside job, member) of a path that leaves the group and enters it again, or None: one
    traversal of everything upstream of the members; `dependencies[job]`: the jobs `job` needs."""
    members = set(group_jobs)
    visited = set(members)
    stack = list(members)
    while stack:
        job = stack.pop()
        for dep in dependencies[job]:
            if dep in members:
                if job not in members:
                    return job, dep
            elif dep not in visited:
                visited.add(dep)
                stack.append(dep)
    return None


def check_groups(self):
    """DAG._check_groups: no group may depend on itself through a job outside it."""
    from snakemake.exceptions import WorkflowError

    seen = set()
    for group in self._group.values():
        if id(group) in seen:
            continue
        seen.add(id(group))
        found = group_reentry(group, self._dependencies)
        if found:
            outside, member = found
            raise WorkflowError(
                f"Group {group.groupid} depends on itself: {outside.rule.name} (outside the group) needs "
                f"{member.rule.name} (in it) and is needed by the group. Add {outside.rule.name} to the group "
                f"or remove {member.rule.name} from it.",
                rule=member.rule,
            )


check_groups.asteroid_wrapped = True


def validate_group_skipping_single_jobs(original):
    def validate_group(self, group):
        if len(group.jobs) <= 1:
            return None  # no path leaves one job and comes back to it: the DAG has no cycles
        return original(self, group)

    validate_group.asteroid_wrapped = True
    validate_group.__wrapped__ = original
    return validate_group


def install_group_check() -> bool:
    try:
        import snakemake.api  # noqa: F401  (snakemake.dag imported first is a circular import)
        from snakemake.dag import DAG
    except ImportError:
        return False
    if not (hasattr(DAG, "_check_groups") and hasattr(DAG, "validate_group")):
        return False
    if not getattr(DAG._check_groups, "asteroid_wrapped", False):
        check_groups.__wrapped__ = DAG._check_groups
        DAG._check_groups = check_groups
    if not getattr(DAG.validate_group, "asteroid_wrapped", False):
        DAG.validate_group = validate_group_skipping_single_jobs(DAG.validate_group)
    return True


def cache_function_params(original):
    """snakemake.common.get_function_params, remembered per function (a function's parameters do not
    change; one whose are forced later through `_overwrite_params` is looked up afresh)."""
    cache = {}

    def get_function_params(func):
        if hasattr(func, "_overwrite_params"):
            return original(func)
        try:
            return cache[func]
        except KeyError:
            params = cache[func] = original(func)
            return params
        except TypeError:  # an unhashable callable
            return original(func)

    get_function_params.asteroid_wrapped = True
    get_function_params.__wrapped__ = original
    return get_function_params


def install_function_params_cache() -> bool:
    import importlib

    patched = False
    for name in ("snakemake.common", "snakemake.rules", "snakemake.jobs"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        original = getattr(module, "get_function_params", None)
        if original is not None and not getattr(original, "asteroid_wrapped", False):
            module.get_function_params = cache_function_params(original)
            patched = True
    return patched


def install(main_process: bool = True) -> bool:
    """Apply the work-arounds (SIGTERM's only in Snakemake's main process, not inside a job); True
    when the SLURM plugin's are (now or already) in place."""
    plugin = sys.modules.get(PLUGIN)  # before the imports below, which load every executor plugin
    install_group_check()
    install_function_params_cache()
    if main_process:
        install_sigterm()
    if plugin is None:
        return False
    original = getattr(plugin, "query_job_status", None)
    executor = getattr(plugin, "Executor", None)
    if original is None or executor is None:  # a plugin version without these: nothing to wrap
        return False
    if not getattr(original, "asteroid_wrapped", False):
        plugin.query_job_status = wrap_status_query(original)
    if not getattr(executor.run_jobs, "asteroid_wrapped", False):
        executor.run_jobs = wrap_run_jobs(executor.run_jobs)
    return True
