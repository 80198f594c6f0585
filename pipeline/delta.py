"""Δ-learning: the accurate level predicted as the cheap level plus a learned correction,
E_acc(x) ≈ E_cheap(x) + ΔE_θ(x) (forces likewise, F = F_cheap − ∇ΔE_θ).

This module holds what training, evaluation and MD share:

- :func:`difference_dataset`: accurate − cheap labels on the frames both levels labelled (aligned by
  ``frame_id``; a frame whose label failed or was dropped as an outlier at either level is left out);
- :class:`CheapPotential`: the cheap level at any geometry, for predictions and MD — computed
  engines (xtb, dft, ...) through :meth:`Level.compute`, GAFF2 (``empirical``) through an OpenMM
  context built from the molecule's prmtop exactly as the sampling MD builds it. Imported (``file``)
  levels exist only on their own frames, so they cannot be the cheap level of a Δ model.

Energies are eV and forces eV/Å (storage units) throughout.
"""

from __future__ import annotations

import time

import numpy as np

from . import units
from .data import Dataset
from .labelling.levels import Level, make_level


class DeltaError(ValueError):
    """Inputs of a Δ model that do not fit together (other molecule, no common frames, a level that
    cannot be computed at new geometries)."""


def align(accurate: Dataset, cheap: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Indices (into `accurate`, into `cheap`) of the frames both hold, in the order of `accurate`."""
    if not np.array_equal(accurate.z, cheap.z):
        raise DeltaError("the accurate and cheap datasets hold different molecules (z differs)")
    where = {int(f): i for i, f in enumerate(cheap.frame_id)}
    ia = np.array([i for i, f in enumerate(accurate.frame_id) if int(f) in where], dtype=np.int64)
    ic = np.array([where[int(accurate.frame_id[i])] for i in ia], dtype=np.int64)
    if len(ia) and not np.allclose(accurate.R[ia], cheap.R[ic], atol=1e-6):
        raise DeltaError(
            "frames with the same frame_id have different positions in the accurate and cheap "
            "datasets; they come from different sources: rerun the dataset rules"
        )
    return ia, ic


def difference_dataset(accurate: Dataset, cheap: Dataset, name: str = "") -> Dataset:
    """accurate − cheap energies and forces on the frames both labelled (order of `accurate`).

    The result's cpu_s is the cheap label's CPU time (the accurate one is counted with the accurate
    labels); meta records the frames of `accurate` that had no cheap label."""
    ia, ic = align(accurate, cheap)
    if len(ia) == 0:
        raise DeltaError("the accurate and cheap datasets have no frame in common (frame_id)")
    missing = sorted({int(f) for f in accurate.frame_id} - {int(accurate.frame_id[i]) for i in ia})
    return Dataset(
        R=accurate.R[ia],
        z=accurate.z,
        E=accurate.E[ia] - cheap.E[ic],
        F=accurate.F[ia] - cheap.F[ic],
        frame_id=accurate.frame_id[ia],
        cpu_s=cheap.cpu_s[ic],
        wall_s=cheap.wall_s[ic],
        name=name or accurate.name,
        theory=f"{accurate.theory} - {cheap.theory}",
        meta={"frames_without_cheap_label": missing},
    )


class CheapPotential:
    """The cheap level of a Δ model at arbitrary geometries: ``__call__(R) -> (E eV, F eV/Å, ok)``.

    Args:
      name, entry: the level's name and config entry ({engine: ..., <engine keys>}).
      z: [n_atoms] atomic numbers of the molecule.
      prmtop: the molecule's GAFF2 prmtop (needed by the ``empirical`` level only).

    A computed level that does not converge returns ok = False and NaN labels (an MD step there
    is a divergence; an evaluation raises).
    """

    def __init__(self, name: str, entry: dict, z, prmtop: str | None = None):
        self.level: Level = make_level(name, entry)
        self.z = np.asarray(z, dtype=np.int64).reshape(-1)
        self._context = None
        if self.level.ENGINE == "empirical":
            if not prmtop:
                raise DeltaError(f"level {name!r} (GAFF2) needs the molecule's prmtop to be computed at new geometries")
            self._context = _openmm_context(prmtop, self.z)
        elif not self.level.COMPUTED:
            raise DeltaError(
                f"level {name!r} (engine {self.level.ENGINE}) holds labels of its own frames only and "
                f"cannot be computed at new geometries; a Δ model needs a computed level "
                f"(xtb, dft, ...) or GAFF2 (empirical)"
            )
        self.calls = 0
        self.cpu_s = 0.0

    @property
    def name(self) -> str:
        return self.level.name

    def __call__(self, R) -> tuple[float, np.ndarray, bool]:
        R = np.asarray(R, dtype=np.float64).reshape(len(self.z), 3)
        c0 = time.process_time()
        try:
            if self._context is not None:
                E, F, ok = self._openmm(R)
            else:
                lab = self.level.compute(self.z, R)
                if not lab.converged:  # the labelling jobs' retry: safer settings once
                    lab = self.level.compute(self.z, R, safer=True)
                E, F, ok = lab.energy, np.asarray(lab.forces, dtype=np.float64), bool(lab.converged)
        except Exception:  # a numerical failure inside the engine: no label at this geometry
            E, F, ok = np.nan, np.full((len(self.z), 3), np.nan), False
        self.calls += 1
        self.cpu_s += time.process_time() - c0
        return float(E), F, ok

    def _openmm(self, R):
        import openmm.unit as u

        self._context.setPositions(R * u.angstrom)
        st = self._context.getState(getEnergy=True, getForces=True)
        E = st.getPotentialEnergy().value_in_unit(u.kilojoule_per_mole) * units.KJ_PER_MOL_EV
        F = st.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.angstrom) * units.KJ_PER_MOL_EV
        return E, np.asarray(F, dtype=np.float64), True

    @property
    def cpu_s_per_call(self) -> float:
        return self.cpu_s / self.calls if self.calls else float("nan")


def _openmm_context(prmtop: str, z: np.ndarray):
    """An OpenMM context of the GAFF2 system as the sampling MD builds it (pipeline.sampling.md)."""
    import openmm as mm
    import openmm.app as app

    prm = app.AmberPrmtopFile(str(prmtop))
    z_top = [a.element.atomic_number for a in prm.topology.atoms()]
    if z_top != z.tolist():
        raise DeltaError(f"{prmtop} holds atoms {z_top}, not the molecule's {z.tolist()}")
    system = prm.createSystem(nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    return mm.Context(system, mm.VerletIntegrator(1.0), mm.Platform.getPlatformByName("Reference"))


def cheap_labels_for(
    test: Dataset, cheap: Dataset, potential: CheapPotential | None
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Cheap energies [n] (eV) and forces [n, n_atoms, 3] (eV/Å) on every frame of `test`: from the
    pipeline's cheap labels where it has them, computed by `potential` on the rest (a frame the
    labelling dropped as an outlier, or one that failed there and converges now).

    Returns (E, F, info) with info = {n_from_labels, n_computed, computed_cpu_s}; raises DeltaError
    naming the frames where the cheap level has no label at all (Δ cannot predict there)."""
    ia, ic = align(test, cheap)
    E = np.full(len(test), np.nan)
    F = np.full(test.R.shape, np.nan)
    E[ia], F[ia] = cheap.E[ic], cheap.F[ic]
    rest = sorted(set(range(len(test))) - set(ia.tolist()))
    cpu0 = potential.cpu_s if potential is not None else 0.0
    failed = []
    for i in rest:
        if potential is None:
            failed.append(int(test.frame_id[i]))
            continue
        e, f, ok = potential(test.R[i])
        if not ok:
            failed.append(int(test.frame_id[i]))
        E[i], F[i] = e, f
    if failed:
        raise DeltaError(
            f"the cheap level has no label on test frame(s) {failed} (frame_id); a Δ model cannot "
            f"predict there. Fix: a cheap level that converges on these geometries"
        )
    info = dict(
        n_from_labels=int(len(ia)),
        n_computed=len(rest),
        computed_cpu_s=(potential.cpu_s - cpu0) if potential is not None else 0.0,
    )
    return E, F, info
