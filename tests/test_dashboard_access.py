"""Who may read what: sign-in required by default, read-only pseudonymised visitors with --public-read, the
Host allow-list, the sign-in doors (rate limit, cookies, sign-out), and no secret or path ever served."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from test_dashboard import PASSWORD, PASSWORD_HASH, SignedIn

from tracker.cases.privacy import key_path, load_key, pseudonym
from tracker.dashboard import dashboard_metadata, make_datasette
from tracker.dashboard.access import access_of
from tracker.dashboard.config import PASSWORD_HASH_ENV, USER_ENV, chart_queries
from tracker.dashboard.sample import build_sample

ENV = {PASSWORD_HASH_ENV: PASSWORD_HASH, USER_ENV: "alice"}
# what the sample says about people: the buyers, their postcodes and one of them's chat
PEOPLE = ["buyer-me", "buyer-anna", "buyer-otto", "10115", "69003", "28001"]
CHAT = ["Please confirm receipt now", "Nothing has arrived in Berlin"]
# everything a visitor could try: pages, tables, rows, SQL, JSON, CSV (streamed), search, charts,
# stored carrier pages, metadata and Datasette's own introspection
PATHS = [
    "/", "/.json", "/tracker", "/tracker.json", "/tracker/orders", "/tracker/orders.json", "/tracker/orders.csv",
    "/tracker/orders.csv?_stream=on", "/tracker/orders.json?_shape=array&_size=max", "/tracker/orders/8100000002",
    "/tracker/orders/8100000002.json", "/tracker/messages.json", "/tracker/flags.csv?_stream=on",
    "/tracker/meta.json", "/tracker/cases.json", "/tracker/page_snapshots.json",
    "/tracker.json?sql=select+buyer_id,dest_postcode+from+orders", "/tracker.csv?sql=select+*+from+meta",
    "/tracker/orders.json?_search=charger", "/tracker/reuse_clusters.json", "/tracker/due_next",
    "/-/my-reports", "/-/case/1", "/-/search?q=Berlin", "/-/search?q=confirm", "/-/snapshot/" + "a" * 64,
    "/-/dashboards", "/-/dashboards/tracker", "/-/dashboards/tracker/cases-by-status",
    "/-/metadata.json", "/-/metadata", "/-/databases.json", "/-/versions.json", "/-/plugins.json",
    "/-/settings.json", "/-/threads.json", "/-/actor.json", "/-/permissions", "/-/messages", "/-/patterns",
    "/-/allow-debug", "/-/password-tool", "/_internal", "/_internal/databases.json", "/tracker.db",
]


@pytest.fixture
def sample(db):
    return build_sample(db)


@pytest.fixture
def ds(db_path, sample):
    return make_datasette(db_path, secret="test-secret", env=ENV)


@pytest.fixture
def visitors(db_path, sample):
    """The dashboard of `tracker serve --public-read`."""
    return make_datasette(db_path, secret="test-secret", env=ENV, public_read=True)


def client_at(ds, address: str) -> httpx.AsyncClient:
    """A client from another address than the in-process client's."""
    transport = httpx.ASGITransport(app=ds.app(), client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


async def login_form(ds, client=None):
    client = client or ds.client
    page = await client.get("/-/login")
    assert page.status_code == 200
    token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
    return token, {"ds_csrftoken": page.cookies["ds_csrftoken"]}


# --- sign-in is required for everything -------------------------------------------------------------------


async def test_a_visitor_gets_no_data_anywhere(ds, db_path):
    secret = load_key(db_path).hex()
    for path in PATHS:
        response = await ds.client.get(path)
        if response.status_code == 302:
            assert response.headers["location"].startswith("/-/login?next="), path
        else:
            assert response.status_code in (403, 404), (path, response.status_code)
        for text in [*PEOPLE, *CHAT, secret, "USB charger", "seller-acme"]:
            assert text not in response.text, (path, text)
    assert (await ds.client.post("/tracker", data={"sql": "select * from orders"})).status_code == 403


async def test_only_the_sign_in_page_and_its_static_files_are_open(ds):
    page = await ds.client.get("/-/login")
    assert page.status_code == 200 and 'name="password"' in page.text
    assert not any(text in page.text for text in PEOPLE)
    assert (await ds.client.get("/-/static/app.css")).status_code == 200
    # an HTML page sends the visitor to sign in, and back afterwards
    response = await ds.client.get("/-/case/1?x=1")
    assert response.status_code == 302 and response.headers["location"] == "/-/login?next=%2F-%2Fcase%2F1%3Fx%3D1"


async def test_after_signing_in_everything_reads(ds):
    client = SignedIn(ds)
    for path in ["/tracker/orders.csv?_stream=on", "/-/case/1", "/tracker.json?sql=select+buyer_id+from+orders",
                 "/-/dashboards/tracker", "/-/snapshot/" + "a" * 64, "/tracker/meta.json"]:
        assert (await client.get(path)).status_code == 200, path
    assert "buyer-anna" in (await client.get("/tracker/orders.csv?_stream=on")).text


# --- no secret, no path -------------------------------------------------------------------------------------


async def test_no_response_holds_the_password_hash_the_pseudonym_key_or_the_database_path(ds, db_path):
    client = SignedIn(ds)
    assert "pbkdf2" not in str(dashboard_metadata("tracker"))
    assert PASSWORD_HASH not in (await client.get("/-/metadata.json")).text
    secret = load_key(db_path).hex()
    folder = str(db_path.parent)
    errors = ["/tracker.json?sql=select+*+from+no_such_table", "/tracker/no_such_table", "/no_such_db",
              "/tracker.json?sql=select+file+from+pragma_database_list", "/tracker/orders/nope"]
    for path in [*PATHS, *errors]:
        response = await client.get(path)
        for text in (PASSWORD_HASH, PASSWORD_HASH.split("$")[-1], secret, folder):
            assert text not in response.text, (path, text)
    rows = (await client.get("/tracker.json?sql=select+name,file+from+pragma_database_list&_shape=array")).json()
    assert rows == [{"name": "main", "file": None}]
    listed = (await client.get("/-/databases.json")).json()
    assert [d["name"] for d in listed] == ["tracker"] and "path" not in listed[0]
    assert (await client.get("/_internal")).status_code == 403
    # the key is a file beside the database, readable by its owner only, not a row anywhere
    assert key_path(db_path).exists() and key_path(db_path).stat().st_mode & 0o077 == 0
    assert "export_pseudonym_secret" not in (await client.get("/tracker/meta.json")).text


# --- the Host header ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8001", "127.0.0.2", "[::2]:80", "localhost.evil"])
async def test_a_foreign_host_gets_421(ds, host):
    response = await ds.client.get("/-/login", headers={"host": host})
    assert response.status_code == 421
    assert (await SignedIn(ds).get("/-/my-reports", headers={"host": host})).status_code == 421


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8001", "localhost:8001", "LOCALHOST", "[::1]:8001"])
async def test_loopback_hosts_are_served(ds, host):
    assert (await SignedIn(ds).get("/-/my-reports", headers={"host": host})).status_code == 200


async def test_the_host_option_and_the_configured_list_are_served(db_path, sample, tmp_path, monkeypatch):
    from tracker import config

    ds = make_datasette(db_path, env={**ENV, "TRACKER_DASHBOARD_HOSTS": "tracker.lan, box.local"}, host="10.1.2.3")
    for host in ["10.1.2.3:8001", "tracker.lan", "box.local:80"]:
        assert (await SignedIn(ds).get("/-/my-reports", headers={"host": host})).status_code == 200, host
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "dashboard.toml").write_text('[access]\nallowed_hosts = ["reports.example.org"]\n')
    monkeypatch.setenv("TRACKER_CONFIG_DIR", str(folder))
    config.reload()
    try:
        ds = make_datasette(db_path, env=ENV)
        assert (await SignedIn(ds).get("/", headers={"host": "reports.example.org"})).status_code == 200
        assert (await SignedIn(ds).get("/", headers={"host": "tracker.lan"})).status_code == 421
    finally:
        config.reload()


