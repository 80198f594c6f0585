"""The plan as a cluster sees it: what the jobs ask for in all (the plan summary) and whether the
partition each rule's jobs go to can run them (a check against ``sinfo`` at DAG construction).

Called once per run from workflow/rules/common.smk (``check_plan``), in Snakemake's main process,
when the DAG is built and before any job is submitted:

- :func:`summarise` prints jobs per rule, CPU-hours, GPU-hours and the longest job, from the same
  requests the jobs make (pipeline/resources.py, first try);
- :func:`check_partitions` compares each rule's largest request (run time, CPUs, memory, GPUs) with
  what :func:`query_partitions` reads from ``sinfo`` for the rule's partition, and names every rule
  a partition can never run (SLURM would leave such a job PENDING with PartitionTimeLimit or
  PartitionConfig, or refuse a GPU request on a partition without GPUs).

The check runs with the SLURM executor (:func:`intended_executor`, also in a dry run) or when
``cluster.check_partitions`` is ``always``; ``never`` switches it off.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

SINFO_FORMAT = "%P|%l|%c|%m|%G"  # partition (default marked *), time limit, CPUs, memory (MB), GRES


class ClusterError(RuntimeError):
    """The plan asks a partition for more than it has, or sinfo cannot be read."""


# ----------------------------------------------------------------------------- sinfo
@dataclass(frozen=True)
class Partition:
    name: str
    default: bool
    max_minutes: float | None  # None: no time limit (infinite)
    cpus: int  # the most CPUs of one node
    mem_mb: int  # the most memory of one node
    gpus: int  # the most GPUs of one node


def parse_time_limit(text: str) -> float | None:
    """A SLURM time limit in minutes: `infinite` / `UNLIMITED` -> None, `30` (minutes), `30:00`
    (minutes:seconds), `2:00:00`, `1-00:00:00`, `1-12` (days-hours), `1-12:30` (days-hours:minutes)."""
    text = text.strip()
    if text.lower() in ("infinite", "unlimited"):
        return None
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not m:
        raise ClusterError(f"cannot read the sinfo time limit {text!r}")
    days, a, b, c = (int(g) if g is not None else None for g in m.groups())
    if days is None:  # minutes | minutes:seconds | hours:minutes:seconds
        if c is not None:
            return a * 60 + b + c / 60
        return a + (b or 0) / 60
    # days-hours | days-hours:minutes | days-hours:minutes:seconds
    return days * 1440 + a * 60 + (b or 0) + (c or 0) / 60


def parse_gpus(gres: str) -> int:
    """GPUs in a sinfo GRES field: `(null)` -> 0, `gpu:4`, `gpu:a100:4`, `gpu:a100:4(S:0-1)`,
    `gpu:v100:2,mps:200` -> 2; several GPU types on one node are added."""
    total = 0
    for item in re.split(r",(?![^()]*\))", gres.strip()):
        parts = re.sub(r"\(.*?\)", "", item).split(":")
        if parts[0] != "gpu":
            continue
        count = parts[-1] if len(parts) > 1 else "1"
        total += int(count) if count.isdigit() else 1
    return total


def _number(text: str) -> int:
    """sinfo's CPU and memory columns: `48`, `192000+` (at least, across the nodes of a line)."""
    m = re.match(r"\d+", text.strip())
    return int(m.group()) if m else 0


def parse_sinfo(text: str) -> dict[str, Partition]:
    """Partitions from `sinfo -h -N -o '%P|%l|%c|%m|%G'` (one line per node and partition): per
    partition the most CPUs, memory and GPUs of any of its nodes."""
    out: dict[str, Partition] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) != 5:
            raise ClusterError(f"cannot read the sinfo line {line!r} (expected {SINFO_FORMAT})")
        name, limit, cpus, mem, gres = (f.strip() for f in fields)
        default = name.endswith("*")
        name = name.rstrip("*")
        new = Partition(name, default, parse_time_limit(limit), _number(cpus), _number(mem), parse_gpus(gres))
        old = out.get(name)
        if old is not None:
            new = Partition(
                name,
                old.default or default,
                new.max_minutes,
                max(old.cpus, new.cpus),
                max(old.mem_mb, new.mem_mb),
                max(old.gpus, new.gpus),
            )
        out[name] = new
    return out


