"""Frames picked by committee disagreement with a diversity term (pipeline/selection.py)."""

import numpy as np
import pytest

from pipeline.selection import committee_disagreement, pick_batch
from pipeline.training.corrected import inverse_distances
from tests.conftest import ETHANOL_R


def _frames(n, seed, scale=0.05):
    rng = np.random.default_rng(seed)
    return ETHANOL_R[None] + scale * rng.standard_normal((n, 9, 3))  # [n, 9, 3]


def test_disagreement_is_the_committee_force_spread():
    F = np.zeros((2, 3, 9, 3))
    F[1, 1, :, 0] = 2.0  # two models differ by 2 kcal/mol/Å along x on every atom of frame 1
    assert committee_disagreement(F) == pytest.approx([0.0, 1.0, 0.0])  # std of (0, 2) is 1
    with pytest.raises(ValueError, match="n_models >= 2"):
        committee_disagreement(F[:1])


def test_without_diversity_the_most_uncertain_frames_are_picked():
    X = inverse_distances(_frames(20, 0))
    u = np.random.default_rng(1).random(20)
    assert list(pick_batch(u, X, X[:0], 5, diversity=0.0)) == list(np.argsort(-u)[:5])


def test_diversity_picks_one_of_many_copies_of_the_most_uncertain_frame():
    """Ten near-copies of one strained frame top the disagreement: plain top-n takes them all, the
    diversity term takes one and then the most uncertain of the other frames."""
    base = _frames(30, 2)
    copies = base[:1] + 1e-4 * np.random.default_rng(3).standard_normal((10, 9, 3))
    R = np.concatenate([copies, base[1:]])  # [39, 9, 3]: frames 0-9 are the copies
    u = np.concatenate([np.full(10, 5.0), np.linspace(1.0, 2.0, 29)])
    X, labelled = inverse_distances(R), inverse_distances(_frames(5, 4))
    top = pick_batch(u, X, labelled, 4, diversity=0.0)
    assert set(top) <= set(range(10))
    diverse = pick_batch(u, X, labelled, 4, diversity=1.0)
    assert sum(int(j) < 10 for j in diverse) == 1 and diverse[0] < 10
    assert 38 in diverse  # the most uncertain of the other frames (u = 2.0)


def test_a_frame_on_top_of_a_labelled_one_is_not_picked():
    R = _frames(12, 5)
    X = inverse_distances(R)
    u = np.ones(12)
    u[3] = 10.0
    picked = pick_batch(u, X, X[[3]], 3, diversity=1.0)  # frame 3 is already labelled
    assert 3 not in picked and len(set(picked)) == 3


def test_bad_requests_are_refused():
    X = inverse_distances(_frames(4, 6))
    with pytest.raises(ValueError, match="cannot pick 5 frames from 4"):
        pick_batch(np.ones(4), X, X[:0], 5)
    with pytest.raises(ValueError, match="3 disagreements"):
        pick_batch(np.ones(3), X, X[:0], 1)


# ----------------------------------------------------------------------------- one round on disk
def _labelled(n, seed, ids, scale=0.05):
    from pipeline.data import Dataset
    from tests.conftest import ETHANOL_Z

    rng = np.random.default_rng(seed)
    return Dataset(
        R=_frames(n, seed, scale),
        z=ETHANOL_Z,
        E=rng.normal(-4200.0, 0.5, n),
        F=rng.normal(0.0, 1.0, (n, 9, 3)),
        frame_id=np.arange(ids, ids + n),
        cpu_s=np.full(n, 2.0),
    )


def _member(path, seed, train_cpu_s=10.0):
    import torch

    from pipeline.models import build, save_model

    torch.manual_seed(seed)
    m = build("egnn", hidden=16, num_layers=2)
    m.set_normalization(0.3, 2.0)
    save_model(m, path, extra={"stage": "standard", "model_name": "egnn", "seed": seed, "train_cpu_s": train_cpu_s})


@pytest.fixture
def round_files(tmp_path):
    from pipeline.data import Dataset

    train, val = _labelled(6, 0, 0), _labelled(5, 1, 100)
    pool = _labelled(30, 2, 200, scale=0.15)
    # two pool frames are frames labelled already (as when a pool frame was picked in an earlier round)
    pool.R[:2], pool.frame_id[:2] = train.R[:2], train.frame_id[:2]
    cheap_val = Dataset(R=val.R, z=val.z, E=val.E - 1.0, F=val.F * 0.9, frame_id=val.frame_id)
    paths = {k: tmp_path / f"{k}.npz" for k in ("train", "val", "pool", "cheap_val")}
    for k, ds in zip(paths, (train, val, pool, cheap_val)):
        ds.save(paths[k])
    members = [tmp_path / f"m{j}.pt" for j in range(3)]
    for j, p in enumerate(members):
        _member(p, j)
    return tmp_path, paths, members