# --- the sign-in doors -------------------------------------------------------------------------------------


async def test_five_failed_sign_ins_in_a_minute_mean_429_with_retry_after(ds):
    token, cookies = await login_form(ds)
    form = {"username": "alice", "csrftoken": token}
    for _ in range(5):
        wrong = await ds.client.post("/-/login", data={**form, "password": "guess"}, cookies=cookies)
        assert wrong.status_code == 401
    right = await ds.client.post("/-/login", data={**form, "password": PASSWORD}, cookies=cookies)
    assert right.status_code == 429 and "ds_actor" not in right.cookies
    assert 1 <= int(right.headers["retry-after"]) <= 60
    # the one-time link is a door too, and so counted
    assert (await ds.client.get("/-/auth-token?token=nope")).status_code == 429
    # another address is not held back
    async with client_at(ds, "10.9.8.7") as other:
        token2, cookies2 = await login_form(ds, other)
        other.cookies.update(cookies2)
        ok = await other.post("/-/login", data={"username": "alice", "password": PASSWORD, "csrftoken": token2})
        assert ok.status_code == 302 and ok.cookies.get("ds_actor")
    # a minute later the address may try again
    limiter = access_of(ds).limiter
    later = time.monotonic() + 61
    limiter.clock = lambda: later
    again = await ds.client.post("/-/login", data={**form, "password": PASSWORD}, cookies=cookies)
    assert again.status_code == 302


