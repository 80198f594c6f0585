"""Carry trained models of a benchmark run to a later run of the same configuration elsewhere.

The benchmark runs of BENCHMARKS.md take more CPU than one 2-core session has, and the machines do
not keep their files between sessions. The accurate labels travel as label caches
(`benchmarks/labels/`); this script carries the trained models that later jobs start from (stage-2
models shared by every N, stage-1 models for ASTEROID's bias), so a later session trains only what
is new.

    python benchmarks/model_archive.py save --run results/ethanol --out benchmarks/models/X.tar.gz \\
        models/egnn/stage2/xtb/ginf/s0 models/egnn/standard/N100_s0 ...
    python benchmarks/model_archive.py restore --run results/ethanol benchmarks/models/X.tar.gz

`save` packs each run directory (relative to --run; checkpoints left out) with a manifest: the
commit of the run's checkout and a fingerprint of every dataset under data/ and frames/ (a SHA-256 of
its geometries and frame ids, and sums of its energies and forces).

`restore` refuses unless each of those datasets exists in the target run with the same frames and
the same labels (energy and force sums within 1e-6 relative; a level computed again on another CPU
may differ in the last digits), and refuses to overwrite a file. It then unpacks the run directories
and sets their files' modification time to now, after their inputs, so Snakemake counts them as
done. Snakemake has no provenance record of a restored file, so it cannot see a changed parameter
or code behind it: restore into a checkout of the commit the manifest names (a different commit is
reported) with the same configuration.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from common import checkout_commit

MANIFEST = "manifest.json"
SKIP_SUFFIXES = (".ckpt",)
LABEL_RTOL = 1e-6


def fingerprint(path: Path) -> dict:
    """Geometry hash (R, z, frame_id) and label sums (E, F) of one dataset or frames file."""
    with np.load(path, allow_pickle=False) as d:
        h = hashlib.sha256()
        for key in ("R", "z", "frame_id"):
            if key in d.files:
                a = np.ascontiguousarray(d[key])
                h.update(key.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
        out = {"geometry_sha256": h.hexdigest()}
        for key in ("E", "F"):
            if key in d.files:
                a = np.asarray(d[key], dtype=np.float64)
                out[f"{key}_sum"] = float(a.sum())
                out[f"{key}_abs_sum"] = float(np.abs(a).sum())
    return out


def datasets(run: Path) -> dict[str, dict]:
    """Fingerprints of every .npz under run/data and run/frames, keyed by path relative to run."""
    files = sorted(p for sub in ("data", "frames") for p in (run / sub).rglob("*.npz"))
    return {str(p.relative_to(run)): fingerprint(p) for p in files}


def save(run: Path, out: Path, run_dirs: list[str]) -> None:
    missing = [d for d in run_dirs if not (run / d).is_dir()]
    if missing:
        sys.exit(f"not run directories under {run}: {', '.join(missing)}")
    manifest = {
        "commit": checkout_commit(run),
        "saved": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "run_dirs": run_dirs,
        "datasets": datasets(run),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with tarfile.open(out, "w:gz") as tar:
        blob = json.dumps(manifest, indent=1).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime = len(blob), int(time.time())
        tar.addfile(info, io.BytesIO(blob))
        for d in run_dirs:
            for p in sorted((run / d).rglob("*")):
                if p.is_file() and not p.name.endswith(SKIP_SUFFIXES):
                    tar.add(p, arcname=str(p.relative_to(run)))
                    n += 1
    print(f"{out}: {n} files of {len(run_dirs)} run directories, {len(manifest['datasets'])} datasets fingerprinted")


def mismatches(expected: dict[str, dict], run: Path) -> list[str]:
    """Why the datasets of `run` differ from the manifest's (empty when they agree)."""
    problems = []
    for rel, want in expected.items():
        path = run / rel
        if not path.exists():
            problems.append(f"{rel}: missing (run the workflow up to its datasets first)")
            continue
        have = fingerprint(path)
        if have["geometry_sha256"] != want["geometry_sha256"]:
            ours, theirs = have["geometry_sha256"][:12], want["geometry_sha256"][:12]
            problems.append(f"{rel}: other frames (geometry hash {ours}, the archive's {theirs})")
        for key, value in want.items():
            if key.endswith("_sum") and not np.isclose(have.get(key, np.nan), value, rtol=LABEL_RTOL, atol=0.0):
                problems.append(f"{rel}: other labels ({key} {have.get(key)} against {value})")
    return problems


def restore(run: Path, archive: Path) -> None:
    with tarfile.open(archive, "r:gz") as tar:
        manifest = json.load(tar.extractfile(MANIFEST))
        problems = mismatches(manifest["datasets"], run)
        if problems:
            head = f"{archive} was trained on other data than {run} holds; nothing restored:"
            sys.exit("\n  ".join([head, *problems]))
        members = [m for m in tar.getmembers() if m.name != MANIFEST]
        existing = [m.name for m in members if (run / m.name).exists()]
        if existing:
            sys.exit(f"{run} already has {len(existing)} of the archive's files (e.g. {existing[0]}); nothing restored")
        commit = checkout_commit(run)
        if commit != manifest["commit"]:
            note = f"note: the models were trained at commit {manifest['commit']}, this checkout is at {commit}"
            print(note, file=sys.stderr)
        tar.extractall(run, members=members, filter="data")
    now = time.time()
    for m in members:
        os.utime(run / m.name, (now, now))
    n_dirs = len(manifest["run_dirs"])
    print(f"{run}: restored {len(members)} files of {n_dirs} run directories (saved {manifest['saved']})")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("save", help="pack run directories with a manifest of the run's datasets")
    sv.add_argument("--run", required=True, type=Path, help="the run's results/<molecule> directory")
    sv.add_argument("--out", required=True, type=Path, help="the archive (.tar.gz) to write")
    sv.add_argument("run_dirs", nargs="+", help="run directories relative to --run")
    rs = sub.add_parser("restore", help="unpack an archive into a run whose datasets match its manifest")
    rs.add_argument("--run", required=True, type=Path, help="the run's results/<molecule> directory")
    rs.add_argument("archive", type=Path)
    a = p.parse_args(argv)
    if a.cmd == "save":
        save(a.run, a.out, a.run_dirs)
    else:
        restore(a.run, a.archive)


if __name__ == "__main__":
    main()
