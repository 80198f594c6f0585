"""The self-contained HTML report of one molecule (``results/<molecule>/report.html``).

:func:`build_report` works in three steps: load the pipeline's tables
(:func:`pipeline.report.inputs.load_inputs`), compute what the page shows and draw the figures
(:func:`pipeline.report.content.compute_report`, PNG + SVG in `fig_dir`), and render the page
from the Jinja2 templates in ``pipeline/report/templates`` (:func:`render_report`). The page needs
no network: figures are embedded as base64 SVG data URIs, styles are inline, there is no
JavaScript. Every numeric table cell carries the exact value in ``data-value`` (``repr`` of the
float, so it round-trips) next to the displayed value rounded to :data:`SIG_DIGITS` significant
digits; the per-run table is ``id="results-table"`` and its columns carry their CSV names in
``data-column``.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup

from ..data import atomic_write
from .content import ReportContent, compute_report
from .figures import FigureResult
from .inputs import load_inputs
from .tables import SIG_DIGITS, fmt_value

__all__ = ["SIG_DIGITS", "build_report", "render_report"]

# Figures are shown this much larger than their natural size (SVG points → CSS px at
# 96/72), so their text matches the page's; CSS max-width caps them at the content width.
FIGURE_SCALE = 1.25


@dataclass
class FigureView:
    """One figure as the page shows it: the SVG as a data URI, its display width (CSS px) and the
    links to its files, relative to the page; or, for a skipped figure, why."""

    name: str
    title: str
    caption: str = ""
    skipped: str = ""
    data_uri: str = ""
    width: int | None = None
    png_url: str = ""
    svg_url: str = ""


def _figure_width_px(svg: bytes) -> int | None:
    """Display width in CSS px of an SVG written by matplotlib (``width="…pt"``)."""
    m = re.search(rb'<svg[^>]*?\swidth="([0-9.]+)pt"', svg[:2000])
    return round(float(m.group(1)) * 96 / 72 * FIGURE_SCALE) if m else None


def _relative_url(path: Path, out_dir: Path) -> str:
    rel = os.path.relpath(Path(path).resolve(), out_dir.resolve())
    return urllib.parse.quote(Path(rel).as_posix())


def figure_view(fig: FigureResult, out_dir: Path) -> FigureView:
    """What the page needs of one drawn (or skipped) figure; reads its SVG file."""
    if fig.skipped:
        return FigureView(fig.name, fig.title, skipped=fig.skipped)
    svg = fig.svg.read_bytes()
    return FigureView(
        fig.name,
        fig.title,
        fig.caption,
        data_uri="data:image/svg+xml;base64," + base64.b64encode(svg).decode("ascii"),
        width=_figure_width_px(svg),
        png_url=_relative_url(fig.png, out_dir),
        svg_url=_relative_url(fig.svg, out_dir),
    )


def _squash(text) -> Markup:
    """Runs of whitespace (the template's line breaks inside prose) as single spaces."""
    return Markup(" ".join(str(text).split()))


def template_environment() -> jinja2.Environment:
    """The templates of ``pipeline/report/templates``, autoescaped, with the filters they use."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["fmt"] = fmt_value
    env.filters["squash"] = _squash
    return env


def render_report(content: ReportContent, out_dir: str | os.PathLike) -> str:
    """The HTML page of `content`; figure links are relative to `out_dir`, the page's folder."""
    fields = {f.name: getattr(content, f.name) for f in dataclasses.fields(content)}
    fields["figures"] = [figure_view(f, Path(out_dir)) for f in content.figures]
    return template_environment().get_template("report.html.j2").render(**fields)


def build_report(
    results_csv: str | os.PathLike,
    label_costs_csv: str | os.PathLike,
    gamma_csv: str | os.PathLike,
    stability_csv: str | os.PathLike,
    benchmark_files: list[str],
    config_path: str | os.PathLike,
    out_html: str | os.PathLike,
    fig_dir: str | os.PathLike,
    molecule: str,
    reductions_csv: str | os.PathLike | None = None,
    bias_csv: str | os.PathLike | None = None,
    bias_summary_csv: str | os.PathLike | None = None,
    corrected_csv: str | os.PathLike | None = None,
    forcefield_dir: str | os.PathLike | None = None,
    label_plan_csv: str | os.PathLike | None = None,
    selection_csv: str | os.PathLike | None = None,
    selection_validation_csv: str | os.PathLike | None = None,
) -> Path:
    """Write the report of `molecule` to `out_html` and its figures to `fig_dir`.

    Inputs are the pipeline's ``results.csv``, ``label_costs.csv``,
    ``gamma_selection.csv``, ``stability.csv``, the Snakemake benchmark TSVs
    (``benchmarks/<molecule>/<rule>/....tsv``) and the config YAML. A missing or empty
    input leaves out what depends on it, with a note in the report; a table that lacks
    a required column raises ValueError. The HTML is written atomically.
    Returns the path of the HTML file.
    """
    out_html = Path(out_html)
    out_html.parent.mkdir(parents=True, exist_ok=True)
    inputs = load_inputs(
        molecule,
        results_csv,
        label_costs_csv,
        gamma_csv,
        stability_csv,
        benchmark_files,
        config_path,
        reductions_csv=reductions_csv,
        bias_csv=bias_csv,
        bias_summary_csv=bias_summary_csv,
        corrected_csv=corrected_csv,
        forcefield_dir=forcefield_dir,
        label_plan_csv=label_plan_csv,
        selection_csv=selection_csv,
        selection_validation_csv=selection_validation_csv,
    )
    content = compute_report(inputs, fig_dir)
    page = render_report(content, out_html.parent)
    atomic_write(out_html, lambda tmp: Path(tmp).write_text(page, encoding="utf-8"))
    return out_html
