"""Cases: one order under investigation. (Owned by the case-tracker work: issue 6.)

Public seams, used by the CLI and the dashboard alike (each raises BadInput for bad input):
    set_status(db, case_id, status, *, actor, note=None, at=None) -> dict   # enforces transitions, audits
    update_case(db, case_id, changes, *, actor, note=None, as_of=None) -> dict  # the dispute timeline
    get_case(db, case_id) -> dict                                            # the case row
    list_cases(db, *, status=None, category=None, due_within=None, as_of) -> list[dict]   # My Reports
    case_detail(db, case_id, *, as_of) -> dict                               # everything about one case
    export_case(db, case_id, out_dir, *, force=False, as_of) -> dict         # the complaint packet
    sync_cases(db, order_ids, as_of, *, rescored=()) -> (opened, updated)    # called by `detect`
    load_settings() -> CaseSettings                                          # statuses, categories, timers
"""

from tracker.cases.settings import load_settings
from tracker.cases.status import allowed_next, get_case, set_status

__all__ = ["allowed_next", "case_detail", "export_case", "get_case", "list_cases", "load_settings",
           "set_status", "sync_cases", "update_case"]


def __getattr__(name: str):  # noqa: ANN202 - lazy: `detect` and the dashboard need not load the packet code
    if name == "update_case":
        from tracker.cases.timeline import update_case

        return update_case
    if name in ("list_cases", "case_detail"):
        from tracker.cases import queries

        return getattr(queries, name)
    if name == "export_case":
        from tracker.cases.export import export_case

        return export_case
    if name == "sync_cases":
        from tracker.cases.sync import sync_cases

        return sync_cases
    raise AttributeError(f"module 'tracker.cases' has no attribute {name!r}")
