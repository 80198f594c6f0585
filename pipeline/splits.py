"""Disjoint, seeded splits of frame sources into subsets, stable under growth.

Each source (the MD trajectory, or an imported file level) is permuted once with the split seed.
The training subset, the cheap pools and the unlabelled positions are consecutive blocks from the
front of the permutation, in that order; the test and validation frames are drawn from its back,
interleaved (test takes every other frame from the last one backwards, validation the frames in
between). So growing the test or validation set adds frames without moving any other subset: the
training frames, pools and labels of an existing run stay as they are (BENCHMARKS.md, "Test set").
The training sizes are nested prefixes of the train subset (`train[:N]`).

A block is written as a token `SIDE:START:STEP:SIZE` (e.g. `back:0:2:40`, `front:0:1:100`): the
positions START, START+STEP, ... counted from the front or from the back of the permutation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import Dataset

BACK = ("test", "val")  # drawn from the back of the permutation, interleaved


@dataclass(frozen=True)
class Block:
    side: str  # "front" or "back"
    start: int
    step: int
    size: int

    @property
    def token(self) -> str:
        return f"{self.side}:{self.start}:{self.step}:{self.size}"

    @classmethod
    def parse(cls, token: str) -> Block:
        side, start, step, size = token.split(":")
        if side not in ("front", "back"):
            raise ValueError(f"block {token!r}: side must be front or back")
        return cls(side, int(start), int(step), int(size))

    @property
    def span(self) -> int:
        """Positions of its side this block reaches (the last one it uses, plus one)."""
        return self.start + self.step * (self.size - 1) + 1 if self.size else 0

    def positions(self, n: int) -> np.ndarray:
        idx = self.start + self.step * np.arange(self.size)  # [size]
        return idx if self.side == "front" else n - 1 - idx


def front_order(subsets: list[str]) -> list[str]:
    head = [s for s in subsets if s == "train"]
    cheap = sorted(s for s in subsets if s.startswith("cheap-"))
    tail = [s for s in subsets if s == "unlabelled"]
    return head + cheap + tail


def blocks(sizes: dict[str, int]) -> dict[str, Block]:
    """The block of each subset of one source."""
    out, start = {}, 0
    for name in front_order(list(sizes)):
        out[name] = Block("front", start, 1, sizes[name])
        start += sizes[name]
    for i, name in enumerate(BACK):
        if name in sizes:
            out[name] = Block("back", i, 2, sizes[name])
    return out


def frames_needed(sizes: dict[str, int]) -> int:
    """Frames the source must hold for these subsets to be disjoint."""
    spans = dict.fromkeys(("front", "back"), 0)
    for b in blocks(sizes).values():
        spans[b.side] = max(spans[b.side], b.span)
    return spans["front"] + spans["back"]


def take_block(source: Dataset, block: Block, seed: int) -> Dataset:
    """The frames of `block` in the source's permutation under `seed` (random order, so train[:N]
    is a random subset). That the blocks of one source are disjoint is checked on the config
    (`frames_needed`), before any job."""
    if block.span > len(source):
        raise ValueError(f"splits need {block.span} frames but the source has {len(source)}")
    perm = np.random.default_rng(seed).permutation(len(source))  # [n_frames]
    return source.subset(perm[block.positions(len(source))])
