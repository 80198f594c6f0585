"""Sampling configurations: GAFF2 parameters (AmberTools) and Langevin MD (OpenMM)."""
