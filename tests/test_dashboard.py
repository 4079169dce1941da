"""The Datasette dashboard in-process: every page, facet, filter and permission, and the refused writes."""

from __future__ import annotations

import re
import socket

import pytest
from datasette_auth_passwords.utils import hash_password

from tracker.dashboard import SETTINGS, dashboard_metadata, make_datasette
from tracker.dashboard.config import HUGE_TABLES, PASSWORD_HASH_ENV, USER_ENV
from tracker.dashboard.sample import build_sample

PASSWORD = "correct horse battery staple"
# a cheap hash (few iterations) keeps the sign-in tests fast; verify_password reads the count from it
PASSWORD_HASH = hash_password(PASSWORD, iterations=1000)


@pytest.fixture
def sample(db):
    return build_sample(db)


@pytest.fixture
def ds(db_path, sample):
    return make_datasette(
        db_path, secret="test-secret", env={PASSWORD_HASH_ENV: PASSWORD_HASH, USER_ENV: "alice"}
    )


def actor_cookie(ds, actor_id="alice"):
    return {"ds_actor": ds.sign({"a": {"id": actor_id}}, "actor")}


class SignedIn:
    """Datasette's in-process client, signed in as `actor_id` (every read needs sign-in)."""

    def __init__(self, ds, actor_id="alice"):
        self.ds, self.cookies = ds, actor_cookie(ds, actor_id)

    async def get(self, path, **kwargs):
        return await self.ds.client.get(path, cookies={**self.cookies, **kwargs.pop("cookies", {})}, **kwargs)

    async def post(self, path, **kwargs):
        return await self.ds.client.post(path, cookies={**self.cookies, **kwargs.pop("cookies", {})}, **kwargs)


@pytest.fixture
def client(ds):
    return SignedIn(ds)


async def csrf_for(ds, path, cookies):
    """GET a page as the visitor; return the form's csrftoken and the cookies to POST with."""
    response = await ds.client.get(path, cookies=cookies)
    assert response.status_code == 200
    match = re.search(r'name="csrftoken" value="([^"]+)"', response.text)
    assert match, "the page has no form with a csrftoken"
    return match.group(1), {**cookies, "ds_csrftoken": response.cookies["ds_csrftoken"]}


def case_status(db, case_id):
    return db.execute("SELECT status FROM cases WHERE id = ?", [case_id]).fetchone()[0]


# --- configuration -------------------------------------------------------------------------------


def test_configuration_is_one_structure_with_safe_settings():
    metadata = dashboard_metadata("tracker")
    cases = metadata["databases"]["tracker"]["tables"]["cases"]
    assert cases["facets"] == [{"case_count": "status"}, {"case_count": "category"}]
    assert cases["sort"] == "next_deadline_at"
    assert cases["fts_table"] == "cases_fts"
    assert SETTINGS["suggest_facets"] is False
    assert SETTINGS["sql_time_limit_ms"] <= 2000
    # no canned query writes: status changes go through tracker.cases.set_status only
    assert all(not q.get("write") for q in metadata["databases"]["tracker"]["queries"].values())
    # the password accounts are not in the metadata, which Datasette serves to anyone
    assert "datasette-auth-passwords" not in metadata["plugins"]


def test_facet_and_sort_columns_are_indexed(db):
    indexed = {}
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cases'"):
        first = db.execute(f"PRAGMA index_info('{name}')").fetchone()
        indexed.setdefault(first[2], []).append(name)
    assert {"status", "category", "next_deadline_at"} <= set(indexed)


async def test_settings_reach_datasette(ds):
    assert ds.setting("suggest_facets") is False
    assert ds.setting("sql_time_limit_ms") == SETTINGS["sql_time_limit_ms"]
    assert ds.setting("allow_download") is False


# --- pages ----------------------------------------------------------------------------------------


async def test_home_page_links_to_my_reports_search_and_charts(ds, client):
    response = await client.get("/")
    assert response.status_code == 200
    assert 'href="/-/my-reports"' in response.text
    assert 'href="/-/search"' in response.text
    assert 'href="/-/dashboards/tracker"' in response.text


