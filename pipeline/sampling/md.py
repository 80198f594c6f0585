"""Langevin MD in vacuum with OpenMM on the GAFF2 system; frames with empirical energies/forces.

The Reference platform is far faster than CPU for molecules of 9-21 atoms (threading overhead
dominates), so `platform: auto` picks Reference below 100 atoms, else CUDA, OpenCL or CPU.
"""

from __future__ import annotations

import time

import numpy as np

from .. import units
from ..data import Dataset, check_finite

SMALL_SYSTEM_ATOMS = 100


def choose_platform(name: str, n_atoms: int):
    import openmm as mm

    available = [mm.Platform.getPlatform(i).getName() for i in range(mm.Platform.getNumPlatforms())]
    if name != "auto":
        if name not in available:
            raise ValueError(f"OpenMM platform {name!r} is not available here; available: {', '.join(available)}")
        return mm.Platform.getPlatformByName(name)
    order = ["Reference"] if n_atoms < SMALL_SYSTEM_ATOMS else ["CUDA", "OpenCL", "CPU", "Reference"]
    return mm.Platform.getPlatformByName(next(p for p in order if p in available))


def degrees_of_freedom(system) -> int:
    """Kinetic degrees of freedom of an OpenMM system: 3 per moving particle, less one per
    constraint, less 3 when a CMMotionRemover keeps the centre of mass at rest (the default of
    AmberPrmtopFile.createSystem). Counting 3N for a 9-atom molecule reads 11% low."""
    import openmm as mm

    moving = sum(
        1 for i in range(system.getNumParticles()) if system.getParticleMass(i).value_in_unit(mm.unit.dalton) > 0
    )
    dof = 3 * moving - system.getNumConstraints()
    if any(isinstance(system.getForce(i), mm.CMMotionRemover) for i in range(system.getNumForces())):
        dof -= 3
    return dof


def kinetic_temperature(kinetic_energy_kj_per_mol, dof: int):
    """T = 2 KE / (dof k_B), KE in kJ/mol."""
    return 2 * kinetic_energy_kj_per_mol / (dof * units.BOLTZMANN_KJ_PER_MOL_K)


def run_md(
    prmtop: str,
    inpcrd: str,
    *,
    temperature_K: float,
    timestep_fs: float,
    friction_per_ps: float,
    equilibration_steps: int,
    stride: int,
    n_frames: int,
    seed: int,
    platform: str = "auto",
    log_csv: str | None = None,
    name: str = "",
) -> Dataset:
    """Equilibrate, then save `n_frames` frames every `stride` steps with GAFF2 energies and forces.

    Non-finite positions, energies or forces (an MD that blew up) raise, naming the frame and
    the key; the fix is a shorter `sampling.timestep_fs`."""
    prm, system, sim = _minimized_simulation(
        prmtop, inpcrd, temperature_K, timestep_fs, friction_per_ps, seed, platform
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    sim.step(equilibration_steps)
    R, E, F, T = _sample_frames(sim, system, n_frames, stride)
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    check_finite(
        R,
        E,
        F,
        where=f"MD of {name or prmtop} (GAFF2 labels)",
        fix=f"the MD became unstable; lower sampling.timestep_fs (now {timestep_fs}) or "
        f"sampling.temperature_K (now {temperature_K})",
    )
    z = np.array([a.element.atomic_number for a in prm.topology.atoms()], dtype=np.int64)
    if log_csv:
        _write_log(log_csv, E, T, equilibration_steps, stride, timestep_fs)
    return Dataset(
        R=R,
        z=z,
        E=E,
        F=F,
        frame_id=np.arange(n_frames),
        cpu_s=np.full(n_frames, cpu_s / n_frames),
        wall_s=np.full(n_frames, wall_s / n_frames),
        name=name,
        theory="GAFF2",
        meta=dict(
            platform=sim.context.getPlatform().getName(),
            temperature_K=temperature_K,
            timestep_fs=timestep_fs,
            friction_per_ps=friction_per_ps,
            stride=stride,
            equilibration_steps=equilibration_steps,
            seed=seed,
            mean_temperature_K=float(T.mean()),
            md_cpu_s=cpu_s,
            md_wall_s=wall_s,
        ),
    )


def _minimized_simulation(prmtop, inpcrd, temperature_K, timestep_fs, friction_per_ps, seed, platform):
    """(prmtop file, system, simulation) of the GAFF2 system in vacuum with a Langevin integrator,
    energy-minimised from `inpcrd`, velocities drawn at `temperature_K` (seeded)."""
    import openmm as mm
    import openmm.app as app
    import openmm.unit as u

    prm = app.AmberPrmtopFile(prmtop)
    crd = app.AmberInpcrdFile(inpcrd)
    system = prm.createSystem(nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    integrator = mm.LangevinMiddleIntegrator(
        temperature_K * u.kelvin, friction_per_ps / u.picosecond, timestep_fs * u.femtosecond
    )
    integrator.setRandomNumberSeed(seed + 1)  # 0 would mean "pick a random seed" in OpenMM
    plat = choose_platform(platform, system.getNumParticles())
    sim = app.Simulation(prm.topology, system, integrator, plat)
    sim.context.setPositions(crd.positions)
    sim.minimizeEnergy()
    sim.context.setVelocitiesToTemperature(temperature_K * u.kelvin, seed + 1)
    return prm, system, sim


def _sample_frames(sim, system, n_frames: int, stride: int):
    """Run `n_frames` x `stride` steps; returns positions R [n_frames, n_atoms, 3] Angstrom,
    energies E [n_frames] eV, forces F [n_frames, n_atoms, 3] eV/A and kinetic temperatures
    T [n_frames] K of the frames after every `stride` steps."""
    import openmm.unit as u

    n_atoms = system.getNumParticles()
    R = np.empty((n_frames, n_atoms, 3))  # [n_frames, n_atoms, 3] Angstrom
    E = np.empty(n_frames)  # [n_frames] eV
    F = np.empty((n_frames, n_atoms, 3))  # [n_frames, n_atoms, 3] eV/A
    T = np.empty(n_frames)  # [n_frames] K
    dof = degrees_of_freedom(system)
    ev_per_kj = units.KJ_PER_MOL_EV  # kJ/mol -> eV
    for i in range(n_frames):
        sim.step(stride)
        st = sim.context.getState(getPositions=True, getForces=True, getEnergy=True)
        R[i] = st.getPositions(asNumpy=True).value_in_unit(u.angstrom)
        E[i] = st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole) * ev_per_kj
        F[i] = st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.angstrom) * ev_per_kj
        ke = st.getKineticEnergy().value_in_unit(u.kilojoule_per_mole)
        T[i] = kinetic_temperature(ke, dof)
    return R, E, F, T


def _write_log(log_csv: str, E, T, equilibration_steps: int, stride: int, timestep_fs: float) -> None:
    """The MD log: time, potential energy (eV) and temperature (K) of every frame."""
    import pandas as pd

    n_frames = len(E)
    pd.DataFrame(
        {
            "frame": np.arange(n_frames),
            "time_ps": (equilibration_steps + stride * (np.arange(n_frames) + 1)) * timestep_fs / 1000,
            "potential_energy_eV": E,
            "temperature_K": T,
        }
    ).to_csv(log_csv, index=False)
