"""Training commands of `python -m pipeline`."""

from __future__ import annotations

import json

from .. import layout


def _json(text):
    return json.loads(text)


def _common(s, *, model=True, stage=True):
    if model:
        s.add_argument("--model-name", required=True, help="a name in pipeline.models.MODELS")
        s.add_argument("--hparams", type=_json, default={}, help="model hyperparameters as JSON")
    if stage:
        s.add_argument("--stage", type=_json, required=True, help="the stage's config section as JSON")
        s.add_argument("--training", type=_json, required=True, help="rho, ema_decay, grad_clip, n_projections (JSON)")
        s.add_argument("--seed", type=int, required=True)
        s.add_argument("--out-model", required=True)
        s.add_argument("--out-history", required=True)
        s.add_argument("--checkpoint", required=True, help="scratch file; a rerun resumes from it")
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=1, help="torch CPU threads")


def _setup(a):
    import torch

    torch.set_num_threads(a.threads)


def _stage_kwargs(a) -> dict:
    """The arguments every training stage takes from the command line (see `_common`)."""
    keys = ("stage", "training", "seed", "device", "out_model", "out_history", "checkpoint")
    return {k: getattr(a, k) for k in keys}


def _done(a):
    """Training finished and its outputs are written: the resume checkpoint is no longer needed."""
    from pathlib import Path

    Path(a.checkpoint).unlink(missing_ok=True)


def _run_standard(a):
    from .stages import train_standard

    _setup(a)
    train_standard(
        model_name=a.model_name,
        hparams=a.hparams,
        train_npz=a.train,
        n_train=a.n_train,
        val_npz=a.val,
        **_stage_kwargs(a),
        extra=_role_extra(a),
    )
    _done(a)


def _run_zero_shot(a):
    from .stages import zero_shot

    _setup(a)
    zero_shot(
        model_name=a.model_name,
        hparams=a.hparams,
        train_npz=a.train,
        n_train=a.n_train,
        val_npz=a.val,
        seed=a.seed,
        device=a.device,
        out_model=a.out_model,
        extra=_role_extra(a),
    )


def _run_bias(a):
    from .stages import compute_bias

    _setup(a)
    compute_bias(model_path=a.model, cheap_npz=a.cheap, out_npz=a.out, device=a.device)


def _run_cheap(a):
    from .stages import train_cheap

    _setup(a)
    train_cheap(
        model_name=a.model_name,
        hparams=a.hparams,
        cheap_npz=a.cheap,
        bias_npz=a.bias,
        gamma_kind=a.gamma[0],
        gamma=a.gamma[1],
        **_stage_kwargs(a),
        extra={"cheap_level": a.cheap_level, **_role_extra(a)},
    )
    _done(a)


def _run_score(a):
    from .stages import train_score_matching

    _setup(a)
    train_score_matching(
        model_name=a.model_name,
        hparams=a.hparams,
        unlabelled_npz=a.unlabelled,
        temperature_K=a.temperature,
        **_stage_kwargs(a),
    )
    _done(a)


def _run_finetune(a):
    from .stages import finetune

    _setup(a)
    finetune(
        init_model=a.init,
        train_npz=a.train,
        n_train=a.n_train,
        val_npz=a.val,
        **_stage_kwargs(a),
        extra=_role_extra(a),
    )
    _done(a)


def _role_extra(a) -> dict:
    """Metadata of a method built on a generic stage (pipeline/methods): its role and, for a stage
    without accurate labels, the N it belongs to."""
    out = {"role": a.role} if a.role else {}
    if getattr(a, "for_n_train", None) is not None:
        out["n_train"] = a.for_n_train
    return out


def _run_correct_pool(a):
    from .corrected import correct_pool

    _setup(a)
    correct_pool(
        delta_paths=a.delta,
        cheap_npz=a.cheap,
        train_npz=a.train,
        val_npz=a.val,
        cheap_val_npz=a.cheap_val,
        uncertainty=a.uncertainty,
        out_pool=a.out_pool,
        out_uncertainty=a.out_uncertainty,
        out_csv=a.out_csv,
        device=a.device,
    )


def _run_delta(a):
    from .stages import train_delta

    _setup(a)
    train_delta(
        model_name=a.model_name,
        hparams=a.hparams,
        train_npz=a.train,
        cheap_train_npz=a.cheap_train,
        n_train=a.n_train,
        val_npz=a.val,
        cheap_val_npz=a.cheap_val,
        cheap_level=a.cheap_level,
        cheap_entry=a.cheap_entry,
        **_stage_kwargs(a),
        extra=_role_extra(a),
    )
    _done(a)


def _run_select(a):
    from ..selection import select_round

    _setup(a)
    select_round(
        committee_paths=a.committee,
        kind=a.kind,
        candidates_npz=a.candidates,
        labelled_npz=a.labelled,
        n_labelled=a.n_labelled,
        n_pick=a.n_pick,
        diversity=a.diversity,
        val_npz=a.val,
        cheap_val_npz=a.cheap_val,
        seed=a.seed,
        round_=a.round,
        out_frames=a.out_frames,
        out_scores=a.out_scores,
        out_validation=a.out_validation,
        device=a.device,
    )


def _run_merge_selected(a):
    from ..selection import merge_selected

    merge_selected(first_npz=a.first, n_first=a.n_first, batch_npzs=a.batches, batch_frames=a.batch_frames, out=a.out)