async def test_my_reports_shows_a_tab_per_status_with_counts(ds, client):
    response = await client.get("/-/my-reports")
    assert response.status_code == 200
    html = response.text
    assert "<title>My Reports</title>" in html
    tabs = dict(re.findall(r'data-status="([a-z_]+)"[^>]*>[^<]+<span class="count">(\d+)</span>', html))
    assert tabs["all"] == "4"
    assert (
        tabs["new"] == "1" and tabs["pending"] == "1" and tabs["more_info"] == "1" and tabs["closed"] == "1"
    )
    assert tabs["processing"] == "0" and tabs["processed"] == "0"
    assert "Need more info" in html
    # each tab leads to the filtered cases table, soonest deadline first
    assert 'href="/tracker/cases?status=pending&amp;_sort=next_deadline_at"' in html
    # the marketplace's grouped filters: "To review" = new + to report
    assert "status__in=new%2Cto_report" in html
    # the due-next list opens case pages, soonest first
    due = re.findall(r'<td><a href="/-/case/(\d+)">#', html)
    assert due == [str(n) for n in (1, 4, 2)]


async def test_my_reports_category_filter(ds, sample, client):
    response = await client.get("/-/my-reports?category=ipr")
    assert response.status_code == 200
    tabs = dict(
        re.findall(r'data-status="([a-z_]+)"[^>]*>[^<]+<span class="count">(\d+)</span>', response.text)
    )
    assert tabs["all"] == "1" and tabs["more_info"] == "1" and tabs["new"] == "0"
    assert "status=more_info&amp;category=ipr" in response.text
    assert (await client.get("/-/my-reports?category=nonsense")).status_code == 404


async def test_cases_table_has_status_and_category_facets_and_deadline_sort(ds, client):
    response = await client.get("/tracker/cases.json")
    assert response.status_code == 200
    data = response.json()
    assert set(data["facet_results"]) == {"status", "category"}
    status_counts = {r["value"]: r["count"] for r in data["facet_results"]["status"]["results"]}
    assert status_counts == {"new": 1, "pending": 1, "more_info": 1, "closed": 1}
    category_counts = {r["value"]: r["count"] for r in data["facet_results"]["category"]["results"]}
    assert category_counts == {"trade_rules": 3, "ipr": 1}
    html = (await client.get("/tracker/cases")).text
    assert 'id="facet-status"' in html and 'id="facet-category"' in html
    assert "sorted by next_deadline_at" in html


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=new", {"8100000001"}),
        ("status__in=new,pending", {"8100000001", "8100000004"}),
        ("category=ipr", {"8100000006"}),
        ("status=pending&category=ipr", set()),
        ("_search=false_shipment", {"8100000001", "8100000004"}),
    ],
)
async def test_cases_table_filters(ds, query, expected, client):
    response = await client.get(f"/tracker/cases.json?_shape=objects&{query}")
    assert response.status_code == 200
    assert {row["order_id"] for row in response.json()["rows"]} == expected


async def test_cases_table_links_each_order_to_its_case_page(ds, sample, client):
    html = (await client.get("/tracker/cases")).text
    assert f'<a href="/-/case/{sample["reused"]}" title="Open the case page">8100000001</a>' in html


