"""The tracking timeline as a PNG: carrier scans on a time axis, the order's milestones marked."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

# the normalised statuses, bottom to top, in the order a parcel normally meets them
STATUS_ROWS = ["not_found", "unknown", "info_received", "in_transit", "exception", "delivery_failed",
               "returned", "available_for_pickup", "out_for_delivery", "delivered"]
MILESTONE_STYLE = {
    "ordered": ("tab:blue", "-"),
    "shipped": ("tab:green", "--"),
    "delivered scan": ("tab:purple", "-."),
    "receipt confirmed": ("tab:red", ":"),
    "dispute opened": ("tab:orange", "--"),
}


def timeline_png(events: Sequence[dict[str, Any]], milestones: dict[str, datetime | None], title: str) -> bytes:
    """Draw the picture with matplotlib's Agg backend (no display needed); return the PNG bytes."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=100)
    ax = fig.add_subplot()
    rows = list(STATUS_ROWS) + sorted({e["status"] for e in events} - set(STATUS_ROWS))
    if events:
        xs = [datetime.fromisoformat(e["occurred_at"]) for e in events]
        ys = [rows.index(e["status"]) for e in events]
        ax.plot(xs, ys, color="0.6", linewidth=1, zorder=1)
        ax.scatter(xs, ys, color="black", s=25, zorder=2, label="carrier scan")
    for name, when in milestones.items():
        if when is None:
            continue
        color, style = MILESTONE_STYLE.get(name, ("tab:gray", ":"))
        ax.axvline(when, color=color, linestyle=style, linewidth=1.5, label=f"{name} {when:%Y-%m-%d}")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_ylim(-0.5, len(rows) - 0.5)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(mdates.AutoDateLocator()))
    ax.set_title(title)
    ax.grid(axis="x", color="0.9")
    if not events:
        ax.text(0.5, 0.5, "no carrier scans", transform=ax.transAxes, ha="center", va="center", color="0.4")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    # fixed margins: tight_layout would draw the figure twice, doubling the cost of every packet
    fig.subplots_adjust(left=0.17, right=0.98, top=0.92, bottom=0.12)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()
