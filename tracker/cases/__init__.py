"""Cases: one order under investigation. (Owned by the case-tracker work: issue 6.)

Public seam used by the CLI and the dashboard alike:
    set_status(db, case_id, status, *, actor, note=None, at=None) -> dict   # enforces transitions, audits
"""
