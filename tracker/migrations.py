"""Schema by numbered migrations: `tracker init` (and every writing command) brings any file up to date.

Append a new `(name, function)` pair at the end of MIGRATIONS; never edit one that has shipped.
Each runs once, in its own transaction, and is recorded in `_migrations`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlite_utils

from tracker.errors import BadInput
from tracker.timeutil import now, to_db


def run_script(db: sqlite_utils.Database, script: str) -> None:
    """Run several statements inside the caller's transaction (executescript would commit first)."""
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            if statement.strip().strip(";").strip():
                db.conn.execute(statement)
            statement = ""
    if statement.strip():
        raise ValueError(f"incomplete SQL statement in migration: {statement.strip()[:80]}")


def _m001_core(db: sqlite_utils.Database) -> None:
    run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);

        CREATE TABLE orders (
            order_id TEXT PRIMARY KEY,
            buyer_id TEXT NOT NULL,
            seller_id TEXT NOT NULL,
            ordered_at TEXT NOT NULL,
            dest_country TEXT NOT NULL,
            dest_city TEXT,
            dest_postcode TEXT,
            tracking_number TEXT,
            tracking_number_raw TEXT,
            carrier TEXT,
            shipped_at TEXT,
            promised_days INTEGER,
            buyer_confirmed_at TEXT,
            buyer_received TEXT,
            amount REAL,
            currency TEXT,
            item_title TEXT,
            extra TEXT,
            seq INTEGER NOT NULL DEFAULT 0,
            imported_at TEXT
        );
        CREATE INDEX idx_orders_tracking ON orders(tracking_number);
        CREATE INDEX idx_orders_buyer ON orders(buyer_id);
        CREATE INDEX idx_orders_seller ON orders(seller_id);
        CREATE INDEX idx_orders_seq ON orders(seq);

        -- one row per tracking number: where it stands and when to look again
        CREATE TABLE shipments (
            tracking_number TEXT PRIMARY KEY,
            carrier TEXT,
            last_mile_number TEXT,
            state TEXT NOT NULL DEFAULT 'pending',
            last_status TEXT,
            first_seen_at TEXT,
            next_poll_at TEXT,
            last_polled_at TEXT,
            last_success_at TEXT,
            last_event_at TEXT,
            delivered_seen_at TEXT,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            not_found_count INTEGER NOT NULL DEFAULT 0,
            last_error TEXT
        );
        CREATE INDEX idx_shipments_due ON shipments(state, next_poll_at);
        CREATE INDEX idx_shipments_carrier ON shipments(carrier);

        CREATE TABLE tracking_events (
            id INTEGER PRIMARY KEY,
            tracking_number TEXT NOT NULL,
            occurred_at TEXT NOT NULL,
            status TEXT NOT NULL,
            description TEXT,
            location TEXT,
            city TEXT,
            postcode TEXT,
            country TEXT,
            carrier TEXT,
            raw_code TEXT,
            source TEXT NOT NULL DEFAULT 'import',
            snapshot_sha256 TEXT,
            extra TEXT,
            event_key TEXT NOT NULL UNIQUE,
            ingested_at TEXT
        );
        CREATE INDEX idx_events_tracking ON tracking_events(tracking_number, occurred_at);
        CREATE INDEX idx_events_status ON tracking_events(status);

        CREATE TABLE messages (
            id INTEGER PRIMARY KEY,
            order_id TEXT NOT NULL,
            sender TEXT NOT NULL,
            sent_at TEXT NOT NULL,
            text TEXT NOT NULL,
            extra TEXT,
            message_key TEXT NOT NULL UNIQUE
        );
        CREATE INDEX idx_messages_order ON messages(order_id, sent_at);

        -- raw carrier pages kept as evidence (zlib-compressed), addressed by SHA-256 of the raw body
        CREATE TABLE page_snapshots (
            sha256 TEXT PRIMARY KEY,
            tracking_number TEXT NOT NULL,
            carrier TEXT,
            url TEXT,
            fetched_at TEXT NOT NULL,
            http_status INTEGER,
            content_type TEXT,
            size INTEGER,
            body BLOB
        );
        CREATE INDEX idx_snapshots_tracking ON page_snapshots(tracking_number, fetched_at);

        CREATE TABLE poll_log (
            id INTEGER PRIMARY KEY,
            tracking_number TEXT NOT NULL,
            carrier TEXT,
            host TEXT,
            started_at TEXT NOT NULL,
            http_status INTEGER,
            duration_ms INTEGER,
            outcome TEXT NOT NULL,
            error TEXT,
            events_added INTEGER NOT NULL DEFAULT 0,
            snapshot_sha256 TEXT
        );
        CREATE INDEX idx_poll_log_tracking ON poll_log(tracking_number, started_at);

        CREATE TABLE flags (
            id INTEGER PRIMARY KEY,
            order_id TEXT NOT NULL,
            code TEXT NOT NULL,
            severity TEXT NOT NULL,
            explanation TEXT NOT NULL,
            evidence TEXT NOT NULL DEFAULT '{}',
            detected_at TEXT NOT NULL,
            rule_version TEXT NOT NULL,
            resolved_at TEXT,
            UNIQUE(order_id, code)
        );
        CREATE INDEX idx_flags_code ON flags(code, resolved_at);

        CREATE TABLE scores (
            order_id TEXT PRIMARY KEY,
            score REAL NOT NULL,
            codes TEXT NOT NULL DEFAULT '',
            reasons TEXT NOT NULL DEFAULT '[]',
            model_id TEXT,
            scored_at TEXT NOT NULL
        );
        CREATE INDEX idx_scores_score ON scores(score);

        CREATE TABLE cases (
            id INTEGER PRIMARY KEY,
            order_id TEXT NOT NULL UNIQUE,
            status TEXT NOT NULL,
            category TEXT NOT NULL,
            reason TEXT,
            score REAL,
            flag_codes TEXT NOT NULL DEFAULT '',
            opened_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            next_deadline_at TEXT,
            next_deadline_name TEXT,
            dispute_opened_at TEXT,
            dispute_escalated_at TEXT,
            dispute_closed_at TEXT,
            complaint_submitted_at TEXT,
            decision_at TEXT,
            outcome TEXT,
            coupon_value REAL,
            status_set_by_person INTEGER NOT NULL DEFAULT 0
        );
        CREATE INDEX idx_cases_status ON cases(status);
        CREATE INDEX idx_cases_category ON cases(category);
        CREATE INDEX idx_cases_deadline ON cases(next_deadline_at);

        CREATE TABLE case_events (
            id INTEGER PRIMARY KEY,
            case_id INTEGER NOT NULL REFERENCES cases(id),
            at TEXT NOT NULL,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            from_status TEXT,
            to_status TEXT,
            note TEXT,
            data TEXT
        );
        CREATE INDEX idx_case_events_case ON case_events(case_id, at);

        CREATE TABLE models (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            created_at TEXT NOT NULL,
            path TEXT,
            sha256 TEXT NOT NULL,
            metadata TEXT NOT NULL DEFAULT '{}',
            active INTEGER NOT NULL DEFAULT 0
        );
        """
    )


def _m002_cases_labels_deadlines(db: sqlite_utils.Database) -> None:
    """Case tracker (issue 6): label tables the dashboard joins, per-case deadlines, two dispute columns."""
    run_script(
        db,
        """
        ALTER TABLE cases ADD COLUMN coupon_issued_at TEXT;
        ALTER TABLE cases ADD COLUMN timer_set TEXT;
        CREATE TABLE case_statuses (
            id TEXT PRIMARY KEY, label TEXT NOT NULL, description TEXT, filter TEXT NOT NULL,
            next TEXT NOT NULL DEFAULT '', terminal INTEGER NOT NULL DEFAULT 0,
            deadlines INTEGER NOT NULL DEFAULT 1, position INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE case_categories (id TEXT PRIMARY KEY, label TEXT NOT NULL, position INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE case_reasons (
            id TEXT PRIMARY KEY, label TEXT NOT NULL, category TEXT NOT NULL,
            flags TEXT NOT NULL DEFAULT '', position INTEGER NOT NULL DEFAULT 0
        );
        -- every deadline of a case; the next one at any moment is MIN(due_at) WHERE due_at > now
        CREATE TABLE case_deadlines (
            case_id INTEGER NOT NULL REFERENCES cases(id),
            name TEXT NOT NULL,
            due_at TEXT NOT NULL,
            label TEXT,
            timer_set TEXT,
            PRIMARY KEY (case_id, name)
        );
        CREATE INDEX idx_case_deadlines_due ON case_deadlines(due_at);
        CREATE INDEX idx_case_deadlines_case ON case_deadlines(case_id, due_at);
        """
    )
    from tracker.cases.settings import publish_settings

    publish_settings(db, strict=False)  # a broken cases.toml must not block unrelated commands


# Full-text search for the dashboard: the columns each table's `<table>_fts` index holds.
SEARCH_INDEXES: dict[str, tuple[str, ...]] = {
    "cases": ("order_id", "reason", "flag_codes", "outcome"),
    "orders": ("order_id", "tracking_number", "seller_id", "item_title"),
    "messages": ("order_id", "text"),
}


def _m003_dashboard_search(db: sqlite_utils.Database) -> None:
    """Dashboard (issue 7): full-text search kept current by triggers, and indexes for its facets and sorts.

    The triggers only queue the changed rowid (a B-tree insert); the dashboard folds the queue into the
    FTS5 index in one statement (tracker.search_index). An FTS5 insert inside a
    per-row trigger costs ~100 µs (FTS5 flushes at every statement savepoint): 5-10x slower imports.
    """
    for table, columns in SEARCH_INDEXES.items():
        cols = ", ".join(columns)
        run_script(
            db,
            f"""
            CREATE VIRTUAL TABLE {table}_fts USING fts5({cols});
            INSERT INTO {table}_fts(rowid, {cols}) SELECT rowid, {cols} FROM {table};
            CREATE TABLE {table}_fts_pending (id INTEGER PRIMARY KEY);
            CREATE TRIGGER {table}_fts_queue_insert AFTER INSERT ON {table} BEGIN
              INSERT OR IGNORE INTO {table}_fts_pending(id) VALUES (new.rowid);
            END;
            CREATE TRIGGER {table}_fts_queue_update AFTER UPDATE OF {cols} ON {table} BEGIN
              INSERT OR IGNORE INTO {table}_fts_pending(id) VALUES (old.rowid);
              INSERT OR IGNORE INTO {table}_fts_pending(id) VALUES (new.rowid);
            END;
            CREATE TRIGGER {table}_fts_queue_delete AFTER DELETE ON {table} BEGIN
              INSERT OR IGNORE INTO {table}_fts_pending(id) VALUES (old.rowid);
            END;
            """,
        )
    run_script(
        db,
        """
        CREATE INDEX IF NOT EXISTS idx_cases_status_deadline ON cases(status, next_deadline_at);
        CREATE INDEX IF NOT EXISTS idx_cases_category_status ON cases(category, status, next_deadline_at);
        CREATE INDEX IF NOT EXISTS idx_cases_opened ON cases(opened_at, status, category);
        """,
    )


def _m004_poll_due_index(db: sqlite_utils.Database) -> None:
    """Polling (issue 3): the due-shipment scan reads this index in next_poll_at order."""
    run_script(db, "CREATE INDEX idx_shipments_next_poll ON shipments(next_poll_at, tracking_number);")


def _m005_rules_deadlines(db: sqlite_utils.Database) -> None:
    """Detection rules (issue 4): when each order next needs a time-based rule re-checked."""
    run_script(
        db,
        """
        CREATE TABLE rule_deadlines (order_id TEXT PRIMARY KEY, due_at TEXT NOT NULL);
        CREATE INDEX idx_rule_deadlines_due ON rule_deadlines(due_at);
        """,
    )


def _m006_classifier_caches(db: sqlite_utils.Database) -> None:
    # the classifier's derived data, refreshed only where its inputs changed (tracker/scoring.py):
    # each seller message's pressure, once per message model; each tracking number's event aggregates
    run_script(
        db,
        """
        CREATE TABLE IF NOT EXISTS message_pressure (
            message_id INTEGER PRIMARY KEY,
            model TEXT NOT NULL,
            probability REAL NOT NULL
        );
        CREATE TABLE shipment_facts (
            tracking_number TEXT PRIMARY KEY,
            n_events INTEGER, n_scans INTEGER, n_transit INTEGER, n_export INTEGER, n_import INTEGER,
            first_event_jd REAL, first_scan_jd REAL, last_scan_jd REAL, delivered_jd REAL, max_event_id INTEGER,
            delivered_country TEXT, delivered_city TEXT, delivered_postcode TEXT
        );
        """,
    )


def _m007_dashboard_case_counts(db: sqlite_utils.Database) -> None:
    """Dashboard (issue 7): cases per (status, category), kept by triggers, for My Reports and the facets.

    Counting 100k cases twice per page view costs ~50 ms; reading ~40 rows costs nothing.
    `tracker serve` rebuilds it at start, so a count can never drift for long.
    """
    run_script(
        db,
        """
        CREATE TABLE case_counts (
            status TEXT NOT NULL, category TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (status, category)
        ) WITHOUT ROWID;
        INSERT INTO case_counts(status, category, n) SELECT status, category, count(*) FROM cases GROUP BY 1, 2;
        CREATE TRIGGER case_counts_insert AFTER INSERT ON cases BEGIN
          INSERT INTO case_counts(status, category, n) VALUES (new.status, new.category, 1)
            ON CONFLICT(status, category) DO UPDATE SET n = n + 1;
        END;
        CREATE TRIGGER case_counts_delete AFTER DELETE ON cases BEGIN
          UPDATE case_counts SET n = n - 1 WHERE status = old.status AND category = old.category;
        END;
        CREATE TRIGGER case_counts_update AFTER UPDATE OF status, category ON cases BEGIN
          UPDATE case_counts SET n = n - 1 WHERE status = old.status AND category = old.category;
          INSERT INTO case_counts(status, category, n) VALUES (new.status, new.category, 1)
            ON CONFLICT(status, category) DO UPDATE SET n = n + 1;
        END;
        """,
    )

# `scores` is indexed by score only from this score on (idx_scores_high, a partial index; migration 008 writes
# the same number): queries that want the high scores say `score >= 0.05` as well, and SQLite then uses it
SCORES_INDEXED_FROM = 0.05


def _m008_scores_partial_index(db: sqlite_utils.Database) -> None:
    """Scoring (issue 5): the score index holds the scores of at least 0.05 only (4% of orders in the generated
    world). Cases open far above that, and a full rescore of a million orders rebuilds an index of 40k rows
    (0.1 s) instead of one of a million (0.5 to 2 s, on the critical path of the rescore)."""
    run_script(
        db,
        """
        DROP INDEX IF EXISTS idx_scores_score;
        CREATE INDEX idx_scores_high ON scores(score) WHERE score >= 0.05;
        """,
    )


def _m009_never_polled_shipments_due_at_once(db: sqlite_utils.Database) -> None:
    """Polling (issue 15): a shipment never polled is due at once, whatever --as-of a run uses; shipments
    imported before this stamped the import's wall clock instead."""
    from tracker.timeutil import DUE_AT_ONCE

    db.conn.execute("UPDATE shipments SET next_poll_at = ? WHERE last_polled_at IS NULL AND state = 'pending'",
                    [DUE_AT_ONCE])


def _m010_pseudonym_key_file(db: sqlite_utils.Database) -> None:
    """Security (issue 16): the pseudonym key leaves `meta` (Datasette serves every table) for a file beside the
    database, mode 0600; the same key, so packets made before stay verifiable."""
    from tracker.cases.privacy import move_key_out_of_meta

    move_key_out_of_meta(db)


def _m011_shipment_facts_one_definition(db: sqlite_utils.Database) -> None:
    """Detection (issue 17): `shipment_facts` holds every fact `detectors.facts` defines, read by rules and
    classifier alike. The table is derived from the events: made anew (the next detect fills it), not altered."""
    run_script(
        db,
        """
        DROP TABLE IF EXISTS shipment_facts;
        CREATE TABLE shipment_facts (
            tracking_number TEXT PRIMARY KEY,
            n_events INTEGER, n_scans INTEGER, n_transit INTEGER, n_export INTEGER, n_import INTEGER,
            n_customs INTEGER, n_linehaul INTEGER, n_delivered INTEGER,
            first_event_jd REAL, last_event_jd REAL, first_scan_jd REAL, last_scan_jd REAL, delivered_jd REAL,
            delivered_country TEXT, delivered_city TEXT, delivered_postcode TEXT,
            last_scan_status TEXT, last_scan_raw_code TEXT, last_scan_country TEXT, last_scan_city TEXT,
            last_scan_postcode TEXT,
            locality_min TEXT, locality_max TEXT, country_side_min TEXT, country_side_max TEXT,
            max_event_id INTEGER
        );
        DELETE FROM meta WHERE key IN ('shipment_facts_event_id', 'shipment_facts_definition');
        """,
    )


def _m012_scans_without_status_index(db: sqlite_utils.Database) -> None:
    """Imports (issue 19): no query reads scans by status alone (each asks for a number's scans, by the number
    index), and keeping that index cost about a fifth of an events import."""
    run_script(db, "DROP INDEX IF EXISTS idx_events_status;")


def _m013_seller_books(db: sqlite_utils.Database) -> None:
    """Incremental scoring (issue 19): each seller's book of orders (`tracker.detection.seller_books`), so a run
    rescores only the orders whose model input moved. Empty until the next detect scores every order."""
    run_script(db, "CREATE TABLE seller_books (seller_id TEXT PRIMARY KEY, orders BLOB NOT NULL, median REAL, "
                   "median_relative REAL, bins BLOB);")


def _m014_seller_books_in_parts(db: sqlite_utils.Database) -> None:
    """Incremental scoring (issue 19): the seller books as parts, a whole write and the changes appended after it
    (`tracker.detection.seller_books`), instead of one row per seller rewritten whenever one of its orders changed.
    The books are derived from the scores' run: made anew (the next detect scores every order), not altered."""
    run_script(db, "DROP TABLE IF EXISTS seller_books;\nCREATE TABLE seller_books (part INTEGER PRIMARY KEY, "
                   "sellers TEXT NOT NULL, median BLOB NOT NULL, seller BLOB NOT NULL, entries BLOB NOT NULL, "
                   "bins BLOB);")


def _m015_search_indexes_read_their_tables(db: sqlite_utils.Database) -> None:
    """Search (issue 19): each `<table>_fts` an external-content index of its table, without a copy of the searched
    columns of its own (`content="<table>"`: snippets are cut from the table's row). A fold of a new million-order
    store writes a fifth less, and the index holds half the pages.

    Such an index can only forget a row by its indexed values, so the queue keeps them: a row's first change after
    it was indexed queues its old values (`indexed` = 1), a new row queues its rowid alone (`indexed` = 0), and
    a later change of a queued row keeps what was queued first (INSERT OR IGNORE). The rows queued now are made
    not indexed (they are folded anew); the others are indexed anew from the table, as they are.
    """
    for table, columns in SEARCH_INDEXES.items():
        cols = ", ".join(columns)
        old = ", ".join(f"old.{c}" for c in columns)
        run_script(
            db,
            f"""
            DROP TRIGGER IF EXISTS {table}_fts_queue_insert;
            DROP TRIGGER IF EXISTS {table}_fts_queue_update;
            DROP TRIGGER IF EXISTS {table}_fts_queue_delete;
            DROP TABLE IF EXISTS {table}_fts;
            CREATE TEMP TABLE search_queued AS SELECT id FROM {table}_fts_pending;
            DROP TABLE {table}_fts_pending;
            CREATE TABLE {table}_fts_pending (id INTEGER PRIMARY KEY, indexed INTEGER NOT NULL DEFAULT 0, {cols});
            INSERT INTO {table}_fts_pending(id) SELECT id FROM temp.search_queued;
            DROP TABLE temp.search_queued;
            CREATE VIRTUAL TABLE {table}_fts USING fts5({cols}, content="{table}");
            INSERT INTO {table}_fts(rowid, {cols})
              SELECT rowid, {cols} FROM {table} WHERE rowid NOT IN (SELECT id FROM {table}_fts_pending) ORDER BY rowid;
            CREATE TRIGGER {table}_fts_queue_insert AFTER INSERT ON {table} BEGIN
              INSERT OR IGNORE INTO {table}_fts_pending(id) VALUES (new.rowid);
            END;
            CREATE TRIGGER {table}_fts_queue_update AFTER UPDATE OF {cols} ON {table} BEGIN
              INSERT OR IGNORE INTO {table}_fts_pending(id, indexed, {cols}) VALUES (old.rowid, 1, {old});
              INSERT OR IGNORE INTO {table}_fts_pending(id) VALUES (new.rowid);
            END;
            CREATE TRIGGER {table}_fts_queue_delete AFTER DELETE ON {table} BEGIN
              INSERT OR IGNORE INTO {table}_fts_pending(id, indexed, {cols}) VALUES (old.rowid, 1, {old});
            END;
            """,
        )


MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("001_core", _m001_core),
    ("002_cases_labels_deadlines", _m002_cases_labels_deadlines),
    ("003_dashboard_search", _m003_dashboard_search),
    ("004_poll_due_index", _m004_poll_due_index),
    ("005_rules_deadlines", _m005_rules_deadlines),
    ("006_classifier_caches", _m006_classifier_caches),
    ("007_dashboard_case_counts", _m007_dashboard_case_counts),
    ("008_scores_partial_index", _m008_scores_partial_index),
    ("009_never_polled_shipments_due_at_once", _m009_never_polled_shipments_due_at_once),
    ("010_pseudonym_key_file", _m010_pseudonym_key_file),
    ("011_shipment_facts_one_definition", _m011_shipment_facts_one_definition),
    ("012_scans_without_status_index", _m012_scans_without_status_index),
    ("013_seller_books", _m013_seller_books),
    ("014_seller_books_in_parts", _m014_seller_books_in_parts),
    ("015_search_indexes_read_their_tables", _m015_search_indexes_read_their_tables),
    # append new migrations here
]


def unknown_migrations(conn: sqlite3.Connection) -> list[str]:
    """Migrations recorded in the store that this code does not know: a newer tracker made it."""
    try:
        done = [row[0] for row in conn.execute("SELECT name FROM _migrations ORDER BY applied_at, name")]
    except sqlite3.OperationalError:  # no _migrations table yet
        return []
    known = {name for name, _ in MIGRATIONS}
    return [name for name in done if name not in known]


def refuse_newer_store(conn: sqlite3.Connection, label: str) -> None:
    """Bad input when a newer tracker made the store: this code would misread it, or write it wrongly."""
    unknown = unknown_migrations(conn)
    if unknown:
        raise BadInput(f"{label}: made by a newer tracker (migration {unknown[-1]}); upgrade tracker")


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply every migration the file lacks; return the names applied.

    A store with a migration this code does not know is refused (BadInput) before anything is written.
    """
    conn = db.conn
    file = conn.execute("PRAGMA database_list").fetchone()[2]
    refuse_newer_store(conn, file or "the database")
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        with conn:
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
            # re-check under the write lock: another process may have migrated meanwhile
            if conn.execute("SELECT 1 FROM _migrations WHERE name = ?", [name]).fetchone():
                continue
            step(db)
            conn.execute("INSERT INTO _migrations(name, applied_at) VALUES (?, ?)", [name, to_db(now())])
        applied.append(name)
    return applied
