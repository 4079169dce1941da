"""Run the dashboard: Datasette under uvicorn, the way Datasette's own `serve` does, loopback by default."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path

from tracker.dashboard.access import HOSTS_ENV, LOOPBACK_HOSTS
from tracker.dashboard.config import DEFAULT_USER, PASSWORD_HASH_ENV, USER_ENV, sign_in_accounts
from tracker.errors import BadInput, RunFailure

# how long the start-up fold waits for an import's write lock before serving without it
START_LOCK_WAIT_MS = 3000


def _check_port(host: str, port: int) -> None:
    """Fail with one clear line when the address is taken, before uvicorn prints a traceback-ish log."""
    if not 0 <= port <= 65535:
        raise BadInput(f"--port {port}: not a TCP port (0-65535)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise RunFailure(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def sign_in_lines(base_url: str, root_token: str, env: dict[str, str] | None = None) -> list[str]:
    """What `tracker serve` prints about signing in: the one-time root link, and the password account."""
    lines = [f"Sign in (one-time link, as root; it takes you straight in): {base_url}/-/auth-token?token={root_token}"]
    accounts = sign_in_accounts(env)
    if accounts:
        user = next(iter(accounts))
        lines.append(f"  or sign in at {base_url}/-/login as {user!r} (password hash from ${PASSWORD_HASH_ENV})")
    else:
        lines.append(
            f"  or set ${PASSWORD_HASH_ENV} (from 'datasette hash-password') and optionally ${USER_ENV} "
            f"(default {DEFAULT_USER!r}) for a password sign-in at {base_url}/-/login"
        )
    return lines


def serve(
    db_path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8001,
    public_read: bool = False,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve the dashboard over `db_path` until interrupted; `tracker serve` and `tracker demo` call this.

    Creates or migrates the database, indexes the rows queued for search, recounts `case_counts`, prints
    the address and how to sign in through `echo`, then runs uvicorn (the port is checked first) with the
    search indexer folding newly queued rows in the background.
    """
    import uvicorn

    from tracker.dashboard import make_datasette
    from tracker.dashboard.access import access_of
    from tracker.dashboard.counts import rebuild_case_counts
    from tracker.db import open_db
    from tracker.search_index import SearchIndexer, refresh_search_index

    _check_port(host, port)
    db = open_db(db_path)
    folded = 0
    try:
        db.conn.execute(f"PRAGMA busy_timeout = {START_LOCK_WAIT_MS}")
        folded = refresh_search_index(db.conn)  # index what changed since the last fold, before serving
        rebuild_case_counts(db.conn)
    except sqlite3.OperationalError as exc:  # an import holds the write lock: serve now, catch up later
        echo(f"Search index and case counts not refreshed ({exc}); the indexer folds the queue once it can.")
    finally:
        db.close()
    if folded:
        echo(f"Search index: {folded:,} changed rows indexed.")
    datasette = make_datasette(db_path, public_read=public_read, host=host)
    shown_host = f"[{host}]" if ":" in host else host
    base_url = f"http://{shown_host}:{port}"
    echo(f"Tracker dashboard: {base_url}/  (My Reports: {base_url}/-/my-reports)")
    for line in sign_in_lines(base_url, datasette._root_token):  # Datasette's own --root link, as its cli prints
        echo(line)
    if public_read:
        echo(f"Warning: --public-read: anyone who can reach {base_url} can read the cases without signing in "
             "(buyers only as pseudonyms; no SQL, messages or stored carrier pages); only signed-in users change "
             "anything.")
    if host not in LOOPBACK_HOSTS:
        hosts = ", ".join(sorted(access_of(datasette).allowed_hosts))
        echo(f"Warning: listening on {host}: anyone who can reach this address can try to sign in. The dashboard "
             f"answers only to the host names {hosts}; add the name people use in data/dashboard.toml "
             f"[access] allowed_hosts or ${HOSTS_ENV}.")
    echo("Press Ctrl+C to stop.")
    indexer = SearchIndexer(db_path)
    indexer.start()
    try:
        uvicorn.run(datasette.app(), host=host, port=port, log_level="warning", lifespan="on", workers=1)
    finally:
        indexer.stop()
