"""Seconds per training epoch of the pipeline's engine, bookkeeping included.

`train_speed.py` times bare optimisation steps; this script times what a training job actually
spends per epoch in ``pipeline.training.engine.train``: the steps, the EMA update, evaluating the
EMA weights on the validation set (forces need gradients there too), the learning-rate schedule,
and writing the resume checkpoint. Data: MD-like ethanol frames with random labels (the cost does
not depend on the labels), validation 25 frames, batch 10 (the default accurate schedule).

It uses only APIs that every version of the engine has (``train``, ``StageConfig``,
``TensorData``, ``Dataset``, ``build``), so the same script times an older checkout for a
before/after comparison:

    python benchmarks/engine_epoch.py
    git worktree add /tmp/before <commit> && PYTHONPATH=/tmp/before python benchmarks/engine_epoch.py
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import common
import torch

from pipeline.models import build
from pipeline.training.engine import StageConfig, train


def epoch_seconds(hidden: int, n_train: int, epochs: int, tmp: Path) -> float:
    """Median wall seconds per epoch after the first (which pays one-off imports and warm-up)."""
    tr, va = common.make_data("ethanol", n_train, 0), common.make_data("ethanol", 25, 1)
    torch.manual_seed(0)
    model = build("egnn", hidden=hidden)
    model.set_normalization(0.0, 1.0)
    cfg = StageConfig(batch_size=10, max_epochs=epochs, lr=5e-4, early_stopping_patience=10 * epochs)
    ck, warm = tmp / f"h{hidden}_n{n_train}.ckpt", tmp / "warm.ckpt"
    for f in (ck, warm):  # a leftover checkpoint would make train() resume instead of train
        f.unlink(missing_ok=True)
    train(model, tr, va, StageConfig(batch_size=10, max_epochs=1, lr=5e-4), seed=0, checkpoint=warm)
    t0 = time.perf_counter()
    _, summary = train(model, tr, va, cfg, seed=0, checkpoint=ck)
    return (time.perf_counter() - t0) / summary["epochs"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 128], help="EGNN feature sizes")
    p.add_argument("--sizes", type=int, nargs="+", default=[25, 100], help="training frames N")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="one size, 3 epochs, one repeat")
    a = p.parse_args()
    if a.quick:
        a.hidden, a.sizes, a.epochs, a.repeats = a.hidden[:1], a.sizes[:1], 3, 1
    torch.set_num_threads(1)
    import pipeline

    common.print_machine(
        {
            "torch": torch.__version__,
            "torch threads": "1",
            "pipeline imported from": str(Path(pipeline.__file__).parent),
        }
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for h in a.hidden:
            for n in a.sizes:
                secs = [epoch_seconds(h, n, a.epochs, Path(tmp)) for _ in range(a.repeats)]
                med = statistics.median(secs)
                rows.append(
                    [f"egnn (hidden {h}, 5 layers)", n, med, n / med, f"{50 * (max(secs) - min(secs)) / med:.0f}%"]
                )
    print(f"Engine epochs: batch 10, validation 25 frames, {a.epochs} epochs per run, median of {a.repeats} runs.\n")
    print(common.markdown_table(["model", "N", "s / epoch", "training structures / s", "± half-range"], rows))


if __name__ == "__main__":
    main()
