"""The project's tests. A regular package (not a namespace package): mace-torch 0.3.16 installs its own
top-level ``tests`` package into site-packages, which would otherwise shadow this one
(``from tests.conftest import ...``).
"""
