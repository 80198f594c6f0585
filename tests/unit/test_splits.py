"""Seeded splits: disjoint blocks, nested training sizes, and growth that moves nothing else."""

import numpy as np
import pytest

from pipeline.data import Dataset
from pipeline.splits import Block, blocks, frames_needed, take_block


def _source(n=500):
    R = np.arange(n, dtype=float)[:, None, None] * np.ones((n, 3, 3))  # frame i: all coordinates i
    return Dataset(R=R, z=np.array([8, 1, 1]))


def _ids(ds):
    return ds.R[:, 0, 0].astype(int).tolist()


def _take(sizes, seed=0, n=500):
    return {name: _ids(take_block(_source(n), b, seed)) for name, b in blocks(sizes).items()}


SIZES = {"train": 100, "val": 25, "test": 40, "cheap-xtb": 200, "unlabelled": 30}


def test_blocks_are_disjoint_and_fit():
    got = _take(SIZES)
    ids = [i for v in got.values() for i in v]
    assert len(ids) == len(set(ids)) == sum(SIZES.values())
    assert {k: len(v) for k, v in got.items()} == SIZES
    assert frames_needed(SIZES) == 100 + 200 + 30 + 2 * 40 - 1


@pytest.mark.parametrize("grown", ["test", "val"])
def test_growing_test_or_val_moves_no_other_frame(grown):
    before = _take(SIZES)
    after = _take({**SIZES, grown: 200})
    for name in SIZES:
        if name == grown:
            assert after[name][: SIZES[name]] == before[name]  # the old frames stay, new ones added
        else:
            assert after[name] == before[name]


def test_training_sizes_are_nested_and_growing_train_keeps_test_and_val():
    before = _take(SIZES)
    after = _take({**SIZES, "train": 150})
    assert after["train"][:100] == before["train"]
    assert after["test"] == before["test"] and after["val"] == before["val"]


def test_block_token_round_trip_and_bad_side():
    b = Block("back", 1, 2, 25)
    assert Block.parse(b.token) == b
    with pytest.raises(ValueError, match="front or back"):
        Block.parse("middle:0:1:3")


def test_too_small_source_is_an_error():
    with pytest.raises(ValueError, match="need 81 frames but the source has 50"):
        take_block(_source(50), Block("back", 0, 2, 41), 0)
