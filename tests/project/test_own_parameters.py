"""A project's own derivation parameters (issue 17 item 8): `[parameters]` in study.toml, each key a typed column of
`src.study_parameters`, read by the project's models and by its suites (`{"study": "<name>"}`)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from warehouse.request import BuildRequest
from warehouse.stage.load import build_facts
from warehouse.study import load_study
from warehouse.validate.suites import resolve_study_values

STUDY = """[study]
id = "CT1"

[parameters]
bmi_obese = 30.0
min_height_cm = 100
site_label = "single site"
adult_only = true
follow_up_days = [7, 28]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_parameters_become_typed_columns(tmp_path):
    study = load_study(write(tmp_path, STUDY))
    columns = study.parameter_columns()
    assert columns["bmi_obese"] == (30.0, "DOUBLE")
    assert columns["min_height_cm"] == (100, "INTEGER")
    assert columns["site_label"] == ("single site", "VARCHAR")
    assert columns["adult_only"] == (True, "BOOLEAN")
    assert columns["follow_up_days"] == ([7, 28], "INTEGER[]")
    facts = build_facts(BuildRequest(data_dir=tmp_path, study=study), "b1", "e1", None)
    row = facts["study_parameters"]
    assert row.schema["bmi_obese"] == pl.Float64 and row.schema["min_height_cm"] == pl.Int32
    assert row.schema["adult_only"] == pl.Boolean and row.schema["follow_up_days"] == pl.List(pl.Int32)
    assert row.row(0, named=True)["site_label"] == "single site"


def test_a_table_of_strings_is_a_mapping_sql_looks_up(tmp_path):
    # a code list kept as study metadata (ADAE's eCRF code -> CDISC term): a list of (key, value) entries that SQL
    # reads with map_from_entries(...)[code]; a code the table does not list gives null
    import duckdb

    from warehouse.study import MAPPING_TYPE

    study = load_study(write(tmp_path, STUDY + 'acn_terms = { "1" = "DOSE NOT CHANGED", "4" = "DRUG WITHDRAWN" }\n'))
    assert study.parameter_columns()["acn_terms"] == ({"1": "DOSE NOT CHANGED", "4": "DRUG WITHDRAWN"}, MAPPING_TYPE)
    row = build_facts(BuildRequest(data_dir=tmp_path, study=study), "b1", "e1", None)["study_parameters"]
    with duckdb.connect() as con:
        con.register("p", row.to_arrow())
        assert dict(con.execute("select column_name, column_type from (describe p)").fetchall())["acn_terms"] \
            == MAPPING_TYPE
        got = con.execute("select map_from_entries(acn_terms)['4'], map_from_entries(acn_terms)['2'] from p")
        assert got.fetchall() == [("DRUG WITHDRAWN", None)]


def test_a_suite_reads_a_parameter(tmp_path):
    study = load_study(write(tmp_path, STUDY))
    suite = {"expectations": [{"kwargs": {"min_value": {"study": "min_height_cm"}}}]}
    assert resolve_study_values(suite, tmp_path / "s.json", study)["expectations"][0]["kwargs"]["min_value"] == 100
    with pytest.raises(ValueError, match="unknown study parameter 'nope'"):
        resolve_study_values({"x": {"study": "nope"}}, tmp_path / "s.json", study)


def test_a_study_without_parameters_is_unchanged(tmp_path):
    study = load_study(write(tmp_path, '[study]\nid = "CT1"\n'))
    assert study.parameters == {}
    assert "bmi_obese" not in study.parameter_columns()


@pytest.mark.parametrize(("line", "message"), [
    ("study_id = 'x'", "built-in"),
    ("teae_window_hours = 3.0", "built-in"),
    ("window_x_lo = 1.0", "built-in"),
    ("export_encoding = 'utf-8'", "built-in"),
    ("windows = 1", "built-in"),
    ("title = 'x'", "built-in"),
    ("Bad-Name = 1", "lower-case"),
    ("big = 3000000000", "does not fit"),
    ("when = 2024-01-01", "not a string"),
    ("mixed = [1, 'a']", "not a string"),
    ("nested = { a = 1 }", "not a string"),
    ("empty = {}", "table of strings"),
])
def test_bad_parameters_name_file_and_key(tmp_path, line, message):
    path = write(tmp_path, f'[study]\nid = "CT1"\n\n[parameters]\n{line}\n')
    with pytest.raises(ValueError, match=message) as err:
        load_study(path)
    assert str(path) in str(err.value) and "[parameters]" in str(err.value)
