"""Who may read what on the dashboard: the policy every request meets before Datasette sees it.

- Every request must name an allowed Host (127.0.0.1, localhost, ::1, the --host value, and the names in
  data/dashboard.toml or $TRACKER_DASHBOARD_HOSTS); anything else gets 421, so a DNS-rebinding page
  cannot read a loopback dashboard through a visitor's browser.
- By default everything needs sign-in: tables, SQL, JSON and CSV (streamed or not), search, charts,
  stored carrier pages, metadata. Only the sign-in doors and the static files their page uses are open.
- `tracker serve --public-read` lets anyone read, never write: the dashboard's pages (buyers shown only as
  keyed pseudonyms, no chat, no stored pages), the tables that name no person (PUBLIC_TABLES), the canned
  queries and the charts' own SQL; no other SQL and no table argument that reaches another table.

The settings (accounts, hosts, public read) live in an `Access` kept beside the Datasette object, never in
its metadata: Datasette serves its metadata at /-/metadata.json.
"""

from __future__ import annotations

import os
import re
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from weakref import WeakKeyDictionary

from datasette.utils.asgi import Response

HOSTS_ENV = "TRACKER_DASHBOARD_HOSTS"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
# open to everyone: the sign-in page and what it needs
PUBLIC_PATHS = frozenset({"/-/login", "/-/logout", "/-/auth-token", "/favicon.ico"})
PUBLIC_PREFIXES = ("/-/static/", "/-/static-plugins/")  # stylesheets and scripts: no data in them
# the doors whose failures count towards the per-address limit
SIGN_IN_DOORS = frozenset({("POST", "/-/login"), ("GET", "/-/auth-token")})

# --public-read: the tables an anonymous reader may open (none names a buyer or holds an address)
PUBLIC_TABLES = frozenset(
    {"cases", "case_statuses", "case_categories", "case_reasons", "case_counts", "case_deadlines", "scores"}
)
# ...and the places they may not: raw carrier pages (a recipient's name and address), Datasette's own
# internals (paths, running SQL, permission logs)
PUBLIC_READ_DENIED = ("/-/snapshot/", "/_internal", "/-/threads", "/-/permissions", "/-/allow-debug", "/-/messages")
# table-page arguments that reach past the table being read: a raw WHERE, another table, another index
REACHING_ARGS = ("_where", "_through", "_fts_table", "_fts_pk")


def normalise_sql(sql: str) -> str:
    return " ".join(sql.split())


@dataclass
class SignInLimiter:
    """Failed sign-ins per client address in a sliding window; past the limit, how long to wait."""

    max_failures: int = 5
    window_seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: dict[str, deque[float]] = field(default_factory=dict)

    def retry_after(self, client: str) -> int:
        """Seconds until `client` may try again; 0 when it may now."""
        recent = self._recent(client)
        if len(recent) < self.max_failures:
            return 0
        return max(1, int(recent[0] + self.window_seconds - self.clock()) + 1)

    def failed(self, client: str) -> None:
        self._recent(client).append(self.clock())

    def _recent(self, client: str) -> deque[float]:
        recent = self.failures.setdefault(client, deque())
        cutoff = self.clock() - self.window_seconds
        while recent and recent[0] <= cutoff:
            recent.popleft()
        if len(self.failures) > 10_000:  # a flood of addresses must not grow memory without bound
            for other in [c for c, times in self.failures.items() if not times and c != client]:
                del self.failures[other]
        return recent


