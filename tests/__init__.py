"""The test suite (a package, so that `tests.conftest` and `tests.unit...` resolve to this tree even
when an installed distribution ships a top-level `tests` package, as mace-torch 0.3.16 does)."""
