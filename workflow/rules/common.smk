# Config validation at parse time and the get_* input functions the rules call. Paths come from
# pipeline/layout.py (L), the methods and what they train from pipeline/methods (one module each),
# cluster resources from pipeline/resources.py; the Δ-learning helpers are in delta.smk.
import dataclasses
import functools
import json
import shlex
import sys

from snakemake.utils import available_cpu_count, validate

from pipeline import cluster as pcluster
from pipeline import config as pconf
from pipeline import layout as L
from pipeline import methods
from pipeline import resources as pres
from pipeline import selection as pselection
from pipeline import snakemake_compat
from pipeline.labelling import cost as lcost
from pipeline.labelling.levels import LEVELS
from pipeline.labelling.runner import n_chunks
from pipeline.methods import asteroid
from pipeline.methods.corrected import levels as corrected_levels

# Numbers given as `--config section='{key: 4}'` arrive as strings (Snakemake's YAML base loader).
pconf.coerce_command_line_values(config)
# Fills every value the config leaves out with the schema's `default:` (the one source of defaults).
validate(config, schema="../schemas/config.schema.yaml", set_default=True)
try:
    pconf.check_config(config)
except pconf.ConfigError as err:
    raise WorkflowError(f"invalid config: {err}") from None

# pipeline/snakemake_compat.py: with snakemake-executor-plugin-slurm 2.8, a job cancelled with scancel
# or pending for ever (e.g. PartitionTimeLimit) is reported as failed, a job's log is its own; with any
# executor, SIGTERM cancels the run's jobs as Ctrl-C does, and large DAGs plan faster.
snakemake_compat.install(main_process=workflow.is_main_process)


wildcard_constraints:
    molecule="[A-Za-z0-9_]+",
    level="[A-Za-z0-9_]+",
    subset=f"train|val|test|unlabelled|cheap-[A-Za-z0-9_]+|{L.SELECTION_SUBSET_RE}",
    chunk="[0-9]+",
    model="[a-z0-9_]+",
    n="[0-9]+",
    seed="[0-9]+",


def q(value):
    """A value as one shell word of JSON (for --flag '{...}' arguments)."""
    return shlex.quote(json.dumps(value, sort_keys=True))


CHECKED_MOLECULES = set()


def get_molecule(wildcards):
    """Check the molecule named by the target path (once); an unknown one fails here, before any job."""
    if wildcards.molecule not in CHECKED_MOLECULES:
        try:
            pconf.check_molecule(config, wildcards.molecule)
        except pconf.ConfigError as err:
            raise WorkflowError(f"invalid target results/{wildcards.molecule}/...: {err}") from None
        CHECKED_MOLECULES.add(wildcards.molecule)
        check_label_budget(wildcards.molecule)
    return wildcards.molecule


def get_executor():
    """The executor asked for (`--executor`, e.g. slurm from the profile), also in a dry run."""
    return pcluster.intended_executor(workflow)


def get_label_cores():
    """Cores the label jobs share and where that number comes from (pipeline.labelling.cost.label_cores)."""
    cluster = get_executor() != "local"
    threads = config["labelling"]["threads"]
    if cluster:
        threads = pcluster.cap_threads(threads, get_cores())
    return lcost.label_cores(cluster, workflow._cores, workflow.nodes, threads, available_cpu_count())


def check_label_budget(molecule):
    """Print the label cost preview of a target molecule and stop here (no job started) when it
    exceeds labelling.max_cpu_hours / max_wall_hours. Main Snakemake process only: jobs that
    re-parse the workflow (cluster or subprocess execution) skip it."""
    if not workflow.is_main_process:
        return
    cores, cores_from = get_label_cores()
    plan = lcost.plan_labels(config, molecule, cores, cores_from=cores_from)
    try:
        lcost.check_budget(plan, config)
    except lcost.BudgetExceeded as err:
        raise WorkflowError(f"label budget exceeded: {err}") from None
    print(lcost.format_plan(plan, config), file=sys.stderr)


def get_final_outputs():
    return [L.file("report", molecule=m) for m in config["targets"]]


# ----------------------------------------------------------------------------- sampling, labels
def get_molecule_spec(wildcards):
    spec = pconf.molecule_spec(config, get_molecule(wildcards))
    return q({"name": spec.name, "smiles": spec.smiles, "xyz": spec.xyz, "charge": spec.charge})


