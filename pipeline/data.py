"""Datasets on disk: MD17/sGDML-style ``.npz`` files.

Keys (storage units from :mod:`pipeline.units`):
  R        [n_frames, n_atoms, 3] positions, Angstrom
  z        [n_atoms] atomic numbers
  E        [n_frames] energies, eV           (absent for unlabelled frames)
  F        [n_frames, n_atoms, 3] forces, eV/Angstrom (absent for unlabelled frames)
  frame_id [n_frames] index of each frame in its source (MD trajectory or imported file)
  cpu_s    [n_frames] CPU seconds spent on each label (0 for free labels)
  wall_s   [n_frames] wall seconds spent on each label
  type='d', name, theory, r_unit='Ang', e_unit='eV', md5   (what sGDML reads)
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import units

R_UNIT = "Ang"
E_UNIT = "eV"


class DatasetError(ValueError):
    """A dataset file is malformed (wrong keys, shapes or units)."""


@dataclass
class Dataset:
    R: np.ndarray  # [n_frames, n_atoms, 3] Angstrom
    z: np.ndarray  # [n_atoms]
    E: np.ndarray | None = None  # [n_frames] eV
    F: np.ndarray | None = None  # [n_frames, n_atoms, 3] eV/A
    frame_id: np.ndarray | None = None  # [n_frames]
    cpu_s: np.ndarray | None = None  # [n_frames]
    wall_s: np.ndarray | None = None  # [n_frames]
    name: str = ""
    theory: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.R = np.asarray(self.R, dtype=np.float64)
        self.z = np.asarray(self.z, dtype=np.int64).reshape(-1)
        n = len(self.R)
        if self.frame_id is None:
            self.frame_id = np.arange(n)
        for key in ("cpu_s", "wall_s"):
            if getattr(self, key) is None:
                setattr(self, key, np.zeros(n))
        if self.E is not None:
            self.E = np.asarray(self.E, dtype=np.float64).reshape(-1)
        if self.F is not None:
            self.F = np.asarray(self.F, dtype=np.float64)
        validate_arrays(self.R, self.z, self.E, self.F, where=self.name or "dataset")
        check_finite(self.R, self.E, self.F, where=self.name or "dataset", frame_id=self.frame_id)

    def __len__(self) -> int:
        return len(self.R)

    @property
    def labelled(self) -> bool:
        return self.E is not None and self.F is not None

    def subset(self, idx) -> Dataset:
        idx = np.asarray(idx, dtype=np.int64)
        return Dataset(
            R=self.R[idx],
            z=self.z,
            E=None if self.E is None else self.E[idx],
            F=None if self.F is None else self.F[idx],
            frame_id=self.frame_id[idx],
            cpu_s=self.cpu_s[idx],
            wall_s=self.wall_s[idx],
            name=self.name,
            theory=self.theory,
            meta=dict(self.meta),
        )

    def save(self, path: str | os.PathLike) -> None:
        save_npz(path, self)


SHAPE_FIX = (
    "Fix: an MD17/sGDML dataset holds R [n_frames, n_atoms, 3], z [n_atoms], E [n_frames] and "
    "F [n_frames, n_atoms, 3]; re-export the file with those shapes"
)


def validate_arrays(R, z, E=None, F=None, where="dataset") -> None:
    """Check shapes; raise DatasetError naming the array, its shape, the expectation and the fix."""
    problem = None
    if R.ndim != 3 or R.shape[2] != 3:
        problem = f"R has shape {R.shape}; expected [n_frames, n_atoms, 3]"
    else:
        n, n_atoms = R.shape[:2]
        if z.shape != (n_atoms,):
            problem = f"z has shape {z.shape}; expected ({n_atoms},) to match R {R.shape}"
        elif np.any(z < 1) or np.any(z > 118):
            problem = f"z holds values outside 1..118: {sorted(set(z.tolist()))}"
        elif E is not None and E.shape != (n,):
            problem = f"E has {E.size} values; expected one per frame ({n})"
        elif F is not None and F.shape != R.shape:
            problem = f"F has shape {F.shape}; expected the shape of R {R.shape}"
    if problem:
        raise DatasetError(f"{where}: {problem}. {SHAPE_FIX}")


def nonfinite_frames(R, E=None, F=None) -> list[tuple[int, str, str]]:
    """(frame index, key, what) for every frame whose R, E or F holds NaN or +-inf."""
    out = []
    for key, arr in (("R", R), ("E", E), ("F", F)):
        if arr is None:
            continue
        arr = np.asarray(arr, dtype=np.float64)
        flat = arr.reshape(len(arr), -1) if arr.size else np.zeros((len(arr), 0))
        for i in np.flatnonzero(~np.isfinite(flat).all(axis=1)):
            bad = flat[i][~np.isfinite(flat[i])]
            what = ", ".join(sorted({"NaN" if np.isnan(v) else ("+inf" if v > 0 else "-inf") for v in bad}))
            out.append((int(i), key, what))
    return sorted(out)


NONFINITE_FIX = "drop those frames from the file or relabel them; labels with NaN or inf are never trained on"


def check_finite(R, E=None, F=None, *, where: str, frame_id=None, fix: str = NONFINITE_FIX) -> None:
    """Raise DatasetError naming the source, the first bad frames (index and frame_id), the key and the fix."""
    bad = nonfinite_frames(R, E, F)
    if not bad:
        return
    shown = []
    for i, key, what in bad[:5]:
        fid = "" if frame_id is None or int(frame_id[i]) == i else f" (frame_id {int(frame_id[i])})"
        shown.append(f"frame {i}{fid} key {key}: {what}")
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    n_frames = len({i for i, _, _ in bad})
    raise DatasetError(f"{where}: non-finite values in {n_frames} frame(s): {'; '.join(shown)}{more}. Fix: {fix}")


def dataset_md5(R: np.ndarray, z: np.ndarray, E, F) -> str:
    """The fingerprint sGDML stores in datasets (same recipe as sgdml.utils.io.dataset_md5)."""
    md5 = hashlib.md5()
    md5.update(np.ascontiguousarray(z.ravel()).data)
    md5.update(np.ascontiguousarray(R.ravel()).data)
    if E is not None:
        md5.update(np.ascontiguousarray(E.ravel()).data)
    if F is not None:
        md5.update(np.ascontiguousarray(F.ravel()).data)
    return md5.hexdigest()


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call write(tmp_path) then rename onto path, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer (host, process, call): writers of the same file on other nodes of a shared
    # file system never share a temporary; the last rename wins and leaves one whole file.
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def save_npz(path: str | os.PathLike, ds: Dataset) -> None:
    arrays = dict(
        type="d",
        name=ds.name,
        theory=ds.theory,
        r_unit=R_UNIT,
        e_unit=E_UNIT,
        R=ds.R,
        z=ds.z,
        frame_id=ds.frame_id,
        cpu_s=ds.cpu_s,
        wall_s=ds.wall_s,
        meta=json.dumps(ds.meta, sort_keys=True),
        md5=dataset_md5(ds.R, ds.z, ds.E, ds.F),
    )
    if ds.E is not None:
        arrays["E"] = ds.E
    if ds.F is not None:
        arrays["F"] = ds.F
    atomic_write(path, lambda tmp: np.savez(tmp, **arrays))


def _unit_hint(config_key: str | None, key: str) -> str:
    return f"`{config_key}.{key}`" if config_key else f"the level's `{key}:`"


def _resolve_unit(path, declared, given, kind: str, config_key: str | None) -> str | None:
    """The unit of a file's energies or lengths: its own declaration when this pipeline knows it,
    else the level's config value; an unknown declaration without a config value raises."""
    table = units.ENERGY_TO_EV if kind == "energy" else units.LENGTH_TO_ANGSTROM
    file_key, cfg_key = ("e_unit", "energy_unit") if kind == "energy" else ("r_unit", "length_unit")
    if declared is None:
        return given
    if declared in table:
        return declared
    if given is not None:
        return given
    raise DatasetError(
        f"{path}: the file declares {file_key}={declared!r}, not a known {kind} unit (accepted: "
        f"{', '.join(sorted(table))}). Fix: set {_unit_hint(config_key, cfg_key)} to the file's real unit, "
        f"one of those (it is used when the file's own {file_key} is missing or unknown)"
    )


