"""Report stage: cost accounting, figures and the self-contained HTML report.

:mod:`pipeline.report.costs` turns the pipeline's tables (results, label costs,
Snakemake benchmarks) into per-N aggregates, power-law fits, sample-efficiency
factors and per-stage timings; :mod:`pipeline.report.figures` draws them with
matplotlib; :mod:`pipeline.report.html` writes ``report.html`` (figures inline, no
network access needed); :mod:`pipeline.report.browser` loads a report in headless
Chromium to check that it renders.
"""