async def test_sign_in_cookies_are_http_only_lax_and_expire(ds):
    token, cookies = await login_form(ds)
    signed = await ds.client.post(
        "/-/login", data={"username": "alice", "password": PASSWORD, "csrftoken": token, "next": "/-/case/1"},
        cookies=cookies)
    assert signed.status_code == 302 and signed.headers["location"] == "/-/case/1"
    header = signed.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Max-Age=43200" in header
    assert "e" in ds.unsign(signed.cookies["ds_actor"], "actor")  # the expiry is signed in, not only asked for
    # the one-time root link hands out the same kind of cookie
    link = await ds.client.get(f"/-/auth-token?token={ds._root_token}")
    assert link.status_code == 302
    header = link.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Max-Age=43200" in header
    assert ds.unsign(link.cookies["ds_actor"], "actor")["a"] == {"id": "root"}
    # a cookie past its signed expiry opens nothing
    from datasette.utils import baseconv

    stale = ds.sign({"a": {"id": "alice"}, "e": baseconv.base62.encode(int(time.time()) - 5)}, "actor")
    assert (await ds.client.get("/-/my-reports", cookies={"ds_actor": stale})).status_code == 302


async def test_a_redirect_after_sign_in_stays_on_this_site(ds):
    for target in ["//evil.example/", "https://evil.example/", "/\\evil.example"]:
        token, cookies = await login_form(ds)
        signed = await ds.client.post(
            "/-/login", data={"username": "alice", "password": PASSWORD, "csrftoken": token, "next": target},
            cookies=cookies)
        assert signed.headers["location"] == "/-/my-reports", target


async def test_an_unknown_name_is_refused_like_a_wrong_password(ds):
    token, cookies = await login_form(ds)
    response = await ds.client.post("/-/login", data={"username": "mallory", "password": PASSWORD,
                                                      "csrftoken": token}, cookies=cookies)
    assert response.status_code == 401 and "Wrong name or password" in response.text


async def test_signing_out_clears_and_revokes_the_cookie(ds):
    token, cookies = await login_form(ds)
    signed = await ds.client.post("/-/login", data={"username": "alice", "password": PASSWORD, "csrftoken": token},
                                  cookies=cookies)
    session = {"ds_actor": signed.cookies["ds_actor"]}
    page = await ds.client.get("/-/my-reports", cookies=session)
    assert page.status_code == 200 and "Log out" in page.text
    logout = await ds.client.get("/-/logout", cookies=session)
    token = re.search(r'name="csrftoken" value="([^"]+)"', logout.text).group(1)
    out = await ds.client.post("/-/logout", data={"csrftoken": token},
                               cookies={**session, "ds_csrftoken": logout.cookies.get("ds_csrftoken", "")})
    assert out.status_code == 302
    header = out.headers["set-cookie"]
    assert header.startswith("ds_actor=") and "Max-Age=0" in header and "HttpOnly" in header
    # a copy of the old cookie no longer signs anyone in
    assert (await ds.client.get("/-/my-reports", cookies=session)).status_code == 302


