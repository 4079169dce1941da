"""Generated blocks in the docs: a command writes its figures between two marker lines of a page."""

from __future__ import annotations

from pathlib import Path


def write_block(page: Path, start: str, end: str, body: str, *, append: bool = True) -> None:
    """Put `body` (its own markers excluded) between the `start` and `end` lines of `page`, replacing what was
    there; a page without the markers gets the block at its end (`append`) or refuses (ValueError)."""
    block = f"{start}\n{body}\n{end}"
    text = page.read_text(encoding="utf-8")
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    elif append:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        raise ValueError(f"{page}: markers {start!r} … {end!r} not found")
    page.write_text(text, encoding="utf-8")
