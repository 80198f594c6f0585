"""Δ-learning data: accurate − cheap aligned by frame_id; GAFF2 computed at any geometry reproduces the
labels the sampling MD recorded (so GAFF2 Δ predictions use the same potential it was trained on)."""

import numpy as np
import pytest

from pipeline.data import Dataset
from pipeline.delta import CheapPotential, DeltaError, cheap_labels_for, difference_dataset
from tests.conftest import ETHANOL_R, ETHANOL_Z


def _ds(frame_id, E, shift=0.0, cpu=0.0):
    frame_id = np.asarray(frame_id)
    R = ETHANOL_R[None] + 0.01 * frame_id[:, None, None]
    F = np.ones((len(frame_id), 9, 3)) * np.asarray(E)[:, None, None]
    return Dataset(
        R=R,
        z=ETHANOL_Z,
        E=np.asarray(E, float) + shift,
        F=F + shift,
        frame_id=frame_id,
        cpu_s=np.full(len(frame_id), cpu),
    )


def test_difference_is_aligned_by_frame_id_in_accurate_order():
    acc = _ds([5, 3, 9, 7], [1.0, 2.0, 3.0, 4.0], shift=10.0)
    cheap = _ds([7, 5, 9], [4.0, 1.0, 3.0], cpu=0.25)  # frame 3 failed at the cheap level; other order
    d = difference_dataset(acc, cheap)
    assert list(d.frame_id) == [5, 9, 7]
    np.testing.assert_allclose(d.E, 10.0)
    np.testing.assert_allclose(d.F, 10.0)
    np.testing.assert_allclose(d.cpu_s, 0.25)  # the cheap labels' cost
    assert d.meta["frames_without_cheap_label"] == [3]


def test_frames_with_same_id_but_other_positions_are_refused():
    acc, cheap = _ds([1, 2], [1.0, 2.0]), _ds([1, 2], [1.0, 2.0])
    cheap.R = cheap.R + 0.1
    with pytest.raises(DeltaError, match="different positions"):
        difference_dataset(acc, cheap)
    with pytest.raises(DeltaError, match="no frame in common"):
        difference_dataset(acc, _ds([8], [1.0]))


def test_missing_test_label_without_a_way_to_compute_it_names_the_frame():
    with pytest.raises(DeltaError, match=r"test frame\(s\) \[2\]"):
        cheap_labels_for(_ds([1, 2], [1.0, 2.0]), _ds([1], [1.0]), None)


def test_gaff2_potential_reproduces_the_md_labels(tmp_path):
    from pipeline.molecules import get_spec
    from pipeline.sampling.gaff import build_gaff2
    from pipeline.sampling.md import run_md

    p = tmp_path / "eth"
    build_gaff2(get_spec("ethanol"), f"{p}.prmtop", f"{p}.inpcrd", f"{p}.sdf")
    ds = run_md(
        f"{p}.prmtop",
        f"{p}.inpcrd",
        temperature_K=500,
        timestep_fs=0.5,
        friction_per_ps=1.0,
        equilibration_steps=200,
        stride=20,
        n_frames=4,
        seed=1,
    )
    pot = CheapPotential("empirical", {"engine": "empirical"}, ds.z, prmtop=f"{p}.prmtop")
    for i in range(len(ds)):
        E, F, ok = pot(ds.R[i])
        assert ok and E == pytest.approx(ds.E[i], abs=1e-6)
        np.testing.assert_allclose(F, ds.F[i], atol=1e-5)
    assert pot.calls == 4 and pot.cpu_s_per_call > 0
    with pytest.raises(DeltaError, match="holds atoms"):
        CheapPotential("empirical", {"engine": "empirical"}, ds.z[::-1], prmtop=f"{p}.prmtop")
