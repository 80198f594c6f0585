"""Snakemake's own report of the finished tiny run: `snakemake --report` (HTML and zip) shows the
flagged figures and tables (report(...) in the rules, captions in workflow/report/), with the
provenance (rules and their commands) and the run time of every job."""

import json
import re
import zipfile
from html import unescape
from pathlib import Path

import pytest

from .conftest import snakemake

pytestmark = pytest.mark.e2e
MOL = "results/ethanol"
TABLES = {
    "Accuracy and cost": ["reductions.csv", "results.csv"],
    "ASTEROID": ["bias_correlation.csv", "gamma_selection.csv"],
    "Corrected pre-training": ["corrected_uncertainty.csv"],
    "Label cost": ["label_costs.csv", "label_plan.csv"],
    "MD stability": ["stability.csv"],
    "Selection": ["selection_validation.csv"],
}


def _script_json(html: str, script_id: str, var: str):
    """The JSON value assigned to `var` in the report's <script id=script_id> block."""
    block = re.search(rf'<script id="{script_id}">(.*?)</script>', html, re.S).group(1)
    value = block.strip()[len(f"var {var} = ") :].rstrip().rstrip(";")
    return json.loads(value)


@pytest.fixture(scope="module")
def snakemake_report(finished_run):
    wd, _ = finished_run
    snakemake(wd, "--report", "snakemake-report.html", timeout=600)
    snakemake(wd, "--report", "snakemake-report.zip", timeout=600)
    return wd


def test_html_report_shows_every_flagged_figure_and_table_in_its_category(snakemake_report):
    wd = snakemake_report
    html = (wd / "snakemake-report.html").read_text()
    categories = _script_json(html, "categories", "categories")
    assert categories["Summary"] == {"Other": [f"{MOL}/report.html"]}
    figures = sorted(p.name for p in (wd / MOL / "figures").glob("*.png"))
    assert {"learning_curves.png", "error_vs_cost.png", "gamma_selection.png", "md_stability.png"} <= set(figures)
    shown = sorted(Path(p).name for group in categories["Figures"].values() for p in group)
    assert shown == figures  # every figure of the run (PNG), none twice
    assert "Other" not in categories["Figures"]  # each has its subcategory (REPORT_FIGURE_GROUPS)
    assert [Path(p).name for p in categories["Figures"]["Accuracy and cost"]] == [
        "error_vs_cost.png",
        "error_vs_total_cost.png",
        "learning_curves.png",
    ]
    assert {k: sorted(Path(p).name for p in v) for k, v in categories["Tables"].items()} == TABLES
    results = _script_json(html, "results", "results")
    curves = results[f"{MOL}/figures/learning_curves.png"]
    assert curves["labels"] == {"figure": "learning_curves", "molecule": "ethanol"}
    assert "Test force MAE" in curves["caption"] and "learning_curves" in curves["caption"]
    assert "bootstrap" in results[f"{MOL}/results.csv"]["caption"]
    # provenance and run times: the rules with their commands, and a runtime for each job's rule
    rules = _script_json(html, "rules", "rules")
    code = {name: unescape(re.sub("<[^>]+>", "", r["code"])) for name, r in rules.items()}
    assert "python -m pipeline train-standard --model-name {wildcards.model}" in code["train_standard"]
    assert "--checkpoint {output.model}.ckpt" in code["train_standard"]
    assert "python -m pipeline train-cheap" in code["train_cheap_only"]  # derived with use rule ... with:
    runtimes = _script_json(html, "runtimes", "runtimes_spec")["data"]["values"]
    assert {"train_standard", "train_stage2", "train_cheap_only", "finetune_score", "report"} <= {
        r["rule"] for r in runtimes
    }
    assert all(r["runtime"] >= 0 for r in runtimes)
    assert "data-cost-aware training" in html  # the workflow description (workflow/report/workflow.rst)


def test_zip_report_holds_the_flagged_files(snakemake_report):
    wd = snakemake_report
    with zipfile.ZipFile(wd / "snakemake-report.zip") as z:  # one folder named as the zip file
        names = {Path(n).name for n in z.namelist() if n.startswith("snakemake-report/data/raw/")}
        assert "snakemake-report/report.html" in z.namelist()
    tables = {t for group in TABLES.values() for t in group}
    assert tables | {"report.html", "learning_curves.png", "md_stability.png"} <= names
