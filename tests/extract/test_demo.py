"""The demo study's REDCap CSV export and its ODM export land as identical raw tables."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from warehouse.extract import land_export, read_raw_form, read_raw_meta


def test_demo_redcap_and_odm_give_identical_raw_tables(tmp_path: Path) -> None:
    demo = pytest.importorskip("warehouse.demo")
    out = demo.generate_demo(tmp_path / "demo", subjects=32, seed=1)
    data = tmp_path / "data"
    a = land_export(tmp_path / "demo" / "redcap", data)
    b = land_export(out.odm_file, data)
    assert (a.format, b.format) == ("redcap", "odm")
    assert a.forms == b.forms and len(a.forms) == 13
    keys = ["subject_id", "event", "repeat_instance"]
    for form in a.forms:
        x = read_raw_form(data, a.export_id, form)
        y = read_raw_form(data, b.export_id, form)
        cols = [c for c in x.columns if not c.startswith("_")]
        assert cols == [c for c in y.columns if not c.startswith("_")], form
        assert x.select(cols).sort(keys).equals(y.select(cols).sort(keys)), form
    assert read_raw_meta(data, a.export_id, "forms").filter(pl.col("form") == "hemodynamics")["repeating"].item()