def _select(tmp_path, paths, members, kind="standard", n_pick=4, diversity=1.0, tag="a"):
    from pipeline.selection import select_round

    out = {k: tmp_path / f"{tag}_{k}" for k in ("frames.npz", "scores.csv", "val.csv")}
    info = select_round(
        committee_paths=members,
        kind=kind,
        candidates_npz=paths["pool"],
        labelled_npz=paths["train"],
        n_labelled=6,
        n_pick=n_pick,
        diversity=diversity,
        val_npz=paths["val"],
        cheap_val_npz=paths["cheap_val"] if kind == "delta" else None,
        seed=3,
        round_=1,
        out_frames=out["frames.npz"],
        out_scores=out["scores.csv"],
        out_validation=out["val.csv"],
    )
    return info, out


def test_a_round_picks_unlabelled_candidates_by_disagreement_and_records_its_cost(round_files):
    import pandas as pd

    from pipeline.data import load_npz

    tmp_path, paths, members = round_files
    _, out = _select(tmp_path, paths, members, diversity=0.0)
    frames, scores = load_npz(out["frames.npz"]), pd.read_csv(out["scores.csv"])
    assert len(frames) == 4 and not frames.labelled
    assert not set(frames.frame_id) & {0, 1}  # frames labelled already are never candidates
    assert len(scores) == 28 and set(scores["frame_id"]).isdisjoint({0, 1})
    top = scores.sort_values("disagreement_kcal", ascending=False)["frame_id"].head(4)
    assert list(frames.frame_id) == list(top)  # diversity 0: the four most uncertain, in order
    picked = scores[scores["pick_order"] >= 0].sort_values("pick_order")
    assert list(picked["frame_id"]) == list(frames.frame_id)
    meta = frames.meta["selection"]
    assert meta["seed"] == 3 and meta["round"] == 1 and meta["committee_size"] == 3
    assert meta["committee_cpu_s"] == pytest.approx(30.0) and meta["scoring_cpu_s"] > 0
    val = pd.read_csv(out["val.csv"])
    assert len(val) == 5 and (val["disagreement_kcal"] > 0).all() and (val["true_error_kcal"] > 0).all()


def test_a_delta_committee_is_scored_against_cheap_plus_its_mean_correction(round_files):
    import pandas as pd

    from pipeline import units
    from pipeline.data import load_npz
    from pipeline.evaluation.predict import predict
    from pipeline.models import load_model

    tmp_path, paths, members = round_files
    _, out = _select(tmp_path, paths, members, kind="delta", tag="d")
    val, cheap_val = load_npz(paths["val"]), load_npz(paths["cheap_val"])
    dF = np.mean([predict(load_model(p), cheap_val.R, cheap_val.z)[1] for p in members], axis=0)
    want = np.abs(units.ev_to_kcal(cheap_val.F) + dF - units.ev_to_kcal(val.F)).mean(axis=(1, 2))
    got = pd.read_csv(out["val.csv"]).sort_values("frame_id")["true_error_kcal"].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_merged_selection_holds_round_zero_then_each_batch_and_sums_the_selection_cost(round_files):
    from pipeline.data import load_npz
    from pipeline.selection import merge_selected

    tmp_path, paths, members = round_files
    _, out_a = _select(tmp_path, paths, members, n_pick=3, tag="a")
    batch = _labelled(3, 9, 0)
    batch.frame_id = load_npz(out_a["frames.npz"]).frame_id
    batch.save(tmp_path / "batch.npz")
    merge_selected(
        first_npz=paths["train"],
        n_first=4,
        batch_npzs=[tmp_path / "batch.npz"],
        batch_frames=[out_a["frames.npz"]],
        out=tmp_path / "merged.npz",
    )
    merged = load_npz(tmp_path / "merged.npz")
    assert list(merged.frame_id) == [0, 1, 2, 3, *batch.frame_id]
    assert merged.cpu_s.sum() == pytest.approx(7 * 2.0)
    sel = merged.meta["selected"]
    assert sel["n_first"] == 4 and sel["selection_cpu_s"] >= 30.0
    with pytest.raises(ValueError, match="two rounds"):
        merge_selected(
            first_npz=paths["train"],
            n_first=4,
            batch_npzs=[paths["train"]],
            batch_frames=[out_a["frames.npz"]],
            out=tmp_path / "bad.npz",
        )


def test_committee_seeds_differ_from_training_seeds_and_between_members():
    from pipeline.selection import committee_seed

    seeds = {committee_seed(s, j) for s in range(5) for j in range(4)}
    assert len(seeds) == 20 and seeds.isdisjoint(range(5))