async def test_case_page_tells_the_whole_story(ds, db, sample, client):
    response = await client.get(f"/-/case/{sample['reused']}")
    assert response.status_code == 200
    html = response.text
    assert "Case #1: order 8100000001" in html
    assert "USB charger" in html and "seller-acme" in html
    # flags with their explanations, the score and its top reasons
    assert "tracking_reused" in html and "Delivered in Lyon, FR (69003)" in html
    assert "0.970" in html and "(log-odds +3.48)" in html and "buyers_sharing_number (+0.41 log-odds)" in html
    # which model scored it, and the base its reasons add to
    assert "Scored by the shipped model (generated worlds) 85%, the rules prior 15%." in html
    assert "added to a base of -3.10" in html
    # the timeline, with a link to the stored carrier page
    assert "GTMS_SIGNED" in html and "Departed from sorting center" in html
    assert f'href="/-/snapshot/{"a" * 64}"' in html
    # the reuse cluster: other orders by id, their buyers only as hashes
    cluster = html[html.index('id="cluster"') :]
    assert "8100000002" in cluster and "8100000003" in cluster
    assert "buyer-anna" not in html and "buyer-otto" not in html
    assert "Lyon" not in cluster and "69003" not in cluster
    from tracker.cases.privacy import pseudonym, pseudonym_secret

    assert f"<code>{pseudonym(pseudonym_secret(db), 'buyer', 'buyer-anna')}</code>" in cluster
    # deadlines, history, messages and the complaint packet command
    assert (
        "Dispute escalates to mediation" in html and "2026-09-20T00:00:00Z" in html
    )  # label from cases.toml
    assert 'id="history"' in html and "opened by detect" in html
    assert "Please confirm receipt now" in html
    assert f"tracker export {sample['reused']} --out" in html


async def test_case_page_unknown_case_is_404(ds, client):
    assert (await client.get("/-/case/999999")).status_code == 404
    assert (await client.get("/-/case/abc")).status_code == 404


async def test_snapshot_is_served_as_inert_text(ds, client):
    response = await client.get("/-/snapshot/" + "a" * 64)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in response.headers["content-security-policy"]
    assert "<script>document.title = 'pwned'" in response.text  # shown, decompressed, not run
    assert (await client.get("/-/snapshot/" + "b" * 64)).status_code == 404


@pytest.mark.parametrize(
    ("q", "section", "expected"),
    [
        ("confirm receipt", "search-messages", "8100000001"),
        ("RB123456785CN", "search-orders", "8100000003"),
        ("seller-zen", "search-orders", "8100000005"),
        ("false_shipment", "search-cases", "8100000004"),
    ],
)
async def test_search_across_cases_orders_and_messages(ds, q, section, expected, client):
    response = await client.get("/-/search", params={"q": q})
    assert response.status_code == 200
    assert f'id="{section}"' in response.text
    assert expected in response.text.split(f'id="{section}"', 1)[1].split("</table>", 1)[0]


async def test_search_survives_operators_and_escapes_html(ds, db, client):
    from tracker.search_index import refresh_search_index

    with db.conn:
        db.conn.execute(
            "INSERT INTO messages(order_id, sender, sent_at, text, message_key) VALUES"
            " ('8100000001', 'seller', '2026-09-11T00:00:00Z', '<b>zebra</b> discount', 'm-zebra')"
        )
    for q in ['"AND OR (', "NEAR(", "*"]:
        assert (await client.get("/-/search", params={"q": q})).status_code == 200
    # a row changed since the last fold is not found yet, and the page says so (a search never writes)
    html = (await client.get("/-/search", params={"q": "zebra"})).text
    assert "<mark>zebra</mark>" not in html and "1 changed row is not searchable yet" in html
    refresh_search_index(db.conn)  # what the dashboard's indexer or the next writer does
    html = (await client.get("/-/search", params={"q": "zebra"})).text
    assert "not searchable yet" not in html
    assert "<mark>zebra</mark>" in html
    assert "<b>" not in html and "&lt;b&gt;" in html


async def test_charts_dashboard_and_its_queries(ds, client):
    assert (await client.get("/-/dashboards/tracker")).status_code == 200
    charts = dashboard_metadata("tracker")["plugins"]["datasette-dashboards"]["tracker"]["charts"]
    results = {}
    for slug, chart in charts.items():
        response = await client.get("/tracker.json", params={"sql": chart["query"], "_shape": "objects"})
        assert response.status_code == 200, slug
        results[slug] = response.json()["rows"]
    assert results["reuse-clusters"] == [{"buyers": 3, "clusters": 1}]
    assert results["sellers-by-flags"][0] == {"seller": "seller-acme", "flagged_orders": 1}
    assert sum(r["cases"] for r in results["cases-by-status"]) == 4