def load_npz(
    path: str | os.PathLike,
    energy_unit: str | None = None,
    length_unit: str | None = None,
    config_key: str | None = None,
) -> Dataset:
    """Read this project's npz or an MD17 / rMD17 / sGDML npz, converting to eV and Angstrom.

    Units come from the file's `e_unit`/`r_unit` keys when present and known, else from the
    arguments; a file that declares neither raises (MD17's kcal/mol is not assumed silently).
    Labels with NaN or inf raise, naming the file, the frame and the key. `config_key` (e.g.
    ``levels.md17``) names the config entry in error messages.
    """
    path = Path(path)
    if not path.exists():
        where = f"; check {config_key}.path" if config_key else ""
        raise DatasetError(f"{path}: no such file{where}")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            # rMD17 uses nuclear_charges / coords / energies / forces.
            alias = {"nuclear_charges": "z", "coords": "R", "energies": "E", "forces": "F"}
            data = {alias.get(k, k): f[k] for k in keys}
    except (OSError, ValueError) as err:
        raise DatasetError(
            f"{path}: not a readable .npz ({err}); an MD17/sGDML dataset is a numpy .npz archive with arrays R, z, E, F"
        ) from None
    missing = {"R", "z"} - set(data)
    if missing:
        raise DatasetError(
            f"{path}: missing key(s) {sorted(missing)}; an MD17/sGDML dataset needs R, z "
            f"(and E, F for labels); found {sorted(keys)}"
        )
    has_labels = "E" in data or "F" in data
    e_unit = _resolve_unit(path, str(data["e_unit"]) if "e_unit" in data else None, energy_unit, "energy", config_key)
    r_unit = _resolve_unit(path, str(data["r_unit"]) if "r_unit" in data else None, length_unit, "length", config_key)
    if r_unit is None or (has_labels and e_unit is None):
        raise DatasetError(
            f"{path}: units not declared in the file (keys e_unit/r_unit) and not given in the "
            f"level's config; set {_unit_hint(config_key, 'energy_unit')} and {_unit_hint(config_key, 'length_unit')} "
            f"(e.g. kcal/mol and Ang for MD17; accepted energy units: {', '.join(sorted(units.ENERGY_TO_EV))}; "
            f"length units: {', '.join(sorted(units.LENGTH_TO_ANGSTROM))})"
        )
    rf = units.length_factor(r_unit)
    R = np.asarray(data["R"], dtype=np.float64) * rf
    z = np.asarray(data["z"]).astype(np.int64).reshape(-1)
    E = F = None
    if "E" in data:
        E = np.asarray(data["E"], dtype=np.float64).reshape(-1) * units.energy_factor(e_unit)
    if "F" in data:
        F = np.asarray(data["F"], dtype=np.float64) * units.force_factor(e_unit, r_unit)
    validate_arrays(R, z, E, F, where=str(path))
    check_finite(R, E, F, where=str(path), frame_id=data.get("frame_id"))
    meta = {}
    if "meta" in data:
        meta = json.loads(str(data["meta"]))
    return Dataset(
        R=R,
        z=z,
        E=E,
        F=F,
        frame_id=data.get("frame_id"),
        cpu_s=data.get("cpu_s"),
        wall_s=data.get("wall_s"),
        name=str(data.get("name", path.stem)),
        theory=str(data.get("theory", "")),
        meta=meta,
    )


