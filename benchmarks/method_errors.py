"""Per-frame test errors of a run's methods, kept beside BENCHMARKS.md, and the tables built from them.

A benchmark run (config.benchmark.yaml) takes many CPU-hours and outlives no VM: its models and
caches are not kept. What a comparison needs afterwards is each model's per-frame test error and
what it cost, so ``export`` writes those to a gzipped CSV under ``benchmarks/results/`` (committed),
one row per (method, model, cheap level, N, seed, test frame), built by the workflow's own
``pipeline.evaluation.collect.results_table`` (the same method selection, γ choice on validation
and cost accounting as results.csv). Exports from several sessions merge into one file: rows of the
same (method, model, cheap level, N, seed) are replaced, and every row carries a fingerprint of the
test set (frame ids and accurate forces), so evaluations on different test frames never mix.
``table`` prints, from one or more such files, each method's test force MAE per N with its 95%
interval over seeds and frames, and the paired reductions of ``reductions.csv``
(``pipeline.evaluation.collect.pooled_reductions``).

    python benchmarks/method_errors.py export --run /path/to/run/results/ethanol \\
        --accurate-level ccsd_t --cheap xtb --out benchmarks/results/ethanol_benchmark.csv.gz
    python benchmarks/method_errors.py table benchmarks/results/ethanol_benchmark.csv.gz

``compare`` sets one method against another that ``table`` does not pair: another N (standard
training at the same label cost), or another file (a baseline re-run with a larger budget), each
named FILE:METHOD:N[:CHEAP_LEVEL]; seeds present in both are matched, the test frames must agree:

    python benchmarks/method_errors.py compare benchmarks/results/ethanol_paper_regime.csv.gz:asteroid:200:dft \\
        benchmarks/results/ethanol_paper_regime_long_standard.csv.gz:standard:600

``targets`` prints the eval.json files a partial run must make for ``export`` to carry methods'
rows at some N and seeds, each method's own evaluations as the workflow lists them (a stage 2's too:
its training CPU counts in the row's cost). A method's cost can also count another method's models
(ASTEROID: standard training as stage 1 and the cheap-only model as γ = inf's stage 2): name those too.
``export`` refuses a run where a γ candidate (a fine-tuned model of ASTEROID or of the corrected
pre-training) is trained but not evaluated: the γ choice would see only the evaluated candidates
(a run rebuilt from archives that lacked one candidate's eval.json scored the other γ silently).

    snakemake --cores 2 $(python benchmarks/method_errors.py targets --config config.yaml \
        config.benchmark.yaml --molecule ethanol --methods standard cheap_only asteroid --n 100 --seeds 0 1) \
        --configfile config.benchmark.yaml
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import checkout_commit, markdown_table, print_machine

from pipeline import config as pconf
from pipeline import layout, methods
from pipeline.data import load_npz
from pipeline.evaluation.collect import (
    Index,
    _Costs,
    evaluation_record,
    model_role,
    pooled_reductions,
    results_table,
)
from pipeline.evaluation.stats import mean_interval, reduction_interval
from pipeline.records import cut_short

KEY = ["method", "model", "cheap_level", "n_train", "seed"]
# Per-model columns carried on every frame row (results.csv's names).
MODEL_COLUMNS = [
    "gamma",
    "val_force_mae_kcal",
    "stop_reason",
    "stop_step",
    "pretrain_stop_reason",  # a fine-tuned model: how the pre-training it started from ended
    "pretrain_late_improvement",
    "train_cpu_h_total",
    "accurate_label_cpu_h",
    "cheap_label_cpu_h",
    "predict_cpu_s_per_frame",
]


def targets(config_files: list[str], molecule: str, names: list[str], sizes: list[int], seeds: list[int]) -> list[str]:
    """eval.json files of the named methods' runs at these N and seeds under the merged config."""
    config = pconf.load_config(*config_files)
    config["splits"]["train_sizes"], config["training"]["seeds"] = sorted(sizes), sorted(seeds)
    out: list[str] = []
    for name in names:
        method = methods.get(name)
        if not method.enabled(config, molecule):
            raise SystemExit(f"method {name!r} is not enabled for {molecule} by {' + '.join(config_files)}")
        out += [p for p in method.evaluations(config, molecule) if p not in out]
    if not out:
        raise SystemExit(f"methods {names} own no runs of their own (their rows are read from other methods' runs)")
    return out


def unknown_costs(new: pd.DataFrame) -> list[str]:
    """Models whose training CPU is unknown: an evaluation their cost counts is missing from the run."""
    per_model = new.drop_duplicates(KEY)
    return [
        f"{r.method} {r.model} {r.cheap_level or '-'} N = {r.n_train} seed {r.seed}"
        for r in per_model.itertuples()
        if pd.isna(r.train_cpu_h_total)
    ]