@dataclass
class Access:
    """The dashboard's access settings: kept in Python, never in Datasette's (served) metadata."""

    accounts: dict[str, str] = field(default_factory=dict)  # user name -> password hash
    public_read: bool = False
    allowed_hosts: frozenset[str] = frozenset(LOOPBACK_HOSTS)
    session_seconds: int = 12 * 3600
    limiter: SignInLimiter = field(default_factory=SignInLimiter)
    chart_queries: frozenset[str] = frozenset()  # the SQL anonymous readers' charts may run
    revoked: dict[str, float] = field(default_factory=dict)  # signed-out cookie -> when it expires anyway

    @classmethod
    def configure(
        cls,
        *,
        accounts: dict[str, str],
        public_read: bool = False,
        host: str | None = None,
        extra_hosts: Iterable[str] = (),
        env: dict[str, str] | None = None,
        chart_queries: Iterable[str] = (),
    ) -> Access:
        """From data/dashboard.toml ([access]), the environment and the command line."""
        from tracker.config import load

        settings = load("dashboard").get("access", {})
        env = os.environ if env is None else env
        hosts = {*LOOPBACK_HOSTS, *settings.get("allowed_hosts", []), *extra_hosts}
        hosts |= {h.strip() for h in (env.get(HOSTS_ENV) or "").split(",") if h.strip()}
        if host:
            hosts.add(host)
        return cls(
            accounts=dict(accounts),
            public_read=public_read,
            allowed_hosts=frozenset(h.lower().strip("[]") for h in hosts),
            session_seconds=int(float(settings.get("session_hours", 12)) * 3600),
            limiter=SignInLimiter(int(settings.get("max_failures", 5)),
                                  float(settings.get("failure_window_seconds", 60))),
            chart_queries=frozenset(normalise_sql(q) for q in chart_queries),
        )

    # -- the Host header ---------------------------------------------------------------------------
    def host_refusal(self, scope: dict) -> Response | None:
        host = header(scope, b"host")
        if host is None:
            return Response.text("400 Bad Request: no Host header", status=400)
        name = host_name(host)
        if name not in self.allowed_hosts:
            return Response.text(
                f"421 Misdirected Request: this dashboard does not answer to the host {name!r}; add it to "
                "allowed_hosts in data/dashboard.toml to serve it", status=421)
        return None

    # -- who may read what -------------------------------------------------------------------------
    def refusal(self, scope: dict, actor: dict | None) -> Response | None:
        """The answer for a request this policy stops, or None to let Datasette answer it."""
        path, method = scope.get("path", "/"), scope.get("method", "GET")
        if path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or actor:
            return None
        if not self.public_read:
            if method in ("GET", "HEAD") and not _looks_like_data(path, scope):
                target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
                return Response.redirect("/-/login?" + urllib.parse.urlencode({"next": target}))
            return Response.text("403 Forbidden: sign in first (/-/login)", status=403)
        if method not in ("GET", "HEAD"):
            return Response.text("403 Forbidden: this dashboard is read-only for visitors; sign in to change "
                                 "anything", status=403)
        if path.startswith(PUBLIC_READ_DENIED):
            return Response.text("403 Forbidden: sign in to see this", status=403)
        args = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        if any(arg in args for arg in REACHING_ARGS):
            return Response.text(f"403 Forbidden: {', '.join(a for a in REACHING_ARGS if a in args)} needs sign-in",
                                 status=403)
        for sql in args.get("sql", []):
            if normalise_sql(sql) not in self.chart_queries:
                return Response.text("403 Forbidden: visitors may run only the charts' queries; sign in to "
                                     "write your own SQL", status=403)
        return None

    def table_readable(self, table: str) -> bool:
        """Whether an anonymous reader (in --public-read) may open this table."""
        return table in PUBLIC_TABLES

    # -- signing out -------------------------------------------------------------------------------
    def revoke(self, cookie: str, expires_at: float) -> None:
        now = time.time()
        for old in [c for c, until in self.revoked.items() if until < now]:
            del self.revoked[old]
        self.revoked[cookie] = expires_at


_ACCESS: WeakKeyDictionary[Any, Access] = WeakKeyDictionary()


def attach_access(datasette: Any, access: Access) -> None:
    _ACCESS[datasette] = access


def access_of(datasette: Any) -> Access:
    """The Access of this Datasette (a closed one: no accounts, sign-in required, loopback hosts only)."""
    access = _ACCESS.get(datasette)
    if access is None:
        access = _ACCESS[datasette] = Access()
    return access


def header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


_PORT = re.compile(r":\d*$")


def host_name(host: str) -> str:
    """'127.0.0.1:8001' -> '127.0.0.1', '[::1]:8001' -> '::1', 'LocalHost' -> 'localhost'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") == 1:
        return _PORT.sub("", host)
    return host


def _looks_like_data(path: str, scope: dict) -> bool:
    """A request for data (JSON, CSV, a download) rather than a page: refused, not sent to the sign-in page."""
    last = path.rsplit("/", 1)[-1]
    if "." in last and not last.endswith(".html"):
        return True
    accept = header(scope, b"accept") or ""
    return "json" in accept and "html" not in accept
