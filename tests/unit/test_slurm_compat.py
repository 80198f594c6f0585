"""The work-around for 'CANCELLED by <uid>' states in snakemake-executor-plugin-slurm."""

import asyncio
import logging
import sys

import pytest

from pipeline import slurm_compat


def test_normalise_state():
    assert slurm_compat.normalise_state("CANCELLED by 0") == "CANCELLED"
    assert slurm_compat.normalise_state("CANCELLED by 1000") == "CANCELLED"
    assert slurm_compat.normalise_state("OUT_OF_MEMORY") == "OUT_OF_MEMORY"
    assert slurm_compat.normalise_state("") == ""


def test_install_without_the_plugin_does_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, slurm_compat.PLUGIN, raising=False)
    assert slurm_compat.install() is False


def test_plugin_status_query_reports_cancelled_jobs_as_cancelled(monkeypatch):
    """The plugin's own query function, wrapped, on sacct-like output (printf stands in for sacct)."""
    plugin = pytest.importorskip(slurm_compat.PLUGIN)
    monkeypatch.setattr(plugin, "query_job_status", plugin.query_job_status)  # restored after the test
    assert slurm_compat.install() is True
    assert slurm_compat.install() is True  # idempotent: wrapped once
    assert plugin.query_job_status.__wrapped__.__module__.endswith("job_status_query")
    command = "printf '11|CANCELLED by 0\\n12|COMPLETED\\n13|TIMEOUT\\n14|RUNNING\\n'"
    states, _ = asyncio.run(plugin.query_job_status(command, logging.getLogger("test")))
    assert states == {"11": "CANCELLED", "12": "COMPLETED", "13": "TIMEOUT", "14": "RUNNING"}
    assert "CANCELLED" in [s.split()[0] for s in states.values()]
