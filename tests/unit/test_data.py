import numpy as np
import pytest

from pipeline import units
from pipeline.data import Dataset, DatasetError, export_extxyz, load_any, load_npz
from tests.conftest import ETHANOL_Z


def _md17_file(path, n=6, seed=0):
    """An MD17-format file: kcal/mol, kcal/mol/A, E as [n, 1], declared units."""
    rng = np.random.default_rng(seed)
    R = rng.normal(size=(n, 9, 3))
    E = rng.normal(size=(n, 1)) - 97000.0
    F = rng.normal(size=(n, 9, 3)) * 30
    np.savez(path, R=R, z=ETHANOL_Z, E=E, F=F, e_unit="kcal/mol", r_unit="Ang", type="d", name="ethanol")
    return R, E, F


def test_md17_npz_converted_to_ev(tmp_path):
    R, E, F = _md17_file(tmp_path / "md17.npz")
    ds = load_npz(tmp_path / "md17.npz")
    np.testing.assert_allclose(ds.R, R)
    np.testing.assert_allclose(ds.E, E[:, 0] * units.KCAL_PER_MOL_EV)
    np.testing.assert_allclose(ds.F, F * units.KCAL_PER_MOL_EV)


def test_md17_npz_and_extxyz_import_identical(tmp_path):
    _md17_file(tmp_path / "md17.npz")
    a = load_any(tmp_path / "md17.npz")
    export_extxyz(a, tmp_path / "same.extxyz")
    b = load_any(tmp_path / "same.extxyz")
    np.testing.assert_array_equal(a.z, b.z)
    # extxyz stores 8 decimals: identical to the precision of the text format
    for key in ("R", "E", "F"):
        np.testing.assert_allclose(getattr(a, key), getattr(b, key), rtol=1e-9, atol=1e-7)


def test_round_trip_keeps_metadata_and_sgdml_keys(tmp_path):
    ds = Dataset(
        R=np.zeros((2, 9, 3)) + np.arange(9)[None, :, None],
        z=ETHANOL_Z,
        E=np.ones(2),
        F=np.zeros((2, 9, 3)),
        cpu_s=np.array([1.0, 2.0]),
        name="ethanol",
        theory="PBE/6-31G",
        meta={"level": "dft"},
    )
    ds.save(tmp_path / "d.npz")
    with np.load(tmp_path / "d.npz") as f:
        assert {"type", "name", "theory", "R", "z", "E", "F", "r_unit", "e_unit", "md5"} <= set(f.files)
        assert str(f["e_unit"]) == "eV" and str(f["r_unit"]) == "Ang"
    back = load_npz(tmp_path / "d.npz")
    assert back.meta == {"level": "dft"} and back.theory == "PBE/6-31G"
    np.testing.assert_array_equal(back.cpu_s, [1.0, 2.0])


def test_wrong_shapes_name_the_array(tmp_path):
    np.savez(
        tmp_path / "bad.npz",
        R=np.zeros((4, 9, 3)),
        z=ETHANOL_Z,
        E=np.zeros(4),
        F=np.zeros((4, 9)),
        e_unit="eV",
        r_unit="Ang",
    )
    with pytest.raises(DatasetError, match=r"F has shape \(4, 9\); expected the shape of R"):
        load_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "bad2.npz", R=np.zeros((4, 9)), z=ETHANOL_Z, e_unit="eV", r_unit="Ang")
    with pytest.raises(DatasetError, match=r"R has shape \(4, 9\); expected \[n_frames, n_atoms, 3\]"):
        load_npz(tmp_path / "bad2.npz")


def test_undeclared_units_are_an_error(tmp_path):
    np.savez(tmp_path / "nounits.npz", R=np.zeros((2, 9, 3)), z=ETHANOL_Z, E=np.zeros(2), F=np.zeros((2, 9, 3)))
    with pytest.raises(DatasetError, match="units not declared.*energy_unit"):
        load_npz(tmp_path / "nounits.npz")
    ds = load_npz(tmp_path / "nounits.npz", energy_unit="Ha", length_unit="Bohr")
    assert ds.labelled


def test_unknown_declared_unit_names_file_key_and_fix(tmp_path):
    np.savez(
        tmp_path / "u.npz",
        R=np.zeros((2, 9, 3)),
        z=ETHANOL_Z,
        E=np.zeros(2),
        F=np.zeros((2, 9, 3)),
        e_unit="furlong",
        r_unit="Ang",
    )
    with pytest.raises(DatasetError) as err:
        load_npz(tmp_path / "u.npz", config_key="levels.md17")
    msg = str(err.value)
    assert str(tmp_path / "u.npz") in msg and "e_unit='furlong'" in msg
    assert "levels.md17.energy_unit" in msg and "kcal/mol" in msg and "eV" in msg
    # the config's unit is used for a declaration this pipeline does not know
    np.savez(
        tmp_path / "u2.npz",
        R=np.zeros((2, 9, 3)),
        z=ETHANOL_Z,
        E=np.ones(2),
        F=np.zeros((2, 9, 3)),
        e_unit="kcal mol-1",
        r_unit="Ang",
    )
    assert load_npz(tmp_path / "u2.npz", energy_unit="kcal/mol").E[0] == pytest.approx(units.KCAL_PER_MOL_EV)


@pytest.mark.parametrize(
    "key,value,what", [("F", np.nan, "NaN"), ("E", np.inf, "+inf"), ("F", -np.inf, "-inf"), ("R", np.nan, "NaN")]
)
def test_nonfinite_values_in_an_imported_npz_name_file_frame_and_key(tmp_path, key, value, what):
    R, E, F = _md17_file(tmp_path / "md17.npz")
    arrays = {"R": R, "E": E, "F": F}
    arrays[key] = arrays[key].copy()
    arrays[key].reshape(len(R), -1)[3, 0] = value
    np.savez(tmp_path / "bad.npz", z=ETHANOL_Z, e_unit="kcal/mol", r_unit="Ang", **arrays)
    with pytest.raises(DatasetError) as err:
        load_npz(tmp_path / "bad.npz")
    msg = str(err.value)
    assert str(tmp_path / "bad.npz") in msg and f"frame 3 key {key}: {what}" in msg and "Fix:" in msg


def test_nonfinite_forces_in_an_extxyz_are_rejected(tmp_path):
    _md17_file(tmp_path / "md17.npz")
    ds = load_npz(tmp_path / "md17.npz")
    export_extxyz(ds, tmp_path / "ok.extxyz")
    text = (tmp_path / "ok.extxyz").read_text().splitlines()
    n_atoms = 9
    line = 2 + 1 * (n_atoms + 2) + 4  # frame 1, atom 4
    parts = text[line].split()
    parts[-1] = "nan"
    text[line] = " ".join(parts)
    (tmp_path / "bad.extxyz").write_text("\n".join(text) + "\n")
    with pytest.raises(DatasetError, match=r"bad.extxyz: non-finite values in 1 frame\(s\): frame 1 key F: NaN"):
        load_any(tmp_path / "bad.extxyz")


def test_datasets_never_hold_nonfinite_labels():
    with pytest.raises(DatasetError, match=r"frame 1 \(frame_id 7\) key E: NaN"):
        Dataset(
            R=np.zeros((2, 9, 3)),
            z=ETHANOL_Z,
            E=np.array([0.0, np.nan]),
            F=np.zeros((2, 9, 3)),
            frame_id=np.array([6, 7]),
            name="merged",
        )
