"""Selected against random frames: test force error against the number of accurate labels (issue 27).

Reads a finished run with `selection.enabled` (its results/<molecule>/ tree): for standard training
and Δ-learning, the test force MAE at each N on random frames (train[:N]) and on the frames the
committees selected, with 95% intervals over seeds and test frames, and the paired comparisons
that answer "does selection reach random selection's error with fewer labels": every selected N
against every random N' >= N (same seeds, same test frames; positive = selected is better).

    python benchmarks/selection_curve.py --run . --molecule ethanol --model egnn --level xtb
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from common import markdown_table, print_machine

from pipeline import layout
from pipeline.evaluation.stats import mean_interval, reduction_interval

FAMILIES = {  # method family: (random-frame run kind, selected-frame run kind, label)
    "standard": ("standard", "standard_selected", "standard"),
    "delta": ("delta", "delta_selected", "Δ"),
}


def _errors(run: Path, kind: str, values: dict) -> tuple[np.ndarray, list[int]] | None:
    """Per-frame test force MAE of one run [n_frames] and its frame ids; None when not run."""
    path = run / layout.run(kind, "eval.json", **values)
    if not path.is_file():
        return None
    ev = json.loads(path.read_text())
    return np.asarray(ev["per_frame_force_mae_kcal"]), [int(f) for f in ev["frame_id"]]


def _pct(ci) -> str:
    return f"{100 * ci.estimate:+.0f}% [{100 * ci.low:+.0f}, {100 * ci.high:+.0f}]" + (
        "" if ci.significant else " n.s."
    )


def curves(run: Path, molecule: str, model: str, level: str, sizes: list[int], seeds: list[int]) -> dict:
    """{(family, 'random'|'selected', N): (errors [n_seeds, n_frames], seeds)} of the runs present,
    every one on the same test frames."""
    out, frames = {}, None
    for family, (rand_kind, sel_kind, _) in FAMILIES.items():
        for which, kind in (("random", rand_kind), ("selected", sel_kind)):
            for n in sizes:
                rows, have = [], []
                for s in seeds:
                    got = _errors(run, kind, dict(molecule=molecule, model=model, level=level, n=n, seed=s))
                    if got is None:
                        continue
                    if frames is None:
                        frames = got[1]
                    if got[1] != frames:
                        raise SystemExit(f"{kind} N = {n} seed {s} was scored on other test frames")
                    rows.append(got[0])
                    have.append(s)
                if rows:
                    out[(family, which, n)] = (np.stack(rows), have)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=".", help="the run's directory (holding results/)")
    ap.add_argument("--molecule", default="ethanol")
    ap.add_argument("--model", default="egnn")
    ap.add_argument("--level", default="xtb", help="the Δ models' cheap level (selection.level)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    a = ap.parse_args()
    c = curves(Path(a.run), a.molecule, a.model, a.level, sorted(a.sizes), a.seeds)
    if not c:
        raise SystemExit(f"no evaluations of {a.model} under {a.run}/results/{a.molecule}")
    print_machine()
    print("## Test force MAE against accurate labels (kcal/mol/Å; 95% over seeds and test frames)\n")
    rows = []
    for family, (_, _, label) in FAMILIES.items():
        for n in sorted(a.sizes):
            cells = []
            for which in ("random", "selected"):
                got = c.get((family, which, n))
                if got is None:
                    cells.append("—")
                    continue
                m = mean_interval(got[0])
                cells.append(f"{m.estimate:.2f} [{m.low:.2f}, {m.high:.2f}] ({len(got[1])} seeds)")
            rows.append([label, n, *cells])
    print(markdown_table(["method", "N", "random frames", "selected frames"], rows))
    print("\n## Selected at N against random at N' >= N (paired: same seeds and test frames)\n")
    rows = []
    for family, (_, _, label) in FAMILIES.items():
        for n in sorted(a.sizes):
            sel = c.get((family, "selected", n))
            for n_rand in [m for m in sorted(a.sizes) if m >= n]:
                rand = c.get((family, "random", n_rand))
                if sel is None or rand is None:
                    continue
                both = sorted(set(sel[1]) & set(rand[1]))
                if not both:
                    continue
                a_err = sel[0][[sel[1].index(s) for s in both]]
                b_err = rand[0][[rand[1].index(s) for s in both]]
                rows.append([label, n, n_rand, len(both), _pct(reduction_interval(a_err, b_err))])
    print(markdown_table(["method", "selected N", "random N'", "seeds", "reduction vs random"], rows))


if __name__ == "__main__":
    main()