# --- --public-read -----------------------------------------------------------------------------------------


async def test_visitors_read_the_reports_with_every_buyer_pseudonymised(visitors, db_path, sample):
    key = load_key(db_path)
    assert (await visitors.client.get("/-/my-reports")).status_code == 200
    html = (await visitors.client.get(f"/-/case/{sample['reused']}")).text
    assert "Case #1: order 8100000001" in html and "tracking_reused" in html
    for text in [*PEOPLE, *CHAT]:
        assert text not in html, text
    assert pseudonym(key, "buyer", "buyer-anna") in html  # the same pseudonyms as complaint packets
    assert pseudonym(key, "postcode", "69003") in html  # scrubbed from the explanation, not dropped
    assert "Lyon" in html  # cities stay: they are the evidence
    assert "/-/snapshot/" not in html and 'name="status"' not in html and 'id="visitor-note"' in html
    search = (await visitors.client.get("/-/search", params={"q": "confirm"})).text
    assert 'id="search-messages"' not in search and "Please confirm" not in search


async def test_visitors_open_only_tables_that_name_no_one(visitors):
    assert (await visitors.client.get("/tracker/cases.json")).status_code == 200
    assert (await visitors.client.get("/tracker/case_counts.csv?_stream=on")).status_code == 200
    tables = (await visitors.client.get("/tracker.json")).json()["tables"]
    assert {t["name"] for t in tables} <= {"cases", "case_statuses", "case_categories", "case_reasons",
                                           "case_counts", "case_deadlines", "scores"}
    for path in ["/tracker/orders", "/tracker/orders.csv?_stream=on", "/tracker/orders/8100000002.json",
                 "/tracker/messages.json", "/tracker/flags.json", "/tracker/tracking_events.json",
                 "/tracker/page_snapshots.json", "/tracker/meta.json", "/tracker/orders_fts.json",
                 "/-/snapshot/" + "a" * 64, "/_internal"]:
        response = await visitors.client.get(path)
        assert response.status_code == 403, path
        assert not any(text in response.text for text in PEOPLE), path


@pytest.mark.parametrize("query", [
    "sql=select+buyer_id+from+orders",
    "sql=select+count(*)+from+cases+where+1",
    "_where=order_id+in+(select+order_id+from+orders+where+buyer_id='buyer-anna')",
    '_through={"table":"orders","column":"buyer_id","value":"buyer-anna"}',
    "_search=x&_fts_table=orders_fts",
])
async def test_visitors_cannot_reach_past_the_public_tables(visitors, query):
    path = "/tracker.json" if query.startswith("sql") else "/tracker/cases.json"
    assert (await visitors.client.get(f"{path}?{query}")).status_code == 403


async def test_visitors_see_the_charts_and_change_nothing(visitors, db, sample):
    assert (await visitors.client.get("/-/dashboards/tracker")).status_code == 200
    for sql in chart_queries("tracker"):
        response = await visitors.client.get("/tracker.json", params={"sql": sql, "_shape": "array"})
        assert response.status_code == 200, sql
    page = await visitors.client.get("/-/login")
    token = re.search(r'name="csrftoken" value="([^"]+)"', page.text).group(1)
    response = await visitors.client.post(f"/-/case/{sample['reused']}/status",
                                          data={"csrftoken": token, "status": "to_report"},
                                          cookies={"ds_csrftoken": page.cookies["ds_csrftoken"]})
    assert response.status_code == 403
    assert db.execute("SELECT status FROM cases WHERE id = ?", [sample["reused"]]).fetchone()[0] == "new"
    # signed in, the same dashboard shows everything
    assert "buyer-anna" in (await SignedIn(visitors).get("/tracker/orders.csv?_stream=on")).text


