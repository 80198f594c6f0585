"""A work-around for snakemake-executor-plugin-slurm (tested with 2.8.0, the newest release).

With accounting (what real clusters run) the plugin polls job states with `sacct`. A job
cancelled with `scancel` shows there as `CANCELLED by <uid>`, which the plugin compares verbatim
against its list of failed states ("CANCELLED", ...): no match, so it treats the job as still
running and the whole run waits forever with an empty queue. `install()` wraps the plugin's status
query so that only the first word of each state reaches the plugin ("CANCELLED by 0" ->
"CANCELLED"); every other state (COMPLETED, TIMEOUT, OUT_OF_MEMORY, RUNNING, ...) is one word
already and passes unchanged. The cancelled job is then reported as failed at the next status
check, and Snakemake retries it or goes on with the rest (the profile's `retries` and
`keep-going`).

Called from workflow/rules/common.smk, in Snakemake's main process, where the plugin's module is
already imported when it is the executor; with any other executor it does nothing. Idempotent,
and harmless once the plugin handles these states itself.
"""

from __future__ import annotations

import sys

PLUGIN = "snakemake_executor_plugin_slurm"


def normalise_state(state: str) -> str:
    """A SLURM job state without sacct's trailing detail: 'CANCELLED by 0' -> 'CANCELLED'."""
    words = state.split()
    return words[0] if words else state


def install() -> bool:
    """Wrap the SLURM plugin's status query; True when it is (now or already) wrapped."""
    plugin = sys.modules.get(PLUGIN)
    if plugin is None:
        return False
    original = getattr(plugin, "query_job_status", None)
    if original is None:  # a plugin version without this function: nothing to wrap
        return False
    if getattr(original, "asteroid_wrapped", False):
        return True

    async def query_job_status(command, logger):
        states, duration = await original(command, logger)
        if states is not None:
            states = {job: normalise_state(state) for job, state in states.items()}
        return states, duration

    query_job_status.asteroid_wrapped = True
    query_job_status.__wrapped__ = original
    plugin.query_job_status = query_job_status
    return True
