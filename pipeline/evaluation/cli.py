"""Evaluation commands of `python -m pipeline` (wired once the evaluation modules land)."""
from __future__ import annotations


def add_commands(sub) -> None:
    return None
