"""The tables the steps hand each other: one definition of each CSV's columns, imported by the
step that writes it and by the steps that read it (the report, benchmark scripts).

Units are in the names: *_kcal (kcal/mol/Å for forces, kcal/mol for energies), *_mev (meV/Å),
*_cpu_h (CPU-hours), *_cpu_s (CPU-seconds), *_wall_s.
"""

from __future__ import annotations

# results.csv (collect): one row per method, model, cheap level, N and seed
METRICS = ["force_mae_kcal", "force_rmse_kcal", "force_mae_mev", "force_rmse_mev", "energy_mae_kcal"]
RESULTS = [
    "molecule",
    "model",
    "method",
    "cheap_level",
    "n_train",
    "gamma",
    "gamma_spec",
    "seed",
    *METRICS,
    "force_mae_ci_low",
    "force_mae_ci_high",
    "reduction_vs_standard",
    "reduction_ci_low",
    "reduction_ci_high",
    "val_force_mae_kcal",
    "effective_frames",
    "n_accurate_labels",
    "n_cheap_labels",
    "accurate_label_cpu_h",
    "cheap_label_cpu_h",
    "data_cost_cpu_h",
    "train_wall_s",
    "train_cpu_s",
    "train_cpu_h_total",
    "total_cpu_h",
    "predict_cpu_s_per_frame",
    "stop_reason",  # how the final model's training ended: early_stopping, step_cap or epoch_cap
    "stop_step",  # optimisation steps when it ended
    "late_improvement",  # relative gain of the validation metric over the last quarter of its steps
    "pretrain_stop_reason",  # a fine-tuned model: how the pre-training it started from ended
    "pretrain_late_improvement",  # ... and that pre-training's late_improvement
    "sgdml_sigma",  # sGDML: the kernel length scale chosen on validation
    "sigma_at_edge",  # sGDML: the chosen sigma is the smallest or largest of the grid (not tuned)
]
GAMMA = [
    "method",  # whose γ candidates (asteroid, corrected)
    "model",
    "cheap_level",
    "n_train",
    "seed",
    "gamma_spec",
    "gamma",
    "effective_frames",
    "n_cheap",
    "val_loss",
    "chosen",
]
REDUCTIONS = [
    "model",
    "method",
    "cheap_level",
    "n_train",
    "baseline",
    "n_seeds",
    "n_test",
    "force_mae_kcal",
    "baseline_force_mae_kcal",
    "reduction",
    "reduction_ci_low",
    "reduction_ci_high",
    "significant",
]
SELECTION = [  # selection.csv (collect): every candidate of every selection round, and its pick
    "seed",  # the training seed whose selection it is
    "round",
    "frame_id",
    "disagreement_kcal",  # the committee's force disagreement (kcal/mol/Å)
    "distance",  # to the nearest labelled frame before the round (inverse-distance space, 1/Å)
    "pick_order",  # 0, 1, ... in the order picked; -1 not picked
    "cheap_energy_kcal",  # the candidate's energy at the pool's level, relative to the pool's mean
    "cheap_force_rms_kcal",  # the RMS of its force components at the pool's level
]
SELECTION_VALIDATION = [  # selection_validation.csv: the committee on the validation frames
    "seed",
    "round",
    "committee",
    "frame_id",
    "disagreement_kcal",
    "true_error_kcal",  # per-frame force MAE of the committee's mean prediction
]
LABEL_COSTS = [  # label_costs.csv (collect): CPU cost per frame of each labelled subset
    "level",
    "subset",
    "n_frames",
    "n_failed",
    "n_outliers",
    "cpu_s_total",
    "cpu_s_per_frame",
    "wall_s_per_frame",
]
# bias_diagnostic.csv (bias-diagnostic rule, concatenated by collect): B_j against the true error
BIAS_FRAMES = ["model", "cheap_level", "n_train", "seed", "frame_id", "bias_estimate", "true_bias", "stage1_error"]
BIAS_SUMMARY = [  # bias_correlation.csv (collect): per stage-1 model, Spearman of B_j with the true error
    "model",
    "cheap_level",
    "n_train",
    "seed",
    "n_frames",
    "spearman",
    "mean_bias_estimate",
    "mean_true_bias",
    "mean_stage1_error",
]
# corrected_uncertainty.csv (correct-pool, concatenated by collect): how well each estimate u_j of the
# corrected labels' remaining error ranks their true error on the validation frames
CORRECTED_UNCERTAINTY = [
    "model",
    "cheap_level",
    "n_train",
    "seed",
    "estimator",
    "n_val",
    "spearman",
    "mean_true_error",
    "chosen",
]

