"""The dashboard's front door: ASGI middleware (Datasette's asgi_wrapper hook) in front of every request.

In order: the Host allow-list (421), a signed-out cookie forgotten, the per-address limit on the sign-in
doors (429 with Retry-After), the access policy (tracker.dashboard.access: sign-in required, or read-only
for visitors with --public-read), then Datasette; on the way out every sign-in cookie is hardened
(tracker.dashboard.signin) and the doors' failures are counted.
"""

from __future__ import annotations

import time
from http.cookies import CookieError, SimpleCookie
from typing import Any

from datasette.plugins import pm
from datasette.utils import await_me_maybe
from datasette.utils.asgi import Request, Response

from tracker.dashboard.access import SIGN_IN_DOORS, Access, access_of, header
from tracker.dashboard.signin import COOKIE, cookie_expiry, harden_set_cookie


async def actor_for(datasette: Any, scope: dict, receive: Any) -> dict | None:
    """The signed-in actor, found the way Datasette finds it (its actor_from_request hooks)."""
    request = Request(scope, receive)
    for result in pm.hook.actor_from_request(datasette=datasette, request=request):
        actor = await await_me_maybe(result)
        if actor:
            return actor
    return None


def _cookies(scope: dict) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header(scope, b"cookie") or "")
    except CookieError:
        pass
    return jar


def _without_revoked(scope: dict, access: Access) -> dict:
    """The request as if a signed-out cookie had not been sent."""
    if not access.revoked:
        return scope
    jar = _cookies(scope)
    if COOKIE not in jar or jar[COOKIE].value not in access.revoked:
        return scope
    kept = "; ".join(f"{name}={morsel.coded_value}" for name, morsel in jar.items() if name != COOKIE)
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"cookie"]
    if kept:
        headers.append((b"cookie", kept.encode("latin-1")))
    return {**scope, "headers": headers}


def guard(datasette: Any, app: Any) -> Any:
    async def guarded(scope: dict, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await app(scope, receive, send)
            return
        access = access_of(datasette)
        refusal = access.host_refusal(scope)
        if refusal is not None:
            await refusal.asgi_send(send)
            return
        scope = _without_revoked(scope, access)
        path, method = scope.get("path", "/"), scope.get("method", "GET")
        client = (scope.get("client") or ("unknown", 0))[0]
        door = (method, path) in SIGN_IN_DOORS
        if door:
            wait = access.limiter.retry_after(client)
            if wait:
                await Response.text(
                    f"429 Too Many Requests: too many failed sign-ins from {client}; try again in {wait} s",
                    status=429, headers={"Retry-After": str(wait)}).asgi_send(send)
                return
        refusal = access.refusal(scope, await actor_for(datasette, scope, receive))
        if refusal is not None:
            await refusal.asgi_send(send)
            return
        outcome: dict[str, Any] = {}

        async def hardened(message: dict) -> None:
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                headers = []
                for key, value in message.get("headers", []):
                    if key.lower() == b"set-cookie" and value.startswith(COOKIE.encode() + b"="):
                        text = harden_set_cookie(datasette, value.decode("latin-1"))
                        jar: SimpleCookie = SimpleCookie()
                        jar.load(text)
                        outcome["signed_in"] = bool(jar[COOKIE].value) if COOKIE in jar else False
                        value = text.encode("latin-1")
                    headers.append((key, value))
                message = {**message, "headers": headers}
            await send(message)

        await app(scope, receive, hardened)
        if door and not outcome.get("signed_in"):
            access.limiter.failed(client)
        if path == "/-/logout" and method == "POST" and outcome.get("status") in (301, 302, 303):
            jar = _cookies(scope)
            if COOKIE in jar and jar[COOKIE].value:
                value = jar[COOKIE].value
                access.revoke(value, cookie_expiry(datasette, value) or time.time() + access.session_seconds)

    return guarded
