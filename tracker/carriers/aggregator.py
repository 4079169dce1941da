"""17TRACK's tracking API (v2.x) as a batch adapter (`adapter = "17track"`): up to 40 numbers per
`gettrackinfo` request; a number 17TRACK does not know yet is registered (one unit of the daily quota
each) and answers at a later poll. Each number's part of the answer is read by the carrier file's [json]
table, as any JSON page is, and kept as that number's page.

Facts (field names, error codes, limits) are from 17TRACK's API documentation as quoted by public client
libraries (godely/aio17track SPEC.md and enums.py, its recorded v2.4 fixtures); see data/carriers/17track.toml.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from tracker.carriers.base import Carrier, Page, ParseResult, Request, register_batch_adapter
from tracker.carriers.fields import normalise_number
from tracker.carriers.jsonpage import check_json, looks_like_html, rules


def _post(carrier: Carrier, url: str, numbers: list[str]) -> Request:
    headers = {**carrier.headers(), "Content-Type": "application/json"}  # the token, as the carrier file says
    return Request("POST", url, json.dumps([{"number": n} for n in numbers]).encode(), headers)


def _answer(page: Page) -> tuple[dict[str, Any] | None, str | None]:
    """The decoded envelope, or why there is none."""
    if looks_like_html(page):
        return None, "HTML where the API's JSON was expected"
    try:
        doc = json.loads(page.body.decode(page.encoding or "utf-8"))
    except ValueError as exc:
        return None, f"unreadable answer: {exc}"
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), dict):
        return None, "answer without the API's data envelope"
    return doc, None


def _items(doc: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {normalise_number(str(item.get("number", ""))): item
            for item in doc["data"].get(key) or [] if isinstance(item, dict)}


def check_17track(carrier: Carrier) -> list[str]:
    problems = [f"missing '{key}'" for key in ("register_url",) if not carrier.settings.get(key)]
    return problems + check_json(carrier)


@register_batch_adapter("17track", check=check_17track)
def poll_17track(carrier: Carrier, numbers: list[str], fetch: Callable[[Request], Page],
                 quota: Any) -> dict[str, tuple[ParseResult, Page | None]]:
    """Ask for `numbers` (at most batch_size) in one request; register the ones 17TRACK does not know."""
    s = carrier.settings
    codes = s.get("api_codes", {})
    not_registered = int(codes.get("not_registered", -18019902))
    no_info_yet = {int(c) for c in codes.get("no_information", [-18019909])}
    refused = {int(c) for c in codes.get("refused", [-18010001, -18010002, -18010004, -18010005])}
    out: dict[str, tuple[ParseResult, Page | None]] = {}
    page = fetch(_post(carrier, carrier.url, numbers))  # the fetcher sends it to any stand-in host
    doc, problem = _answer(page)
    if doc is None or doc.get("code") not in (0, None):
        code = doc.get("code") if doc else None
        outcome = "blocked" if code in refused or page.status in (401, 403) else (
            "wrong_content" if problem and problem.startswith("HTML") else "error")
        why = problem or f"17TRACK answered code {code}"
        return {n: (ParseResult(outcome, error=why), None) for n in numbers}
    accepted, rejected = _items(doc, "accepted"), _items(doc, "rejected")
    r = rules(carrier)
    to_register = []
    for number in numbers:
        key = normalise_number(number)
        if key in accepted:
            item = accepted[key]
            body = json.dumps(item, sort_keys=True, ensure_ascii=False).encode()
            out[number] = (r.parse(item, number), Page(page.url, page.status, "application/json", body, "utf-8"))
        elif key in rejected:
            error = rejected[key].get("error") or {}
            code = error.get("code")
            if code == not_registered:
                to_register.append(number)
            elif code in no_info_yet:
                out[number] = (ParseResult("no_information", notes=[f"17TRACK: {error.get('message', code)}"]), None)
            else:
                out[number] = (ParseResult("error", error=f"17TRACK refused {number}: {code} {error.get('message', '')}"
                                           .strip()), None)
        else:
            out[number] = (ParseResult("error", error="17TRACK's answer does not mention this number"), None)
    if to_register:
        granted = quota.take(len(to_register))
        chosen, left = to_register[:granted], to_register[granted:]
        if chosen:
            reg = fetch(_post(carrier, str(s["register_url"]), chosen))
            reg_doc, reg_problem = _answer(reg)
            done = _items(reg_doc, "accepted") if reg_doc and reg_doc.get("code") in (0, None) else {}
            again = _items(reg_doc, "rejected") if reg_doc else {}
            for number in chosen:
                key = normalise_number(number)
                if key in done or (again.get(key, {}).get("error") or {}).get("code") in codes.get(
                        "already_registered", [-18019901]):
                    out[number] = (ParseResult("no_information", notes=[
                        "registered with 17TRACK; its first answer comes at a later poll"]), None)
                else:
                    why = reg_problem or (again.get(key, {}).get("error") or {}).get("message") or "not accepted"
                    out[number] = (ParseResult("error", error=f"17TRACK did not register {number}: {why}"), None)
        for number in left:
            out[number] = (ParseResult("error", error=f"{carrier.name}'s daily quota is used up; "
                                                      f"{number} was not registered"), None)
    return out
