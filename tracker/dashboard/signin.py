"""Signing in and out: the password form, and the sign-in cookie every door hands out.

The dashboard has its own /-/login (datasette-auth-passwords would read the password hash from Datasette's
metadata, which Datasette serves to anyone at /-/metadata.json). The hash comes from the environment and
stays in `Access`. Every `ds_actor` cookie, whoever sets it (this form, Datasette's one-time root link),
leaves as HttpOnly, SameSite=Lax, with a Max-Age and the same expiry signed into it; signing out
(/-/logout) also revokes the cookie it deletes, so a copy of it stops working too.
"""

from __future__ import annotations

import math
import time
import urllib.parse
from http.cookies import CookieError, SimpleCookie
from typing import Any

from datasette.utils import baseconv
from datasette.utils.asgi import Request, Response
from datasette_auth_passwords.utils import verify_password
from itsdangerous import BadSignature

from tracker.dashboard.access import access_of

COOKIE = "ds_actor"


def safe_next(target: str | None, default: str) -> str:
    """Where to go after signing in: a path on this site only (never //host or a scheme)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parsed = urllib.parse.urlsplit(target)
    return target if not parsed.scheme and not parsed.netloc else default


def signed_actor(datasette: Any, actor: dict[str, Any], seconds: int) -> str:
    """The cookie value: the actor plus its expiry, signed (Datasette's own cookie check reads "e")."""
    expires = baseconv.base62.encode(int(time.time()) + seconds)
    return datasette.sign({"a": actor, "e": expires}, "actor")


def cookie_expiry(datasette: Any, value: str) -> float | None:
    """When a signed cookie value expires (None: not a valid one)."""
    try:
        decoded = datasette.unsign(value, "actor")
    except BadSignature:
        return None
    if not isinstance(decoded, dict) or "a" not in decoded:
        return None
    expires = decoded.get("e")
    return float(baseconv.base62.decode(expires)) if expires else None


def harden_set_cookie(datasette: Any, header: str) -> str:
    """A `Set-Cookie: ds_actor=…` header made HttpOnly, SameSite=Lax and expiring (others unchanged)."""
    try:
        cookie = SimpleCookie()
        cookie.load(header)
    except CookieError:
        return header
    morsel = cookie.get(COOKIE)
    if morsel is None:
        return header
    seconds = access_of(datasette).session_seconds
    value = morsel.value
    if value:
        expires = cookie_expiry(datasette, value)
        if expires is None:  # signed without an expiry (the one-time link): sign it again with one
            try:
                actor = datasette.unsign(value, "actor")["a"]
            except (BadSignature, KeyError, TypeError):
                return header
            value = signed_actor(datasette, actor, seconds)
            left = seconds
        else:
            left = max(0, math.ceil(expires - time.time()))
    else:
        left = 0
    out = SimpleCookie()
    out[COOKIE] = value
    out[COOKIE]["path"] = "/"
    out[COOKIE]["max-age"] = left
    out[COOKIE]["httponly"] = True
    out[COOKIE]["samesite"] = "Lax"
    return out.output(header="").strip()


async def login(request: Request, datasette: Any) -> Response:
    """GET: the sign-in form. POST: check the name and password; sign in, or say no (401)."""
    access = access_of(datasette)
    next_url = safe_next(request.args.get("next"), datasette.urls.path("/-/my-reports"))
    error = None
    status = 200
    if request.method == "POST":
        form = await request.post_vars()
        username = (form.get("username") or "").strip()
        password = form.get("password") or ""
        next_url = safe_next(form.get("next"), next_url)
        stored = access.accounts.get(username)
        # an unknown name costs the same hashing as a wrong password: no hint which names exist
        reference = stored or next(iter(access.accounts.values()), None)
        good = reference is not None and verify_password(password, reference) and stored is not None
        if good:
            response = Response.redirect(next_url)
            response.set_cookie(COOKIE, signed_actor(datasette, {"id": username}, access.session_seconds),
                                max_age=access.session_seconds, httponly=True, samesite="lax")
            return response
        error = "Wrong name or password." if access.accounts else (
            "No password account is set up: use the one-time link tracker serve printed.")
        status = 401
    return Response.html(
        await datasette.render_template(
            "tracker_login.html",
            {"error": error, "next": next_url, "has_accounts": bool(access.accounts),
             "public_read": access.public_read},
            request=request,
        ),
        status=status,
    )
