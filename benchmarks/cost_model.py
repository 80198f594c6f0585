"""The label cost model against reality: one real frame per built-in molecule and level, timed.

For every molecule (default: the eight built-in MD17 molecules) and level (default: the
molecule's accurate level and its computed cheap levels in ``config.yaml``), this script

1. samples an MD frame the way the pipeline does (RDKit -> GAFF2/AM1-BCC -> OpenMM Langevin MD at
   ``sampling.temperature_K``; 2000 equilibration steps, then the frame 100 steps later),
2. prints the level's own cost model (pipeline/labelling/levels.py): its fit
   (``Level.alone_cpu_s_per_frame``, 1 thread) and the estimate the preview, the job sizing and
   the label jobs' cluster requests use (``Level.cpu_s_per_frame``: the fit times
   ``cost.PIPELINE_FACTOR``),
3. labels the frame through the pipeline's own path (``runner._label_one``: the level's
   ``compute`` with the retry policy) in this process with 1 thread, unless the prediction is over
   ``--max-minutes`` (those rows say "skipped"),

and prints predicted vs measured CPU seconds (``time.process_time``: the machine may be shared,
so CPU time is the number to compare; wall time is shown too, with the load average).
``--csv`` keeps the measurements; ``--from-csv`` prints the table again from such a file with the
current model (no labelling).

    python benchmarks/cost_model.py                               # every molecule, default levels
    python benchmarks/cost_model.py --molecules ethanol benzene --levels ccsd ccsd_t
    python benchmarks/cost_model.py --quick                       # ethanol only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import pandas as pd

from pipeline import config as pconf
from pipeline.labelling.levels import orbitals
from pipeline.labelling.runner import _label_one, set_threads
from pipeline.molecules import BUILTIN_SMILES

ROOT = Path(__file__).resolve().parent.parent


def md_frame(config: dict, molecule: str, workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    """(z, R) of one MD frame of `molecule`, sampled as the pipeline samples (short run)."""
    from pipeline.molecules import get_spec
    from pipeline.sampling.gaff import build_gaff2
    from pipeline.sampling.md import run_md

    spec = get_spec(molecule, {})
    d = workdir / molecule
    d.mkdir(parents=True, exist_ok=True)
    with open(d / "tool.log", "w") as log:
        build_gaff2(spec, str(d / "m.prmtop"), str(d / "m.inpcrd"), str(d / "m.sdf"), seed=0, log=log)
    s = config["sampling"]
    ds = run_md(
        str(d / "m.prmtop"),
        str(d / "m.inpcrd"),
        temperature_K=s["temperature_K"],
        timestep_fs=s["timestep_fs"],
        friction_per_ps=s["friction_per_ps"],
        equilibration_steps=2000,
        stride=100,
        n_frames=1,
        seed=0,
        platform="Reference",
    )
    return ds.z, ds.R[0]


def levels_for(config: dict, molecule: str, names: list[str] | None) -> list[str]:
    if names:
        return names
    out = [pconf.accurate_level(config, molecule)] + pconf.cheap_levels(config, molecule)
    return [n for n in out if pconf.level(config, n).COMPUTED]


def describe(config: dict, molecule: str, level_name: str, z) -> dict:
    level = pconf.level(config, level_name)
    s = level.settings
    orb = orbitals(z, s["basis"], s.get("charge", 0), s.get("frozen_core", False)) if "basis" in s else None
    return dict(
        molecule=molecule,
        atoms=len(z),
        level=level_name,
        theory=level.theory,
        n_bf=orb.n_bf if orb else "",
        o=orb.o if orb else "",
        v=orb.v if orb else "",
        predicted_cpu_s=level.alone_cpu_s_per_frame(z),
        pipeline_estimate_cpu_s=level.cpu_s_per_frame(z),
    )


def cc_breakdown(level, z, R) -> dict:
    """CPU seconds of the steps of a CC frame through the engine's own methods: RHF + integrals +
    CCSD amplitudes, the (T) energy (zero for CCSD), the Lambda equations, the gradient."""
    T = time.process_time
    out = {}
    t = T()
    mycc, eris, _mf, reason = level._cc(z, R, None, False)
    out["rhf_ccsd_s"] = T() - t
    if mycc is None:
        raise RuntimeError(reason)
    t = T()
    level._energy(mycc, eris)
    out["energy_s"] = T() - t
    t = T()
    lam = level._lambda(mycc, eris)
    out["lambda_s"] = T() - t
    t = T()
    level._gradient(mycc, *lam, eris)
    out["gradient_s"] = T() - t
    return out


def print_table(df: pd.DataFrame) -> None:
    rows = []
    for r in df.itertuples(index=False):
        measured = float(r.measured_cpu_s) if r.status == "ok" else float("nan")
        rows.append(
            [
                f"{r.molecule} ({r.atoms})",
                r.theory,
                r.n_bf,
                r.o,
                r.v,
                float(r.predicted_cpu_s),
                measured,
                float(r.measured_wall_s) if r.status == "ok" else float("nan"),
                f"{measured / r.predicted_cpu_s:.2f}" if r.status == "ok" else "–",
                float(r.pipeline_estimate_cpu_s),
                r.load,
                r.status,
            ]
        )
    print(
        common.markdown_table(
            [
                "molecule (atoms)",
                "level",
                "N_bf",
                "o",
                "v",
                "predicted CPU s",
                "measured CPU s",
                "wall s",
                "measured / predicted",
                "preview's CPU s (x pipeline factor)",
                "load avg (1 min) before",
                "status",
            ],
            rows,
        )
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "config.yaml"))
    p.add_argument("--molecules", nargs="+", default=sorted(BUILTIN_SMILES))
    p.add_argument("--levels", nargs="+", default=None, help="level names from the config (default: the molecule's)")
    p.add_argument("--max-minutes", type=float, default=30.0, help="skip frames predicted to take longer")
    p.add_argument("--csv", default=None, help="write the rows here (appended per row)")
    p.add_argument("--from-csv", default=None, help="print the table from a --csv file with the current model")
    p.add_argument("--quick", action="store_true", help="ethanol only")
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="CC levels: also time the steps (RHF+CCSD, (T) energy, Lambda, gradient) of the frame",
    )
    a = p.parse_args(argv)
    config = pconf.load_config(a.config)

    if a.from_csv:
        df = pd.read_csv(a.from_csv, keep_default_na=False)
        levels = [(pconf.level(config, r.level), np.array([int(x) for x in r.z.split()])) for r in df.itertuples()]
        df["predicted_cpu_s"] = [lv.alone_cpu_s_per_frame(z) for lv, z in levels]
        df["pipeline_estimate_cpu_s"] = [lv.cpu_s_per_frame(z) for lv, z in levels]
        df["status"] = [
            f"skipped: predicted {p / 60:.0f} min > {a.max_minutes:g}" if st.startswith("skipped") else st
            for st, p in zip(df["status"], df["predicted_cpu_s"])
        ]
        print_table(df)
        return 0

    molecules = ["ethanol"] if a.quick else a.molecules
    set_threads(1)
    common.print_machine({"threads": "1 (labelling.threads)", "config": a.config})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mol in molecules:
            z, R = md_frame(config, mol, Path(tmp))
            for name in levels_for(config, mol, a.levels):
                row = describe(config, mol, name, z)
                row.update(
                    z=" ".join(str(int(x)) for x in z),
                    load=f"{os.getloadavg()[0]:.2f}",
                    measured_cpu_s=float("nan"),
                    measured_wall_s=float("nan"),
                )
                if row["predicted_cpu_s"] > 60 * a.max_minutes:
                    row["status"] = f"skipped: predicted {row['predicted_cpu_s'] / 60:.0f} min > {a.max_minutes:g}"
                else:
                    level = pconf.level(config, name)
                    label, cpu_s, wall_s = _label_one(level, z, R, None)
                    row.update(
                        measured_cpu_s=cpu_s,
                        measured_wall_s=wall_s,
                        status="ok" if label.converged else f"failed: {label.reason}",
                    )
                    if a.breakdown and level.ENGINE in ("ccsd", "ccsd_t"):
                        row.update(cc_breakdown(level, z, R))
                print(
                    f"# {mol} {name}: predicted {row['predicted_cpu_s']:.1f} s, measured "
                    f"{row['measured_cpu_s']:.1f} s CPU ({row['status']})",
                    file=sys.stderr,
                    flush=True,
                )
                rows.append(row)
                if a.csv:
                    pd.DataFrame(rows).to_csv(a.csv, index=False)
    print("## Predicted vs measured CPU seconds per frame (1 thread)\n")
    df = pd.DataFrame(rows)
    print_table(df)
    steps = ["rhf_ccsd_s", "energy_s", "lambda_s", "gradient_s"]
    if all(c in df.columns for c in steps):
        cc = df.dropna(subset=steps)
        print("\n## CC steps of the same frame, CPU seconds (a second run)\n")
        print(
            common.markdown_table(
                ["molecule", "level", "N_bf", "o", "v", "RHF + CCSD", "(T) energy", "Lambda", "gradient"],
                [
                    [r.molecule, r.theory, r.n_bf, r.o, r.v, *(float(getattr(r, c)) for c in steps)]
                    for r in cc.itertuples()
                ],
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