# Model metadata: what a model file knows about itself (`extra` in model.pt), written by
# pipeline/training/stages.py (the one writer, which refuses a key not declared here) and read by
# collect, the force-field export and the MD stability runs (through eval.json's `model_extra`).
MODEL_META = {
    "energy_unit": "unit of the model's energies (kcal/mol)",
    "length_unit": "unit of its positions (Ang)",
    "stage": "training stage: standard, cheap, score_matching, finetune or delta",
    "role": "the method's role, for methods built on a generic stage (pipeline/methods)",
    "model_name": "model family (pipeline.models.MODELS)",
    "seed": "training seed",
    "n_train": "accurate training frames N (for a stage-2 model of one N: that N)",
    "cheap_level": "the cheap level it was pre-trained on or corrects",
    "cheap_entry": "Δ: the cheap level's config entry (rebuilt at prediction time)",
    "gamma": "stage 2: absolute γ, kcal/mol/Å (inf: no weights)",
    "gamma_spec": "stage 2: the γ candidate's token (pipeline/layout.py gamma_token)",
    "n_cheap": "stage 2: frames of the (corrected) cheap pool",
    "mean_weight": "stage 2: mean frame weight",
    "effective_frames": "stage 2: Kish effective sample size of the weights",
    "bias_cpu_s": "stage 2: CPU-s of the bias pass (or of the relabelling, corrected pre-training)",
    "delta_cpu_s": "corrected pre-training: CPU-s of training the Δ model(s) that relabelled the pool",
    "stage1_n_train": "stage 2: N of the stage-1 (or Δ) model behind its weights",
    "bias_mean": "stage 2: mean B_j (or u_j), kcal/mol/Å",
    "bias_iqr": "stage 2: interquartile range of B_j (or u_j), kcal/mol/Å",
    "temperature_K": "score matching: temperature of the Boltzmann samples",
    "n_unlabelled": "score matching: unlabelled frames",
    "init_stage": "fine-tuning: the stage of the model it started from",
    "init_train_wall_s": "fine-tuning: wall-s of the model it started from",
    "init_train_cpu_s": "fine-tuning: CPU-s of the model it started from",
    "init_stop_reason": "fine-tuning: how the training of the model it started from ended",
    "init_stop_step": "fine-tuning: optimisation steps of the model it started from",
    "init_late_improvement": "fine-tuning: late_improvement of the model it started from",
    "n_delta_train": "Δ: training frames with both labels",
    "n_delta_val": "Δ: validation frames with both labels",
    "train_frame_id": "Δ: frame ids of its training frames",
    "delta_force_std_kcal": "Δ: spread of the force differences, kcal/mol/Å",
    "best_metric": "validation force MAE of the kept model, kcal/mol/Å",
    "best_val_loss": "validation loss of the kept model (the γ choice)",
    "best_epoch": "evaluation period of the kept model",
    "best_step": "optimisation step of the kept model",
    "metric": "name of the validation metric",
    "epochs": "evaluation periods run",
    "steps": "optimisation steps run",
    "frames_seen": "training frames seen (steps x batch)",
    "stop_reason": "how training ended: early_stopping, step_cap or epoch_cap",
    "stop_step": "optimisation steps when it ended",
    "late_improvement": "relative improvement of the validation metric over the last quarter of the steps"
    " (> 0.05 at a cap: not converged)",
    "train_wall_s": "wall-s of this training",
    "train_cpu_s": "CPU-s of this training",
}


# A run that a cap ended while its validation metric still improved by more than this (relative)
# over the last quarter of its steps is reported as not converged (training log and report).
LATE_IMPROVEMENT_WARN = 0.05
CAP_SETTINGS = {"step_cap": "max_steps", "epoch_cap": "max_epochs"}  # the stage setting behind each cap


def cut_short(stop_reason, late_improvement) -> bool:
    """A cap (not early stopping) ended this training while its validation metric still improved by
    more than LATE_IMPROVEMENT_WARN over its last quarter (a missing value: not cut short)."""
    try:
        late = float(late_improvement)
    except (TypeError, ValueError):
        return False
    return stop_reason in CAP_SETTINGS and late > LATE_IMPROVEMENT_WARN


def check_model_meta(extra: dict) -> dict:
    """`extra` if every key is declared in MODEL_META, else ValueError naming the others."""
    unknown = sorted(set(extra) - set(MODEL_META))
    if unknown:
        raise ValueError(f"model metadata keys {unknown} are not declared in pipeline/records.py MODEL_META")
    return extra