@pytest.mark.parametrize("name", ["due_next", "reuse_clusters", "sellers_by_flags"])
async def test_canned_queries_read(ds, name, client):
    response = await client.get(f"/tracker/{name}.json", params={"_shape": "objects"})
    assert response.status_code == 200
    assert response.json()["rows"]


async def test_huge_tables_skip_the_full_count_unless_asked(ds, client):
    assert "tracking_events" in HUGE_TABLES
    skipped = (await client.get("/tracker/tracking_events.json")).json()
    assert skipped["filtered_table_rows_count"] is None
    assert len(skipped["rows"]) == 4
    counted = (await client.get("/tracker/tracking_events.json?_count=1")).json()
    assert counted["filtered_table_rows_count"] == 4
    assert (await client.get("/tracker/cases.json")).json()["filtered_table_rows_count"] == 4


# --- permissions and writes -------------------------------------------------------------------------


async def test_an_account_not_allowed_to_change_sees_no_status_form(ds, sample, monkeypatch):
    from tracker.dashboard import config

    monkeypatch.setitem(ds.metadata()["plugins"][config.PLUGIN_NAME], "set_status_allow", {"id": "bob"})
    html = (await SignedIn(ds, "alice").get(f"/-/case/{sample['reused']}")).text
    assert 'name="status"' not in html and "may read this case but not change it" in html
    assert 'name="status"' in (await SignedIn(ds, "bob").get(f"/-/case/{sample['reused']}")).text


async def test_anonymous_status_change_is_refused(ds, db, sample):
    response = await ds.client.post(f"/-/case/{sample['reused']}/status", data={"status": "to_report"})
    assert response.status_code == 403
    assert case_status(db, sample["reused"]) == "new"
    assert db.execute("SELECT count(*) FROM case_events WHERE kind = 'status'").fetchone()[0] == 0


async def test_anonymous_with_a_csrf_token_is_still_refused(ds, db, sample):
    page = await ds.client.get("/-/search")  # any page hands out a csrf cookie
    cookies = {"ds_csrftoken": page.cookies.get("ds_csrftoken", "")}
    response = await ds.client.post(
        f"/-/case/{sample['reused']}/status", data={"status": "to_report"}, cookies=cookies
    )
    assert response.status_code == 403
    assert case_status(db, sample["reused"]) == "new"


async def test_signed_in_write_needs_the_csrf_token(ds, db, sample):
    response = await ds.client.post(
        f"/-/case/{sample['reused']}/status", data={"status": "to_report"}, cookies=actor_cookie(ds)
    )
    assert response.status_code == 403
    assert case_status(db, sample["reused"]) == "new"


async def test_signed_in_user_changes_status_through_the_case_rules(ds, db, sample):
    path = f"/-/case/{sample['reused']}"
    token, cookies = await csrf_for(ds, path, actor_cookie(ds))
    response = await ds.client.post(
        f"{path}/status",
        data={"csrftoken": token, "status": "to_report", "note": "reuse is clear"},
        cookies=cookies,
    )
    assert response.status_code == 302
    assert response.headers["location"] == path
    assert case_status(db, sample["reused"]) == "to_report"
    event = db.execute(
        "SELECT actor, kind, from_status, to_status, note FROM case_events WHERE kind = 'status'"
    ).fetchone()
    assert event == ("alice (dashboard)", "status", "new", "to_report", "reuse is clear")
    html = (await ds.client.get(path, cookies=cookies)).text
    history = html[html.index('id="history"') :]
    assert "alice (dashboard)" in history and "reuse is clear" in history


async def test_refused_transition_changes_nothing_and_says_why(ds, db, sample):
    path = f"/-/case/{sample['reused']}"
    token, cookies = await csrf_for(ds, path, actor_cookie(ds))
    response = await ds.client.post(
        f"{path}/status", data={"csrftoken": token, "status": "processed"}, cookies=cookies
    )
    assert response.status_code == 302
    assert case_status(db, sample["reused"]) == "new"
    messages = ds.unsign(response.cookies["ds_messages"], "messages")
    assert "cannot go from 'new' to 'processed'" in messages[0][0]


