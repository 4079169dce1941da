"""The local carrier site's HTTP server and its switchable faults."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tracker.carriersite.renderers import CAPTCHA, RENDERERS, _when
from tracker.timeutil import parse_time

LOOPBACK = "127.0.0.1"

FAULT_KINDS = (
    "429", "403", "500", "503", "slow", "timeout", "captcha", "truncated", "cut", "garbage", "binary",
    "not_found", "redirect", "redirect_offhost", "huge", "deep", "wrong_encoding", "html_for_json",
)


@dataclass
class Route:
    """Which carrier answers which path, and in which layout. `{number}` marks the tracking number."""

    carrier: str
    template: str  # path and query of the carrier's URL, e.g. "/track?number={number}"
    layout: str  # a key of renderers.RENDERERS
    body_key: str | None = None  # a POST route: the JSON body's list holding the number ("NumberList")

    def number_in(self, path: str, body: Any) -> str | None:
        """A POST route's number: the first item of the body's `body_key` list."""
        if self.body_key is None or path != self.template or not isinstance(body, dict):
            return None
        found = body.get(self.body_key)
        return str(found[0]) if isinstance(found, list) and found and isinstance(found[0], str) else None

    def match(self, path: str, query: str) -> str | None:
        if self.body_key is not None:
            return None
        tpath, _, tquery = self.template.partition("?")
        if "{number}" in tpath:
            pattern = "^" + re.escape(tpath).replace(re.escape("{number}"), "(?P<n>[^/]+)") + "$"
            m = re.match(pattern, path)
            return unquote(m.group("n")) if m else None
        if path != tpath:
            return None
        params = parse_qs(query)
        for key, value in parse_qs(tquery, keep_blank_values=True).items():
            if value == ["{number}"]:
                return params.get(key, [None])[0]
        return None


DEFAULT_ROUTES = (
    Route("cainiao", "/global/detail.json?mailNos={number}", "cainiao"),
    Route("chinapost", "/track?number={number}", "chinapost"),
    Route("yunexpress", "/Track/Query", "yunexpress", body_key="NumberList"),
)
# 17TRACK's API (POST, many numbers per request, a token): answered by `TrackApi` below
TRACK17_PATHS = {"/track/v2.2/gettrackinfo": "gettrackinfo", "/track/v2.2/register": "register"}


@dataclass
class Fault:
    kind: str
    carrier: str | None = None
    number: str | None = None
    times: int | None = None  # None: until cleared
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestRecord:
    at: float  # time.monotonic() when the request arrived
    carrier: str | None
    number: str | None
    path: str
    status: int
    fault: str | None
    user_agent: str


class CarrierSite:
    """Serves `journeys` ({tracking_number: [event dicts]}) as of a clock; see the module docstring."""

    def __init__(
        self,
        journeys: dict[str, list[dict[str, Any]]] | None = None,
        *,
        as_of: datetime | str | Callable[[], datetime] | None = None,
        routes: tuple[Route, ...] | list[Route] = DEFAULT_ROUTES,
        port: int = 0,
        cache_pages: bool = True,
    ):
        self.journeys = journeys or {}
        self.as_of = as_of
        self.routes = list(routes)
        self.port = port
        self.faults: list[Fault] = []
        self.requests: deque[RequestRecord] = deque(maxlen=200_000)
        self._lock = threading.Lock()
        self.cache_pages = cache_pages
        self._pages: dict[tuple[str, str, int, int], tuple[str, bytes]] = {}  # a page changes with its scans
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.track17 = TrackApi(self)

    # ---- life cycle ----
    def start(self) -> CarrierSite:
        handler = type("Handler", (_Handler,), {"site": self})
        self._server = ThreadingHTTPServer((LOOPBACK, self.port), handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="carriersite", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> CarrierSite:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    # ---- faults ----
    def set_fault(self, kind: str, *, carrier: str | None = None, number: str | None = None,
                  times: int | None = None, **params: Any) -> Fault:
        """Misbehave for one number, one carrier or everything (most specific wins), `times` times."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(FAULT_KINDS)}")
        fault = Fault(kind, carrier, number, times, params)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, carrier: str | None, number: str | None) -> Fault | None:
        with self._lock:
            candidates = [f for f in self.faults
                          if (f.number is None or f.number == number) and (f.carrier is None or f.carrier == carrier)]
            if not candidates:
                return None
            fault = max(candidates, key=lambda f: (f.number is not None, f.carrier is not None))
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self.faults.remove(fault)
            return fault

    # ---- content ----
    def now(self) -> datetime | None:
        clock = self.as_of
        if clock is None:
            return None
        if callable(clock):
            return clock()
        return parse_time(clock) if isinstance(clock, str) else clock

    def visible_events_any(self, number: str) -> list[dict[str, Any]]:
        """The number's events up to the clock, whichever carrier carries it (what an aggregator sees)."""
        now = self.now()
        return [e for e in self.journeys.get(number) or [] if now is None or _when(e) <= now]

    def visible_events(self, carrier: str, number: str) -> list[dict[str, Any]]:
        events = self.journeys.get(number) or []
        if events and events[0].get("carrier") not in (None, "", carrier):
            return []  # another carrier's parcel: this one has never heard of it
        now = self.now()
        return [e for e in events if now is None or _when(e) <= now]

    def page(self, route: Route, number: str, events: list[dict[str, Any]]) -> tuple[str, bytes]:
        """The rendered page, cached: a poll of many numbers asks for each page once per clock step."""
        if not self.cache_pages:
            return RENDERERS[route.layout](number, events)
        key = (route.layout, number, len(events), id(self.journeys.get(number)))
        page = self._pages.get(key)
        if page is None:
            page = RENDERERS[route.layout](number, events)
            if len(self._pages) > 50_000:
                self._pages.clear()
            self._pages[key] = page
        return page

    def route_for(self, path: str, query: str, body: Any = None) -> tuple[Route | None, str | None]:
        for route in self.routes:
            number = route.match(path, query) if body is None else route.number_in(path, body)
            if number is not None:
                return route, number
        return None, None


