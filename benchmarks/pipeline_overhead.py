"""Cost of each workflow stage of a finished run, and the cost of a no-change rerun.

1. Per stage (Snakemake rule), from the benchmark files every rule writes
   (``<results>/benchmarks/<molecule>/<dir>/....tsv``; columns s, h:m:s, max_rss, ...,
   cpu_time): jobs, summed wall and CPU seconds, CPU/wall, peak resident memory, and the total.
   Files are read with the report's own reader (``pipeline.report.metrics.read_benchmarks``); each
   file is matched to its rule by the benchmark templates of ``pipeline/layout.py`` (BENCHMARKS).
   Summed job wall time exceeds the elapsed time of the run when jobs ran in parallel.

2. A no-change rerun in the working directory, timed ``--repeats`` times each (median, min, max;
   CPU is user + system time of snakemake and its children):
   ``python -m snakemake --cores all -n <targets>`` (dry run: DAG building and up-to-date checks)
   and ``python -m snakemake --cores all <targets>`` (real run). The real run is made only when
   the dry run reports nothing to be done, so it never computes anything; it writes a Snakemake
   log under ``.snakemake/log/``. It needs the workflow lock: no other Snakemake may be running
   in the working directory.

    python benchmarks/pipeline_overhead.py                       # ./results, rule `all`
    python benchmarks/pipeline_overhead.py --quick               # one repeat of each rerun
    python benchmarks/pipeline_overhead.py --workdir /path/to/checkout results/ethanol/report.html \\
        --snakemake-args="--configfile my-config.yaml"
"""

from __future__ import annotations

import argparse
import re
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import common
import pandas as pd

from pipeline import layout
from pipeline.report.metrics import read_benchmarks

NOTHING_TO_DO = "Nothing to be done"


def rule_patterns(workdir: Path | None = None) -> list[tuple[str, re.Pattern]]:
    """(rule name, regex of its benchmark path below ``benchmarks/``) for every rule of the workflow,
    from the results tree's owner (pipeline/layout.py BENCHMARKS); wildcards match ``.+``."""
    patterns = []
    for rule, template in layout.BENCHMARKS.items():
        literal = re.split(r"\{\w+\}", f"{{molecule}}/{template}.tsv")
        patterns.append((len("".join(literal)), rule, re.compile(".+".join(map(re.escape, literal)))))
    # the most specific template first (md_stability_delta's delta_... before md_stability's)
    return [(rule, rx) for _, rule, rx in sorted(patterns, key=lambda p: -p[0])]


def rule_of(rel_path: str, patterns: list[tuple[str, re.Pattern]], fallback: str) -> str:
    """The rule whose benchmark pattern matches `rel_path` (relative to ``benchmarks/``), else `fallback`."""
    return next((name for name, rx in patterns if rx.fullmatch(rel_path)), fallback)


def stage_table(bench_root: Path, molecule: str, patterns) -> tuple[list[list], list]:
    """(rows per rule, total row) for the benchmark files of `molecule`."""
    paths = sorted(str(p) for p in (bench_root / molecule).rglob("*.tsv"))
    df = read_benchmarks(paths, molecule)
    df["rule"] = [
        rule_of(Path(path).relative_to(bench_root).as_posix(), patterns, stage)
        for path, stage in zip(df["path"], df["stage"])
    ]
    g = df.groupby("rule")
    per_rule = pd.DataFrame(
        {"jobs": g.size(), "wall_s": g["wall_s"].sum(), "cpu_s": g["cpu_s"].sum(), "rss": g["max_rss_mb"].max()}
    ).sort_values("wall_s", ascending=False)

    def row(name, jobs, wall, cpu, rss):
        return [
            name,
            int(jobs),
            float(wall),
            hms(wall),
            float(cpu),
            cpu / wall if wall > 0 else float("nan"),
            float(rss),
        ]

    rows = [row(name, r.jobs, r.wall_s, r.cpu_s, r.rss) for name, r in per_rule.iterrows()]
    total = row("**total**", len(df), df["wall_s"].sum(), df["cpu_s"].sum(), df["max_rss_mb"].max())
    return rows, total


def hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall s, CPU s of the child processes, completed process) of running `cmd` in `cwd`."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return wall, cpu, proc