def load_ase(
    path: str | os.PathLike, energy_unit: str = "eV", length_unit: str = "Ang", config_key: str | None = None
) -> Dataset:
    """Read any ASE-readable file (extxyz, ...) with energies and forces from its calculator."""
    from ase.io import read

    try:
        frames = read(str(path), index=":")
    except FileNotFoundError:
        where = f"; check {config_key}.path" if config_key else ""
        raise DatasetError(f"{path}: no such file{where}") from None
    except Exception as err:  # ASE raises many types for unreadable input
        raise DatasetError(
            f"{path}: ASE could not read it ({err}); give an .npz or an ASE-readable file such as extxyz"
        ) from None
    if not frames:
        raise DatasetError(f"{path}: no frames; point the level's path at a file with labelled frames")
    z = frames[0].numbers
    for i, a in enumerate(frames):
        if not np.array_equal(a.numbers, z):
            raise DatasetError(f"{path}: frame {i} has different atoms from frame 0; one molecule per file")
    rf = units.length_factor(length_unit)
    R = np.stack([a.positions for a in frames]) * rf
    E = F = None
    if frames[0].calc is not None:
        try:
            E = np.array([a.get_potential_energy() for a in frames]) * units.energy_factor(energy_unit)
            F = np.stack([a.get_forces() for a in frames]) * units.force_factor(energy_unit, length_unit)
        except Exception as err:
            raise DatasetError(f"{path}: frames lack energies/forces ({err}); every frame needs both") from None
    check_finite(R, E, F, where=str(path))
    return Dataset(R=R, z=z, E=E, F=F, name=Path(path).stem)


def load_any(
    path: str | os.PathLike,
    energy_unit: str | None = None,
    length_unit: str | None = None,
    config_key: str | None = None,
) -> Dataset:
    """Import a dataset: .npz via load_npz, anything else via ASE."""
    if str(path).endswith(".npz"):
        return load_npz(path, energy_unit, length_unit, config_key=config_key)
    return load_ase(path, energy_unit or "eV", length_unit or "Ang", config_key=config_key)


def export_extxyz(ds: Dataset, path: str | os.PathLike) -> None:
    """Write a labelled dataset as extxyz (eV, Angstrom), readable by ASE and most MLFF codes."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    frames = []
    for i in range(len(ds)):
        atoms = Atoms(numbers=ds.z, positions=ds.R[i])
        if ds.labelled:
            atoms.calc = SinglePointCalculator(atoms, energy=float(ds.E[i]), forces=ds.F[i])
        frames.append(atoms)
    atomic_write(path, lambda tmp: write(str(tmp), frames, format="extxyz"))


def concat(datasets: list[Dataset]) -> Dataset:
    ds0 = datasets[0]
    labelled = all(d.labelled for d in datasets)
    return Dataset(
        R=np.concatenate([d.R for d in datasets]) if datasets else np.zeros((0, len(ds0.z), 3)),
        z=ds0.z,
        E=np.concatenate([d.E for d in datasets]) if labelled else None,
        F=np.concatenate([d.F for d in datasets]) if labelled else None,
        frame_id=np.concatenate([d.frame_id for d in datasets]),
        cpu_s=np.concatenate([d.cpu_s for d in datasets]),
        wall_s=np.concatenate([d.wall_s for d in datasets]),
        name=ds0.name,
        theory=ds0.theory,
        meta=dict(ds0.meta),
    )