def query_partitions(run: Callable = subprocess.run) -> dict[str, Partition]:
    """The cluster's partitions, from sinfo."""
    if shutil.which("sinfo") is None and run is subprocess.run:
        raise ClusterError(
            "sinfo not found: the partition check needs SLURM's commands on this host "
            "(or switch it off: --config cluster='{check_partitions: never}')"
        )
    res = run(["sinfo", "-h", "-N", "-o", SINFO_FORMAT], capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        raise ClusterError(
            f"sinfo failed (exit {res.returncode}): {res.stderr.strip()} "
            "(--config cluster='{check_partitions: never}' skips the partition check)"
        )
    partitions = parse_sinfo(res.stdout)
    if not partitions:
        raise ClusterError("sinfo lists no partition")
    return partitions


# ----------------------------------------------------------------------------- the plan's jobs
@dataclass(frozen=True)
class JobRequest:
    """What one job of the plan asks for (first try)."""

    rule: str
    threads: int
    mem_mb: int
    runtime: int  # minutes (capped at cluster.max_job_hours)
    gpus: int
    estimate: int = 0  # minutes, the uncapped estimate


def largest_per_rule(jobs: Iterable[JobRequest]) -> dict[str, JobRequest]:
    """Per rule, the largest of each of its jobs' requests (not necessarily one job's)."""
    out: dict[str, JobRequest] = {}
    for j in jobs:
        o = out.get(j.rule, j)
        out[j.rule] = JobRequest(
            j.rule,
            max(o.threads, j.threads),
            max(o.mem_mb, j.mem_mb),
            max(o.runtime, j.runtime),
            max(o.gpus, j.gpus),
            max(o.estimate, j.estimate),
        )
    return out


def cap_threads(threads: int, cores: int | None) -> int:
    """A job's CPUs: its rule's threads, capped at Snakemake's `cores` (on a cluster the most CPUs
    one job asks for: the SLURM profile's `cores`, or --cores)."""
    return min(threads, cores) if cores else threads


def group_request(group: str, member: JobRequest, components: int, cores: int | None) -> JobRequest:
    """What one job of a Snakemake group asks for: `components` jobs like `member` (independent of
    each other), run as many at once as fit in `cores` (all of them when `cores` is None); CPUs,
    memory and GPUs add up over the jobs running at once, run time over the rounds (Snakemake's
    layered group resources)."""
    at_once = components if not cores else max(1, min(components, cores // max(member.threads, 1)))
    rounds = -(-components // at_once)
    return JobRequest(
        f"group {group}",
        at_once * member.threads,
        at_once * member.mem_mb,
        rounds * member.runtime,
        at_once * member.gpus,
        rounds * member.estimate,
    )


def _hours(h: float) -> str:
    return f"{h:,.0f}" if h >= 100 else f"{h:.3g}"


def summarise(jobs: list[JobRequest]) -> str:
    """The plan summary: per rule its jobs, CPU-hours, GPU-hours, and its largest job's CPUs, GPUs,
    memory and run time (what a partition must offer), then totals. Hours are requested hours: the
    estimates with their margins, capped at cluster.max_job_hours."""
    rows: dict[str, list] = {}
    for j in jobs:
        r = rows.setdefault(j.rule, [0, 0.0, 0.0])
        r[0] += 1
        r[1] += j.threads * j.runtime / 60
        r[2] += j.gpus * j.runtime / 60
    largest = largest_per_rule(jobs)
    lines = [
        "Plan summary (requested run time x CPUs / GPUs, first try; per job: the largest request):",
        f"  {'rule':<20} {'jobs':>7} {'CPU-h':>10} {'GPU-h':>9}  {'CPUs':>4} {'GPUs':>4} {'mem GB':>7} {'longest':>9}",
    ]
    for rule, (n, cpu_h, gpu_h) in sorted(rows.items(), key=lambda kv: -kv[1][1]):
        big = largest[rule]
        lines.append(
            f"  {rule:<20} {n:>7,} {_hours(cpu_h):>10} {_hours(gpu_h):>9}  {big.threads:>4} {big.gpus:>4} "
            f"{big.mem_mb / 1000:>7.1f} {big.runtime / 60:>7.1f} h"
        )
    longest = max(jobs, key=lambda j: (j.runtime, j.estimate), default=None)  # of equal requests, the longest estimate
    lines.append(
        f"  {'total':<20} {len(jobs):>7,} {_hours(sum(r[1] for r in rows.values())):>10} "
        f"{_hours(sum(r[2] for r in rows.values())):>9}  longest job {(longest.runtime if longest else 0) / 60:.1f} h"
        + (f" ({longest.rule})" if longest else "")
    )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the check
def _duration(minutes: float) -> str:
    return f"{minutes:.0f} min" if minutes < 60 else f"{minutes / 60:.1f} h"


def check_partitions(
    largest: dict[str, JobRequest], partition_of: Callable[[str], str | None], partitions: dict[str, Partition]
) -> list[str]:
    """Problems (one line per rule and resource) of running each rule's largest request on its
    partition (`partition_of(rule)`; None: the cluster's default partition)."""
    default = next((p.name for p in partitions.values() if p.default), None)
    problems = []
    for rule, req in sorted(largest.items()):
        name = partition_of(rule) or default
        if name is None:
            problems.append(f"{rule}: no partition given and sinfo marks no default partition (slurm_partition=...)")
            continue
        part = partitions.get(name)
        if part is None:
            problems.append(f"{rule}: partition {name!r} is not in sinfo's list ({', '.join(sorted(partitions))})")
            continue
        where = f"partition {name!r}"
        if part.max_minutes is not None and req.runtime > part.max_minutes:
            problems.append(
                f"{rule}: run time {_duration(req.runtime)} > {where}'s time limit {_duration(part.max_minutes)} "
                "(set cluster.max_job_hours to at most the limit)"
            )
        if req.threads > part.cpus:
            problems.append(f"{rule}: {req.threads} CPUs > {where}'s {part.cpus} CPUs per node")
        if req.mem_mb > part.mem_mb:
            problems.append(f"{rule}: {req.mem_mb:,} MB memory > {where}'s {part.mem_mb:,} MB per node")
        if req.gpus > part.gpus:
            fix = (
                "this partition has no GPUs: train on CPUs with training.device: cpu "
                "(--config training='{device: cpu}'), or send the training rules to a GPU partition "
                f"(--set-resources {rule}:slurm_partition=<gpu partition>)"
                if part.gpus == 0
                else f"its nodes have {part.gpus}"
            )
            problems.append(f"{rule}: {req.gpus} GPU(s) on {where}: {fix}")
    return problems


def raise_problems(problems: list[str]) -> None:
    if problems:
        raise ClusterError(
            "these jobs can never run on their partitions (sinfo):\n  "
            + "\n  ".join(problems)
            + "\nNothing was submitted. Change the requests (config, --set-resources, --set-threads) or the "
            "partitions (--default-resources slurm_partition=..., --set-resources <rule>:slurm_partition=...); "
            "--config cluster='{check_partitions: never}' skips this check."
        )


# ----------------------------------------------------------------------------- the executor
def intended_executor(workflow) -> str:
    """The executor Snakemake was asked for (`--executor`, e.g. from a profile): the running
    executor plugin's name, or, in a dry run (where Snakemake runs the dryrun pseudo-executor),
    the `executor` argument of the Snakemake API call that is executing the workflow
    (snakemake.api.DAGApi.execute_workflow, which validates the plan against it); 'local' when
    neither names one (a dry run or touch without an intended executor runs nothing elsewhere)."""
    plugin = getattr(workflow, "executor_plugin", None)
    name = getattr(plugin, "name", None)
    if name and name not in ("dryrun", "touch"):
        return name
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == "execute_workflow" and isinstance(frame.f_locals.get("executor"), str):
            return frame.f_locals["executor"]
        frame = frame.f_back
    return "local"


def should_check(setting: str, executor: str) -> bool:
    return setting == "always" or (setting == "auto" and executor == "slurm")
