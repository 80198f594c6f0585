"""The report's Jinja2 templates: every section from synthetic tables, the explanation in place of
each table that cannot be built, escaping of every value, and the templates shipped as package data."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd

from pipeline.report.content import Card, compute_report
from pipeline.report.html import build_report, render_report, template_environment
from pipeline.report.inputs import load_inputs
from pipeline.report.tables import Cell, Header, Row, Table

from .test_report import MOLECULE, built_synthetic_report, write_synthetic_inputs

SECTIONS = [
    ("summary", "Summary"),
    ("figures", "Figures"),
    ("results", "Results"),
    ("forcefield", "Recommended force field"),
    ("gamma", "γ selection"),
    ("bias", "Bias diagnostic"),
    ("corrected", "Corrected pre-training"),
    ("selection", "Selected frames"),
    ("stability", "MD stability"),
    ("costs", "Labels and compute"),
    ("provenance", "Provenance"),
    ("runs", "All runs"),
]
# Each table that depends on an input, and the sentence shown instead when it cannot be built.
EXPLAINED = {
    "sample-efficiency-table": "Sample efficiency needs ASTEROID runs and standard runs at two or more N.",
    "ablation-table": "No ASTEROID or ablation runs to compare.",
    "reduction-table": "No method was run at an N where standard training was also run.",
    "routes-table": "No route reached any error of standard training.",
    "prediction-cost-table": "No prediction costs recorded.",
    "aggregated-table": "No results.",
    "forcefield-table": "No recommended force field (no model that ends on accurate data).",
    "gamma-table": "No γ selection table.",
    "bias-table": "No bias diagnostic: no cheap level could label the validation frames.",
    "stability-table": "No MD stability runs.",
    "selection-table": "No selection rounds (selection.enabled: false)",
    "label-cost-summary-table": "No label costs.",
    "timing-table": "No benchmark files.",
    "config": "Config file not found.",
}


def _with_plan(kwargs: dict, root: Path) -> dict:
    plan = root / "label_plan.csv"
    pd.DataFrame(
        [("ccsdt", 300, 7200.0, "cost model <b>&</b> 'x'")], columns=["level", "n_frames", "cpu_s_per_frame", "source"]
    ).to_csv(plan, index=False)
    return dict(kwargs, label_plan_csv=plan)


def _sections(text: str) -> list[tuple[str, str]]:
    return re.findall(r'<section id="([a-z]+)"><h2>([^<]+)</h2>', text)


def test_every_section_and_table_renders_from_synthetic_tables(tmp_path_factory):
    _, path = built_synthetic_report(tmp_path_factory)
    text = path.read_text(encoding="utf-8")
    assert _sections(text) == SECTIONS
    nav = text.split("<nav>")[1].split("</nav>")[0]
    assert re.findall(r'<a href="#([a-z]+)">([^<]+)</a>', nav) == SECTIONS
    for table_id, explanation in EXPLAINED.items():
        assert f'id="{table_id}"' in text, table_id
        assert explanation not in text, explanation
    for table_id in ("gamma-chosen-table", "label-cost-table", "versions-table", "results-table"):
        assert f'id="{table_id}"' in text
    # a table has a caption, a header row and data rows
    ablation = text.split('<table id="ablation-table">')[1].split("</table>")[0]
    assert ablation.startswith("<caption>ASTEROID ablation: mean ± std force MAE over seeds;")
    assert ablation.count("<tr>") == 1 + 2 * 2 * 4  # header + (model, cheap level, N) rows
    assert text.endswith("</main></body></html>\n")


def test_each_missing_table_shows_its_explanation(tmp_path):
    kwargs = write_synthetic_inputs(tmp_path)
    for key in (
        "results_csv",
        "label_costs_csv",
        "gamma_csv",
        "stability_csv",
        "reductions_csv",
        "bias_csv",
        "bias_summary_csv",
        "selection_csv",
        "selection_validation_csv",
        "config_path",
    ):
        kwargs[key] = tmp_path / "absent" / f"{key}.csv"
    kwargs.update(forcefield_dir=None, benchmark_files=[])
    text = build_report(**kwargs).read_text(encoding="utf-8")
    assert _sections(text) == SECTIONS
    for table_id, explanation in EXPLAINED.items():
        assert explanation in text, explanation
        assert f'id="{table_id}"' not in text, table_id
    assert f"No model results for {MOLECULE} yet." in text
    assert 'id="label-estimate-table"' not in text and "estimate vs spent" not in text
    notes = text.split('<div class="notes"><strong>Notes</strong><ul>')[1].split("</ul>")[0]
    # 9 tables, no benchmark files, 10 figures not drawn, no config
    assert notes.count("<li>") == 21 and "stability.csv not found" in notes and "selection.csv not found" in notes
    assert 'id="results-table"' in text and 'id="versions-table"' in text  # always there


def test_every_value_is_escaped(tmp_path):
    kwargs = _with_plan(write_synthetic_inputs(tmp_path / "in<i>"), tmp_path)
    stab = pd.read_csv(kwargs["stability_csv"])
    stab["reason"] = "<script>alert('x')</script>"
    stab["diverged"] = True
    stab.to_csv(kwargs["stability_csv"], index=False)
    kwargs["reductions_csv"] = tmp_path / "in<i>" / "<missing>.csv"
    text = build_report(**kwargs).read_text(encoding="utf-8")
    assert "<script" not in text and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in text
    assert "<b>" not in text and "cost model &lt;b&gt;&amp;&lt;/b&gt; &#39;x&#39;" in text
    assert "<i>" not in text and "<missing>" not in text and "in&lt;i&gt;" in text and "&lt;missing&gt;.csv" in text
    # values the analysis produces are escaped too: a card and a cell with markup in them
    content = compute_report(
        load_inputs(MOLECULE, **{k: v for k, v in kwargs.items() if k not in ("molecule", "out_html", "fig_dir")}),
        tmp_path / "figs",
    )
    content.cards.append(Card("<h1>t</h1>", "<em>v</em>", "a & b"))
    content.results.rows[0].cells[0] = Cell('<a href="x">c</a>')
    page = render_report(content, tmp_path)
    assert "<h1>t</h1>" not in page and "&lt;h1&gt;t&lt;/h1&gt;" in page and "&lt;em&gt;v&lt;/em&gt;" in page
    assert "a &amp; b" in page and "<td>&lt;a href=&#34;x&#34;&gt;c&lt;/a&gt;</td>" in page


def test_table_macro_writes_exact_values_classes_and_headers():
    macros = template_environment().get_template("macros.html.j2").module
    t = Table(
        "t<1>",
        [Header("N", column="n_train", title="n_train"), Header("MAE", column="m", small="kcal<")],
        [
            Row([Cell("25", "num", "25"), Cell("0.5 ± 0.1", "num best", "0.5", "0.1")], "chosen"),
            Row([Cell("—"), Cell("–", "num")]),
        ],
    )
    html = str(macros.table(t))
    assert html == (
        '<div class="table-wrap"><table id="t&lt;1&gt;"><thead><tr><th data-column="n_train" title="n_train">N</th>'
        '<th data-column="m">MAE<br><small>kcal&lt;</small></th></tr></thead><tbody>'
        '<tr class="chosen"><td class="num" data-value="25">25</td>'
        '<td class="num best" data-value="0.5" data-std="0.1">0.5 ± 0.1</td></tr>'
        '<tr><td>—</td><td class="num">–</td></tr></tbody></table></div>'
    )


def test_templates_ship_in_the_wheel(tmp_path):
    """A non-editable install finds the templates: they are package data of pipeline.report."""
    root = Path(__file__).resolve().parents[3]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (src / name).write_bytes((root / name).read_bytes())
    subprocess.run(["cp", "-r", str(root / "pipeline"), str(src / "pipeline")], check=True)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for template in sorted(p.name for p in (root / "pipeline/report/templates").iterdir()):
        assert f"pipeline/report/templates/{template}" in names, template