def get_molecule_inputs(wildcards):
    """A user molecule's xyz file is an input of the GAFF2 step (edits rerun it)."""
    spec = pconf.molecule_spec(config, get_molecule(wildcards))
    return [spec.xyz] if spec.xyz else []


def get_sampling(wildcards):
    return q(config["sampling"])


def get_frames_source(wildcards):
    mol = get_molecule(wildcards)
    subsets = pconf.subsets(config, mol)
    if wildcards.subset not in subsets:
        raise WorkflowError(f"molecule {mol!r} has no subset {wildcards.subset!r}; subsets: {', '.join(subsets)}")
    src = pconf.subset_source(config, mol, wildcards.subset)
    return L.file("trajectory", molecule=mol) if src == "md" else L.file("imported", molecule=mol, level=src)


def get_frames_block(wildcards):
    """SIDE:START:STEP:SIZE of the subset in its source's seeded permutation (pipeline/splits.py)."""
    return pconf.subset_block(config, get_molecule(wildcards), wildcards.subset).token


def get_level_entry(wildcards):
    if wildcards.level not in config["levels"]:
        raise WorkflowError(f"unknown level {wildcards.level!r}; defined: {', '.join(sorted(config['levels']))}")
    return q(config["levels"][wildcards.level])


def get_level_revision(wildcards):
    """The engine's implementation revision: a fix that changes its numbers reruns its labels."""
    return LEVELS[config["levels"][wildcards.level]["engine"]].REVISION


def get_import_source(wildcards):
    entry = config["levels"][wildcards.level]
    if entry["engine"] != "file":
        raise WorkflowError(f"level {wildcards.level!r} is not a file level")
    return entry["path"]


@functools.lru_cache(maxsize=None)
def get_frames_per_job(molecule, level, subset):
    """Frames per labelling job (pipeline.labelling.cost.frames_per_chunk)."""
    return lcost.frames_per_chunk(config, molecule, level, subset)


def get_chunk_bounds(wildcards):
    size = get_frames_per_job(get_molecule(wildcards), wildcards.level, wildcards.subset)
    i = int(wildcards.chunk)
    return {"start": i * size, "stop": (i + 1) * size}


def get_label_priority(wildcards):
    """Accurate training frames first, then validation: every training job waits for both, while
    the test labels are needed only by the evaluations (BENCHMARKS.md section 1, scheduling)."""
    return {"train": 200, "val": 150}.get(wildcards.subset, 0)


def get_dataset_inputs(wildcards):
    """Chunks of a computed level, or the frames file itself for free levels (GAFF2, imported)."""
    mol, lvl, subset = get_molecule(wildcards), wildcards.level, wildcards.subset
    if not pconf.level(config, lvl).COMPUTED:
        return [L.file("frames", molecule=mol, subset=subset)]
    n = pconf.subset_size(config, mol, subset)
    chunks = range(n_chunks(n, get_frames_per_job(mol, lvl, subset)))
    return [L.file("chunk", molecule=mol, level=lvl, subset=subset, chunk=f"{i:04d}") for i in chunks]


def get_n_requested(wildcards):
    return pconf.subset_size(config, get_molecule(wildcards), wildcards.subset)


def get_dataset(molecule, subset, level=None):
    """Path of a labelled dataset; the level defaults to the one the subset is labelled at."""
    return L.dataset(molecule, level or pconf.subset_level(config, molecule, subset), subset)


def get_label_plan_config(wildcards):
    """The config sections the label cost estimate depends on (other edits do not rerun it)."""
    return q(lcost.plan_config(config))


# ----------------------------------------------------------------------------- evaluation
def get_test_data(wildcards):
    return get_dataset(get_molecule(wildcards), "test")


def get_sgdml_data(wildcards):
    mol = get_molecule(wildcards)
    return {"train": get_dataset(mol, "train"), "val": get_dataset(mol, "val"), "test": get_dataset(mol, "test")}


def get_sgdml_settings(wildcards):
    return q(config["evaluation"]["sgdml"])


def get_stability_settings(wildcards):
    return q(config["evaluation"]["md_stability"])


def get_evaluations(molecule):
    return [p for m in methods.active(config, molecule) for p in m.evaluations(config, molecule)]


def get_bias_diagnostic_levels(molecule):
    return pconf.bias_diagnostic_levels(config, molecule)


def get_bias_diagnostics(molecule):
    return [
        L.file("bias_val", molecule=molecule, model=model, level=lvl, n=n, seed=seed)
        for model in methods.models(config)
        for seed in methods.seeds(config)
        for lvl in get_bias_diagnostic_levels(molecule)
        for n in methods.train_sizes(config)
    ]