class TrackApi:
    """A stand-in for 17TRACK's v2.2 API over the site's journeys: `register` then `gettrackinfo`, 40
    numbers a request, the `17token` header checked, registrations counted (what the quota is charged)."""

    def __init__(self, site: CarrierSite, token: str = "test-token"):
        self.site, self.token = site, token
        self.registered: set[str] = set()
        self.registrations = 0
        self.calls: list[tuple[str, int]] = []  # (endpoint, numbers in the request)
        self._lock = threading.Lock()

    def answer(self, endpoint: str, token: str | None, body: Any) -> tuple[int, dict[str, Any]]:
        from tracker.carriersite.renderers import render_17track_item

        if token != self.token:
            return 401, {"code": -18010002, "data": {"errors": [{"code": -18010002, "message": "Invalid access key."}]}}
        items = body if isinstance(body, list) else []
        numbers = [str(i.get("number", "")) for i in items if isinstance(i, dict)]
        if len(numbers) > 40:
            return 200, {"code": -18010014, "data": {"errors": [{"code": -18010014, "message": "Over 40 numbers."}]}}
        with self._lock:
            self.calls.append((endpoint, len(numbers)))
        accepted, rejected = [], []
        for number in numbers:
            with self._lock:
                known = number in self.registered
                if endpoint == "register" and not known:
                    self.registered.add(number)
                    self.registrations += 1
            if endpoint == "register":
                if known:
                    rejected.append({"number": number, "error": {"code": -18019901, "message": f"The tracking number '{number}' has been registered, don't need to repeat registration."}})
                else:
                    accepted.append({"origin": 1, "number": number, "carrier": 3011})
            elif not known:
                rejected.append({"number": number, "error": {"code": -18019902, "message": f"The tracking number '{number}' does not register, please register first."}})
            else:
                accepted.append(render_17track_item(number, self.site.visible_events_any(number)))
        return 200, {"code": 0, "data": {"accepted": accepted, "rejected": rejected}}


