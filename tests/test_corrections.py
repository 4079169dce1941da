"""A number corrected in the chat takes the facts of the number the message gives, missing ones included."""

from __future__ import annotations

import numpy as np
import pandas as pd

from detectors.corrections import apply_corrections
from detectors.tracking_numbers import validate


def test_a_corrected_number_not_yet_delivered_leaves_its_missing_facts_missing():
    """The facts of the message's number may be missing (no delivered scan yet: NULL in the store, None in a
    column of them all missing); they go into the frame's numeric columns as NaN, where pandas refused None."""
    right = "RR123456785CN"
    assert validate(right).valid and not validate("RR12345678CN").valid
    frame = pd.DataFrame({"order_id": ["o1", "o2"], "tracking_number": ["RR12345678CN", "LP00000000000001"],
                          "delivered_jd": [np.nan, 2461000.5], "n_events": [0, 3],
                          "n_orders_on_number": [1, 1]})
    messages = pd.DataFrame({"id": [7], "order_id": ["o1"], "text": [f"sorry, the right number is {right}"]})
    facts = pd.DataFrame({"tracking_number": [right], "delivered_jd": [None], "n_events": [None], "n_orders": [1]})
    out = apply_corrections(frame, lambda ids: messages[messages["order_id"].isin(ids)], lambda numbers: {right},
                            lambda numbers: facts, ["delivered_jd", "n_events"])
    assert out.loc[0, "tracking_number"] == right and out.loc[0, "corrected_by_message_id"] == 7
    assert np.isnan(out.loc[0, "delivered_jd"]) and np.isnan(out.loc[0, "n_events"])
    assert out.loc[1, "delivered_jd"] == 2461000.5 and out.loc[1, "n_events"] == 3
    assert out["delivered_jd"].dtype == np.float64 and out.loc[0, "n_orders_on_number"] == 2
