"""Disjoint, seeded splits of frame sources into subsets.

Each source (the MD trajectory, or an imported file level) is permuted once with the split seed
and cut into consecutive blocks in a fixed order: test, val, train, cheap pools, unlabelled.
Test and validation come first so that changing a training or pool size never moves them. The
training sizes are nested prefixes of the train subset (`train[:N]`).
"""

from __future__ import annotations

import numpy as np

from .data import Dataset

ORDER = ("test", "val", "train")


def block_order(subsets: list[str]) -> list[str]:
    head = [s for s in ORDER if s in subsets]
    cheap = sorted(s for s in subsets if s.startswith("cheap-"))
    tail = [s for s in subsets if s == "unlabelled"]
    return head + cheap + tail


def take_block(source: Dataset, offset: int, size: int, seed: int) -> Dataset:
    """Frames [offset, offset+size) of the source's permutation under `seed`."""
    if offset + size > len(source):
        raise ValueError(f"splits need {offset + size} frames but the source has {len(source)}")
    perm = np.random.default_rng(seed).permutation(len(source))
    return source.subset(perm[offset : offset + size])  # random order: train[:N] is a random subset


def blocks(sizes: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(offset, size) of each subset of one source, in the fixed block order."""
    out, start = {}, 0
    for name in block_order(list(sizes)):
        out[name] = (start, sizes[name])
        start += sizes[name]
    return out
