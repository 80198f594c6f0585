"""Score models on one run's test frames, paired against two of its evaluations (BENCHMARKS.md 13b).

For models trained by hand on a run's files (a pilot of a method before it runs in the workflow):
each model named on the command line is scored on the run's accurate test frames, and its
per-frame force MAE is compared with the evaluations given as baselines (eval.json files of the
same test frames; the frame ids must agree) with `pipeline.evaluation.stats` — one seed: the
intervals cover test-frame sampling only.

    python benchmarks/paired_scores.py --data results/ethanol/data/ccsd_t \\
        --baseline standard=results/ethanol/models/egnn/standard/N25_s0/eval.json \\
        --baseline delta=results/ethanol/delta/egnn/xtb/N25_s0/eval.json \\
        --model "corrected stage 2"=/path/s2.pt --model "+ fine-tune"=/path/ft.pt
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from common import markdown_table, print_machine

from pipeline import units
from pipeline.data import load_npz
from pipeline.evaluation.predict import predict
from pipeline.evaluation.stats import mean_interval, reduction_interval
from pipeline.models import load_model


def _pairs(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            raise SystemExit(f"expected NAME=PATH, got {v!r}")
        out[name] = path
    return out


def frame_errors(model_path: str, data) -> tuple[np.ndarray, dict]:
    """Per-frame force MAE (kcal/mol/Å) of a model on a dataset [n_frames], and its metadata."""
    model = load_model(model_path)
    _, F = predict(model, data.R, data.z)  # [n_frames, n_atoms, 3] kcal/mol/Å
    return np.abs(F - units.ev_to_kcal(data.F)).mean(axis=(1, 2)), dict(model.extra)


def _pct(ci) -> str:
    return f"{100 * ci.estimate:+.0f}% [{100 * ci.low:+.0f}, {100 * ci.high:+.0f}]" + (
        "" if ci.significant else " n.s."
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="the run's accurate data directory (test.npz, val.npz)")
    ap.add_argument("--baseline", action="append", default=[], help="NAME=eval.json (at least one)")
    ap.add_argument("--model", action="append", default=[], help="NAME=model.pt, scored here")
    a = ap.parse_args()
    test, val = load_npz(Path(a.data) / "test.npz"), load_npz(Path(a.data) / "val.npz")
    ids = [int(f) for f in test.frame_id]
    err, notes = {}, []
    for name, path in _pairs(a.baseline).items():
        ev = json.loads(Path(path).read_text())
        if [int(f) for f in ev["frame_id"]] != ids:
            raise SystemExit(f"{path} was scored on other test frames than {a.data}/test.npz")
        err[name] = np.asarray(ev["per_frame_force_mae_kcal"])
    for name, path in _pairs(a.model).items():
        err[name], extra = frame_errors(path, test)
        v, _ = frame_errors(path, val)
        notes.append(
            f"- {name}: validation {v.mean():.3f}; {extra.get('stop_reason')} at step {extra.get('stop_step')} "
            f"(best {extra.get('best_step')}); training CPU-s {float(extra.get('train_cpu_s') or 0):.0f}"
        )
    bases = list(_pairs(a.baseline))
    rows = []
    for name, e in err.items():
        m = mean_interval(e)
        rows.append(
            [name, f"{m.estimate:.2f} [{m.low:.2f}, {m.high:.2f}]"]
            + ["—" if b == name else _pct(reduction_interval(e, err[b])) for b in bases]
        )
    print_machine()
    print(markdown_table(["model", f"test force MAE [95% over {len(ids)} frames]"] + [f"vs {b}" for b in bases], rows))
    print("\n".join(notes))


if __name__ == "__main__":
    main()
