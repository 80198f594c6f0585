"""The training stages as path-in/path-out functions (one per Snakemake rule).

- standard:        accurate train[:N] -> model (also ASTEROID stage 1)
- bias:            stage-1 model + cheap pool -> B_j (kcal/mol/A) per cheap frame
- cheap:           cheap pool, weights exp(-B_j/gamma) (gamma=inf: unweighted, the cheap-only model)
                   -> stage-2 model, trained from scratch
- score_matching:  unlabelled pool at temperature T -> model (label-free pre-training)
- finetune:        an initial model + accurate train[:N] -> stage-3 model
- delta:           accurate train[:N] - cheap labels on the same frames -> Δ-learning correction

Every model file stores in `extra` what later steps need: units, stage, data sizes, validation
loss, training time.
"""

from __future__ import annotations

import logging
import math
from dataclasses import fields

import numpy as np
import torch

from .. import layout, records, units
from ..data import atomic_write, load_npz
from ..models import build, load_model, save_model
from .batching import TensorData
from .engine import StageConfig, train
from .losses import bias, effective_sample_size, normalised_bias_weights, resolve_gamma

log = logging.getLogger(__name__)

# Score-matching data carry no forces to set the output scale from; this is the typical
# force component magnitude of small organic molecules at 300-500 K, in kcal/mol/A.
SCORE_MATCHING_FORCE_SCALE = 20.0
# Fraction of a cheap or unlabelled pool held out to early-stop stages that have no accurate data,
# capped so that validating a pool of thousands of frames does not cost more than training on it.
HOLDOUT_FRACTION = 0.1
MAX_HOLDOUT_FRAMES = 250


def holdout_size(n: int) -> int:
    return max(1, min(MAX_HOLDOUT_FRAMES, int(round(HOLDOUT_FRACTION * n))))


