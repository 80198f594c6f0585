"""Training methods: one module each, registered by name.

A method is a route from labels to a force field that the report compares (standard training,
ASTEROID and its ablations, score matching, Δ-learning, sGDML, ...). Its module declares, with one
`Method` per row kind of results.csv:

- what it is: `label` and `color` (report), `kernel` (an sGDML model, overlaid on every model's
  panel), `route` (compared as a route to a target error), `ablation_order` (in ASTEROID's ablation table),
  `no_accurate_labels` (uses none: drawn in the cheap-only figure), `runtime_level` (calls its cheap
  level at every prediction), `forcefield` (can be the exported force field), `cheap_labels` (which
  cheap labels its cost counts);
- which config enables it and which run directories the workflow must train and evaluate
  (`runs`, from pipeline/layout.py), and which MD stability runs it has (`stability_runs`);
- how collect builds its results rows from the evaluations (`select`) and what the method cost in
  training CPU (`train_cpu_s`) and in cheap labels (`cheap_labels`).

A new method is one module here plus its registration in METHOD_MODULES (and, where the generic
rules do not fit, its rule in workflow/rules/); collect, the report, the MD stability list and the
workflow's path lists loop over `METHODS`. See CONTRIBUTING.md.
"""

from __future__ import annotations

import importlib

from .base import Method, Selected, gamma_tokens, models, seeds, train_sizes

__all__ = [
    "METHODS",
    "Method",
    "Selected",
    "active",
    "gamma_tokens",
    "get",
    "models",
    "names",
    "seeds",
    "train_sizes",
]

# the report's order
METHOD_MODULES = ("standard", "asteroid", "score_matching", "sgdml", "delta", "corrected", "selected", "foundation")


def _load() -> dict[str, Method]:
    out: dict[str, Method] = {}
    for name in METHOD_MODULES:
        for m in importlib.import_module(f"{__name__}.{name}").METHODS:
            if m.name in out:
                raise ValueError(f"method {m.name!r} registered twice")
            out[m.name] = m
    return out


METHODS: dict[str, Method] = _load()


def get(name: str) -> Method:
    if name not in METHODS:
        raise KeyError(f"unknown method {name!r}; methods: {', '.join(METHODS)}")
    return METHODS[name]


def names(**flags) -> list[str]:
    """Names of the registered methods whose flags have the given values (in registry order)."""
    return [n for n, m in METHODS.items() if all(getattr(m, k) == v for k, v in flags.items())]


def active(config: dict, molecule: str) -> list[Method]:
    return [m for m in METHODS.values() if m.enabled(config, molecule)]
