"""index.html rendered in a real headless browser (Debian's chromium): tables and decoded images.

Skipped when ``chromium`` is not on PATH (install it with ``apt-get install -y chromium``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.report import ReportOptions, build_report

STORE = Path(__file__).parent / "fixtures" / "report_store.sqlite"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Appended to a copy of the page only: after load, write each image's decoded size into the DOM.
PROBE = (
    '<script>window.addEventListener("load",function(){var d=document.createElement("div");'
    'd.id="probe";d.textContent=Array.from(document.images).map(function(i){'
    'return i.naturalWidth+"x"+i.naturalHeight}).join(",");document.body.appendChild(d);});'
    "</script>"
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not on PATH (apt-get install -y chromium to run this test)"
)


def _dump_dom(page: Path, profile: Path) -> str:
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=5000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_index_html_renders_tables_and_decodes_every_image(tmp_path):
    report = build_report(STORE, tmp_path / "out", ReportOptions())
    page = tmp_path / "probe.html"
    html = (tmp_path / "out" / "index.html").read_text()
    page.write_text(html.replace("</body>", PROBE + "</body>"))
    dom = _dump_dom(page, tmp_path / "profile")
    for table in report.tables:
        assert f"<caption>{table.title.replace('&', '&amp;')}</caption>" in dom, table.key
    assert "<caption>Claims of the paper</caption>" in dom
    probe = re.search(r'<div id="probe">([^<]*)</div>', dom)
    assert probe, "the probe script did not run"
    sizes = [tuple(map(int, s.split("x"))) for s in probe.group(1).split(",")]
    assert len(sizes) == len(report.figures) == 4
    assert all(w > 300 and h > 200 for w, h in sizes), sizes
