"""The synthetic report in real headless Chromium: loads cleanly, draws every figure,
and shows the numbers of results.csv."""

from __future__ import annotations

import pandas as pd
import pytest
from PIL import Image

from .browser import check_report_in_browser, find_chromium, results_table_mismatches
from .test_report import FIGURES, built_synthetic_report

CHROMIUM = find_chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium binary on PATH (chromium, chromium-browser, google-chrome, ...) and "
    "$CHROMIUM unset; install the 'chromium' package to run the browser checks",
)


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    kwargs, html_path = built_synthetic_report(tmp_path_factory)
    shot = html_path.parent / "screenshot.png"
    return kwargs, check_report_in_browser(html_path, shot, chromium=CHROMIUM)


def test_page_loads_without_console_errors_or_network(checked):
    _, r = checked
    assert r["loaded"], r
    assert r["title"] == "ASTEROID report — aspirin"
    assert r["console_errors"] == []
    assert r["external_requests"] == []
    assert r["problems"] == []


def test_every_figure_rendered_with_nonzero_size(checked):
    _, r = checked
    assert [f["name"] for f in r["figures"] if not f["skipped"]] == FIGURES
    for fig in r["figures"]:
        assert fig["tag"] == "img" and fig["natural_width"] > 0, fig
        assert fig["width"] > 100 and fig["height"] > 100, fig
    assert r["screenshot_nonblank"]
    with Image.open(r["screenshot"]) as im:
        assert im.size[0] == r["page_size"][0] and im.size[1] > 2000


def test_rendered_results_table_equals_csv(checked):
    kwargs, r = checked
    assert results_table_mismatches(r["results_table"], kwargs["results_csv"]) == []


def test_mismatch_detection_can_fail(checked, tmp_path):
    kwargs, r = checked
    df = pd.read_csv(kwargs["results_csv"])
    num = next(c for c in df.columns if pd.api.types.is_float_dtype(df[c]) and df[c].notna().all())
    df.loc[0, num] = df.loc[0, num] * 1.5 + 1
    df.to_csv(tmp_path / "changed.csv", index=False)
    assert any(f"column {num}" in m for m in results_table_mismatches(r["results_table"], tmp_path / "changed.csv"))


def test_broken_page_is_reported(tmp_path):
    """The check can fail: script errors, console errors and a missing image show up."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>broken</title></head><body>'
        '<figure id="fig-x" data-figure="x"><img src="missing.png" alt="x"></figure>'
        '<script>console.error("boom"); notAFunction();</script></body></html>'
    )
    r = check_report_in_browser(page, chromium=CHROMIUM)
    assert r["loaded"]
    errors = " | ".join(r["console_errors"])
    assert "boom" in errors and "notAFunction" in errors and "missing.png" in errors
    assert any("fig-x" in p for p in r["problems"])
    assert r["results_table"] is None