def run_repeated(cmd: list[str], cwd: Path, repeats: int) -> tuple[list[float], list[float], str]:
    """Walls, CPUs and the output of the last run; exits with Snakemake's output on failure."""
    walls, cpus, out = [], [], ""
    for _ in range(repeats):
        wall, cpu, proc = timed(cmd, cwd)
        out = proc.stdout + proc.stderr
        if proc.returncode != 0:
            sys.exit(f"`{shlex.join(cmd)}` failed (exit {proc.returncode}) in {cwd}:\n{out[-3000:]}")
        walls.append(wall)
        cpus.append(cpu)
    return walls, cpus, out


def job_stats(output: str) -> str:
    """The "Job stats" block of Snakemake's output (jobs per rule), else its last lines."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("Job stats")), None)
    if start is None:
        return "\n".join(lines[-30:])
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].strip()), len(lines))
    return "\n".join(lines[start:end])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("targets", nargs="*", help="Snakemake targets of the rerun (default: rule all)")
    p.add_argument("--workdir", type=Path, default=Path("."), help="checkout the run was made in")
    p.add_argument(
        "--results",
        type=Path,
        default=Path("results"),
        help="results directory, relative to --workdir unless absolute (benchmarks in <results>/benchmarks)",
    )
    p.add_argument("--molecules", nargs="+", default=None, help="default: every molecule with benchmark files")
    p.add_argument("--snakemake-args", default="", help='extra Snakemake arguments, e.g. "--configfile c.yaml"')
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each rerun command")
    p.add_argument("--no-rerun", action="store_true", help="only the per-stage table")
    p.add_argument("--quick", action="store_true", help="one repeat of each rerun command")
    a = p.parse_args(argv)
    if a.quick:
        a.repeats = 1
    workdir = a.workdir.resolve()
    bench_root = workdir / a.results / "benchmarks"
    if not bench_root.is_dir():
        sys.exit(f"no benchmark directory {bench_root}; give --workdir/--results of a finished run")
    molecules = a.molecules or sorted(d.name for d in bench_root.iterdir() if d.is_dir())

    from importlib.metadata import version

    print("# Workflow stages and no-change rerun\n")
    common.print_machine({"Snakemake": version("snakemake"), "working directory": str(workdir)})

    patterns = rule_patterns(workdir)
    headers = ["rule", "jobs", "wall s (sum)", "wall h:m:s", "CPU s (sum)", "CPU/wall", "peak RSS MB"]
    for molecule in molecules:
        rows, total = stage_table(bench_root, molecule, patterns)
        print(f"## Stages of {molecule} ({bench_root / molecule})\n")
        print(common.markdown_table(headers, rows + [total]))
        print()

    if a.no_rerun:
        return
    base = [sys.executable, "-m", "snakemake", "--cores", "all"]
    extra = shlex.split(a.snakemake_args)
    dry_cmd = base + ["-n", *a.targets, *extra]
    real_cmd = base + [*a.targets, *extra]
    rows = []
    walls, cpus, out = run_repeated(dry_cmd, workdir, a.repeats)
    rows.append(
        [
            "dry run",
            f"`{shlex.join(['python', *dry_cmd[1:]])}`",
            common.median(walls),
            min(walls),
            max(walls),
            common.median(cpus),
        ]
    )
    if NOTHING_TO_DO not in out:
        print(
            f"The dry run would run jobs, so this is not a no-change rerun; the real run is skipped.\n"
            f"```\n{job_stats(out)}\n```\n"
        )
    else:
        walls, cpus, out = run_repeated(real_cmd, workdir, a.repeats)
        if NOTHING_TO_DO not in out:
            sys.exit(f"the real rerun did work although the dry run found nothing to do:\n{out[-3000:]}")
        rows.append(
            [
                "real run",
                f"`{shlex.join(['python', *real_cmd[1:]])}`",
                common.median(walls),
                min(walls),
                max(walls),
                common.median(cpus),
            ]
        )
    print(f"## No-change rerun ({a.repeats} repeat(s))\n")
    print(common.markdown_table(["run", "command", "wall s (median)", "min", "max", "CPU s (median)"], rows))


if __name__ == "__main__":
    main()
