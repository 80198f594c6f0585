"""Evaluation of trained force fields: test-set errors, the sGDML baseline, MD stability.

Modules:
  predict         batched energy/force prediction, error metrics, test-set evaluation
  sgdml_baseline  train and evaluate sGDML on the accurate data (baseline)
  calculator      ASE calculator around a trained model (eV, eV/Angstrom)
  md_stability    Langevin MD runs with a physical divergence criterion
"""
