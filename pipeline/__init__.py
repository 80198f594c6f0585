"""ASTEROID: data-cost-aware training of machine-learning force fields, end to end.

Sampling (OpenMM, GAFF2) -> labelling (PySCF, tblite) -> training (EGNN, GemNet; standard,
ASTEROID, score matching) -> evaluation and report. The Snakemake workflow in workflow/ calls
this package's command line, `python -m pipeline <command>`.
"""

__version__ = "0.1.0"
