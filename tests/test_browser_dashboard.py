"""The dashboard in real Chromium (Playwright) against `tracker serve` on a free loopback port.

(The README's screenshots come from `python -m tracker.dashboard.screenshots` over a demo database.)
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from datasette_auth_passwords.utils import hash_password

from tracker.dashboard.sample import build_sample
from tracker.db import open_db

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "open sesame"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not os.environ.get("CI"),  # in CI a missing browser must fail
        reason=f"{CHROMIUM} is not installed (Debian package 'chromium')"
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`tracker serve` in a subprocess over the sample database; yields (base_url, printed lines, db path)."""
    folder = tmp_path_factory.mktemp("browser")
    db_path = folder / "tracker.db"
    db = open_db(db_path)
    ids = build_sample(db)
    db.close()
    port = free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TRACKER_DASHBOARD_PASSWORD_HASH": hash_password(PASSWORD, iterations=1000),
        "TRACKER_DASHBOARD_USER": "alice",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--db", str(db_path), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/-/my-reports", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"tracker serve did not start: {process.stdout.read() if process.stdout else ''}"
                )
            time.sleep(0.2)
        while not lines or not lines[-1].startswith("Press Ctrl+C"):
            lines.append(process.stdout.readline().strip())
        yield {"base": base, "lines": lines, "db_path": db_path, "ids": ids}
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def screenshot(page, name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    page.screenshot(path=str(target), full_page=True)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return target


def case_status(db_path: Path, case_id: int) -> str:
    db = open_db(db_path, create=False)
    try:
        return db.execute("SELECT status FROM cases WHERE id = ?", [case_id]).fetchone()[0]
    finally:
        db.close()


def printed(server, start: str) -> str:
    return next(line for line in server["lines"] if line.startswith(start))


def test_serve_prints_address_and_sign_in(server):
    assert printed(server, "Tracker dashboard:").startswith(f"Tracker dashboard: {server['base']}/")
    assert f"{server['base']}/-/auth-token?token=" in printed(server, "Sign in")
    assert "'alice'" in printed(server, "or sign in at")
    assert printed(server, "Search index:")  # the sample's rows, indexed before serving


def test_browse_my_reports_to_a_case_then_sign_in_and_change_status(server, page, tmp_path):
    base, case_id = server["base"], server["ids"]["reused"]
    page.goto(base + "/")
    page.get_by_role("link", name="My Reports").first.click()
    page.wait_for_url(re.compile(r".*/-/my-reports$"))
    assert page.title() == "My Reports"
    assert page.locator('#status-tabs a[data-status="new"] .count').inner_text() == "1"
    screenshot(page, "my-reports.png", tmp_path)

    # a status tab leads to the filtered cases table
    page.locator('#status-tabs a[data-status="new"]').click()
    page.wait_for_url(re.compile(r".*/cases\?status=new.*"))
    rows = page.locator("table.rows-and-columns tbody tr")
    assert rows.count() == 1
    # the order id opens the case page
    rows.first.get_by_role("link", name="8100000001").click()
    page.wait_for_url(re.compile(rf".*/-/case/{case_id}$"))
    assert page.locator("h1").inner_text() == f"Case #{case_id}: order 8100000001"
    assert page.locator("#flags").get_by_text("Delivered in Lyon, FR (69003)").is_visible()
    assert page.locator("#status-select").count() == 0  # anonymous: no form

    # sign in with the password account
    page.goto(base + "/-/login")
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', PASSWORD)
    page.locator('input[type="submit"], button[type="submit"]').first.click()
    page.wait_for_load_state()
    page.goto(f"{base}/-/case/{case_id}")
    assert page.locator(".actor").inner_text().strip() == "alice"

    page.select_option("#status-select", "to_report")
    page.fill("#status-note", "seen in the browser")
    page.get_by_role("button", name="Change status").or_(
        page.locator('input[value="Change status"]')
    ).first.click()
    page.wait_for_url(re.compile(rf".*/-/case/{case_id}$"))
    assert page.locator("#case-status").inner_text() == "To report"
    history = page.locator("#history").inner_text()
    assert "seen in the browser" in history and "alice (dashboard)" in history
    assert case_status(server["db_path"], case_id) == "to_report"
    screenshot(page, "case.png", tmp_path)


def test_anonymous_change_is_refused(server, page):
    base, case_id = server["base"], server["ids"]["pending"]
    page.goto(f"{base}/-/case/{case_id}")
    assert page.get_by_text("Sign in").first.is_visible()
    status = page.evaluate(
        """async (url) => {
            const body = new URLSearchParams({status: "processing"});
            const response = await fetch(url, {method: "POST", body});
            return response.status;
        }""",
        f"{base}/-/case/{case_id}/status",
    )
    assert status == 403
    assert case_status(server["db_path"], case_id) == "pending"


def test_stored_carrier_page_never_runs(server, page):
    page.goto(server["base"] + "/-/snapshot/" + "a" * 64)
    assert page.evaluate("window.__ran === undefined")
    assert "<script>" in page.locator("body").inner_text()


def test_root_link_signs_in(server, browser):
    link = printed(server, "Sign in").split(": ", 1)[1]
    context = browser.new_context()
    page = context.new_page()
    page.goto(link)
    page.goto(f"{server['base']}/-/case/{server['ids']['ipr']}")
    assert page.locator("#status-select").count() == 1
    context.close()


def test_charts_render(server, page, tmp_path):
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(server["base"] + "/-/dashboards/tracker")
    # four Vega-Lite charts, drawn from the read-only chart queries (vega-embed draws a canvas each)
    page.wait_for_function("document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length >= 4")
    assert errors == []
    screenshot(page, "charts.png", tmp_path)