def unevaluated_gamma_candidates(run: Path) -> list[str]:
    """Run directories of γ candidates (records of a method's gamma_role) that hold a trained model
    but no eval.json: exporting then would choose γ among the evaluated candidates only."""
    roles = {m.gamma_role for m in methods.METHODS.values() if m.gamma_role}
    out = []
    for path in sorted(run.rglob("model.pt")):
        if (path.parent / "eval.json").exists():
            continue
        extra = torch.load(path, map_location="cpu", weights_only=False).get("extra") or {}  # written by save_model
        try:
            role = model_role(extra, str(path))
        except ValueError:  # not a trained model of a method (no stage): no row depends on it
            continue
        if role in roles:
            out.append(str(path.parent.relative_to(run)))
    return out


def test_set_fingerprint(test_npz: str) -> str:
    """Short hash of the test frames' ids and accurate forces: equal only for the same test set."""
    ds = load_npz(test_npz)
    h = hashlib.sha256(np.asarray(ds.frame_id, dtype=np.int64).tobytes())
    h.update(np.round(np.asarray(ds.F, dtype=np.float64), 6).tobytes())  # [n_frames, n_atoms, 3] eV/Å
    return h.hexdigest()[:12]


def run_rows(run: Path, accurate_level: str, cheap_levels: list[str]) -> pd.DataFrame:
    """Long per-frame rows of every method the run has evaluated so far."""
    evals = sorted(str(p) for p in run.rglob("eval.json"))
    if not evals:
        raise SystemExit(f"no eval.json under {run}")
    idx = Index([evaluation_record(p) for p in evals])
    workdir, mol = run.parent.parent, run.name  # layout paths are relative to the run's workdir
    datasets = {
        f"{accurate_level}:{s}": str(workdir / layout.dataset(mol, accurate_level, s)) for s in ("train", "val", "test")
    }
    for lvl in cheap_levels:
        for s in ("train", "val", "test", f"cheap-{lvl}"):
            if (workdir / layout.dataset(mol, lvl, s)).exists():
                datasets[f"{lvl}:{s}"] = str(workdir / layout.dataset(mol, lvl, s))
    cheap = {lvl: str(workdir / layout.dataset(mol, lvl, f"cheap-{lvl}")) for lvl in cheap_levels}
    # the frames each selection labelled (models trained on selected frames count their cost)
    selected = {}
    for rec in idx.records:
        for lvl in [accurate_level, *cheap_levels]:
            path = workdir / layout.file("selected_data", molecule=mol, level=lvl, n=rec["n_train"], seed=rec["seed"])
            if path.exists():
                selected[f"{lvl}:{rec['n_train']}:{rec['seed']}"] = str(path)
    unlabelled = workdir / layout.file("frames", molecule=mol, subset="unlabelled")
    costs = _Costs(
        datasets[f"{accurate_level}:train"],
        cheap,
        str(unlabelled) if unlabelled.exists() else None,
        datasets,
        selected,
        accurate_level,
    )
    res = results_table(idx, costs, mol, n_bootstrap=200)
    fingerprint = test_set_fingerprint(datasets[f"{accurate_level}:test"])
    frame_ids = np.asarray(idx.records[0]["frame_id"])
    rows = []
    for _, r in res.iterrows():
        per_model = {k: r[k] for k in KEY + MODEL_COLUMNS}
        for f, e in zip(frame_ids, r["_errors"], strict=True):
            rows.append({**per_model, "frame_id": int(f), "force_mae_kcal": float(e)})
    out = pd.DataFrame(rows)
    out["molecule"] = mol
    out["test_set"] = fingerprint
    out["commit"] = checkout_commit(run, short=True)
    return out


