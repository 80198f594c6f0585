"""MD stability of a trained force field: Langevin runs stopped at the first sign of divergence.

Each run starts from a frame of the (accurate) data, draws Maxwell-Boltzmann momenta
at `temperature_K` (seeded), and integrates with ASE's Langevin thermostat. After every
step the run is checked, in this order, and stopped at the first failure:

  non-finite        energy, forces or positions contain NaN/inf;
  collapse          any pair of atoms closer than `min_distance_A` (0.5 Angstrom by default,
                    shorter than any chemical bond, so atoms fusing means a hole in the PES);
  bond stretch      any bond of the start geometry longer than `bond_factor` times its start
                    length (bonds: pairs closer than 1.2 x the sum of covalent radii from
                    ase.data.covalent_radii, the usual connectivity rule); at 1.5 x a covalent
                    bond is broken, which a stable molecule at 500 K does not do;
  energy change     |E_pot(t) - E_pot(0)| per atom above `max_energy_change_kcal_per_atom`
                    (10 kcal/mol/atom by default, many times the ~1.5 k_B T per atom that
                    thermal motion adds; catches blow-ups and runaway wells before geometry does).

Units: positions Angstrom, model energies kcal/mol; ASE runs in eV through
:class:`pipeline.evaluation.calculator.ModelCalculator`.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.data import covalent_radii
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from .. import units
from ..data import atomic_write, load_npz
from .calculator import ModelCalculator, torch_threads

BOND_RADIUS_FACTOR = 1.2  # bonded: distance < 1.2 x (r_cov_i + r_cov_j)

COLUMNS = [
    "run",
    "start_frame",
    "steps_completed",
    "time_ps",
    "diverged",
    "reason",
    "max_bond_stretch",
    "final_temperature_K",
    "wall_s",
    "max_force_disagreement_kcal",  # largest committee force disagreement of the run (NaN: no committee)
    "mean_force_disagreement_kcal",
]


def find_bonds(positions, z) -> tuple[np.ndarray, np.ndarray]:
    """Bonds of one geometry: pairs closer than 1.2 x the sum of covalent radii.

    Args: positions [n_atoms, 3] Angstrom, z [n_atoms].
    Returns (pairs [n_bonds, 2] atom indices i < j, lengths [n_bonds] Angstrom).
    """
    positions = np.asarray(positions, dtype=np.float64)
    i, j = np.triu_indices(len(z), 1)
    d = np.linalg.norm(positions[i] - positions[j], axis=1)  # [n_pairs]
    r = covalent_radii[np.asarray(z)]
    bonded = d < BOND_RADIUS_FACTOR * (r[i] + r[j])
    return np.stack([i[bonded], j[bonded]], axis=1), d[bonded]


def check_divergence(
    positions,
    energy_kcal: float,
    forces,
    bonds: np.ndarray,
    bond_lengths: np.ndarray,
    energy0_kcal: float,
    bond_factor: float,
    min_distance_A: float,
    max_energy_change_kcal_per_atom: float | None,
) -> tuple[str, float]:
    """Apply the divergence criterion (module docstring) to one frame.

    Args: positions [n_atoms, 3] Angstrom, energy_kcal (kcal/mol), forces [n_atoms, 3]
      (any unit; only finiteness is checked), bonds [n_bonds, 2] and bond_lengths
      [n_bonds] (Angstrom) of the start geometry, energy0_kcal the start energy.
    Returns (reason, bond_stretch): reason is "" for a healthy frame, otherwise a
      sentence naming the failed test; bond_stretch is max(d / d_start) over bonds
      (NaN when there are no bonds or positions are not finite).
    """
    if not (np.isfinite(energy_kcal) and np.all(np.isfinite(forces)) and np.all(np.isfinite(positions))):
        return "non-finite energy, forces or positions", float("nan")
    n_atoms = len(positions)
    i, j = np.triu_indices(n_atoms, 1)
    d = np.linalg.norm(positions[i] - positions[j], axis=1)  # [n_pairs] Angstrom
    stretch = float("nan")
    if len(bonds):
        d_bond = np.linalg.norm(positions[bonds[:, 0]] - positions[bonds[:, 1]], axis=1)  # [n_bonds]
        ratio = d_bond / bond_lengths
        stretch = float(ratio.max())
    if len(d) and d.min() < min_distance_A:
        k = int(np.argmin(d))
        return f"atoms {i[k]}-{j[k]} at {d[k]:.3f} A < {min_distance_A} A", stretch
    if len(bonds) and stretch > bond_factor:
        k = int(np.argmax(ratio))
        a, b = bonds[k]
        return f"bond {a}-{b} stretched to {ratio[k]:.2f} x its start length > {bond_factor}", stretch
    if max_energy_change_kcal_per_atom is not None:
        change = abs(energy_kcal - energy0_kcal) / n_atoms
        if change > max_energy_change_kcal_per_atom:
            return (
                f"potential energy changed by {change:.1f} kcal/mol/atom > {max_energy_change_kcal_per_atom}",
                stretch,
            )
    return "", stretch


def run_stability(
    model: torch.nn.Module | str | os.PathLike | Calculator,
    start: np.ndarray | str | os.PathLike,
    z=None,
    temperature_K: float = 500.0,
    timestep_fs: float = 0.5,
    friction_per_fs: float = 0.002,
    n_steps: int = 1000,
    n_runs: int = 5,
    seed: int = 0,
    bond_factor: float = 1.5,
    min_distance_A: float = 0.5,
    max_energy_change_kcal_per_atom: float | None = 10.0,
    device: str = "cpu",
    num_threads: int | None = 1,
) -> pd.DataFrame:
    """Run `n_runs` Langevin MD runs of `n_steps` and report which ones diverged.

    Args:
      model: loaded EnergyModel or path of a saved one (kcal/mol, Angstrom), or an ASE calculator
        (e.g. pipeline.evaluation.delta_prediction.DeltaCalculator: a cheap level plus a correction).
      start: start positions [n_start, n_atoms, 3] (or [n_atoms, 3]) in Angstrom, or the
        path of a dataset npz whose frames are the start positions (its z is used).
        Run r starts from frame r % n_start.
      z: [n_atoms] atomic numbers; required when `start` is an array.
      temperature_K: thermostat and initial-velocity temperature, Kelvin.
      timestep_fs: MD time step, femtoseconds.
      friction_per_fs: Langevin friction, 1/fs (passed to ASE as friction_per_fs / ase.units.fs).
      n_steps: steps per run; n_runs: number of runs.
      seed: run r uses numpy Generator seeded with (seed, r) for velocities and noise.
      bond_factor, min_distance_A, max_energy_change_kcal_per_atom: divergence
        thresholds (module docstring); None disables the energy test.
      device: torch device.
      num_threads: torch intra-op CPU threads during the runs (restored afterwards). One
        molecule per step is latency-bound; with more threads OpenMP synchronisation
        dominates and, on a busy machine, slows each step by orders of magnitude.
        None keeps torch's setting.

    Returns a DataFrame with one row per run: run, start_frame, steps_completed (steps
    integrated; for a diverged run the step at which divergence was detected), time_ps,
    diverged, reason ("" if stable), max_bond_stretch (largest d / d_start over bonds and
    steps), final_temperature_K (instantaneous kinetic temperature of the last frame), wall_s, and
    the largest and mean committee force disagreement over the steps (kcal/mol/Å) when the calculator
    reports one (a ModelCalculator or DeltaCalculator with a committee; NaN otherwise).
    """
    start_R, z = _start_positions(start, z)
    # an ASE calculator is used as is; a model (or its path) is wrapped
    calc = model if isinstance(model, Calculator) else ModelCalculator(model, device=device, threads=None)

    rows = []
    with torch_threads(num_threads):
        for run in range(n_runs):
            frame = run % len(start_R)
            rows.append(
                _one_run(
                    calc,
                    start_R[frame],
                    z,
                    rng=np.random.default_rng([seed, run]),
                    temperature_K=temperature_K,
                    timestep_fs=timestep_fs,
                    friction_per_fs=friction_per_fs,
                    n_steps=n_steps,
                    bond_factor=bond_factor,
                    min_distance_A=min_distance_A,
                    max_energy_change_kcal_per_atom=max_energy_change_kcal_per_atom,
                )
                | {"run": run, "start_frame": frame}
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def _start_positions(start, z) -> tuple[np.ndarray, np.ndarray]:
    """(start positions [n_start, n_atoms, 3] Angstrom, z [n_atoms]) of :func:`run_stability`'s
    `start` (an array, with `z`, or the path of a dataset npz)."""
    if isinstance(start, (str, os.PathLike)):
        ds = load_npz(start)
        start_R, z = ds.R, ds.z
    else:
        if z is None:
            raise ValueError("z is required when start positions are given as an array")
        start_R = np.asarray(start, dtype=np.float64)
        if start_R.ndim == 2:
            start_R = start_R[None]
    z = np.asarray(z, dtype=np.int64).reshape(-1)  # [n_atoms]
    if start_R.ndim != 3 or start_R.shape[1:] != (len(z), 3):
        raise ValueError(f"start positions have shape {start_R.shape}; expected [n_start, {len(z)}, 3]")
    return start_R, z


def _one_run(
    calc: Calculator,
    positions,
    z,
    rng: np.random.Generator,
    temperature_K: float,
    timestep_fs: float,
    friction_per_fs: float,
    n_steps: int,
    bond_factor: float,
    min_distance_A: float,
    max_energy_change_kcal_per_atom: float | None,
) -> dict:
    """One Langevin run from `positions` [n_atoms, 3] (Angstrom); returns its table row."""
    t0 = time.perf_counter()
    atoms = Atoms(numbers=z, positions=positions)
    atoms.calc = calc
    # Maxwell-Boltzmann momenta (thermalize_momenta replaces MaxwellBoltzmannDistribution in ASE 3.29).
    thermalize_momenta(atoms, temperature_K, rng=rng)
    Stationary(atoms)
    # fixcm=False: ASE 3.28+ deprecates fixcm=True (it biases NVT sampling of small systems);
    # centre-of-mass drift of an isolated molecule does not affect the checks.
    dyn = Langevin(
        atoms,
        timestep=timestep_fs * units.ASE_FS,
        temperature_K=temperature_K,
        friction=friction_per_fs / units.ASE_FS,
        fixcm=False,
        rng=rng,
    )
    bonds, bond_lengths = find_bonds(positions, z)
    energy0 = units.ev_to_kcal(atoms.get_potential_energy())
    reason = ""
    max_stretch = float("nan")
    disagreement = []  # kcal/mol/Å per step, when the calculator has a committee
    for _ in dyn.irun(n_steps):
        if "force_disagreement" in calc.results:
            disagreement.append(units.ev_to_kcal(calc.results["force_disagreement"]))
        reason, stretch = check_divergence(
            atoms.positions,
            units.ev_to_kcal(atoms.get_potential_energy()),
            atoms.get_forces(),
            bonds,
            bond_lengths,
            energy0,
            bond_factor,
            min_distance_A,
            max_energy_change_kcal_per_atom,
        )
        max_stretch = float(np.fmax(max_stretch, stretch))
        if reason:
            reason = f"step {dyn.nsteps}: {reason}"
            break
    return {
        "steps_completed": dyn.nsteps,
        "time_ps": dyn.nsteps * timestep_fs * 1e-3,
        "diverged": bool(reason),
        "reason": reason,
        "max_bond_stretch": max_stretch,
        "final_temperature_K": float(atoms.get_temperature()),
        "wall_s": time.perf_counter() - t0,
        "max_force_disagreement_kcal": float(np.max(disagreement)) if disagreement else float("nan"),
        "mean_force_disagreement_kcal": float(np.mean(disagreement)) if disagreement else float("nan"),
    }


def run_stability_to_csv(
    model_path: str | os.PathLike,
    start_npz: str | os.PathLike,
    out_csv: str | os.PathLike,
    **kwargs,
) -> pd.DataFrame:
    """:func:`run_stability` on the frames of `start_npz`, written to `out_csv` (one row per run).

    Keyword arguments are passed to :func:`run_stability` (temperature_K, timestep_fs,
    friction_per_fs, n_steps, n_runs, seed, bond_factor, min_distance_A,
    max_energy_change_kcal_per_atom, device, num_threads).
    """
    df = run_stability(model_path, start_npz, **kwargs)
    atomic_write(out_csv, lambda tmp: df.to_csv(Path(tmp), index=False))
    return df