class _Handler(BaseHTTPRequestHandler):
    site: CarrierSite
    protocol_version = "HTTP/1.1"  # keep-alive, as real sites
    disable_nagle_algorithm = True  # headers and body leave at once, not 40 ms apart
    server_version = "CarrierSite/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: tests read self.site.requests
        pass

    def _begin(self, arrived: float, carrier: str | None, number: str | None, fault: Fault | None) -> None:
        """What this request's record will say, once its status is known (`_record`)."""
        self._pending: tuple[float, str | None, str | None, Fault | None] | None = (arrived, carrier, number, fault)

    def _record(self, status: int) -> None:
        """Add this request to `site.requests`, once: when its status line is about to go out (`send_response`),
        so whoever reads the answer finds the request recorded; or at its end, for one that sent none."""
        pending, self._pending = getattr(self, "_pending", None), None
        if pending is not None:
            arrived, carrier, number, fault = pending
            self.site.requests.append(RequestRecord(arrived, carrier, number, self.path, status,
                                                    fault.kind if fault else None, self.headers.get("User-Agent", "")))

    def send_response(self, code: int, message: str | None = None) -> None:
        self._record(code)
        super().send_response(code, message)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        route, number = self.site.route_for(parts.path, parts.query)
        carrier = route.carrier if route else None
        fault = self.site._take_fault(carrier, number) if route else None
        self._begin(arrived, carrier, number, fault)
        status = 0
        try:
            status = self._answer(route, number, fault, parts)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        finally:
            self._record(status)

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        arrived = time.monotonic()
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(length, 1_000_000)) if length > 0 else b""
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        status, carrier, number, fault = 0, None, None, None
        self._begin(arrived, carrier, number, fault)
        try:
            if parts.path in TRACK17_PATHS:
                carrier = "17track"
                fault = self.site._take_fault(carrier, None)
                self._begin(arrived, carrier, number, fault)
                if fault is not None:
                    status = self._answer(Route("17track", parts.path, "17track"), "batch", fault, parts)
                else:
                    code, doc = self.site.track17.answer(TRACK17_PATHS[parts.path], self.headers.get("17token"), body)
                    status = self._send(code, json.dumps(doc).encode(), "application/json")
            else:
                route, number = self.site.route_for(parts.path, parts.query, body if body is not None else {})
                carrier = route.carrier if route else None
                fault = self.site._take_fault(carrier, number) if route else None
                self._begin(arrived, carrier, number, fault)
                status = self._answer(route, number, fault, parts)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        finally:
            self._record(status)

    def _send(self, status: int, body: bytes, content_type: str = "text/html; charset=utf-8",
              headers: dict[str, str] | None = None) -> int:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
        return status

    def _answer(self, route: Route | None, number: str | None, fault: Fault | None, parts: Any) -> int:
        if route is None or number is None:
            return self._send(404, b"<html><body><h1>404 Not Found</h1></body></html>")
        kind = fault.kind if fault else None
        params = fault.params if fault else {}
        if kind in ("429", "503"):
            headers = {"Retry-After": str(params.get("retry_after", 1))} if "retry_after" in params or kind == "429" else {}
            return self._send(int(kind), b"<html><body>Too many requests</body></html>", headers=headers)
        if kind in ("403", "500"):
            return self._send(int(kind), f"<html><body>Error {kind}</body></html>".encode())
        if kind == "timeout":
            time.sleep(float(params.get("delay", 5.0)))
            self.close_connection = True
            return 0
        if kind == "slow":
            time.sleep(float(params.get("delay", 0.5)))
        if kind == "captcha":
            return self._send(200, CAPTCHA.get(route.layout, CAPTCHA["chinapost"]))
        if kind == "html_for_json":
            return self._send(200, b"<html><body><h1>Service temporarily unavailable</h1></body></html>")
        if kind == "redirect":
            sep = "&" if parts.query else "?"
            target = parts.path + ("?" + parts.query if parts.query else "") + f"{sep}redirected=1"
            return self._send(302, b"", headers={"Location": target})
        if kind == "redirect_offhost":
            return self._send(302, b"", headers={"Location": str(params.get("location", "http://tracking.example.invalid/x"))})
        if kind == "garbage":
            return self._send(200, b"<<<%%%>>> \xff\xfe ]]>{{{ not a page &&& </td></tr></table>" * 50)
        if kind == "binary":
            return self._send(200, os.urandom(int(params.get("size", 65536))) + b"\x00" * 16,
                              content_type="application/octet-stream")
        if kind == "deep":
            depth = int(params.get("depth", 100_000))
            return self._send(200, b"<html><body>" + b"<div>" * depth + b"x" + b"</div>" * depth + b"</body></html>")
        if kind == "huge":
            return self._send_huge(int(params.get("size", 50 * 1024 * 1024)), bool(params.get("declare_length", True)))
        events = [] if kind == "not_found" else self.site.visible_events(route.carrier, number)
        content_type, body = self.site.page(route, number, events)
        if kind == "truncated":
            return self._send(200, body[: len(body) // 2], content_type)
        if kind == "cut":  # promises the whole body, sends half, hangs up
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return 200
        if kind == "wrong_encoding":
            text = body.decode("utf-8")
            return self._send(200, text.encode("utf-16"), content_type)  # says utf-8, is utf-16
        return self._send(200, body, content_type)

    def _send_huge(self, size: int, declare_length: bool) -> int:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        if declare_length:
            self.send_header("Content-Length", str(size))
        else:  # the body ends when the connection does: the client must count bytes itself
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        chunk = b"<div>" + b"A" * 65531
        sent = 0
        while sent < size:
            piece = chunk[: size - sent]
            self.wfile.write(piece)
            sent += len(piece)
        return 200
