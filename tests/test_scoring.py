"""Scores in the store: written with reasons, listed by `tracker scores`, rescored after a new model;
`tracker train` / `tracker evaluate` from a labels file or from closed cases, and their input errors."""

from __future__ import annotations

import json

import pytest
from model_fixtures import AS_OF, build_store

from tracker.detection import scoring, training
from tracker.timeutil import to_db

pytestmark = pytest.mark.usefixtures("quick_model")  # a smaller booster: each test trains in seconds


@pytest.fixture
def labelled(db, tmp_path):
    labels = build_store(db, 300)
    path = tmp_path / "labels.csv"
    labels.to_csv(path, index=False)
    return labels, path


def test_train_then_score_writes_every_tracked_order_with_reasons(db, labelled, run_cli):
    labels, path = labelled
    result = run_cli("train", "--labels", path, "--as-of", to_db(AS_OF))
    assert result.exit_code == 0, result.output
    assert "trained clf-" in result.output
    scored = scoring.score_orders(db, set(), AS_OF)
    assert len(scored) == len(labels)
    rows = {r[0]: r for r in db.execute("SELECT order_id, score, codes, reasons, model_id FROM scores")}
    fraud = labels.loc[labels["fraud"] == 1, "order_id"]
    top = max(fraud, key=lambda o: rows[o][1])
    assert rows[top][1] > 0.5
    reasons = json.loads(rows[top][3])
    assert reasons and {"feature", "text", "weight"} <= set(reasons[0])
    assert all(r["weight"] > 0 for r in reasons)
    flagged = db.execute("SELECT order_id, group_concat(code) FROM flags GROUP BY order_id").fetchall()
    for order_id, codes in flagged[:20]:
        assert sorted(rows[order_id][2].split(",")) == sorted(codes.split(","))

    listing = run_cli("scores", "--format", "json")
    assert listing.exit_code == 0
    listed = json.loads(listing.output)
    assert len(listed) == len(labels)
    assert set(listed[0]) == {"order_id", "score", "codes"}
    assert listed[0]["score"] >= listed[-1]["score"]


def test_new_model_rescores_everything_else_only_what_changed(db, labelled):
    labels, _ = labelled
    first, _ = training.train_from_labels(db, labels, "test", AS_OF, with_evaluation=False)
    assert len(scoring.score_orders(db, set(), AS_OF)) == len(labels)
    assert scoring.score_orders(db, set(), AS_OF) == set()  # same model, nothing changed
    one = labels["order_id"].iloc[5]
    again = scoring.score_orders(db, {one}, AS_OF)
    seller = db.execute("SELECT seller_id FROM orders WHERE order_id = ?", [one]).fetchone()[0]
    sellers = {
        r[0]
        for r in db.execute(
            f"SELECT DISTINCT seller_id FROM orders WHERE order_id IN ({','.join('?' * len(again))})",
            list(again),
        )
    }
    assert one in again and sellers == {seller}

    second, _ = training.train_from_labels(db, labels, "test", AS_OF, seed=9, with_evaluation=False)
    assert second != first
    assert len(scoring.score_orders(db, set(), AS_OF)) == len(labels)
    assert {r[0] for r in db.execute("SELECT DISTINCT model_id FROM scores")} == {second}
    active = db.execute("SELECT id FROM models WHERE active = 1").fetchall()
    assert active == [(second,)]


def test_orders_without_tracking_number_get_no_score(db, labelled):
    labels, _ = labelled
    training.train_from_labels(db, labels, "test", AS_OF, with_evaluation=False)
    with db.conn:
        db.execute("UPDATE orders SET tracking_number = NULL WHERE order_id = 'O00003'")
    scored = scoring.score_orders(db, set(), AS_OF, full=True)
    assert "O00003" not in scored
    assert db.execute("SELECT count(*) FROM scores WHERE order_id = 'O00003'").fetchone()[0] == 0


