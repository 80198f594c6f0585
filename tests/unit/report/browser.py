"""Check a report in real headless Chromium: it loads, logs no console errors, requests
nothing from the network, shows every figure at a nonzero size, and its results table
holds the expected numbers.

Chromium is driven over the DevTools protocol through ``--remote-debugging-pipe``
(commands on the child's fd 3, replies and events on its fd 4, each message JSON
terminated by a NUL byte), so no WebSocket library or open port is needed and the
page itself is not modified: console errors are read from the ``Runtime`` and ``Log``
domains, network requests from ``Network``, the DOM is inspected with
``Runtime.evaluate`` and a full-page screenshot comes from ``Page.captureScreenshot``.

A test helper, not part of the package: tests/unit/report/test_browser.py checks the synthetic
report with it, tests/e2e/test_workflow.py the report of the tiny workflow run. Pillow (screenshot
checks) comes with the ``test`` extra.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import math
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
from PIL import Image

from pipeline.report.tables import SIG_DIGITS

CHROMIUM_NAMES = (
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "chrome",
    "chrome-headless-shell",
)
CHROMIUM_FLAGS = [
    "--headless",
    "--disable-gpu",
    "--no-sandbox",
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--window-size=1280,900",
]
# Chromium cannot capture taller screenshots in one piece.
MAX_SCREENSHOT_PX = 16000
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")

# Runs in the page after load; reads the DOM, changes nothing, logs nothing.
_INSPECT_JS = r"""
(async () => {
  await Promise.all(Array.from(document.images, im => im.decode().catch(() => null)));
  const figures = Array.from(document.querySelectorAll('figure'), f => {
    const media = f.querySelector('img, svg');
    const r = media ? media.getBoundingClientRect() : {width: 0, height: 0};
    return {id: f.id, name: f.dataset.figure || null, skipped: f.classList.contains('skipped'),
            tag: media ? media.tagName.toLowerCase() : null, width: r.width, height: r.height,
            natural_width: media && media.tagName === 'IMG' ? media.naturalWidth : null};
  });
  const t = document.getElementById('results-table');
  const table = t ? {
    columns: Array.from(t.querySelectorAll('thead th'),
                        th => th.dataset.column || th.textContent.trim()),
    rows: Array.from(t.querySelectorAll('tbody tr'), tr => Array.from(tr.cells,
                     td => ({text: td.textContent, value: td.dataset.value ?? null}))),
  } : null;
  return {title: document.title, figures, results_table: table,
          n_img: document.images.length, n_svg: document.querySelectorAll('svg').length};
})()
"""


class BrowserError(RuntimeError):
    """Chromium could not be started, driven, or answered too late."""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary: $CHROMIUM if set, else the first of
    CHROMIUM_NAMES on PATH; None if there is none."""
    env = os.environ.get("CHROMIUM")
    if env:
        return shutil.which(env)
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _high_fd(fd: int) -> int:
    """Move `fd` to a number ≥ 10 (close-on-exec), so that dup2 onto 3 and 4 in the
    child cannot clobber it."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class _DevToolsPipe:
    """A headless Chromium process and its DevTools protocol pipe."""

    def __init__(self, chromium: str, user_data_dir: str, timeout_s: float):
        self.timeout_s = timeout_s
        child_in, self._to_child = (_high_fd(fd) for fd in os.pipe())
        self._from_child, child_out = (_high_fd(fd) for fd in os.pipe())

        def wire_fds():
            os.dup2(child_in, 3)
            os.dup2(child_out, 4)

        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            preexec_fn=wire_fds,
            close_fds=False,
            start_new_session=True,
        )
        os.close(child_in)
        os.close(child_out)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict] = []

    def stderr_tail(self, n: int = 2000) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")[-n:]

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer from Chromium in {self.timeout_s} s; stderr:\n{self.stderr_tail()}")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise BrowserError(
                        f"Chromium closed the DevTools pipe (exit code "
                        f"{self.proc.poll()}); stderr:\n{self.stderr_tail()}"
                    )
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """Send one command and return its result; events read meanwhile are kept."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout_s
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, session: str, since: int) -> dict:
        """The first event `method` of `session` at or after index `since` of self.events."""
        deadline = time.monotonic() + self.timeout_s
        i = since
        while True:
            while i < len(self.events):
                ev = self.events[i]
                i += 1
                if ev["method"] == method and ev.get("sessionId") == session:
                    return ev
            msg = self._read_message(deadline)
            if "method" in msg:
                self.events.append(msg)

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self._next_id += 1
                os.write(self._to_child, json.dumps({"id": self._next_id, "method": "Browser.close"}).encode() + b"\0")
                self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        finally:
            os.close(self._to_child)
            os.close(self._from_child)
            self._stderr.close()