def get_bias_diagnostic_data(wildcards):
    mol = get_molecule(wildcards)
    if wildcards.level not in get_bias_diagnostic_levels(mol):
        raise WorkflowError(
            f"level {wildcards.level!r} cannot label the validation frames of {mol}; bias diagnostics exist for "
            f"{get_bias_diagnostic_levels(mol)}"
        )
    return {"cheap_val": get_dataset(mol, "val", wildcards.level), "accurate_val": get_dataset(mol, "val")}


def get_corrected_diagnostics(molecule):
    """The u_j rankings of bias-corrected pre-training (one per model, level, N and seed)."""
    runs = [
        L.file("corrected_diag", molecule=molecule, model=m, level=lvl, n=n, seed=s)
        for m in methods.models(config)
        for s in methods.seeds(config)
        for lvl in corrected_levels(config, molecule)
        for n in methods.train_sizes(config)
    ]
    return runs


def get_accurate_level(wildcards):
    return pconf.accurate_level(config, get_molecule(wildcards))


def get_unlabelled(molecule):
    return [L.file("frames", molecule=molecule, subset="unlabelled")] if config["splits"]["unlabelled"] > 0 else []


# ----------------------------------------------------------------------------- cluster resources
RESOURCE_RULES = set()  # the rules whose resources come from get_resources
PLAN_CHECKED = []


def get_rule_setting(smk_rule, key, computed):
    """A rule's resource `key` as given (--set-resources, --set-threads, --default-resources, the
    rule's own value), or `computed` where the rule computes it per job."""
    res = smk_rule.resources.get(key)
    if res is None or res.is_evaluable() or res.value is None:
        return computed
    return res.value


def get_job_partition(job):
    """The slurm_partition a job goes to (None: the cluster's default partition), from its evaluated
    resources: --default-resources slurm_partition=... arrives as an expression evaluated per job."""
    value = job.resources.get("slurm_partition")
    value = getattr(value, "value", value)
    return str(value).strip("'\"") if value else None


def get_cores():
    """Snakemake's `cores`: on a cluster the most CPUs one job asks for (the SLURM profile's cores,
    or --cores); None where nothing caps a job's threads."""
    cores = workflow._cores
    return cores if isinstance(cores, int) and 0 < cores < sys.maxsize else None


@functools.cache
def get_estimate(rule_name, wildcard_items, attempt):
    """pipeline/resources.py's estimate of one job at one attempt, computed once (Snakemake asks
    for a job's mem_mb and runtime separately, and the plan check asks again)."""
    return pres.estimate(config, rule_name, dict(wildcard_items), attempt)


def get_job_request(job):
    """What a job of the DAG asks for at its first try (pipeline/resources.py, or as overridden),
    with its uncapped run-time estimate."""
    name = job.rule.name
    est = get_estimate(name, tuple(job.wildcards_dict.items()), 1)
    return pcluster.JobRequest(
        name,
        pcluster.cap_threads(int(get_rule_setting(job.rule, "_cores", 1)), get_cores()),
        int(get_rule_setting(job.rule, "mem_mb", est.mem_mb)),
        int(get_rule_setting(job.rule, "runtime", min(est.runtime, pres.max_job_minutes(config)))),
        int(get_rule_setting(job.rule, "gpu", 0)),
        est.runtime,
    )


def get_group_requests(jobs):
    """{group name: (what one job of the group asks for, its first member rule)} for the groups the
    profile sets (`groups:`, `group-components:`), e.g. the SLURM profile's evaluation groups."""
    settings = workflow.group_settings
    largest = pcluster.largest_per_rule(jobs)
    out = {}
    for group in sorted(set(settings.overwrite_groups.values())):
        rules = [r for r, g in settings.overwrite_groups.items() if g == group and r in largest]
        if not rules:
            continue
        member = pcluster.largest_per_rule([dataclasses.replace(largest[r], rule=group) for r in rules])[group]
        n = sum(1 for j in jobs if j.rule in rules)
        components = min(settings.group_components.get(group, 1), n)
        out[f"group {group}"] = (pcluster.group_request(group, member, components, get_cores()), rules[0])
    return out


