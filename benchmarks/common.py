"""Helpers shared by the benchmark scripts: machine description, test geometries, markdown tables.

The scripts import this module as ``common`` (they run as ``python benchmarks/<script>.py`` from
the repository root, so ``benchmarks/`` is on ``sys.path``).
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess

import numpy as np


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    """Cores this process may run on (affinity mask), falling back to os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_lines(extra: dict[str, str] | None = None) -> list[str]:
    """Markdown bullet lines describing the date, machine, load and software versions."""
    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "CPU": cpu_model(),
        "cores (usable / logical)": f"{usable_cores()} / {os.cpu_count()}",
        "load average (1, 5, 15 min) at start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "OS": platform.platform(),
        "Python": platform.python_version(),
        **(extra or {}),
    }
    return [f"- {k}: {v}" for k, v in info.items()]


def checkout_commit(path, short: bool = False) -> str:
    """The commit of the git checkout holding `path` ('unknown' outside one)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", *(["--short"] if short else []), "HEAD"], cwd=path, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def print_machine(extra: dict[str, str] | None = None) -> None:
    print("## Machine\n")
    print("\n".join(machine_lines(extra)))
    print()


def reference_geometry(molecule: str) -> tuple[np.ndarray, np.ndarray]:
    """(z [n_atoms], R [n_atoms, 3] Angstrom) of a built-in molecule as the pipeline builds it.

    SMILES -> RDKit AddHs -> EmbedMolecule(randomSeed=0) -> MMFF optimisation
    (:func:`pipeline.molecules.to_rdkit`); atom order: heavy atoms, then hydrogens.
    """
    from pipeline.molecules import atomic_numbers, get_spec, to_rdkit

    mol = to_rdkit(get_spec(molecule), seed=0)
    return atomic_numbers(mol), np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)


def md_like_frames(R0: np.ndarray, n_frames: int, sigma: float, seed: int) -> np.ndarray:
    """[n_frames, n_atoms, 3]: R0 plus independent Gaussian displacements (std `sigma` Angstrom
    per Cartesian component), from a seeded generator."""
    rng = np.random.default_rng(seed)
    return R0[None] + rng.normal(0.0, sigma, size=(n_frames, *R0.shape))


def make_data(molecule: str, n_frames: int, seed: int, device: str = "cpu"):
    """MD-like frames of `molecule` with random energy/force labels (the cost of a training step
    does not depend on the labels), as a float32 ``TensorData`` on `device`."""
    from pipeline.data import Dataset
    from pipeline.training.batching import TensorData

    z, R0 = reference_geometry(molecule)
    R = md_like_frames(R0, n_frames, sigma=0.05, seed=seed)
    rng = np.random.default_rng(seed + 1)
    ds = Dataset(R=R, z=z, E=rng.normal(size=n_frames), F=rng.normal(size=R.shape), name=molecule)
    return TensorData.from_dataset(ds, device=device)


def median(values) -> float:
    return float(statistics.median(values))


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-markdown table; floats are written with 4 significant digits (or as given if str)."""

    def cell(v) -> str:
        if isinstance(v, float):
            if v != v:  # NaN
                return "n/a"
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