def _console_errors(events: list[dict], session: str) -> list[str]:
    """Error-level console calls, uncaught exceptions and browser log errors (failed
    loads, CSP violations) of `session`, as readable strings."""
    out = []
    for ev in events:
        if ev.get("sessionId") != session:
            continue
        p = ev.get("params", {})
        if ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            out.append(f"console.{p['type']}: {args}")
        elif ev["method"] == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif ev["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            out.append(f"{e.get('source', 'log')}: {e.get('text')} {e.get('url', '')}".strip())
    return out


def _nonblank(png: bytes) -> bool:
    """True if the screenshot has more than one colour."""
    lo, hi = Image.open(io.BytesIO(png)).convert("L").getextrema()
    return hi > lo


def check_report_in_browser(
    html_path: str | os.PathLike,
    screenshot_path: str | os.PathLike | None = None,
    timeout_s: float = 60.0,
    chromium: str | None = None,
) -> dict:
    """Load `html_path` in headless Chromium and report what rendered.

    Returns a dict with: ``chromium`` (binary), ``version``, ``url``, ``loaded`` (the
    load event fired without a navigation error), ``title``, ``console_errors`` (list of
    str), ``external_requests`` (URLs not file:/data:/about:/blob:), ``figures`` (per
    ``<figure>``: id, name, skipped, tag of its img/svg, rendered width/height in CSS px,
    natural_width for images), ``n_img``/``n_svg``, ``results_table`` (``columns``:
    data-column names; ``rows``: per cell ``text`` as rendered and ``value`` = data-value)
    or None, ``page_size`` [w, h] in CSS px, ``screenshot`` (path or None),
    ``screenshot_nonblank``, and ``problems``: a list of human-readable failures (empty
    when the page loaded cleanly, with all figures drawn at nonzero size).

    Raises BrowserError if no Chromium is found or it does not answer within `timeout_s`.
    """
    chromium = chromium or find_chromium()
    if not chromium:
        raise BrowserError("no Chromium binary found (set $CHROMIUM or install chromium)")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="report-chromium-") as profile:
        cdp = _DevToolsPipe(chromium, profile, timeout_s)
        try:
            version = cdp.call("Browser.getVersion").get("product", "")
            target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                cdp.call(f"{domain}.enable", session=session)
            since = len(cdp.events)
            nav = cdp.call("Page.navigate", {"url": url}, session=session)
            cdp.wait_event("Page.loadEventFired", session, since)
            page = cdp.call(
                "Runtime.evaluate",
                {"expression": _INSPECT_JS, "awaitPromise": True, "returnByValue": True},
                session=session,
            )
            if "exceptionDetails" in page:
                raise BrowserError(f"page inspection failed: {page['exceptionDetails']}")
            info = page["result"]["value"]
            size = cdp.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            width, height = int(size["width"]), int(min(size["height"], MAX_SCREENSHOT_PX))
            shot = base64.b64decode(
                cdp.call(
                    "Page.captureScreenshot",
                    {
                        "format": "png",
                        "captureBeyondViewport": True,
                        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
                    },
                    session=session,
                )["data"]
            )
            events = list(cdp.events)
        finally:
            cdp.close()
    if screenshot_path is not None:
        Path(screenshot_path).write_bytes(shot)
    external = sorted(
        {
            ev["params"]["request"]["url"]
            for ev in events
            if ev["method"] == "Network.requestWillBeSent"
            and not ev["params"]["request"]["url"].startswith(LOCAL_SCHEMES)
        }
    )
    report = {
        "chromium": chromium,
        "version": version,
        "url": url,
        "loaded": not nav.get("errorText"),
        "title": info["title"],
        "console_errors": _console_errors(events, session),
        "external_requests": external,
        "figures": info["figures"],
        "n_img": info["n_img"],
        "n_svg": info["n_svg"],
        "results_table": info["results_table"],
        "page_size": [width, int(size["height"])],
        "screenshot": os.fspath(screenshot_path) if screenshot_path is not None else None,
        "screenshot_nonblank": _nonblank(shot),
    }
    problems = []
    if not report["loaded"]:
        problems.append(f"navigation failed: {nav.get('errorText')}")
    problems += [f"console error: {e}" for e in report["console_errors"]]
    problems += [f"network request: {u}" for u in external]
    for fig in report["figures"]:
        if fig["skipped"]:
            continue
        if not fig["tag"] or fig["width"] <= 0 or fig["height"] <= 0:
            problems.append(f"figure {fig['id']!r} not rendered ({fig['tag']}, {fig['width']}×{fig['height']} px)")
        elif fig["tag"] == "img" and not fig["natural_width"]:
            problems.append(f"figure {fig['id']!r}: image did not decode")
    if not report["screenshot_nonblank"]:
        problems.append("screenshot is blank")
    report["problems"] = problems
    return report


def _shown(text: str) -> float:
    """A displayed number back as a float ("–" is missing, "∞" infinite)."""
    text = text.strip().replace(",", "").replace("−", "-")
    return {"–": math.nan, "∞": math.inf, "-∞": -math.inf}.get(text) or float(text)


def results_table_mismatches(results_table: dict | None, results_csv) -> list[str]:
    """Cells of the rendered results table that differ from results.csv (empty list: all equal).

    Numeric cells: the exact `data-value` must equal the CSV value and the shown text must round
    to it (SIG_DIGITS significant digits); text cells must match verbatim ("—" for missing).
    """
    if results_table is None:
        return ["no results table rendered"]
    df = pd.read_csv(results_csv)
    out = []
    if results_table["columns"] != list(df.columns):
        out.append(f"columns {results_table['columns']} != CSV columns {list(df.columns)}")
    if len(results_table["rows"]) != len(df):
        out.append(f"{len(results_table['rows'])} rows rendered, {len(df)} in the CSV")
    for i, cells in enumerate(results_table["rows"][: len(df)]):
        for col, cell in zip(df.columns, cells):
            want = df.at[i, col]
            if pd.api.types.is_numeric_dtype(df[col]):
                want = float(want)
                exact, shown = float(cell["value"]), _shown(cell["text"])
                if math.isnan(want):
                    ok = math.isnan(exact) and math.isnan(shown)
                else:
                    ok = exact == want and math.isclose(shown, want, rel_tol=0.5 * 10 ** (1 - SIG_DIGITS))
            else:
                # booleans (True/False in the CSV) are rendered yes/no, the report's convention
                as_text = {"True": "yes", "False": "no"}.get(str(want), str(want))
                ok = cell["text"] == ("—" if pd.isna(want) else as_text)
            if not ok:
                out.append(f"row {i} column {col}: rendered {cell} but the CSV has {want!r}")
    return out