def resolve_device(device: str) -> torch.device:
    """'auto' is CUDA when available, else CPU; asking for CUDA without one is an error. Logged."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"training.device is {device!r} but no CUDA device is available; use 'auto' or 'cpu'")
    out = torch.device(device)
    log.info("device: %s", torch.cuda.get_device_name(out) if out.type == "cuda" else "cpu")
    return out


def stage_config(stage: dict, training: dict, **overrides) -> StageConfig:
    names = {f.name for f in fields(StageConfig)}
    kw = {k: v for k, v in stage.items() if k in names}
    kw.update(
        rho=training["rho"],
        ema_decay=training["ema_decay"],
        grad_clip=training["grad_clip"],
        n_projections=training["n_projections"],
    )
    kw.update(overrides)
    return StageConfig(**kw)


def _normalize(model, data: TensorData, force_scale: float | None = None) -> None:
    """Energy shift per atom from the mean label energy, scale from the force spread. A pretrained
    backbone (SO3LR) keeps its own scale: only the energy offset to these labels is fitted."""
    if getattr(model.backbone, "PRETRAINED", False):
        model.set_normalization(0.0, 1.0)
        if data.E is not None:
            _refit_shift(model, data)
        return
    shift = float(data.E.mean()) / data.n_atoms if data.E is not None else 0.0
    scale = force_scale if force_scale is not None else float(data.F.std())
    model.set_normalization(shift, max(scale, 1e-3))


def _refit_shift(model, data: TensorData, batch_size: int = 64) -> None:
    """Move the per-atom energy shift so the mean energy matches `data` (forces unchanged).

    Cheap levels and score matching leave the energy offset of another level (GAFF2 energies are
    relative; DFT and CCSD(T) differ by a constant): fine-tuning starts from the right offset.
    """
    from ..evaluation.predict import predict

    E_pred, _ = predict(model, data.R.cpu().numpy(), data.z.cpu().numpy(), batch_size=batch_size, device=data.R.device)
    delta = float(data.E.mean().cpu()) - float(np.mean(E_pred))
    model.set_normalization(float(model.energy_shift) + delta / data.n_atoms, float(model.energy_scale))


def _save(model, path, extra: dict) -> None:
    extra = records.check_model_meta({"energy_unit": "kcal/mol", "length_unit": "Ang", **extra})
    atomic_write(path, lambda tmp: save_model(model, tmp, extra=extra))


def _fresh_model(name: str, hparams: dict, seed: int, device, data: TensorData):
    """A new model with what it takes from data fitted on a few batches first: GemNet's scale
    factors (as in its paper), MACE's average number of neighbours (as mace's run_train)."""
    from ..models import fit_data_statistics

    torch.manual_seed(seed)
    model = build(name, **hparams).to(device)
    fit_data_statistics(model, [data.batch(idx) for idx in data.batches(16)[:8]])
    return model


def _accurate_train(train_npz, n_train: int, dev) -> TensorData:
    """train[:N] of the accurate training set; fewer than N labelled frames is an error (a model
    saved as N = 100 must have seen 100 frames)."""
    tr = TensorData.from_dataset(load_npz(train_npz), dev, n=n_train)
    if len(tr) < n_train:
        raise ValueError(f"{train_npz} has {len(tr)} labelled frames, fewer than N = {n_train}")
    return tr


def train_standard(
    *,
    model_name,
    hparams,
    train_npz,
    n_train,
    val_npz,
    stage,
    training,
    seed,
    device,
    out_model,
    out_history,
    checkpoint,
    extra=None,
):
    """Standard training on accurate data only (also ASTEROID stage 1)."""
    dev = resolve_device(device)
    tr = _accurate_train(train_npz, n_train, dev)
    va = TensorData.from_dataset(load_npz(val_npz), dev)
    model = _fresh_model(model_name, hparams, seed, dev, tr)
    _normalize(model, tr)
    best, summary = train(
        model, tr, va, stage_config(stage, training), seed=seed, checkpoint=checkpoint, history_csv=out_history
    )
    _save(
        best,
        out_model,
        {"stage": "standard", "model_name": model_name, "n_train": n_train, "seed": seed, **summary, **(extra or {})},
    )
    return summary


def zero_shot(*, model_name, hparams, train_npz, n_train, val_npz, seed, device, out_model, extra=None):
    """A pretrained model as it is (SO3LR): no training step; only the energy offset to the labels
    is fitted on the accurate train[:N] (forces are the pretrained model's), and its validation
    force MAE is recorded like every model's."""
    import time

    from ..evaluation.predict import predict

    c0, w0 = time.process_time(), time.perf_counter()
    dev = resolve_device(device)
    tr = _accurate_train(train_npz, n_train, dev)
    model = _fresh_model(model_name, hparams, seed, dev, tr)
    if not getattr(model.backbone, "PRETRAINED", False):
        raise ValueError(f"model {model_name!r} is not pretrained: a zero-shot model would be an untrained one")
    _normalize(model, tr)
    val = load_npz(val_npz)
    _, F = predict(model, val.R, val.z, device=str(dev))
    val_mae = float(np.abs(F - units.ev_to_kcal(val.F)).mean())
    summary = {
        "best_metric": val_mae,
        "metric": "val_force_mae",
        "steps": 0,
        "stop_step": 0,
        "train_wall_s": time.perf_counter() - w0,
        "train_cpu_s": time.process_time() - c0,
    }
    _save(
        model,
        out_model,
        {"stage": "standard", "model_name": model_name, "n_train": n_train, "seed": seed, **summary, **(extra or {})},
    )
    log.info("zero-shot %s: energy offset fitted on N = %d; validation force MAE %.3f", model_name, n_train, val_mae)
    return summary


def compute_bias(*, model_path, cheap_npz, out_npz, device="cpu"):
    """B_j = mean |F_stage1(x_j) - F_cheap_j| over atoms and components, kcal/mol/A.

    The file also records the stage-1 model's training CPU time and this step's own, so the
    cost of every model built on it can be counted in full."""
    import time

    from ..evaluation.predict import predict

    c0 = time.process_time()
    model = load_model(model_path, device=resolve_device(device))
    ds = load_npz(cheap_npz)
    _, F_pred = predict(model, ds.R, ds.z, device=resolve_device(device))  # [n, n_atoms, 3] kcal/mol/A
    B = bias(F_pred, units.ev_to_kcal(ds.F))  # [n]
    stage1 = dict(getattr(model, "extra", {}) or {})
    arrays = dict(
        B=B,
        frame_id=ds.frame_id,
        unit="kcal/mol/Ang",
        bias_cpu_s=time.process_time() - c0,
        stage1_train_cpu_s=float(stage1.get("train_cpu_s") or 0.0),
        n_train=int(stage1.get("n_train", 0)),
    )
    atomic_write(out_npz, lambda tmp: np.savez(tmp, **arrays))
    log.info(
        "bias: mean %.3f, median %.3f, IQR %.3f, max %.3f kcal/mol/A over %d cheap frames",
        B.mean(),
        np.median(B),
        np.subtract(*np.percentile(B, [75, 25])),
        B.max(),
        len(B),
    )
    return B


def train_cheap(
    *,
    model_name,
    hparams,
    cheap_npz,
    bias_npz,
    gamma_kind,
    gamma,
    stage,
    training,
    seed,
    device,
    out_model,
    out_history,
    checkpoint,
    extra=None,
):
    """Stage 2: from scratch on the cheap pool, frame weights exp(-B_j/gamma).

    The γ candidate is `gamma_kind` "absolute" (`gamma` in kcal/mol/A), "relative" (`gamma` times
    the spread of this stage-1 model's B) or "inf" (unit weights: the cheap-only model). Weights
    are stored normalised to a largest weight of 1 (the same relative weights)."""
    dev = resolve_device(device)
    ds = load_npz(cheap_npz)
    kind = gamma_kind
    spec = layout.gamma_token(kind, math.inf if kind == "inf" else gamma)
    bias_info, B = {}, None
    if bias_npz is not None:  # its costs travel with the model whatever γ (corrected pre-training's γ = inf too)
        with np.load(bias_npz) as f:
            if not np.array_equal(f["frame_id"], ds.frame_id):
                raise ValueError(f"{bias_npz} was computed for other frames than {cheap_npz}; rerun the bias rule")
            B = f["B"]  # [n_cheap] kcal/mol/Å
            bias_info = {
                **({"delta_cpu_s": float(f["delta_cpu_s"])} if "delta_cpu_s" in f.files else {}),
                "bias_cpu_s": float(f["bias_cpu_s"]),
                "stage1_n_train": int(f["n_train"]),
                "bias_mean": float(B.mean()),
                "bias_iqr": float(np.subtract(*np.percentile(B, [75, 25]))),
            }
    if kind == "inf":
        w, gamma_abs = np.ones(len(ds)), math.inf
    else:
        if B is None:
            raise ValueError(f"a finite γ ({spec}) needs the per-frame bias file (--bias)")
        gamma_abs = resolve_gamma(kind, gamma, B)
        w = normalised_bias_weights(B, gamma_abs)
    ess = effective_sample_size(w)
    log.info("gamma %s = %s kcal/mol/A: effective sample size %.1f of %d cheap frames", spec, gamma_abs, ess, len(w))
    # Shuffled hold-out (seeded) for early stopping on the weighted validation loss.
    perm = np.random.default_rng(seed).permutation(len(ds))
    ds, w = ds.subset(perm), w[perm]
    data = TensorData.from_dataset(ds, dev, weights=w)
    tr, va = data.split(len(data) - holdout_size(len(data)))
    cfg = stage_config(stage, training)
    if cfg.max_train_frames:
        tr, _ = tr.split(cfg.max_train_frames)
    model = _fresh_model(model_name, hparams, seed, dev, tr)
    _normalize(model, tr)
    best, summary = train(model, tr, va, cfg, seed=seed, checkpoint=checkpoint, history_csv=out_history)
    _save(
        best,
        out_model,
        {
            "stage": "cheap",
            "model_name": model_name,
            "gamma": gamma_abs,
            "gamma_spec": spec,
            "n_cheap": len(ds),
            "seed": seed,
            "mean_weight": float(w.mean()),
            "effective_frames": ess,
            **bias_info,
            **summary,
            **(extra or {}),
        },
    )
    return summary


def train_score_matching(
    *,
    model_name,
    hparams,
    unlabelled_npz,
    temperature_K,
    stage,
    training,
    seed,
    device,
    out_model,
    out_history,
    checkpoint,
    extra=None,
):
    """Label-free pre-training: sliced score matching on Boltzmann samples at temperature_K."""
    dev = resolve_device(device)
    ds = load_npz(unlabelled_npz)
    ds.E = ds.F = None
    data = TensorData.from_dataset(ds, dev)
    tr, va = data.split(len(data) - holdout_size(len(data)))
    model = _fresh_model(model_name, hparams, seed, dev, tr)
    model.set_normalization(0.0, SCORE_MATCHING_FORCE_SCALE)
    cfg = stage_config(stage, training, objective="score_matching", kT=units.kt_kcal(temperature_K))
    best, summary = train(model, tr, va, cfg, seed=seed, checkpoint=checkpoint, history_csv=out_history)
    _save(
        best,
        out_model,
        {
            "stage": "score_matching",
            "model_name": model_name,
            "temperature_K": temperature_K,
            "n_unlabelled": len(ds),
            "seed": seed,
            **summary,
            **(extra or {}),
        },
    )
    return summary


def finetune(
    *,
    init_model,
    train_npz,
    n_train,
    val_npz,
    stage,
    training,
    seed,
    device,
    out_model,
    out_history,
    checkpoint,
    extra=None,
):
    """Stage 3: fine-tune an initial model on accurate train[:N]. The starting weights are validated
    first and kept when no step beats them (`best_step` 0 in the summary)."""
    dev = resolve_device(device)
    tr = _accurate_train(train_npz, n_train, dev)
    va = TensorData.from_dataset(load_npz(val_npz), dev)
    model = load_model(init_model, device=dev)
    init_extra = dict(getattr(model, "extra", {}) or {})
    if records.cut_short(init_extra.get("stop_reason"), init_extra.get("late_improvement")):
        log.warning(
            "fine-tuning a %s model whose training the %s ended while it still improved by %.0f%% over its last "
            "quarter: this route is measured with a pre-training that has not converged (raise that stage's %s)",
            init_extra.get("stage"),
            init_extra["stop_reason"],
            100 * float(init_extra["late_improvement"]),
            records.CAP_SETTINGS[init_extra["stop_reason"]],
        )
    _refit_shift(model, tr)
    cfg = stage_config(stage, training, evaluate_start=True)  # the start is a candidate: never worse
    best, summary = train(model, tr, va, cfg, seed=seed, checkpoint=checkpoint, history_csv=out_history)
    inherited = {
        k: init_extra.get(k)
        for k in (
            "model_name",
            "cheap_level",
            "gamma",
            "gamma_spec",
            "effective_frames",
            "n_cheap",
            "bias_mean",
            "bias_iqr",
        )
        if init_extra.get(k) is not None
    }
    _save(
        best,
        out_model,
        {
            "stage": "finetune",
            **inherited,
            "n_train": n_train,
            "seed": seed,
            "init_stage": init_extra.get("stage"),
            "init_train_wall_s": init_extra.get("train_wall_s"),
            "init_train_cpu_s": init_extra.get("train_cpu_s"),
            **{
                f"init_{k}": init_extra[k]
                for k in ("stop_reason", "stop_step", "late_improvement")
                if init_extra.get(k) is not None
            },
            **summary,
            **(extra or {}),
        },
    )
    return summary


def train_delta(
    *,
    model_name,
    hparams,
    train_npz,
    cheap_train_npz,
    n_train,
    val_npz,
    cheap_val_npz,
    cheap_level,
    cheap_entry,
    stage,
    training,
    seed,
    device,
    out_model,
    out_history,
    checkpoint,
    extra=None,
):
    """Δ-learning: a fresh model trained on accurate − cheap labels of the accurate train[:N] (the
    frames standard training uses) with the accurate stage's settings, early-stopped on the same
    difference on the validation frames. Its validation force MAE is that of cheap + correction
    against the accurate labels. `cheap_entry` (the level's config entry) is saved with the model so
    that the cheap level can be rebuilt at prediction time (pipeline.delta.CheapPotential)."""
    from ..delta import difference_dataset

    dev = resolve_device(device)
    acc = load_npz(train_npz)
    if len(acc) < n_train:
        raise ValueError(f"{train_npz} has {len(acc)} labelled frames, fewer than N = {n_train}")
    acc = acc.subset(np.arange(n_train))
    d_train = difference_dataset(acc, load_npz(cheap_train_npz))
    d_val = difference_dataset(load_npz(val_npz), load_npz(cheap_val_npz))
    if d_train.meta["frames_without_cheap_label"]:
        log.warning(
            "delta: %d of the N = %d training frames have no %s label and are left out: %s",
            len(d_train.meta["frames_without_cheap_label"]),
            n_train,
            cheap_level,
            d_train.meta["frames_without_cheap_label"],
        )
    tr = TensorData.from_dataset(d_train, dev)
    va = TensorData.from_dataset(d_val, dev)
    model = _fresh_model(model_name, hparams, seed, dev, tr)
    _normalize(model, tr)
    best, summary = train(
        model, tr, va, stage_config(stage, training), seed=seed, checkpoint=checkpoint, history_csv=out_history
    )
    _save(
        best,
        out_model,
        {
            "stage": "delta",
            "model_name": model_name,
            "n_train": n_train,
            "seed": seed,
            "cheap_level": cheap_level,
            "cheap_entry": dict(cheap_entry),
            "n_delta_train": len(d_train),
            "n_delta_val": len(d_val),
            "train_frame_id": [int(f) for f in d_train.frame_id],
            "delta_force_std_kcal": float(units.ev_to_kcal(d_train.F).std()),
            **summary,
            **(extra or {}),
        },
    )
    return summary
