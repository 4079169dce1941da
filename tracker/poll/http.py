"""Polite HTTP: a token bucket per host, urllib3 retries with jittered backoff, caps on time and size,
redirects only within the carrier's host. Everything that goes wrong becomes a FetchError."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError, ReadTimeoutError
from urllib3.util.retry import Retry

from tracker import __version__
from tracker.carriers import Page

LOOPBACK_HOSTS = ("127.", "localhost", "[::1]")


class FetchError(Exception):
    """A fetch that produced no page to parse: what happened, in one phrase."""

    def __init__(self, message: str, *, http_status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after


class TokenBucket:
    """At most `rate` requests a second on average, bursts of at most `burst` (GCRA form)."""

    def __init__(self, rate: float, burst: int = 1):
        self.interval = 0.0 if rate == float("inf") else 1.0 / rate
        self.burst = max(1, burst)
        self._tat = 0.0  # theoretical arrival time of the next request
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait for a token; return the seconds waited."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._tat - (self.burst - 1) * self.interval)
            self._tat = max(self._tat, now) + self.interval
        wait = start - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        return max(0.0, wait)

    def hold_off(self, seconds: float) -> None:
        """No request before `seconds` from now (after retries, or when a host asks us to wait)."""
        with self._lock:
            self._tat = max(self._tat, time.monotonic() + seconds)


class PoliteRetry(Retry):
    """urllib3's Retry, but never sooner than the host's rate allows, and 413 is not retried."""

    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})
    min_backoff: float = 0.0

    def new(self, **kw: Any) -> PoliteRetry:
        retry = super().new(**kw)
        retry.min_backoff = self.min_backoff
        return retry

    def get_backoff_time(self) -> float:
        return max(self.min_backoff, super().get_backoff_time())


@dataclass
class HttpSettings:
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    total_timeout: float = 60.0
    max_bytes: int = 2_000_000
    retries: int = 2
    backoff_factor: float = 1.0
    backoff_jitter: float = 1.0
    retry_after_max: float = 60.0
    max_redirects: int = 3
    user_agent: str = "tracker/{version}"

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> HttpSettings:
        known = {k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg}
        return cls(**known)


def make_session(settings: HttpSettings, *, min_interval: float = 0.0, loopback: bool = False) -> requests.Session:
    """A session for one host: one connection, retries that respect Retry-After, our User-Agent."""
    session = requests.Session()
    session.headers["User-Agent"] = settings.user_agent.replace("{version}", __version__)
    session.headers["Accept"] = "text/html,application/json;q=0.9,*/*;q=0.5"
    session.trust_env = not loopback  # a proxy from the environment must not see the local site's traffic
    retry = PoliteRetry(
        total=settings.retries,
        connect=settings.retries,
        read=settings.retries,
        status=settings.retries,
        redirect=0,
        allowed_methods=frozenset({"GET", "POST"}),  # the POSTs carriers' APIs take are lookups: safe to repeat
        status_forcelist=frozenset({429, 500, 502, 503, 504}),  # no other 4xx is worth asking again
        backoff_factor=settings.backoff_factor,
        backoff_jitter=settings.backoff_jitter,
        respect_retry_after_header=True,
        retry_after_max=int(settings.retry_after_max),
        raise_on_status=False,
        raise_on_redirect=False,
    )
    retry.min_backoff = min_interval
    adapter = HTTPAdapter(max_retries=retry, pool_connections=1, pool_maxsize=1)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def is_loopback(netloc: str) -> bool:
    return netloc.startswith(LOOPBACK_HOSTS)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return PoliteRetry(0).parse_retry_after(value)
    except Exception:
        return None


def fetch(session: requests.Session, url: str, settings: HttpSettings,
          before_request: Callable[[], object] | None = None, *, method: str = "GET", data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[Page, int]:
    """GET `url` (or `method` it with `data` and extra `headers`, for the APIs that want a POST); return the
    page and how many retries it took. Raises FetchError.

    `before_request` runs before every request, redirects included (the host's token bucket).
    """
    host = urlsplit(url).netloc
    deadline = time.monotonic() + settings.total_timeout
    for _hop in range(settings.max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise FetchError(f"refused a {parts.scheme or 'schemeless'} URL; only http(s)")
        if parts.netloc != host:
            raise FetchError(f"refused a redirect to another host ({parts.netloc})")
        if before_request:
            before_request()
        try:
            response = session.request(method, url, data=data, headers=headers,
                                       timeout=(settings.connect_timeout, settings.read_timeout),
                                       stream=True, allow_redirects=False)
        except requests.exceptions.RetryError as exc:
            raise FetchError("gave up after retries") from exc
        except requests.exceptions.RequestException as exc:
            raise FetchError(_describe(exc)) from exc
        retries = len(response.raw.retries.history) if getattr(response.raw, "retries", None) else 0
        try:
            if response.is_redirect:
                location = response.headers.get("Location", "")
                url = urljoin(url, location)
                continue
            return _read(response, url, settings, deadline), retries
        finally:
            response.close()
    raise FetchError(f"more than {settings.max_redirects} redirects")


def _describe(exc: requests.exceptions.RequestException) -> str:
    """One phrase for a failed request; urllib3 hides the cause inside MaxRetryError."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    if isinstance(exc, requests.exceptions.Timeout) or isinstance(reason, TimeoutError | ReadTimeoutError |
                                                                  ConnectTimeoutError):
        return f"timed out ({type(reason or exc).__name__})"
    if isinstance(reason, NewConnectionError):
        return "connection refused or host unreachable"
    return f"connection failed ({type(reason or exc).__name__})"


def _read(response: requests.Response, url: str, settings: HttpSettings, deadline: float) -> Page:
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > settings.max_bytes:
        raise FetchError(f"answer of {int(declared)} bytes is over the {settings.max_bytes}-byte cap",
                         http_status=response.status_code)
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(65536):
            size += len(chunk)
            if size > settings.max_bytes:
                raise FetchError(f"answer over the {settings.max_bytes}-byte cap; stopped reading",
                                 http_status=response.status_code)
            if time.monotonic() > deadline:
                raise FetchError(f"answer took over {settings.total_timeout:g} s; stopped reading",
                                 http_status=response.status_code)
            chunks.append(chunk)
    except requests.exceptions.RequestException as exc:
        raise FetchError(f"answer cut short ({type(exc).__name__})", http_status=response.status_code) from exc
    content_type = response.headers.get("Content-Type", "")
    encoding = None
    if "charset=" in content_type.lower():
        encoding = content_type.lower().split("charset=", 1)[1].split(";")[0].strip().strip('"') or None
    page = Page(url=url, status=response.status_code, content_type=content_type, body=b"".join(chunks),
                encoding=encoding)
    if response.status_code == 429 or response.status_code >= 500:
        raise FetchError(f"HTTP {response.status_code} after retries", http_status=response.status_code,
                         retry_after=_retry_after(response))
    return page