async def test_closed_case_offers_no_further_status(ds, sample):
    html = (await ds.client.get(f"/-/case/{sample['closed']}", cookies=actor_cookie(ds))).text
    assert 'name="status"' not in html and "is final" in html


async def test_password_sign_in_then_change(ds, db, sample):
    login = await ds.client.get("/-/login")
    token = re.search(r'name="csrftoken" value="([^"]+)"', login.text).group(1)
    cookies = {"ds_csrftoken": login.cookies["ds_csrftoken"]}
    wrong = await ds.client.post(
        "/-/login", data={"username": "alice", "password": "nope", "csrftoken": token}, cookies=cookies
    )
    assert wrong.status_code == 401 and "ds_actor" not in wrong.cookies
    signed = await ds.client.post(
        "/-/login", data={"username": "alice", "password": PASSWORD, "csrftoken": token}, cookies=cookies
    )
    assert signed.status_code == 302
    actor = ds.unsign(signed.cookies["ds_actor"], "actor")
    assert actor["a"] == {"id": "alice"}
    html = (
        await ds.client.get(f"/-/case/{sample['pending']}", cookies={"ds_actor": signed.cookies["ds_actor"]})
    ).text
    assert 'name="status"' in html and "Processing" in html


async def test_status_route_accepts_only_post(ds, sample):
    response = await ds.client.get(f"/-/case/{sample['reused']}/status", cookies=actor_cookie(ds))
    assert response.status_code == 405


async def test_sql_cannot_write(ds, db, client):
    response = await client.get("/tracker.json", params={"sql": "UPDATE cases SET status = 'closed'"})
    assert response.status_code == 400
    assert db.execute("SELECT count(*) FROM cases WHERE status = 'closed'").fetchone()[0] == 1


async def test_database_download_is_off(ds, db_path, client):
    assert (await client.get(f"/{db_path.stem}.db")).status_code in (403, 404)


# --- the command --------------------------------------------------------------------------------------


def test_serve_help_names_loopback_default(run_cli):
    result = run_cli("serve", "--help")
    assert result.exit_code == 0
    assert "127.0.0.1" in result.output and "8001" in result.output


def test_serve_refuses_a_taken_port(run_cli):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--port", port)
    assert result.exit_code == 1
    assert "cannot listen on 127.0.0.1" in result.output


def test_serve_refuses_a_bad_port(run_cli):
    result = run_cli("serve", "--port", "70000")
    assert result.exit_code == 2
    assert "--port 70000" in result.output


def test_sign_in_lines_show_the_root_link_and_password_account():
    from tracker.dashboard.server import sign_in_lines

    lines = sign_in_lines("http://127.0.0.1:8001", "tok", env={PASSWORD_HASH_ENV: "h", USER_ENV: "bob"})
    assert lines[0].endswith("http://127.0.0.1:8001/-/auth-token?token=tok")
    assert "'bob'" in lines[1]


async def test_search_that_runs_out_of_time_says_so(ds, monkeypatch, client):
    from datasette.database import QueryInterrupted

    database = ds.get_database()
    real_execute = database.execute

    async def slow_orders(sql, *args, **kwargs):
        if "orders_fts MATCH" in sql:
            raise QueryInterrupted(None, sql, args)
        return await real_execute(sql, *args, **kwargs)

    monkeypatch.setattr(database, "execute", slow_orders)
    response = await client.get("/-/search", params={"q": "confirm"})
    assert response.status_code == 200
    assert "Too many matches to rank in time in: orders" in response.text
    assert 'id="search-messages"' in response.text


