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
    "sgdml_sigma",  # sGDML: the kernel length scale chosen on validation
    "sigma_at_edge",  # sGDML: the chosen sigma is the smallest or largest of the grid (not tuned)
]
GAMMA = [
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
