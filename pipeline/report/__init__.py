"""Report stage: cost accounting, figures and the self-contained HTML report.

:mod:`pipeline.report.html` builds ``report.html`` in three steps:
:mod:`pipeline.report.inputs` loads the pipeline's tables; :mod:`pipeline.report.content`
computes what the page shows, from the numbers of :mod:`pipeline.report.metrics` (per-N
aggregates, power-law fits, sample-efficiency factors, per-stage timings) and the figures of
:mod:`pipeline.report.figures` (matplotlib), as :mod:`pipeline.report.tables` tables; the
Jinja2 templates in ``pipeline/report/templates`` lay them out (figures inline, no network
access needed). The headless-Chromium check of a rendered report is a test helper
(``tests/unit/report/browser.py``).
"""
