"""The training engine: Adam(W), linear warmup, reduce-on-plateau, EMA weights for evaluation,
gradient clipping, early stopping on a validation metric, checkpoints that a rerun resumes
from, and a history CSV.

Training runs in *evaluation periods*: one epoch by default, or ``eval_every_steps`` optimisation
steps when set (the shuffled stream of batches then runs across epoch boundaries). Early stopping,
reduce-on-plateau and warm-up count periods, and ``max_steps`` bounds the total number of
optimisation steps, so the cost of a stage on a pool of thousands of frames is set by a step
budget and early stopping, not by the pool size times an epoch count.

Checkpoints are written at most every ``checkpoint_every_s`` seconds of training (default 30 s):
writing one costs about 0.1 s, as much as a whole epoch of a 25-frame training set, and a killed
job loses at most that much work. Resuming from any checkpoint gives the uninterrupted result.

One engine serves every stage; a stage differs only in its data, weights and objective
(`objective="supervised"` or `"score_matching"`).
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..data import atomic_write
from ..records import CAP_SETTINGS, cut_short
from .batching import TensorData
from .losses import score_matching_loss, supervised_loss

log = logging.getLogger(__name__)


@dataclass
class StageConfig:
    """Settings of one training stage. The workflow passes every stage setting from the config, whose
    values the schema's defaults complete (workflow/schemas/config.schema.yaml, the one source; a
    test checks that none of the defaults below is used there): these are fallbacks for direct use."""

    batch_size: int
    max_epochs: int  # cap on evaluation periods (epochs, or eval_every_steps blocks)
    lr: float
    max_steps: int | None = None  # cap on optimisation steps (None: max_epochs alone)
    eval_every_steps: int | None = None  # steps per evaluation period (None: one epoch)
    weight_decay: float = 0.0
    warmup_epochs: int = 0
    plateau_patience: int = 10
    plateau_factor: float = 0.5
    min_lr: float = 1e-6
    early_stopping_patience: int = 50
    max_train_frames: int | None = None
    checkpoint_every_s: float = 30.0
    # engine-wide settings (from the training section)
    rho: float = 0.001
    ema_decay: float = 0.99
    grad_clip: float = 10.0
    objective: str = "supervised"  # or "score_matching"
    kT: float = 0.0  # kcal/mol, score matching only
    n_projections: int = 1
    # evaluate the starting weights as period 0, so the result is never worse on validation than
    # the start (fine-tuning: the pre-trained model is itself a candidate)
    evaluate_start: bool = False
    extra: dict = field(default_factory=dict)


class EMA:
    """Exponential moving average of parameters (and a copy of buffers)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self._float = [k for k, v in self.shadow.items() if v.dtype.is_floating_point]
        self._model = None  # evaluation copy, made once and refreshed by copy_to

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        state = model.state_dict()
        torch._foreach_lerp_(
            [self.shadow[k] for k in self._float], [state[k].detach() for k in self._float], 1 - self.decay
        )
        for k, v in state.items():
            if not v.dtype.is_floating_point:
                self.shadow[k].copy_(v)

    def copy_to(self, model: torch.nn.Module) -> torch.nn.Module:
        """`model` with the averaged weights (the same object on every call: do not keep it)."""
        if self._model is None:
            self._model = copy.deepcopy(model)
        self._model.load_state_dict(self.shadow)
        return self._model


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    """AdamW, fused: one kernel for all parameters (on CPU about 7x faster than the per-tensor loop)."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


def _rng_state():
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state()}


def _set_rng_state(state):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])


def evaluate(model, data: TensorData, cfg: StageConfig, generator=None) -> dict:
    """Validation metrics: loss (the stage's objective) and, when labelled, weighted force MAE."""
    model.eval()
    total, mae_sum, w_sum = 0.0, 0.0, 0.0
    for idx in data.batches(max(cfg.batch_size, 32)):
        if cfg.objective == "score_matching":
            loss = score_matching_loss(model, data, idx, cfg.kT, cfg.n_projections, generator)
            total += float(loss.detach()) * len(idx)
        else:
            loss, mae = supervised_loss(model, data, idx, cfg.rho, create_graph=False)
            total += float(loss.detach()) * len(idx)
            w = data.w[idx]
            mae_sum += float((w * mae).sum())
            w_sum += float(w.sum())
    out = {"val_loss": total / len(data)}
    if cfg.objective == "supervised":
        out["val_force_mae"] = mae_sum / max(w_sum, 1e-30)
    model.train()
    return out


STOP_REASONS = ("early_stopping", "step_cap", "epoch_cap")


def late_improvement(history: list[dict], metric: str, tail: float = 0.25) -> float:
    """Relative improvement of the best `metric` over the last `tail` of the steps run: 0 when the
    best value was already reached before them, 0.1 when the last quarter lowered it by 10%.

    At a step or epoch cap this tells "converged at the cap" from "stopped while still learning"
    (a stage 2 ending at 2,500 steps still 0.1 kcal/mol/A better every 125 steps, BENCHMARKS.md 16)."""
    rows = [r for r in history if r.get("step") is not None and math.isfinite(float(r.get(metric, math.nan)))]
    if not rows:
        return 0.0
    cut = (1.0 - tail) * max(float(r["step"]) for r in rows)
    before = [float(r[metric]) for r in rows if float(r["step"]) <= cut]
    if not before or min(before) <= 0:
        return 0.0
    best_before, best = min(before), min(float(r[metric]) for r in rows)
    return (best_before - best) / best_before


def stop_reason(state: dict, cfg: StageConfig) -> str | None:
    """Why training ends after the periods recorded in `state`, or None while it goes on.

    "early_stopping": the validation metric has not improved for `early_stopping_patience` periods;
    "step_cap": `max_steps` optimisation steps are done; "epoch_cap": `max_epochs` periods are done.
    When several hold at once (the last period used up the patience and a budget), the first in
    that order is given. A function of the state alone, so a run resumed from any checkpoint,
    even one written after its last period, ends for the same reason as an uninterrupted one.
    """
    if state["epoch"] > 0 and state["epoch"] - state["best_epoch"] >= cfg.early_stopping_patience:
        return "early_stopping"
    if cfg.max_steps is not None and state["step"] >= cfg.max_steps:
        return "step_cap"
    if state["epoch"] >= cfg.max_epochs:
        return "epoch_cap"
    return None


def _initial_state() -> dict:
    return {
        "epoch": 0,
        "step": 0,
        "best": math.inf,
        "best_epoch": -1,
        "best_state": None,
        "history": [],
        "elapsed_s": 0.0,
        "cpu_s": 0.0,
        "pending": [],
    }


class _Training:
    """One call of :func:`train`: the model, optimiser, schedules, EMA, random generators and the
    loop state (`state`, the part a checkpoint carries besides those objects' own states)."""

    def __init__(self, model, train_data: TensorData, val_data: TensorData, cfg: StageConfig, seed: int, checkpoint):
        self.model, self.train_data, self.val_data, self.cfg = model, train_data, val_data, cfg
        self.checkpoint = Path(checkpoint)
        self.signature = json.dumps(
            {"cfg": asdict(cfg), "seed": seed, "n_train": len(train_data), "n_val": len(val_data)},
            sort_keys=True,
            default=str,
        )
        torch.manual_seed(seed)
        np.random.seed(seed)
        self.gen = torch.Generator().manual_seed(seed)
        self.val_gen_seed = seed + 12345
        self.opt = make_optimizer(model, cfg.lr, cfg.weight_decay)
        self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
        )
        self.ema = EMA(model, cfg.ema_decay)
        self.metric = "val_loss" if cfg.objective == "score_matching" else "val_force_mae"
        self.state = _initial_state()
        steps_per_epoch = math.ceil(len(train_data) / cfg.batch_size)
        self.steps_per_period = cfg.eval_every_steps or steps_per_epoch
        self.warmup_steps = cfg.warmup_epochs * self.steps_per_period
        self.max_steps = cfg.max_steps if cfg.max_steps is not None else math.inf
        self.last_save = None

    def resume(self) -> None:
        """Load the checkpoint when there is one written for the same configuration."""
        if not self.checkpoint.exists():
            return
        ck = torch.load(self.checkpoint, map_location="cpu", weights_only=False)
        if ck.get("signature") != self.signature:
            log.info("ignoring checkpoint %s written for another configuration", self.checkpoint)
            return
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["opt"])
        self.plateau.load_state_dict(ck["plateau"])
        self.ema.shadow = ck["ema"]
        self.gen.set_state(ck["gen"])
        _set_rng_state(ck["rng"])
        self.state = ck["state"]
        log.info("resumed from %s at epoch %d", self.checkpoint, self.state["epoch"])

    def save_checkpoint(self) -> None:
        payload = {
            "signature": self.signature,
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "plateau": self.plateau.state_dict(),
            "ema": self.ema.shadow,
            "gen": self.gen.get_state(),
            "rng": _rng_state(),
            "state": self.state,
        }
        atomic_write(self.checkpoint, lambda tmp: torch.save(payload, tmp))

    def next_batches(self, n: int) -> list:
        """The next n batches of the shuffled stream (a new permutation at each epoch boundary);
        the unused rest of a permutation is kept in the state, so a resumed run continues it."""
        state, data = self.state, self.train_data
        out = []
        while len(out) < n:
            if not state["pending"]:
                state["pending"] = [idx.cpu() for idx in data.batches(self.cfg.batch_size, self.gen)]
            out.append(state["pending"].pop(0).to(data.R.device))
        return out

    def optimisation_step(self, idx) -> torch.Tensor:
        """One step on batch `idx` (warm-up learning rate, loss, clipped gradient, EMA); returns the loss."""
        cfg, model, opt = self.cfg, self.model, self.opt
        global_step = self.state["step"]
        if global_step < self.warmup_steps:
            for g in opt.param_groups:
                g["lr"] = cfg.lr * (global_step + 1) / self.warmup_steps
        if cfg.objective == "score_matching":
            loss = score_matching_loss(model, self.train_data, idx, cfg.kT, cfg.n_projections, self.gen)
        else:
            loss, _ = supervised_loss(model, self.train_data, idx, cfg.rho)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip, foreach=True)
        opt.step()
        self.ema.update(model)
        self.state["step"] += 1
        return loss

    def run_period(self) -> None:
        """One evaluation period: its optimisation steps, validation of the EMA weights, the
        schedules, a history row, the best weights, and a checkpoint when one is due."""
        cfg, state = self.cfg, self.state
        t0, c0 = time.perf_counter(), time.process_time()
        epoch = state["epoch"]
        train_loss, n_seen = 0.0, 0
        for idx in self.next_batches(int(min(self.steps_per_period, self.max_steps - state["step"]))):
            loss = self.optimisation_step(idx)
            train_loss += float(loss.detach()) * len(idx)
            n_seen += len(idx)
        ema_model = self.ema.copy_to(self.model)
        val = evaluate(ema_model, self.val_data, cfg, torch.Generator().manual_seed(self.val_gen_seed))
        if epoch + 1 >= cfg.warmup_epochs:
            self.plateau.step(val[self.metric])
        state["epoch"] = epoch + 1
        state["elapsed_s"] += time.perf_counter() - t0
        state["cpu_s"] += time.process_time() - c0
        row = {
            "epoch": epoch + 1,
            "step": state["step"],
            "train_loss": train_loss / max(n_seen, 1),
            **val,
            "lr": self.opt.param_groups[0]["lr"],
            "wall_s": state["elapsed_s"],
        }
        state["history"].append(row)
        if val[self.metric] < state["best"]:
            self.keep_best(val, epoch + 1)
        if epoch % 10 == 0 or epoch + 1 == cfg.max_epochs or state["step"] >= self.max_steps:
            log.info("epoch %d %s", epoch + 1, " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))
        if time.perf_counter() - self.last_save >= cfg.checkpoint_every_s:
            self.save_checkpoint()
            self.last_save = time.perf_counter()

    def keep_best(self, val: dict, epoch: int) -> None:
        """Record period `epoch` as the best so far, with a copy of its EMA weights."""
        self.state.update(
            best=val[self.metric], best_epoch=epoch, best_state={k: v.clone() for k, v in self.ema.shadow.items()}
        )

    def evaluate_start(self) -> None:
        """Period 0: validation of the starting weights, the best so far (no step, no schedule)."""
        state = self.state
        val = evaluate(
            self.ema.copy_to(self.model), self.val_data, self.cfg, torch.Generator().manual_seed(self.val_gen_seed)
        )
        row = {
            "epoch": 0,
            "step": 0,
            "train_loss": math.nan,
            **val,
            "lr": self.opt.param_groups[0]["lr"],
            "wall_s": 0.0,
        }
        state["history"].append(row)
        self.keep_best(val, 0)
        log.info("start %s", " ".join(f"{k}={v:.4g}" for k, v in row.items() if k != "epoch"))

    def run(self) -> str:
        """Train until :func:`stop_reason` gives a reason; returns it."""
        self.last_save = time.perf_counter()
        self.model.train()
        if self.cfg.evaluate_start and not self.state["history"]:
            self.evaluate_start()
        while (reason := stop_reason(self.state, self.cfg)) is None:
            self.run_period()
        state = self.state
        if reason == "early_stopping":
            log.info(
                "early stopping at epoch %d (best %s %.4g at epoch %d)",
                state["epoch"],
                self.metric,
                state["best"],
                state["best_epoch"],
            )
        elif cut_short(reason, late := late_improvement(state["history"], self.metric)):
            log.warning(
                "not converged: the %s (%d steps, epoch %d) ended this training while validation %s still "
                "improved by %.0f%% over its last quarter; raise this stage's training.<stage>.%s",
                reason,
                state["step"],
                state["epoch"],
                self.metric,
                100 * late,
                CAP_SETTINGS[reason],
            )
        return reason

    def best_model(self):
        """A copy of the model with the EMA weights of the best period (the last ones if none was best)."""
        best_model = copy.deepcopy(self.model)
        best_state = self.state["best_state"]
        best_model.load_state_dict(best_state if best_state is not None else self.ema.shadow)
        best_model.eval()
        return best_model

    def summary(self, reason: str) -> dict:
        state = self.state
        best_row = next((r for r in state["history"] if r["epoch"] == state["best_epoch"]), {})
        return {
            "best_epoch": state["best_epoch"],
            "epochs": state["epoch"],
            "steps": state["step"],
            "frames_seen": state["step"] * self.cfg.batch_size,
            "metric": self.metric,
            "best_metric": state["best"],
            "best_val_loss": best_row.get("val_loss"),
            "train_wall_s": state["elapsed_s"],
            "train_cpu_s": state["cpu_s"],
            "stop_reason": reason,
            "stop_step": state["step"],
            "best_step": best_row.get("step"),
            "late_improvement": late_improvement(state["history"], self.metric),
        }


def train(
    model,
    train_data: TensorData,
    val_data: TensorData,
    cfg: StageConfig,
    *,
    seed: int,
    checkpoint: str | os.PathLike,
    history_csv: str | os.PathLike | None = None,
):
    """Train `model` in place; returns (EMA model at the best validation epoch, summary dict).

    A checkpoint is written after an epoch when `checkpoint_every_s` has passed since the last one;
    if `checkpoint` exists and was written for the same configuration, training resumes from it
    (same result as an uninterrupted run on CPU).

    The summary records how training ended: `stop_reason` (one of STOP_REASONS, see
    :func:`stop_reason`), `stop_step` (optimisation steps done when it ended, the same as `steps`)
    and `best_step` (the step at the end of the best period, None when no period was best).
    """
    run = _Training(model, train_data, val_data, cfg, seed, checkpoint)
    run.resume()
    reason = run.run()
    best_model = run.best_model()
    if history_csv is not None:
        hist = pd.DataFrame(run.state["history"])
        atomic_write(history_csv, lambda tmp: hist.to_csv(tmp, index=False))
    return best_model, run.summary(reason)
