"""Labelling frames at a level of theory: engines, the per-frame cache and chunk jobs."""
