"""Selected against random frames: test force error against the number of accurate labels (issue 27).

Reads a run with `selection.enabled` (its results/<molecule>/ tree, finished or not: the models
evaluated so far): for standard training, Δ-learning, ASTEROID and bias-corrected pre-training, the
test force MAE at each N on random frames (train[:N]) and on the frames the
committees selected, with 95% intervals over seeds and test frames, and the paired comparisons
that answer "does selection reach random selection's error with fewer labels": every selected N
against every random N' >= N (same seeds, same test frames; positive = selected is better).

The committees pick frames far in the pool's energy tail (`selection_picks.py`), which random test
frames rarely are; so both tables are printed again for the test frames whose accurate energy lies
above the test set's `--tail` quantile (default 0.9: the 20 highest of 200), where selection should
help if it helps anywhere.

    python benchmarks/selection_curve.py --run . --molecule ethanol --model egnn --level xtb
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from common import markdown_table, print_machine

from pipeline import methods
from pipeline.data import load_npz
from pipeline.evaluation.collect import Index, evaluation_record
from pipeline.evaluation.stats import mean_interval, reduction_interval

FAMILIES = {  # method family: (method on random frames, method on selected frames, label)
    "standard": ("standard", "standard_selected", "standard"),
    "delta": ("delta", "delta_selected", "Δ"),
    "asteroid": ("asteroid", "asteroid_selected", "ASTEROID"),
    "corrected": ("corrected", "corrected_selected", "corrected pre-training"),
}


def _pct(ci) -> str:
    return f"{100 * ci.estimate:+.0f}% [{100 * ci.low:+.0f}, {100 * ci.high:+.0f}]" + (
        "" if ci.significant else " n.s."
    )


def curves(run: Path, molecule: str, model: str, level: str, sizes: list[int], seeds: list[int]):
    """{(family, 'random'|'selected', N): (errors [n_seeds, n_frames], seeds)} of the runs present,
    every one on the same test frames; those frames' ids and one of the eval.json files scored on
    them. Each method's model is the one results.csv scores: its own `select` (γ chosen on
    validation for ASTEROID and corrected pre-training)."""
    evals = sorted(str(p) for p in (run / "results" / molecule).rglob("eval.json"))
    idx = Index([evaluation_record(p) for p in evals])
    out, frames, some_eval = {}, None, None
    for family, names in FAMILIES.items():
        for which, name in zip(("random", "selected"), names[:2], strict=True):
            per_n: dict[int, list] = {}
            for sel in methods.get(name).select(idx):
                r = sel.rec
                n = r["n_train"] if sel.n_train is None else sel.n_train
                wanted = r["model"] == model and r["seed"] in seeds and n in sizes
                if not wanted or r["cheap_level"] not in ("", level):
                    continue
                ids = [int(f) for f in r["frame_id"]]
                frames = ids if frames is None else frames
                if ids != frames:
                    raise SystemExit(f"{name} N = {n} seed {r['seed']} was scored on other test frames ({r['path']})")
                per_n.setdefault(n, []).append((r["seed"], r["errors"]))
                some_eval = r["path"]
            for n, got in per_n.items():
                got.sort(key=lambda x: x[0])
                out[(family, which, n)] = (np.stack([e for _, e in got]), [s for s, _ in got])
    return out, frames, some_eval


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=".", help="the run's directory (holding results/)")
    ap.add_argument("--molecule", default="ethanol")
    ap.add_argument("--model", default="egnn")
    ap.add_argument("--level", default="xtb", help="the Δ models' cheap level (selection.level)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[25, 50, 100])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--tail", type=float, default=0.9, help="test-energy quantile of the tail tables")
    a = ap.parse_args()
    if not 0 < a.tail < 1:
        raise SystemExit(f"--tail must lie in (0, 1), got {a.tail}")
    run, sizes = Path(a.run), sorted(a.sizes)
    c, frames, some_eval = curves(run, a.molecule, a.model, a.level, sizes, a.seeds)
    if not c:
        raise SystemExit(f"no evaluations of {a.model} under {a.run}/results/{a.molecule}")
    print_machine()
    print_tables(c, sizes, "all test frames", None)
    test = load_npz(run / json.loads(Path(some_eval).read_text())["test_npz"])  # every evaluation's test frames
    energy = dict(zip(test.frame_id.astype(int).tolist(), test.E.tolist(), strict=True))  # eV
    E = np.array([energy[f] for f in frames])  # [n_test]
    cut = np.quantile(E, a.tail)
    mask = E > cut
    print_tables(
        c,
        sizes,
        f"the {mask.sum()} test frames above the {a.tail:.0%} quantile of their accurate energy",
        mask,
    )


def print_tables(c: dict, sizes: list[int], frames: str, mask) -> None:
    """The error table and the paired comparisons, on the test frames `mask` selects (all: None)."""

    def cols(err):
        return err if mask is None else err[:, mask]

    print(f"## Test force MAE against accurate labels, {frames} (kcal/mol/Å; 95% over seeds and test frames)\n")
    rows = []
    for family, (_, _, label) in FAMILIES.items():
        for n in sizes:
            cells = []
            for which in ("random", "selected"):
                got = c.get((family, which, n))
                if got is None:
                    cells.append("—")
                    continue
                m = mean_interval(cols(got[0]))
                cells.append(f"{m.estimate:.2f} [{m.low:.2f}, {m.high:.2f}] ({len(got[1])} seeds)")
            rows.append([label, n, *cells])
    print(markdown_table(["method", "N", "random frames", "selected frames"], rows))
    print(f"\n## Selected at N against random at N' >= N, {frames} (paired: same seeds and test frames)\n")
    rows = []
    for family, (_, _, label) in FAMILIES.items():
        for n in sizes:
            sel = c.get((family, "selected", n))
            for n_rand in [m for m in sizes if m >= n]:
                rand = c.get((family, "random", n_rand))
                if sel is None or rand is None:
                    continue
                both = sorted(set(sel[1]) & set(rand[1]))
                if not both:
                    continue
                a_err = sel[0][[sel[1].index(s) for s in both]]
                b_err = rand[0][[rand[1].index(s) for s in both]]
                rows.append([label, n, n_rand, len(both), _pct(reduction_interval(cols(a_err), cols(b_err)))])
    print(markdown_table(["method", "selected N", "random N'", "seeds", "reduction vs random"], rows))
    print()


if __name__ == "__main__":
    main()