def test_triggers_queue_changes_and_refresh_folds_them_in(db, sample):
    from tracker.search_index import pending_rows, refresh_search_index

    refresh_search_index(db.conn)
    assert pending_rows(db.conn) == 0
    with db.conn:
        db.conn.execute("UPDATE orders SET item_title = 'quokka lamp' WHERE order_id = '8100000004'")
        db.conn.execute("DELETE FROM messages WHERE message_key = 'm2'")
        db.conn.execute("UPDATE cases SET updated_at = '2026-09-13T00:00:00Z'")  # not a searched column
    assert pending_rows(db.conn) == 2  # the order (old and new rowid are one) and the message

    def hits(table, words):
        return db.execute(f"SELECT count(*) FROM {table}_fts WHERE {table}_fts MATCH ?", [words]).fetchone()[
            0
        ]

    assert hits("orders", "quokka") == 0  # queued, not yet indexed
    assert refresh_search_index(db.conn) == 2
    assert hits("orders", "quokka") == 1 and hits("orders", '"Garden"') == 0
    assert hits("messages", '"Berlin"') == 0


async def test_table_search_box_reads_the_index_without_writing(ds, db, client):
    from tracker.search_index import SearchIndexer, pending_rows

    with db.conn:
        db.conn.execute(
            "INSERT INTO orders(order_id, buyer_id, seller_id, ordered_at, dest_country, item_title)"
            " VALUES ('8100000099', 'buyer-me', 'seller-new', '2026-09-20T00:00:00Z', 'DE', 'wombat plush')"
        )
    response = await client.get("/tracker/orders.json?_search=wombat&_shape=objects")
    assert response.json()["rows"] == [] and pending_rows(db.conn) == 1  # the GET wrote nothing
    assert SearchIndexer(db.conn.execute("PRAGMA database_list").fetchone()[2]).fold_once() == 1
    response = await client.get("/tracker/orders.json?_search=wombat&_shape=objects")
    assert [row["order_id"] for row in response.json()["rows"]] == ["8100000099"]


async def test_status_change_on_an_unknown_case_is_404(ds):
    token, cookies = await csrf_for(ds, "/-/case/1", actor_cookie(ds))
    response = await ds.client.post(
        "/-/case/424242/status", data={"csrftoken": token, "status": "closed"}, cookies=cookies
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "query",
    [
        "",
        "status=new",
        "status__in=new,pending,more_info",
        "category=trade_rules",
        "status__not=closed",
        "status=pending&category=trade_rules",
        "_search=false_shipment",
        "order_id=8100000001",
        "score__gt=0.6",
    ],
)
async def test_facet_counts_match_the_filtered_rows(ds, db, query, client):
    with db.conn:  # one more case so counts differ by status and category
        db.conn.execute(
            "INSERT INTO cases(order_id, status, category, reason, score, opened_at, updated_at)"
            " VALUES ('8100000002', 'new', 'ipr', 'false_shipment', 0.9, '2026-09-12T00:00:00Z', '2026-09-12T00:00:00Z')"
        )
    data = (await client.get(f"/tracker/cases.json?_shape=objects&_size=max&{query}")).json()
    for column in ("status", "category"):
        expected: dict[str, int] = {}
        for row in data["rows"]:
            expected[row[column]] = expected.get(row[column], 0) + 1
        shown = {r["value"]: r["count"] for r in data["facet_results"][column]["results"]}
        assert shown == expected, (column, query)


async def test_facets_read_the_counts_table_and_serve_start_rebuilds_it(ds, db, client):
    from tracker.dashboard.counts import rebuild_case_counts

    with db.conn:
        db.conn.execute("UPDATE case_counts SET n = 99 WHERE status = 'new'")  # a drifted count
    shown = (await client.get("/tracker/cases.json")).json()["facet_results"]["status"]["results"]
    assert {r["value"]: r["count"] for r in shown}["new"] == 99  # proof the table answered
    assert 'data-status="new"' in (await client.get("/-/my-reports")).text
    rebuild_case_counts(db.conn)
    shown = (await client.get("/tracker/cases.json")).json()["facet_results"]["status"]["results"]
    assert {r["value"]: r["count"] for r in shown}["new"] == 1
