"""Command line: `python -m pipeline <command> ...`, one command per workflow step.

Rules call these with explicit paths and parameters; every command writes its outputs atomically,
so a killed job leaves either a finished file or none.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _json(text: str):
    return json.loads(text)


# --------------------------------------------------------------------------- data steps
def cmd_gaff2(a):
    from .molecules import MoleculeSpec
    from .sampling.gaff import build_gaff2

    spec = MoleculeSpec(**a.molecule)
    with open(a.tool_log, "w") as log:
        build_gaff2(spec, a.prmtop, a.inpcrd, a.sdf, seed=a.seed, log=log)


def cmd_md(a):
    from .sampling.md import run_md

    s = a.sampling
    ds = run_md(
        a.prmtop,
        a.inpcrd,
        temperature_K=s["temperature_K"],
        timestep_fs=s["timestep_fs"],
        friction_per_ps=s["friction_per_ps"],
        equilibration_steps=s["equilibration_steps"],
        stride=s["stride"],
        n_frames=s["n_frames"],
        seed=s["seed"],
        platform=s["platform"],
        log_csv=a.log_csv,
        name=a.name,
    )
    ds.save(a.out)
    logging.info("MD: %d frames, mean T %.1f K on %s", len(ds), ds.meta["mean_temperature_K"], ds.meta["platform"])


def cmd_import(a):
    from .labelling.levels import make_level

    level = make_level(a.level_name, a.level)
    ds = level.load()
    ds.theory = level.theory
    ds.save(a.out)
    logging.info("imported %d frames from %s", len(ds), level.settings["path"])


def cmd_frames(a):
    from .data import load_npz
    from .splits import Block, take_block

    part = take_block(load_npz(a.source), Block.parse(a.block), a.seed)
    part.meta = {**part.meta, "source": a.source, "subset": a.subset, "block": a.block}
    if a.subset == "unlabelled":
        part.E = part.F = None  # score matching sees positions only
    part.save(a.out)


def cmd_label(a):
    from .data import load_npz
    from .labelling.cache import LabelCache
    from .labelling.levels import make_level
    from .labelling.runner import label_chunk, set_threads, write_chunk

    set_threads(a.threads)
    level = make_level(a.level_name, a.level)
    frames = load_npz(a.frames)
    cache = LabelCache(a.cache_dir, level.cache_token())
    ds, failures = label_chunk(frames, level, cache, a.start, a.stop)
    write_chunk(a.out, ds, failures)
    logging.info("chunk [%d, %d): %d labelled, %d failed", a.start, a.stop, len(ds), len(failures))


def cmd_dataset(a):
    from .data import export_extxyz, load_npz
    from .labelling.levels import make_level
    from .labelling.runner import finish_dataset, merge_chunks

    level = make_level(a.level_name, a.level)
    if level.COMPUTED:
        ds = merge_chunks(
            a.chunks,
            a.n_requested,
            a.max_failure_fraction,
            a.out,
            a.failures,
            outliers=a.outliers,
            outliers_csv=a.outliers_csv,
        )
    else:
        import pandas as pd

        from .data import atomic_write

        (frames,) = a.chunks
        ds = load_npz(frames)
        ds.theory = level.theory
        ds.meta = {**ds.meta, "level": level.name, "level_settings": level.settings, "n_failed": 0}
        atomic_write(
            a.failures,
            lambda tmp: pd.DataFrame(columns=["level", "frame_id", "reason", "cpu_s"]).to_csv(tmp, index=False),
        )
        ds = finish_dataset(ds, a.out, a.outliers, a.outliers_csv)
    if a.extxyz:
        export_extxyz(ds, a.extxyz)


def cmd_plan(a):
    """The label cost preview (and budget check) of molecules, without running anything."""
    import os

    from . import config as pconf
    from .labelling import cost

    if a.config_json is not None:
        config = a.config_json
    else:
        try:
            config = pconf.load_config(*a.config)
        except pconf.ConfigError as err:
            print(f"invalid config: {err}", file=sys.stderr)
            return 1
    molecules = a.molecule or config["targets"]
    cores = a.cores or os.cpu_count() or 1
    cores_from = "--cores" if a.cores else "this machine's cores (no --cores given)"
    status, tables = 0, []
    for mol in molecules:
        try:
            if a.config_json is None:  # a rule's config was checked at DAG construction
                pconf.check_molecule(config, mol)
        except pconf.ConfigError as err:
            print(f"invalid molecule {mol!r}: {err}", file=sys.stderr)
            return 1
        plan = cost.plan_labels(config, mol, cores, results_dir=a.results_dir, cores_from=cores_from)
        tables.append(cost.plan_table(plan))
        if a.no_budget:
            print(cost.format_plan(plan), file=sys.stderr)
            continue
        try:
            cost.check_budget(plan, config)
            print(cost.format_plan(plan, config), file=sys.stderr)
        except cost.BudgetExceeded as err:
            print(f"label budget exceeded: {err}", file=sys.stderr)
            status = 1
    if a.out:
        import pandas as pd

        from .data import atomic_write

        table = pd.concat(tables, ignore_index=True)
        atomic_write(a.out, lambda tmp: table.to_csv(tmp, index=False))
    return status


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m pipeline", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True)
    _add_sampling_commands(sub)
    _add_labelling_commands(sub)
    _add_plan_command(sub)

    from .evaluation.commands import add_commands as add_evaluation
    from .training.commands import add_commands as add_training

    add_training(sub)
    add_evaluation(sub)
    return p


def _add_sampling_commands(sub) -> None:
    """gaff2, md, import and frames: the steps that make frames."""
    s = sub.add_parser("gaff2", help="GAFF2/AM1-BCC parameters for a molecule")
    s.add_argument("--molecule", type=_json, required=True, help="MoleculeSpec as JSON")
    s.add_argument("--prmtop", required=True)
    s.add_argument("--inpcrd", required=True)
    s.add_argument("--sdf", required=True)
    s.add_argument("--tool-log", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_gaff2)

    s = sub.add_parser("md", help="Langevin MD with OpenMM; frames with GAFF2 labels")
    s.add_argument("--prmtop", required=True)
    s.add_argument("--inpcrd", required=True)
    s.add_argument("--sampling", type=_json, required=True, help="the config's sampling section as JSON")
    s.add_argument("--name", default="")
    s.add_argument("--out", required=True)
    s.add_argument("--log-csv", required=True)
    s.set_defaults(func=cmd_md)

    s = sub.add_parser("import", help="import a dataset file (file level) in storage units")
    s.add_argument("--level-name", required=True)
    s.add_argument("--level", type=_json, required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_import)

    s = sub.add_parser("frames", help="one subset of a frame source (disjoint seeded blocks)")
    s.add_argument("--source", required=True, help="MD trajectory or imported dataset (.npz)")
    s.add_argument("--subset", required=True)
    s.add_argument("--block", required=True, help="SIDE:START:STEP:SIZE in the permutation (pipeline/splits.py)")
    s.add_argument("--seed", type=int, required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_frames)


def _add_labelling_commands(sub) -> None:
    """label and dataset: the steps that label frames at a level of theory."""
    s = sub.add_parser("label", help="label a chunk of frames at a computed level (cached per frame)")
    s.add_argument("--frames", required=True)
    s.add_argument("--level-name", required=True)
    s.add_argument("--level", type=_json, required=True)
    s.add_argument("--start", type=int, required=True)
    s.add_argument("--stop", type=int, required=True)
    s.add_argument("--cache-dir", required=True)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_label)

    s = sub.add_parser("dataset", help="merge labelled chunks (or take free labels) into a dataset")
    s.add_argument("--level-name", required=True)
    s.add_argument("--level", type=_json, required=True)
    s.add_argument("--chunks", nargs="+", required=True, help="chunk files, or the frames file for free levels")
    s.add_argument("--n-requested", type=int, required=True)
    s.add_argument("--max-failure-fraction", type=float, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--failures", required=True)
    s.add_argument("--extxyz", default=None)
    s.add_argument(
        "--outliers",
        type=_json,
        default=None,
        help="outlier screen settings as JSON {action, max_robust_z, min_frames} (none: no screen)",
    )
    s.add_argument("--outliers-csv", default=None, help="table of flagged frames")
    s.set_defaults(func=cmd_dataset)


def _add_plan_command(sub) -> None:
    s = sub.add_parser("plan", help="label cost preview per molecule and level; exit 1 when over the budget")
    s.add_argument(
        "--config",
        nargs="+",
        default=["config.yaml"],
        help="config files, later ones merged over earlier ones (as snakemake --configfile)",
    )
    s.add_argument("--config-json", type=_json, default=None, help="the effective config as JSON (rules)")
    s.add_argument("--molecule", nargs="+", default=None, help="default: the config's targets")
    s.add_argument("--cores", type=int, default=None, help="cores for the wall-time estimate (default: this machine's)")
    s.add_argument("--results-dir", default="results", help="where sampled frames are looked for (cache hits)")
    s.add_argument("--no-budget", action="store_true", help="print the estimate only; never fail")
    s.add_argument("--out", default=None, help="write the estimate as CSV (labelling.cost.PLAN_COLUMNS)")
    s.set_defaults(func=cmd_plan)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return args.func(args) or 0
