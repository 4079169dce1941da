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


def start_server(folder: Path, *extra: str) -> tuple[subprocess.Popen, str, list[str]]:
    """`tracker serve` in a subprocess on a free port; returns it, its base URL and the lines it printed."""
    db_path = folder / "tracker.db"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "TRACKER_DASHBOARD_PASSWORD_HASH": hash_password(PASSWORD, iterations=1000),
        "TRACKER_DASHBOARD_USER": "alice",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "tracker", "--db", str(db_path), "serve", "--port", str(port), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(base + "/-/login", timeout=2) as response:  # the one open page
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"tracker serve did not start: {process.stdout.read() if process.stdout else ''}")
        time.sleep(0.2)
    while not lines or not lines[-1].startswith("Press Ctrl+C"):
        lines.append(process.stdout.readline().strip())
    return process, base, lines


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`tracker serve` over the sample database; yields its base URL, printed lines, db path and case ids."""
    folder = tmp_path_factory.mktemp("browser")
    db = open_db(folder / "tracker.db")
    ids = build_sample(db)
    with db.conn:  # a row written without folding the search queue: serve indexes it before serving
        db.conn.execute("INSERT INTO messages(order_id, sender, sent_at, text, message_key)"
                        " VALUES ('8100000004', 'buyer', '2026-09-11T00:00:00Z', 'still waiting', 'm9')")
    db.close()
    process, base, lines = start_server(folder)
    try:
        yield {"base": base, "lines": lines, "db_path": folder / "tracker.db", "ids": ids}
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def public_server(tmp_path_factory):
    """`tracker serve --public-read` over another copy of the sample."""
    folder = tmp_path_factory.mktemp("public")
    db = open_db(folder / "tracker.db")
    ids = build_sample(db)
    db.close()
    process, base, lines = start_server(folder, "--public-read")
    try:
        yield {"base": base, "lines": lines, "ids": ids}
    finally:
        stop_server(process)


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


def sign_in(page, base: str, then: str = "/") -> None:
    """Sign in through the form, as a person would after being sent there."""
    page.goto(base + then)
    page.wait_for_url(re.compile(r".*/-/login\?next=.*"))
    assert page.title() == "Sign in"
    page.fill('input[name="username"]', "alice")
    page.fill('input[name="password"]', PASSWORD)
    page.locator('input[type="submit"][value="Sign in"]').click()
    page.wait_for_url(re.compile(".*" + re.escape(then) + "$"))


def test_serve_prints_address_and_sign_in(server):
    assert printed(server, "Tracker dashboard:").startswith(f"Tracker dashboard: {server['base']}/")
    assert f"{server['base']}/-/auth-token?token=" in printed(server, "Sign in")
    assert "'alice'" in printed(server, "or sign in at")
    assert printed(server, "Search index:") == "Search index: 1 changed rows indexed."
    assert not any(line.startswith("Warning") for line in server["lines"])


def test_a_visitor_is_sent_to_sign_in_and_reads_nothing(server, page):
    base, case_id = server["base"], server["ids"]["reused"]
    page.goto(f"{base}/-/case/{case_id}")
    page.wait_for_url(re.compile(r".*/-/login\?next=.*"))
    assert "USB charger" not in page.content()
    page.goto(f"{base}/tracker/orders.csv?_stream=on")
    assert "buyer-anna" not in page.content()


def test_browse_my_reports_to_a_case_then_change_status(server, page, tmp_path):
    base, case_id = server["base"], server["ids"]["reused"]
    sign_in(page, base)
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
    assert page.locator(".actor").inner_text().strip() == "alice"
    # the sign-in cookie is HttpOnly: the page's scripts cannot read it
    assert "ds_actor" not in page.evaluate("document.cookie")

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

    # signing out ends it
    page.goto(base + "/-/logout")
    page.locator('input[type="submit"], button[type="submit"]').first.click()
    page.goto(f"{base}/-/case/{case_id}")
    page.wait_for_url(re.compile(r".*/-/login\?next=.*"))


def test_anonymous_change_is_refused(server, page):
    base, case_id = server["base"], server["ids"]["pending"]
    page.goto(f"{base}/-/case/{case_id}")
    assert page.locator("h1").inner_text() == "Sign in"
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
    sign_in(page, server["base"], "/-/snapshot/" + "a" * 64)
    assert page.evaluate("window.__ran === undefined")
    assert "<script>" in page.locator("body").inner_text()


def test_root_link_signs_in(server, browser):
    link = printed(server, "Sign in").split(": ", 1)[1]
    context = browser.new_context()
    page = context.new_page()
    page.goto(link)  # straight in, as `make demo` prints it
    assert page.url.rstrip("/") == server["base"]
    page.goto(f"{server['base']}/-/case/{server['ids']['ipr']}")
    assert page.locator("#status-select").count() == 1
    context.close()


def test_charts_render(server, page, tmp_path):
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    sign_in(page, server["base"], "/-/dashboards/tracker")
    # four Vega-Lite charts, drawn from the read-only chart queries (vega-embed draws a canvas each)
    page.wait_for_function("document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length >= 4")
    assert errors == []
    screenshot(page, "charts.png", tmp_path)


def test_public_read_shows_pseudonymised_cases_and_the_charts(public_server, page):
    base = public_server["base"]
    assert any(line.startswith("Warning: --public-read") for line in public_server["lines"])
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{base}/-/case/{public_server['ids']['reused']}")
    assert page.locator("h1").inner_text().startswith("Case #")
    text = page.locator("body").inner_text()
    assert "buyer-anna" not in text and "69003" not in text and "Please confirm receipt" not in text
    assert page.locator("#visitor-note").is_visible()
    # the charts' own SQL passes, as the browser sends it
    page.goto(f"{base}/-/dashboards/tracker")
    page.wait_for_function("document.querySelectorAll('.vega-embed canvas, .vega-embed svg').length >= 4")
    assert errors == []
