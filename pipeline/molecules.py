"""Molecules: the built-in MD17 set by SMILES, user entries by SMILES or an xyz file.

A molecule resolves to an RDKit molecule with explicit hydrogens and a 3D conformer; its atom
order (heavy atoms first, then hydrogens, as RDKit's AddHs gives) is the atom order of every
file the pipeline writes for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The MD17 molecules (Chmiela et al. 2017), keyed as they appear in results/<molecule>/ paths.
BUILTIN_SMILES = {
    "ethanol": "CCO",
    "aspirin": "CC(=O)Oc1ccccc1C(=O)O",
    "malonaldehyde": "O=CC=CO",  # the enol tautomer sampled in MD17
    "benzene": "c1ccccc1",
    "toluene": "Cc1ccccc1",
    "naphthalene": "c1ccc2ccccc2c1",
    "salicylic_acid": "O=C(O)c1ccccc1O",
    "uracil": "O=c1cc[nH]c(=O)[nH]1",
}


class MoleculeError(ValueError):
    """A molecule name, SMILES or structure file that cannot be used."""


@dataclass(frozen=True)
class MoleculeSpec:
    name: str
    smiles: str | None = None
    xyz: str | None = None
    charge: int = 0


def known_molecules(user_molecules: dict | None) -> list[str]:
    return sorted(set(BUILTIN_SMILES) | set(user_molecules or {}))


def get_spec(name: str, user_molecules: dict | None = None) -> MoleculeSpec:
    """The spec of molecule `name`: a user entry wins over a built-in of the same name."""
    user_molecules = user_molecules or {}
    entry = user_molecules.get(name, {})
    if entry.get("smiles") or entry.get("xyz"):
        return MoleculeSpec(
            name=name,
            smiles=entry.get("smiles"),
            xyz=entry.get("xyz"),
            charge=int(entry.get("charge", 0)),
        )
    if name in user_molecules and name not in BUILTIN_SMILES:
        raise MoleculeError(f"molecule {name!r}: give `smiles:` or `xyz:` (it is not a built-in MD17 molecule)")
    if name in BUILTIN_SMILES:
        return MoleculeSpec(name=name, smiles=BUILTIN_SMILES[name])
    raise MoleculeError(
        f"unknown molecule {name!r}; built-in: {', '.join(sorted(BUILTIN_SMILES))}; "
        f"configured: {', '.join(sorted(user_molecules)) or 'none'}. "
        f"Add it under `molecules:` in the config with `smiles:` or `xyz:`."
    )


def to_rdkit(spec: MoleculeSpec, seed: int = 0):
    """RDKit Mol with hydrogens and one MMFF-optimised 3D conformer (seeded embedding)."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import AllChem

    RDLogger.DisableLog("rdApp.*")
    if spec.smiles is not None:
        mol = Chem.MolFromSmiles(spec.smiles)
        if mol is None:
            raise MoleculeError(f"molecule {spec.name!r}: RDKit cannot parse SMILES {spec.smiles!r}; check the string")
        mol = Chem.AddHs(mol)
        if AllChem.EmbedMolecule(mol, randomSeed=seed) != 0:
            raise MoleculeError(f"molecule {spec.name!r}: RDKit could not embed SMILES {spec.smiles!r} in 3D")
        AllChem.MMFFOptimizeMolecule(mol)
        return mol
    from rdkit.Chem import rdDetermineBonds

    path = Path(spec.xyz)
    if not path.exists():
        raise MoleculeError(f"molecule {spec.name!r}: xyz file {str(path)!r} does not exist")
    mol = Chem.MolFromXYZFile(str(path))
    if mol is None:
        raise MoleculeError(f"molecule {spec.name!r}: RDKit cannot read xyz file {str(path)!r}")
    try:
        rdDetermineBonds.DetermineBonds(mol, charge=spec.charge)
    except Exception as err:
        raise MoleculeError(
            f"molecule {spec.name!r}: cannot assign bonds from {str(path)!r} with charge {spec.charge} ({err})"
        ) from None
    return mol


def check_spec(spec: MoleculeSpec) -> None:
    """Cheap parse-time check: the SMILES parses or the xyz file exists and reads."""
    if spec.smiles is not None:
        from rdkit import Chem, RDLogger

        RDLogger.DisableLog("rdApp.*")
        if Chem.MolFromSmiles(spec.smiles) is None:
            raise MoleculeError(f"molecule {spec.name!r}: RDKit cannot parse SMILES {spec.smiles!r}; check the string")
    else:
        path = Path(spec.xyz)
        if not path.exists():
            raise MoleculeError(f"molecule {spec.name!r}: xyz file {str(path)!r} does not exist")


def atomic_numbers(mol) -> np.ndarray:
    return np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