def test_train_rejects_unknown_orders_and_bad_labels_with_line_numbers(db, labelled, run_cli, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("order_id,fraud\nO00001,1\nO00002,maybe\nNOPE,0\nO00004,yes\nO00001,0\n")
    result = run_cli("train", "--labels", bad)
    assert result.exit_code == 2
    errors = result.stderr.strip().splitlines()
    assert any("line 3" in e and "maybe" in e for e in errors), errors
    assert any("line 4" in e and "NOPE" in e and "not in the database" in e for e in errors), errors
    assert any("line 6" in e and "differently" in e for e in errors), errors
    assert "Traceback" not in result.output

    missing = tmp_path / "missing.csv"
    missing.write_text("order,label\nO00001,1\n")
    result = run_cli("train", "--labels", missing)
    assert result.exit_code == 2 and "missing column" in result.stderr and "line 1" in result.stderr
    assert run_cli("train", "--labels", tmp_path / "absent.csv").exit_code == 2


def test_train_from_cases_needs_enough_closed_cases(db, labelled, run_cli):
    labels, _ = labelled
    result = run_cli("train")
    assert result.exit_code == 2
    assert "too few labels" in result.stderr and "0 labelled orders" in result.stderr
    now = to_db(AS_OF)
    rows = []
    for i, (order_id, fraud) in enumerate(labels[["order_id", "fraud"]].itertuples(index=False)):
        if fraud:
            rows.append((i, order_id, "processed", "upheld"))
        elif i % 4 == 0:
            rows.append((i, order_id, "dismissed", None))
        elif i % 4 == 1:
            rows.append((i, order_id, "processed", "rejected"))
    with db.conn:
        db.conn.executemany(
            "INSERT INTO cases(id, order_id, status, category, outcome, opened_at, updated_at) "
            "VALUES (?, ?, ?, 'trade_rules', ?, ?, ?)",
            [(*r, now, now) for r in rows],
        )
    result = run_cli("train", "--as-of", now)
    assert result.exit_code == 0, result.output
    n_fraud = int(labels["fraud"].sum())
    assert f"on {len(rows)} labelled orders ({n_fraud} fraud) from closed cases" in result.output


def test_evaluate_prints_model_and_flag_count_figures(labelled, run_cli):
    _, path = labelled
    result = run_cli("evaluate", "--labels", path, "--as-of", to_db(AS_OF))
    assert result.exit_code == 0, result.output
    for needle in ("PR-AUC", "precision at 20", "local model", "shipped", "flag count", "recall fast", "recall reuse",
                   "shipped model on generated worlds it never saw", "settings outside them"):
        assert needle in result.output
    as_json = json.loads(
        run_cli("evaluate", "--labels", path, "--as-of", to_db(AS_OF), "--format", "json").output
    )
    assert as_json["model"]["pr_auc"] >= as_json["flag_count"]["pr_auc"]
    assert as_json["n_train"] + as_json["n_test"] == 300


def test_caches_follow_new_events_and_score_each_message_once(db, labelled, monkeypatch):
    from tracker.detection import shipment_facts
    from tracker.events import insert_events

    assert (
        shipment_facts.refresh(db).numbers
        == db.execute("SELECT count(DISTINCT tracking_number) FROM tracking_events").fetchone()[0]
    )
    assert shipment_facts.refresh(db).numbers == 0
    number = db.execute("SELECT tracking_number FROM orders WHERE order_id = 'O00007'").fetchone()[0]
    before = db.execute("SELECT n_events FROM shipment_facts WHERE tracking_number = ?", [number]).fetchone()[
        0
    ]
    with db.conn:
        insert_events(
            db,
            [
                {
                    "tracking_number": number,
                    "occurred_at": to_db(AS_OF),
                    "status": "in_transit",
                    "description": "arrived at hub",
                    "raw_code": "LH_ARRIVE",
                    "country": "FR",
                    "source": "poll",
                }
            ],
        )
    assert shipment_facts.refresh(db).numbers == 1
    after = db.execute("SELECT n_events FROM shipment_facts WHERE tracking_number = ?", [number]).fetchone()[
        0
    ]
    assert after == before + 1

    calls = []
    real = scoring.score_messages
    monkeypatch.setattr(scoring, "score_messages", lambda m, p: calls.append(len(m)) or real(m, p))
    scorer = scoring.message_scorer(db)
    messages = __import__("pandas").DataFrame(
        db.execute("SELECT id, order_id, text FROM messages WHERE sender = 'seller'").fetchall(),
        columns=["id", "order_id", "text"],
    )
    first = scorer(messages)
    second = scorer(messages)
    assert calls == [len(messages)]
    assert (first == second).all() and ((first >= 0) & (first <= 1)).all()
    # the look-up left no transaction open: it would pin this connection to a snapshot older than the
    # write a scoring child process commits next
    assert not db.conn.in_transaction
