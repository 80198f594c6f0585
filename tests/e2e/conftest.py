"""A finished tiny run of the real workflow (OpenMM, PySCF, training, report), shared by e2e tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "tests" / "e2e" / "config-tiny.yaml"


def snakemake(workdir, *args, check=True, timeout=1800):
    """Run snakemake in `workdir` with the tiny config; returns the CompletedProcess."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args, "--configfile", "config-tiny.yaml"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    r = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout, env=env)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{r.stdout[-6000:]}\n{r.stderr[-6000:]}")
    return r


def bench_run(workdir, script, *args):
    """Run benchmarks/<script> in `workdir`; returns the CompletedProcess, whatever its exit status."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )


def bench(workdir, script, *args):
    """Run benchmarks/<script> in `workdir`; returns its stdout (the tables)."""
    r = bench_run(workdir, script, *args)
    assert r.returncode == 0, r.stderr[-4000:]
    return r.stdout


def make_workdir(path: Path) -> Path:
    """A fresh checkout-like working directory: workflow, envs, default and tiny config."""
    shutil.copytree(ROOT / "workflow", path / "workflow")
    shutil.copytree(ROOT / "envs", path / "envs")
    shutil.copy(ROOT / "config.yaml", path / "config.yaml")
    shutil.copy(TINY, path / "config-tiny.yaml")
    return path


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """Run the tiny config to results/ethanol/report.html once per session."""
    workdir = make_workdir(tmp_path_factory.mktemp("e2e"))
    r = snakemake(workdir, "results/ethanol/report.html")
    return workdir, r
