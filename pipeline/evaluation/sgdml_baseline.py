"""sGDML baseline: a kernel force field trained on the accurate data only.

sGDML (package `sgdml` 1.0.3, Chmiela et al.) is trained through its Python API with the
analytic (Cholesky) solver, which sgdml picks itself whenever the kernel fits in memory
(always for the 25-1000 training points used here). The length scale sigma is chosen on
the validation set (force MAE) from a small grid; energy constraints are off
(use_E_cstr=False), energies come from sgdml's integration constant.

Data are converted from storage units (eV, eV/Angstrom) to kcal/mol and kcal/mol/Angstrom
before training, so the sGDML model is in the MD17 convention and its errors are in the
same units as the neural models'.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from .. import units
from ..data import Dataset, atomic_write
from .predict import load_labelled, metrics, write_evaluation

# sgdml 1.0.3 calls np.in1d (sgdml/train.py, draw_strat_sample), which numpy 2.4 removed;
# np.isin is its documented replacement with the same arguments and result for 1-D input.
if not hasattr(np, "in1d"):
    np.in1d = np.isin

from sgdml.predict import GDMLPredict
from sgdml.train import GDMLTrain
from sgdml.utils.io import dataset_md5

# Importing sgdml calls logging.setLoggerClass with its own class, which gives every logger created
# afterwards (torch's, ours) level DEBUG and a private handler on the stderr of that moment: INFO
# chatter in the job logs, and "Logging error ... closed file" at exit under pytest's capture.
# sgdml's own loggers are already created; later ones get the standard class back.
logging.setLoggerClass(logging.Logger)
log = logging.getLogger(__name__)


def to_sgdml_dataset(ds: Dataset) -> dict:
    """A Dataset (eV, eV/A) as an sGDML dataset dict in kcal/mol, kcal/mol/A and Angstrom."""
    d = {
        "type": np.array("d"),
        "name": np.array(ds.name or "dataset"),
        "theory": np.array(ds.theory or "unknown"),
        "R": ds.R,  # [n_frames, n_atoms, 3] Angstrom
        "z": ds.z,  # [n_atoms]
        "E": units.ev_to_kcal(ds.E),  # [n_frames] kcal/mol
        "F": units.ev_to_kcal(ds.F),  # [n_frames, n_atoms, 3] kcal/mol/A
        "r_unit": np.array("Ang"),
        "e_unit": np.array("kcal/mol"),
    }
    d["md5"] = np.array(dataset_md5(d))
    return d


def sgdml_predict(model: dict, R, max_processes: int | None = None):
    """Energies [n] (kcal/mol) and forces [n, n_atoms, 3] (kcal/mol/A) of an sGDML model.

    R: [n, n_atoms, 3] Angstrom.
    """
    R = np.asarray(R, dtype=np.float64)
    gdml = GDMLPredict(model, max_processes=max_processes, log_level=logging.CRITICAL)
    E, F = gdml.predict(R.reshape(len(R), -1))  # [n], [n, 3*n_atoms]
    return np.asarray(E, dtype=np.float64), np.asarray(F, dtype=np.float64).reshape(R.shape)


def sgdml_cpu_s_per_frame(model: dict, R, n_frames: int = 20) -> float:
    """CPU seconds of one single-frame sGDML prediction (one MD step), mean over up to `n_frames`
    frames of R [n, n_atoms, 3], in this process (no worker pool) after one warm-up call."""
    R = np.asarray(R, dtype=np.float64)[:n_frames]
    gdml = GDMLPredict(model, max_processes=1, log_level=logging.CRITICAL)
    gdml.predict(R[:1].reshape(1, -1))
    c0 = time.process_time()
    for i in range(len(R)):
        gdml.predict(R[i : i + 1].reshape(1, -1))
    return (time.process_time() - c0) / max(len(R), 1)


def fit_sgdml(train: Dataset, valid: Dataset, **kw) -> tuple[dict, dict]:
    """:func:`train_sgdml` with the CPU seconds of the whole sigma search (workers included) in
    info["train_cpu_s"]."""
    cpu0 = _cpu_s_with_children()
    model, info = train_sgdml(train, valid, **kw)
    info["train_cpu_s"] = _cpu_s_with_children() - cpu0
    return model, info


def train_sgdml(
    train: Dataset,
    valid: Dataset,
    sigmas,
    lam: float = 1e-10,
    use_sym: bool = True,
    max_processes: int | None = None,
) -> tuple[dict, dict]:
    """Train one sGDML model per sigma on all of `train`; keep the best on `valid`.

    Returns (model, info): the sGDML model dict of the selected sigma, and info with
    sigma, the validation force MAE per sigma (kcal/mol/A), train/valid sizes, the
    solver used, the wall time of the selected training (train_wall_s) and of the
    whole search including validation (search_wall_s).
    """
    if not train.labelled or not valid.labelled:
        raise ValueError("sGDML needs energies and forces in both the training and the validation set")
    if not np.array_equal(train.z, valid.z):
        raise ValueError("training and validation sets hold different molecules (z differs)")
    if len(sigmas) == 0:
        raise ValueError("sigmas is empty; give at least one kernel length scale")
    d_train, d_valid = to_sgdml_dataset(train), to_sgdml_dataset(valid)
    if str(d_train["md5"]) == str(d_valid["md5"]):
        raise ValueError("the validation set is identical to the training set; sigma would be chosen on training data")

    t_search = time.perf_counter()
    trainer = GDMLTrain(max_processes=max_processes)
    try:
        # All points are used, so sgdml's stratified sampling returns them in order; the
        # task (with the symmetry search) is built once and only sigma changes per fit.
        task = trainer.create_task(
            d_train,
            len(train),
            d_valid,
            len(valid),
            sig=sigmas[0],
            lam=lam,
            use_sym=use_sym,
            use_E=True,
            use_E_cstr=False,
        )
        best = None
        valid_mae = {}
        for sig in sigmas:
            task["sig"] = sig
            t0 = time.perf_counter()
            model = trainer.train(task)
            train_wall_s = time.perf_counter() - t0
            E_val, F_val = sgdml_predict(model, valid.R, max_processes)
            mae = metrics(E_val, F_val, d_valid["E"], d_valid["F"])["force_mae_kcal"]
            valid_mae[str(sig)] = mae
            if best is None or mae < best[0] or (np.isnan(best[0]) and not np.isnan(mae)):
                best = (mae, sig, model, train_wall_s)
    finally:
        del trainer  # sgdml allows one GDMLTrain at a time; its __del__ frees the slot
    mae, sig, model, train_wall_s = best
    at_edge = len(sigmas) > 1 and sig in (min(sigmas), max(sigmas))
    if at_edge:
        log.warning(
            "sGDML: the best sigma (%s) is at the edge of the grid %s: the optimum may lie outside it; "
            "widen evaluation.sgdml.sigmas",
            sig,
            list(sigmas),
        )
    info = {
        "sigma": sig,
        "sigma_at_edge": bool(at_edge),
        "sigmas": [float(x) for x in sigmas],
        "lam": lam,
        "use_sym": use_sym,
        "n_perms": int(model["perms"].shape[0]),
        "solver": str(model["solver_name"]),
        "valid_force_mae_kcal_by_sigma": valid_mae,
        "valid_force_mae_kcal": mae,
        "n_train": len(train),
        "n_valid": len(valid),
        "train_wall_s": train_wall_s,
        "search_wall_s": time.perf_counter() - t_search,
    }
    return model, info


def _cpu_s_with_children() -> float:
    """CPU seconds of this process and its finished children (sgdml's worker pool)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_sgdml_baseline(
    train_npz: str | os.PathLike,
    valid_npz: str | os.PathLike,
    test_npz: str | os.PathLike,
    out_json: str | os.PathLike,
    out_predictions_npz: str | os.PathLike,
    sigmas,
    lam: float = 1e-10,
    use_sym: bool = True,
    max_processes: int | None = None,
    out_model: str | os.PathLike | None = None,
    n_train: int | None = None,
) -> dict:
    """Train sGDML on `train_npz` (its first `n_train` frames when given; sigma chosen on
    `valid_npz`) and evaluate on `test_npz`.

    All npz files are in this project's format (eV, eV/Angstrom). Writes the same metrics
    JSON and predictions npz as :func:`pipeline.evaluation.predict.evaluate_model`, with
    the sGDML training information (sigma, validation errors, train_wall_s) in the JSON,
    and, if `out_model` is given, the sGDML model npz (kcal/mol, Angstrom; loadable by
    sgdml). Returns the JSON dict.
    """
    train, valid, test = load_labelled(train_npz), load_labelled(valid_npz), load_labelled(test_npz)
    if n_train is not None:
        if n_train > len(train):
            raise ValueError(f"{train_npz} has {len(train)} frames, fewer than N = {n_train}")
        train = train.subset(np.arange(n_train))  # the same nested prefix the neural models use
    if not np.array_equal(train.z, test.z):
        raise ValueError(f"{train_npz} and {test_npz} hold different molecules (z differs)")
    model, info = fit_sgdml(train, valid, sigmas=sigmas, lam=lam, use_sym=use_sym, max_processes=max_processes)
    E_pred, F_pred = sgdml_predict(model, test.R, max_processes)
    info["predict_cpu_s_per_frame"] = sgdml_cpu_s_per_frame(model, test.R)
    if out_model is not None:
        atomic_write(out_model, lambda tmp: np.savez_compressed(tmp, **model))
    info.update(
        method="sgdml",
        train_npz=str(train_npz),
        valid_npz=str(valid_npz),
        test_npz=str(test_npz),
        model_path=None if out_model is None else str(out_model),
    )
    return write_evaluation(out_json, out_predictions_npz, E_pred, F_pred, test, info)