def test_serve_with_public_read_warns(run_cli, db, monkeypatch):
    import uvicorn

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: served.update(kwargs))
    result = run_cli("serve", "--public-read", "--port", 0)
    assert result.exit_code == 0, result.output
    assert "Warning: --public-read: anyone who can reach" in result.output
    assert served["host"] == "127.0.0.1"
    quiet = run_cli("serve", "--port", 0)
    assert "Warning" not in quiet.output and "/-/auth-token?token=" in quiet.output


# --- search reads, never writes ------------------------------------------------------------------------------


async def test_search_answers_while_an_import_holds_the_write_lock(ds, db, db_path):
    import sqlite3

    from tracker.search_index import pending_rows

    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # as an import does, for its whole run
    writer.execute("INSERT INTO orders(order_id, buyer_id, seller_id, ordered_at, dest_country, item_title)"
                   " VALUES ('8100000777', 'b', 's', '2026-09-01T00:00:00Z', 'DE', 'quokka')")
    try:
        started = time.monotonic()
        response = await asyncio.wait_for(SignedIn(ds).get("/-/search", params={"q": "charger"}), timeout=4)
        assert response.status_code == 200 and "USB <mark>charger</mark>" in response.text
        assert time.monotonic() - started < 2
        table = await SignedIn(ds).get("/tracker/orders.json?_search=charger")
        assert table.status_code == 200
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert pending_rows(db.conn) == 1  # the queued row is still queued: no GET folded it
    html = (await SignedIn(ds).get("/-/search", params={"q": "quokka"})).text
    assert "1 changed row is not searchable yet" in html and 'id="search-orders"' not in html


def test_writers_of_cases_fold_the_queue_at_the_end_of_their_transaction(db, sample):
    from tracker.cases import timeline
    from tracker.search_index import pending_rows

    with db.conn:
        db.conn.execute("UPDATE orders SET item_title = 'platypus' WHERE order_id = '8100000004'")
    assert pending_rows(db.conn) == 1
    timeline.update_case(db, sample["reused"], {"outcome": "upheld", "decision_at": "2026-09-20T00:00:00Z",
                                                "complaint_submitted_at": "2026-09-15T00:00:00Z"}, actor="t")
    assert pending_rows(db.conn) == 0
    hits = db.execute("SELECT count(*) FROM orders_fts WHERE orders_fts MATCH 'platypus'").fetchone()[0]
    assert hits == 1
    assert db.execute("SELECT count(*) FROM cases_fts WHERE cases_fts MATCH 'upheld'").fetchone()[0] == 1



def test_the_indexer_folds_between_requests_and_waits_out_an_import(db, db_path, sample):
    import sqlite3

    from tracker.search_index import SearchIndexer, pending_rows

    with db.conn:
        db.conn.execute("UPDATE orders SET item_title = 'wombat' WHERE order_id = '8100000004'")
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # an import holds the write lock
    indexer = SearchIndexer(db_path, interval=0.05, busy_seconds=0.1)
    indexer.start()
    try:
        time.sleep(0.5)
        assert indexer.is_alive() and pending_rows(db.conn) == 1  # rounds skipped, nothing broken
        writer.execute("COMMIT")
        deadline = time.monotonic() + 5
        while pending_rows(db.conn) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pending_rows(db.conn) == 0 and indexer.folded == 1
    finally:
        indexer.stop()
        writer.close()
    assert not indexer.is_alive()


def test_serve_starts_while_an_import_holds_the_write_lock(run_cli, db, db_path, monkeypatch):
    import sqlite3

    import uvicorn

    from tracker.dashboard import server

    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    monkeypatch.setattr(server, "START_LOCK_WAIT_MS", 200)
    build_sample(db)
    writer = sqlite3.connect(db_path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    try:
        result = run_cli("serve", "--port", 0)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert result.exit_code == 0, result.output
    assert "the indexer folds the queue once it can" in result.output and "Press Ctrl+C" in result.output