def check_plan():
    """Once, in the main process, at onstart or (dry run) when the scheduler first evaluates a job's
    resources (the DAG is built, nothing is submitted yet): the continuations of jobs estimated
    beyond cluster.max_job_hours, the plan summary, and with the SLURM executor (or cluster.check_partitions: always) every rule's
    (and group job's) largest request against sinfo's partitions, stopping here when one can never run."""
    if PLAN_CHECKED or not workflow.is_main_process or workflow.scheduler is None:
        return  # done, a job's own process, or the DAG is not complete yet (no scheduler)
    PLAN_CHECKED.append(True)
    dag_jobs = [j for j in workflow.dag.needrun_jobs() if j.rule.name in RESOURCE_RULES]
    jobs = [get_job_request(j) for j in dag_jobs]
    longest = {}
    for j in jobs:
        longest[j.rule] = max(longest.get(j.rule, 0), j.estimate)
    print(pcluster.summarise(jobs), file=sys.stderr)
    groups = get_group_requests(jobs)
    for name, (req, _) in groups.items():
        print(
            f"  {name}: one job asks for {req.threads} CPUs, {req.mem_mb / 1000:.1f} GB, {req.runtime / 60:.1f} h",
            file=sys.stderr,
        )
    first = {}  # one job of each rule
    for j in dag_jobs:
        first.setdefault(j.rule.name, j)
    for name in sorted(first):
        threads = int(get_rule_setting(first[name].rule, "_cores", 1))
        if pcluster.cap_threads(threads, get_cores()) == threads:
            continue
        print(
            f"  {name}: asks for {threads} threads, capped at cores = {get_cores()} (the most CPUs one job "
            "asks for: the SLURM profile's cores, or --cores); raise it to give the rule more",
            file=sys.stderr,
        )
    for row in pres.over_limit(config, longest):
        print(f"  {row.describe(config['cluster']['max_job_hours'])}", file=sys.stderr)
    retries = workflow.execution_settings.retries if workflow.execution_settings else 0
    for name, minutes in longest.items():
        more = pres.continuations(config, name, minutes)
        if more:  # each resubmission continues from the checkpoint (label cache) the last one left
            workflow.get_rule(name).restart_times = (retries or 0) + more
    check_partitions(jobs, groups, first)


def check_partitions(jobs, groups, first):
    """With the SLURM executor (or cluster.check_partitions: always): stop when a rule's (or group
    job's) largest request exceeds what sinfo reports for its partition (time limit, CPUs, memory,
    GPUs); `first`: one job of each rule, whose resources name its partition."""
    setting = config["cluster"]["check_partitions"]
    if not pcluster.should_check(setting, get_executor()):
        return
    try:
        partitions = pcluster.query_partitions()
    except pcluster.ClusterError as err:
        if setting == "always":
            raise WorkflowError(f"cluster check: {err}") from None
        print(f"Partition check skipped: {err}", file=sys.stderr)
        return
    largest = pcluster.largest_per_rule(jobs)
    largest.update({name: req for name, (req, _) in groups.items()})
    member = {name: rule for name, (_, rule) in groups.items()}

    def partition_of(name):
        return get_job_partition(first[member.get(name, name)])

    try:
        pcluster.raise_problems(pcluster.check_partitions(largest, partition_of, partitions))
    except pcluster.ClusterError as err:
        raise WorkflowError(f"cluster check: {err}") from None


# A real run checks the plan once the scheduler exists, before the first job is submitted (a job's
# resources can be evaluated while the DAG is built, when the check cannot run yet); a dry run,
# which runs no onstart handler, checks it when it prints the first job's resources.
onstart:
    check_plan()


def get_resources(rule_name):
    """The `resources:` of a rule (mem_mb and runtime functions, gpu for training rules), sized by
    pipeline/resources.py from the config, with more on each retry."""

    def request(wildcards, attempt):
        get_molecule(wildcards)  # the molecule's checks and label budget (once), as every input function does
        check_plan()  # the plan summary and the partition check (once)
        return pres.capped(config, get_estimate(rule_name, tuple(wildcards.items()), attempt))

    def mem_mb(wildcards, attempt):
        return request(wildcards, attempt).mem_mb

    def runtime(wildcards, attempt):
        return request(wildcards, attempt).runtime

    RESOURCE_RULES.add(rule_name)
    mem_mb.__name__, runtime.__name__ = f"get_mem_mb_{rule_name}", f"get_runtime_{rule_name}"
    out = {"mem_mb": mem_mb, "runtime": runtime}
    if rule_name in pres.TRAINING_RULES:
        out["gpu"] = pres.gpus(config, rule_name)
    return out