def add_commands(sub) -> None:
    s = sub.add_parser("train-standard", help="standard training on accurate data (ASTEROID stage 1)")
    _common(s)
    s.add_argument("--train", required=True)
    s.add_argument("--n-train", type=int, required=True)
    s.add_argument("--val", required=True)
    s.add_argument("--role", default=None, help="the method's role in the model metadata (pipeline/methods)")
    s.set_defaults(func=_run_standard)

    s = sub.add_parser("zero-shot", help="a pretrained model as it is: only its energy offset fitted to train[:N]")
    _common(s, stage=False)
    s.add_argument("--train", required=True)
    s.add_argument("--n-train", type=int, required=True)
    s.add_argument("--val", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out-model", required=True)
    s.add_argument("--role", default=None, help="the method's role in the model metadata (pipeline/methods)")
    s.set_defaults(func=_run_zero_shot)

    s = sub.add_parser("bias", help="per-frame bias of cheap labels against the stage-1 model")
    _common(s, model=False, stage=False)
    s.add_argument("--model", required=True)
    s.add_argument("--cheap", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_run_bias)

    s = sub.add_parser("train-cheap", help="stage 2: bias-weighted training on cheap data (gamma=inf: unweighted)")
    _common(s)
    s.add_argument("--cheap", required=True)
    s.add_argument("--cheap-level", required=True)
    s.add_argument("--bias", default=None)
    s.add_argument(
        "--gamma",
        type=layout.gamma_from_token,
        required=True,
        help="γ candidate: kcal/mol/A ('1'), relative to the spread of B ('r0.5'), or inf (pipeline/layout.py)",
    )
    s.add_argument("--role", default=None, help="the method's role in the model metadata (pipeline/methods)")
    s.add_argument("--for-n-train", type=int, default=None, help="the N this stage-2 model belongs to")
    s.set_defaults(func=_run_cheap)

    s = sub.add_parser("train-score", help="sliced score matching on unlabelled frames")
    _common(s)
    s.add_argument("--unlabelled", required=True)
    s.add_argument("--temperature", type=float, required=True, help="K")
    s.set_defaults(func=_run_score)

    s = sub.add_parser("finetune", help="stage 3: fine-tune a model on accurate data")
    _common(s, model=False)
    s.add_argument("--init", required=True)
    s.add_argument("--train", required=True)
    s.add_argument("--n-train", type=int, required=True)
    s.add_argument("--val", required=True)
    s.add_argument("--role", default=None, help="the method's role in the model metadata (pipeline/methods)")
    s.set_defaults(func=_run_finetune)

    s = sub.add_parser("correct-pool", help="the cheap pool + a Δ model's correction, and u_j per frame")
    _common(s, model=False, stage=False)
    s.add_argument("--delta", nargs="+", required=True, help="Δ model (the first corrects; all: the committee)")
    s.add_argument("--cheap", required=True, help="the cheap pool at the Δ model's level")
    s.add_argument("--train", required=True, help="accurate training set (holds the Δ model's frames)")
    s.add_argument("--val", required=True, help="accurate validation set")
    s.add_argument("--cheap-val", required=True, help="the validation frames at the Δ model's level")
    s.add_argument("--uncertainty", choices=["auto", "distance", "committee"], default="auto")
    s.add_argument("--out-pool", required=True)
    s.add_argument("--out-uncertainty", required=True)
    s.add_argument("--out-csv", required=True)
    s.set_defaults(func=_run_correct_pool)

    s = sub.add_parser("train-delta", help="Δ-learning: a correction to a cheap level trained on accurate - cheap")
    _common(s)
    s.add_argument("--train", required=True, help="accurate train set (its first N frames are used)")
    s.add_argument("--cheap-train", required=True, help="the same frames labelled at the cheap level")
    s.add_argument("--n-train", type=int, required=True)
    s.add_argument("--val", required=True, help="accurate validation set")
    s.add_argument("--cheap-val", required=True, help="the validation frames labelled at the cheap level")
    s.add_argument("--cheap-level", required=True, help="name of the cheap level")
    s.add_argument("--cheap-entry", type=_json, required=True, help="the cheap level's config entry as JSON")
    s.add_argument("--role", default=None, help="the method's role in the model metadata (pipeline/methods)")
    s.set_defaults(func=_run_delta)

    s = sub.add_parser("select", help="one selection round: committee disagreement + diversity picks the next frames")
    _common(s, model=False, stage=False)
    s.add_argument("--committee", nargs="+", required=True, help="the committee's model.pt files (>= 2)")
    s.add_argument("--kind", choices=["delta", "standard"], required=True, help="what the members learned")
    s.add_argument("--candidates", required=True, help="frames file of the candidate pool")
    s.add_argument("--labelled", required=True, help="the frames labelled so far (accurate dataset)")
    s.add_argument("--n-labelled", type=int, required=True, help="its first N frames are the labelled ones")
    s.add_argument("--n-pick", type=int, required=True)
    s.add_argument("--diversity", type=float, required=True, help="length scale x the median distance (0: top-n)")
    s.add_argument("--val", required=True, help="accurate validation set")
    s.add_argument("--cheap-val", default=None, help="validation frames at the Δ committee's level")
    s.add_argument("--seed", type=int, required=True, help="the training seed whose selection this is")
    s.add_argument("--round", type=int, required=True)
    s.add_argument("--out-frames", required=True)
    s.add_argument("--out-scores", required=True)
    s.add_argument("--out-validation", required=True)
    s.set_defaults(func=_run_select)

    s = sub.add_parser("merge-selected", help="a selection's labelled frames: round 0 and every batch, at one level")
    s.add_argument("--first", required=True, help="dataset whose first N frames are round 0 (train)")
    s.add_argument("--n-first", type=int, required=True)
    s.add_argument("--batches", nargs="*", default=[], help="labelled batches in round order")
    s.add_argument("--batch-frames", nargs="*", default=[], help="their frames files (selection metadata)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_run_merge_selected)
