"""Specifications of report.html as a browser shows it: rendered by headless Chromium (Debian `chromium`).

Chromium runs with networking features off and a fresh profile, in its own process group, which is
killed by its id if it outlives the deadline. The DOM it dumps after rendering is checked.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from harness.report import write_reports
from tests.report.reportkit import DATA, FAILING


CHROMIUM = Path("/usr/bin/chromium")
DEADLINE_S = 90  # a cold start on a loaded 2-core machine takes seconds; this only bounds a hang

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="headless Chromium not installed: apt-get install -y chromium")


def _dump_dom(page: Path, profile: Path) -> str:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-default-apps", "--disable-extensions", "--no-proxy-server",
               f"--user-data-dir={profile}", "--dump-dom", page.as_uri()]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=DEADLINE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"chromium did not render {page} within {DEADLINE_S} s")
    assert process.returncode == 0, err[-2000:]
    return out


@pytest.fixture(scope="module")
def dom(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The DOM Chromium built from the report of the failing run (one render: a cold start costs seconds)."""
    directory = tmp_path_factory.mktemp("runs") / FAILING
    shutil.copytree(DATA / FAILING, directory)
    write_reports(directory)
    return _dump_dom(directory / "report.html", tmp_path_factory.mktemp("chromium-profile"))


def test_chromium_renders_the_verdict_at_the_top(dom: str) -> None:
    assert '<div class="word" id="verdict">FAIL</div>' in dom
    assert "resilience score 50.3/100" in dom
    assert dom.index('id="verdict"') < dom.index("<svg")


def test_chromium_renders_every_plot_as_an_svg_with_lines_and_shaded_faults(dom: str) -> None:
    assert dom.count("<svg") == 12, "throughput, error rate and latency for all requests and three tiers"
    assert dom.count("<polyline") >= 20
    assert dom.count('class="fault"') == 12
    assert "abort 503 50% user-service" in dom


def test_chromium_renders_the_slo_table_and_what_to_fix(dom: str) -> None:
    assert "SLOs per phase" in dom and "ai-agent-availability" in dom
    assert "What to fix" in dom and "VirtualService (none for user-service)" in dom


def test_the_rendered_page_references_nothing_outside_itself(dom: str) -> None:
    assert not re.search(r"""(src|href|xlink:href|action|poster|data)\s*=\s*["']?\s*(https?:)?//""", dom)
    assert "<script" not in dom and "<link" not in dom and "url(" not in dom
