"""Replay a finished run's jobs on C cores under different scheduling rules (no job is run).

Reads the Snakemake log of a finished run (each job's rule, wildcards, inputs, outputs, threads,
start and finish time: the dependencies come from outputs consumed as inputs) and a dry run of the
workflow on the same config (`snakemake -n -F`, whose job listing carries each job's `priority:`),
and simulates Snakemake's greedy scheduler (ready jobs by priority, as many as the free cores
take) with the measured job durations:

- replay: priorities = the measured start order (reproduces the measured makespan: a check of the
  simulation);
- no priorities: ties broken at random (Snakemake breaks them by input size), 200 draws;
- workflow priorities: the `priority:` of each job in the dry run, ties at random, 200 draws;
- critical path: the longest remaining path with known durations (a bound no rule without
  durations reaches), and the lower bound total job time / cores.

    snakemake -n -F --cores 2 > dryrun.txt          # in the run directory, current workflow
    python benchmarks/schedule_replay.py --log .snakemake/log/<run>.snakemake.log --dryrun dryrun.txt --cores 2 4
"""

from __future__ import annotations

import argparse
import random
import re
from datetime import datetime

import common
import numpy as np

DRAWS = 200


def parse_log(text: str) -> dict:
    """{jobid: {rule, wc, input, output, threads, start, end}} of the jobs a finished run executed."""
    jobs, cur, t = {}, None, None
    for line in text.splitlines():
        m = re.match(r"\[(\w{3} \w{3} +\d+ [\d:]+ \d{4})\]", line)
        if m:
            t = datetime.strptime(" ".join(m.group(1).split()), "%a %b %d %H:%M:%S %Y")
            continue
        m = re.match(r"(?:local)?rule (\w+):", line)
        if m:
            cur = {"rule": m.group(1), "input": [], "output": [], "wc": {}, "threads": 1, "start": t}
            continue
        m = re.match(r"Finished jobid: (\d+)", line)
        if m and int(m.group(1)) in jobs:
            jobs[int(m.group(1))]["end"] = t
            continue
        if cur is None:
            continue
        m = re.match(r"\s+(input|output|jobid|wildcards|threads): (.*)", line)
        if not m:
            continue
        key, value = m.groups()
        if key in ("input", "output"):
            cur[key] = [x.strip() for x in value.split(",")]
        elif key == "jobid":
            jobs[int(value)] = cur
        elif key == "wildcards":
            cur["wc"] = dict(kv.split("=", 1) for kv in value.split(", "))
        else:
            cur["threads"] = int(value)
    return {j: d for j, d in jobs.items() if "end" in d}


def parse_priorities(text: str) -> dict:
    """{(rule, wildcards): priority} from a dry run's job listing (jobs without one: 0)."""
    out, key = {}, None
    for line in text.splitlines():
        m = re.match(r"(?:local)?rule (\w+):", line)
        if m:
            key = [m.group(1), ""]
            continue
        if key is None:
            continue
        m = re.match(r"\s+wildcards: (.*)", line)
        if m:
            key[1] = m.group(1)
        m = re.match(r"\s+priority: (-?[\d.]+)", line)
        if m:
            out[tuple(key)] = float(m.group(1))
    return out


def simulate(jobs: dict, deps: dict, cores: int, key) -> float:
    """Makespan (minutes) of a greedy list schedule: ready jobs by key, highest first."""
    done, running, pending, now, free = set(), [], set(jobs), 0.0, cores
    while pending or running:
        ready = sorted((j for j in pending if deps[j] <= done), key=key, reverse=True)
        for j in ready:
            th = min(jobs[j]["threads"], cores)
            if th <= free:
                free -= th
                pending.discard(j)
                running.append((now + jobs[j]["dur"], j, th))
        running.sort()
        end, j, th = running.pop(0)
        now, free = end, free + th
        done.add(j)
    return now / 60


def spread(values: list[float]) -> str:
    q = np.percentile(values, [50, 5, 95])
    return f"{q[0]:.1f} [{q[1]:.1f}–{q[2]:.1f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log", required=True, help="Snakemake log of the finished run")
    p.add_argument("--dryrun", required=True, help="output of `snakemake -n -F` with the workflow to assess")
    p.add_argument("--cores", type=int, nargs="+", default=[2, 4])
    a = p.parse_args()
    with open(a.log) as f:
        jobs = parse_log(f.read())
    with open(a.dryrun) as f:
        prio_of = parse_priorities(f.read())
    t0 = min(d["start"] for d in jobs.values())
    for d in jobs.values():
        d["dur"] = (d["end"] - d["start"]).total_seconds()
        d["t_start"] = (d["start"] - t0).total_seconds()
        wc = ", ".join(f"{k}={v}" for k, v in d["wc"].items())
        d["priority"] = prio_of.get((d["rule"], wc), 0.0)
    producer = {o: j for j, d in jobs.items() for o in d["output"]}
    deps = {j: {producer[i] for i in d["input"] if i in producer} for j, d in jobs.items()}
    children = {j: {c for c, ds in deps.items() if j in ds} for j in jobs}
    rank: dict = {}

    def path(j):
        if j not in rank:
            rank[j] = jobs[j]["dur"] + max((path(c) for c in children[j]), default=0.0)
        return rank[j]

    total = sum(d["dur"] for d in jobs.values()) / 60
    measured = max((d["end"] - t0).total_seconds() for d in jobs.values()) / 60
    n_prio = sum(d["priority"] != 0 for d in jobs.values())
    common.print_machine({"log": a.log, "dry run": a.dryrun})
    print(
        f"\n{len(jobs)} jobs, {total:.1f} job-minutes, measured makespan {measured:.1f} min; "
        f"{n_prio} jobs have a priority in the dry run\n"
    )
    rows = []
    for c in a.cores:
        draws = [random.Random(s) for s in range(DRAWS)]
        ties = [{j: r.random() for j in jobs} for r in draws]
        none = [simulate(jobs, deps, c, lambda j, t=t: t[j]) for t in ties]
        prio = [simulate(jobs, deps, c, lambda j, t=t: (jobs[j]["priority"], t[j])) for t in ties]
        rows.append(
            [
                c,
                f"{simulate(jobs, deps, c, lambda j: -jobs[j]['t_start']):.1f}",
                spread(none),
                spread(prio),
                f"{simulate(jobs, deps, c, path):.1f}",
                f"{total / c:.1f}",
            ]
        )
    print(
        common.markdown_table(
            [
                "cores",
                "replay of the measured order",
                "no priorities, median [5–95%]",
                "workflow priorities, median [5–95%]",
                "critical path (durations known)",
                "bound: job time / cores",
            ],
            rows,
        )
    )
    print("\nMinutes of wall time; measured job durations, no scheduling or start-up overhead.")


if __name__ == "__main__":
    main()
