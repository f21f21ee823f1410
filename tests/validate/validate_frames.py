"""Small frames for the validation tests (the raw zone and staging contracts of docs/architecture.md)."""

from __future__ import annotations

import polars as pl
import pytest

ITEM_COLS = ["form", "item", "label", "field_type", "validation", "min", "max", "units", "identifier", "choices",
             "required", "order"]


def items_frame(rows: list[tuple]) -> pl.DataFrame:
    """rows: (form, item, field_type, validation, min, max, choices, required)."""
    out = []
    for k, (form, item, ftype, val, lo, hi, choices, req) in enumerate(rows, 1):
        out.append({"form": form, "item": item, "label": item.replace("_", " "), "field_type": ftype,
                    "validation": val, "min": lo, "max": hi, "units": None, "identifier": False, "choices": choices,
                    "required": req, "order": k})
    return pl.DataFrame(out, schema={c: (pl.Boolean if c in ("identifier", "required") else pl.Int64 if c == "order"
                                         else pl.String) for c in ITEM_COLS})


def choices_frame(items: pl.DataFrame) -> pl.DataFrame:
    rows = []
    for r in items.iter_rows(named=True):
        if r["choices"] and r["field_type"] in ("radio", "dropdown", "form_status"):
            for part in r["choices"].split("|"):
                code, _, label = part.strip().partition(",")
                rows.append({"item": r["item"], "code": code.strip(), "label": label.strip()})
    return pl.DataFrame(rows, schema={"item": pl.String, "code": pl.String, "label": pl.String})


def raw_form(rows: list[dict], columns: list[str]) -> pl.DataFrame:
    """A raw-zone form: keys + value columns, every column Utf8."""
    cols = ["subject_id", "event", "repeat_instance", "site_id"] + columns
    return pl.DataFrame([{c: r.get(c) for c in cols} for r in rows], schema={c: pl.String for c in cols})


@pytest.fixture(scope="session")
def gx_loaded():
    """Import GX once for the session (slow) so individual test timings stay readable."""
    from warehouse.validate.core import gx_runtime

    return gx_runtime()