def merge(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """New rows replace old rows of the same model; both must be on the same test set."""
    if not len(old):
        return new
    if set(old["test_set"]) != set(new["test_set"]):
        raise SystemExit(
            f"test set {sorted(set(new['test_set']))} differs from the file's {sorted(set(old['test_set']))}: "
            "a different split or accurate level; export to another file"
        )
    keys = set(map(tuple, new[KEY].astype(str).to_numpy()))
    keep = ~old[KEY].astype(str).apply(tuple, axis=1).isin(keys)
    return pd.concat([old[keep], new], ignore_index=True)


def load(paths: list[str]) -> pd.DataFrame:
    # cheap_level read as text: a file whose rows all lack one (standard training only) would else be float NaN
    frames = [pd.read_csv(p, keep_default_na=False, na_values=[""], dtype={"cheap_level": str}) for p in paths]
    df = pd.concat(frames, ignore_index=True)
    df["cheap_level"] = df["cheap_level"].fillna("")
    return df


def results_from_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model with its per-frame errors (`_errors`, in frame-id order), as results_table."""
    out = []
    for key, g in rows.groupby(KEY, sort=True):
        g = g.sort_values("frame_id")
        out.append(
            {
                **dict(zip(KEY, key, strict=True)),
                **{k: g[k].iloc[0] if k in g else np.nan for k in MODEL_COLUMNS},  # older files lack some
                "_errors": g["force_mae_kcal"].to_numpy(),
                "_frames": tuple(g["frame_id"]),
            }
        )
    res = pd.DataFrame(out)
    if res["_frames"].nunique() > 1:
        raise SystemExit("models were scored on different test frames")
    return res


def _ci(ci) -> str:
    return f"{ci.estimate:.2f} [{ci.low:.2f}, {ci.high:.2f}]"


def stopped(g: pd.DataFrame) -> str:
    """How the seeds' trainings ended ("early_stopping 4, step_cap 1"), and how many fine-tuned from a
    pre-training that a cap ended while it still improved (records.cut_short)."""
    out = ", ".join(f"{k} {v}" for k, v in g["stop_reason"].fillna("").value_counts().items() if k)
    if cut := sum(map(cut_short, g["pretrain_stop_reason"], g["pretrain_late_improvement"])):
        out += f"; pre-training cut short by its cap {cut}"
    return out


def print_tables(res: pd.DataFrame) -> None:
    rows = []
    for (model, method, lvl, n), g in res.groupby(["model", "method", "cheap_level", "n_train"], sort=True):
        g = g.sort_values("seed")
        ci = mean_interval(np.stack(list(g["_errors"])))
        per_seed = " ".join(f"{e.mean():.2f}" for e in g["_errors"])
        stops = stopped(g)
        rows.append(
            [
                model,
                method,
                lvl,
                n,
                len(g),
                _ci(ci),
                per_seed,
                f"{3600 * g['train_cpu_h_total'].mean():,.0f}",
                stops,
            ]
        )
    print(
        markdown_table(
            ["model", "method", "cheap level", "N", "seeds", "test force MAE", "per seed", "train CPU-s", "stopped"],
            rows,
        )
    )
    print()
    red = pooled_reductions(res, n_bootstrap=200)
    print(
        markdown_table(
            ["model", "method", "cheap level", "N", "against", "seeds", "test frames", "reduction", "significant"],
            [
                [
                    r.model,
                    r.method,
                    r.cheap_level,
                    r.n_train,
                    r.baseline,
                    r.n_seeds,
                    r.n_test,
                    f"{100 * r.reduction:+.1f}% [{100 * r.reduction_ci_low:+.1f}, {100 * r.reduction_ci_high:+.1f}]",
                    "yes" if r.significant else "no",
                ]
                for r in red.itertuples()
            ],
        )
    )


def select(spec: str, model: str) -> pd.DataFrame:
    """The models of one FILE:METHOD:N[:CHEAP_LEVEL] (results_from_rows' shape), one per seed."""
    parts = spec.rsplit(":", 3) if spec.count(":") >= 3 else spec.rsplit(":", 2)
    if len(parts) not in (3, 4):
        raise SystemExit(f"{spec!r}: expected FILE:METHOD:N or FILE:METHOD:N:CHEAP_LEVEL")
    path, method, n = parts[:3]
    res = results_from_rows(load([path]))
    g = res[(res["model"] == model) & (res["method"] == method) & (res["n_train"] == int(n))]
    if len(parts) == 4:
        g = g[g["cheap_level"] == parts[3]]
    if g.empty:
        have = sorted(set(map(tuple, res[["method", "n_train", "cheap_level"]].astype(str).to_numpy())))
        raise SystemExit(f"{spec!r}: no {model} rows; the file has (method, N, cheap level) {have}")
    if g["cheap_level"].nunique() > 1:
        raise SystemExit(f"{spec!r}: several cheap levels {sorted(set(g['cheap_level']))}; add :CHEAP_LEVEL")
    return g.sort_values("seed")


def compare(spec_a: str, spec_b: str, model: str, model_b: str | None = None) -> None:
    """A's paired reduction against B (positive: A has the lower test force error); a deterministic
    B or A of one seed (sGDML) is paired with every seed of the other."""
    a, b = select(spec_a, model), select(spec_b, model_b or model)
    if a["seed"].nunique() == 1 and b["seed"].nunique() > 1:
        a = pd.concat([a.assign(seed=s) for s in b["seed"]], ignore_index=True)
    elif b["seed"].nunique() == 1 and a["seed"].nunique() > 1:
        b = pd.concat([b.assign(seed=s) for s in a["seed"]], ignore_index=True)
    if a["_frames"].iloc[0] != b["_frames"].iloc[0]:
        raise SystemExit("the two were scored on different test frames")
    seeds = sorted(set(a["seed"]) & set(b["seed"]))
    if not seeds:
        raise SystemExit(f"no seed in both: {sorted(a['seed'])} against {sorted(b['seed'])}")
    err_a = np.stack([a[a["seed"] == s]["_errors"].iloc[0] for s in seeds])  # [n_seeds, n_frames]
    err_b = np.stack([b[b["seed"] == s]["_errors"].iloc[0] for s in seeds])
    ci = reduction_interval(err_a, err_b)
    rows = [
        [name, spec, _ci(mean_interval(err)), " ".join(f"{e.mean():.2f}" for e in err)]
        for name, spec, err in (("A", spec_a, err_a), ("B", spec_b, err_b))
    ]
    print(markdown_table(["", "models", "test force MAE", "per seed"], rows))
    print()
    verdict = "significant" if ci.significant else "not significant (the interval contains 0)"
    print(
        f"A against B, seeds {seeds} paired, {err_a.shape[1]} test frames: "
        f"{100 * ci.estimate:+.1f}% [{100 * ci.low:+.1f}, {100 * ci.high:+.1f}], {verdict}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("export", help="add a run's evaluations to a per-frame CSV")
    ex.add_argument("--run", required=True, type=Path, help="the run's results/<molecule> directory (of its workdir)")
    ex.add_argument("--accurate-level", required=True)
    ex.add_argument("--cheap", nargs="*", default=[], help="cheap levels of the run (pools and Δ levels)")
    ex.add_argument("--out", required=True, type=Path, help="CSV (.csv.gz) to create or merge into")
    tb = sub.add_parser("table", help="print the tables of one or more per-frame CSVs")
    tb.add_argument("csv", nargs="+")
    tb.add_argument("--n", type=int, nargs="*", help="only these N")
    cp = sub.add_parser("compare", help="one method's paired reduction against another (other N or file)")
    cp.add_argument("a", help="FILE:METHOD:N[:CHEAP_LEVEL], the method")
    cp.add_argument("b", help="FILE:METHOD:N[:CHEAP_LEVEL], the baseline")
    cp.add_argument("--model", default="egnn", help="A's model (sgdml for sGDML, whose method is its own model)")
    cp.add_argument("--model-b", help="B's model when it differs from A's")
    tg = sub.add_parser("targets", help="eval.json files a partial run needs for methods' rows at N and seeds")
    tg.add_argument("--config", nargs="+", required=True, help="config files in --configfile order")
    tg.add_argument("--molecule", required=True)
    tg.add_argument("--methods", nargs="+", required=True, help=f"of {', '.join(methods.METHODS)}")
    tg.add_argument("--n", type=int, nargs="+", required=True)
    tg.add_argument("--seeds", type=int, nargs="+", required=True)
    a = ap.parse_args()
    if a.command == "targets":
        try:
            print(" ".join(targets(a.config, a.molecule, a.methods, a.n, a.seeds)))
        except (KeyError, pconf.ConfigError) as e:
            raise SystemExit(e.args[0]) from e
        return
    if a.command == "export":
        unevaluated = unevaluated_gamma_candidates(a.run)
        if unevaluated:
            raise SystemExit(
                f"{len(unevaluated)} γ candidates under {a.run} are trained but not evaluated: "
                f"{', '.join(unevaluated)}. The γ choice would see only the evaluated ones; make their "
                "eval.json first (`targets` lists them for the methods, N and seeds) and export again"
            )
        new = run_rows(a.run, a.accurate_level, a.cheap)
        missing = unknown_costs(new)
        if missing:
            print(
                f"training CPU unknown (an evaluation its cost counts is missing: see `targets`) for "
                f"{len(missing)} models: {'; '.join(missing)}"
            )
        old = load([str(a.out)]) if a.out.exists() else pd.DataFrame()
        merged = merge(old, new)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        merged.to_csv(a.out, index=False)
        n_all, n_new = (len(df[KEY].drop_duplicates()) for df in (merged, new))
        print(f"{a.out}: {n_all} models ({n_new} from {a.run}), test set {new['test_set'].iloc[0]}")
        return
    if a.command == "compare":
        print_machine({"files": f"{a.a} against {a.b}"})
        compare(a.a, a.b, a.model, a.model_b)
        return
    rows = load(a.csv)
    if a.n:
        rows = rows[rows["n_train"].isin(a.n)]
    print_machine({"files": ", ".join(a.csv), "commits": ", ".join(sorted(set(rows["commit"].astype(str))))})
    print_tables(results_from_rows(rows))


if __name__ == "__main__":
    main()
