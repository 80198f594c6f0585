"""benchmarks/model_archive.py carries models between runs only onto the same frames and labels,
never overwrites, leaves checkpoints behind and dates the restored files after their inputs."""

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import model_archive


def make_run(root: Path, force_shift: float = 0.0) -> Path:
    rng = np.random.default_rng(0)
    run = root / "results" / "ethanol"
    (run / "data" / "ccsd_t").mkdir(parents=True)
    np.savez(
        run / "data" / "ccsd_t" / "train.npz",
        R=rng.normal(size=(4, 9, 3)),
        z=np.array([6, 6, 8, 1, 1, 1, 1, 1, 1]),
        frame_id=np.arange(4),
        E=rng.normal(size=4),
        F=rng.normal(size=(4, 9, 3)) + force_shift,
    )
    return run


def add_model(run: Path) -> Path:
    d = run / "models" / "egnn" / "standard" / "N4_s0"
    d.mkdir(parents=True)
    (d / "model.pt").write_bytes(b"weights")
    (d / "history.csv").write_text("step,val\n0,1\n")
    (d / "model.pt.ckpt").write_bytes(b"checkpoint")
    for f in d.iterdir():  # trained long before the target run's datasets exist
        os.utime(f, (time.time() - 3600, time.time() - 3600))
    return d


def test_restore_onto_the_same_data_unpacks_without_checkpoints_and_dates_files_now(tmp_path):
    src = make_run(tmp_path / "a")
    add_model(src)
    archive = tmp_path / "models.tar.gz"
    model_archive.main(["save", "--run", str(src), "--out", str(archive), "models/egnn/standard/N4_s0"])
    dst = make_run(tmp_path / "b")
    data = dst / "data" / "ccsd_t" / "train.npz"
    model_archive.main(["restore", "--run", str(dst), str(archive)])
    d = dst / "models" / "egnn" / "standard" / "N4_s0"
    assert (d / "model.pt").read_bytes() == b"weights"
    assert (d / "history.csv").exists() and not (d / "model.pt.ckpt").exists()
    assert (d / "model.pt").stat().st_mtime >= data.stat().st_mtime  # dated after its inputs, not when trained
    with pytest.raises(SystemExit, match="already has"):
        model_archive.main(["restore", "--run", str(dst), str(archive)])


def test_restore_refuses_other_labels_or_missing_data_and_writes_nothing(tmp_path):
    src = make_run(tmp_path / "a")
    add_model(src)
    archive = tmp_path / "models.tar.gz"
    model_archive.main(["save", "--run", str(src), "--out", str(archive), "models/egnn/standard/N4_s0"])
    other = make_run(tmp_path / "b", force_shift=1e-3)
    with pytest.raises(SystemExit, match="other labels"):
        model_archive.main(["restore", "--run", str(other), str(archive)])
    assert not (other / "models").exists()
    empty = tmp_path / "c" / "results" / "ethanol"
    empty.mkdir(parents=True)
    with pytest.raises(SystemExit, match="missing"):
        model_archive.main(["restore", "--run", str(empty), str(archive)])
    assert not (empty / "models").exists()
