"""Item 1: the header block: known keys only, materialisation checked, free comments allowed."""

from pathlib import Path

import pytest

from model_fixtures import write
from warehouse.transform.models import ModelError, discover_models, parse_header


def test_header_keys_and_lines():
    header = parse_header(
        "-- description: One row per subject.\n-- This line is free text, not config\n-- materialized: view\n"
        "-- grain: usubjid\n-- tags: a, b\n-- columns:\n--   usubjid: Unique subject id\nselect 1"
    )
    assert header["description"] == "One row per subject."
    assert header["materialized"] == "view" and header["grain"] == "usubjid"
    assert header["columns"] == {"usubjid": "Unique subject id"}
    assert header["_lines"]["grain"] == 4 and header["_lines"]["columns.usubjid"] == 7


def test_unknown_key_names_file_and_line(tmp_path: Path):
    path = write(tmp_path, "marts", "adsl_like", "-- description: x\n-- grian: usubjid\nselect 1 as usubjid")
    with pytest.raises(ModelError) as err:
        discover_models(tmp_path)
    assert f"{path}:2" in str(err.value) and "grian" in str(err.value)


def test_bad_materialisation(tmp_path: Path):
    path = write(tmp_path, "marts", "m", "-- materialized: incremental\nselect 1 as a")
    with pytest.raises(ModelError, match="table or view") as err:
        discover_models(tmp_path)
    assert f"{path}:1" in str(err.value)


def test_repeated_key(tmp_path: Path):
    write(tmp_path, "marts", "m", "-- grain: a\n-- grain: b\nselect 1 as a")
    with pytest.raises(ModelError, match="repeated"):
        discover_models(tmp_path)


def test_model_fields(tmp_path: Path):
    write(tmp_path, "marts", "m", "-- tags: marts, adam\n-- grain: a, b\nselect 1 as a, 2 as b")
    model = discover_models(tmp_path)["m"]
    assert model.tags == ["marts", "adam"] and model.grain_columns == ["a", "b"] and model.schema == "main"


def test_parse_error_names_line(tmp_path: Path):
    path = write(tmp_path, "marts", "m", "select (a,\n  from x")
    with pytest.raises(ModelError) as err:
        discover_models(tmp_path)
    assert str(path) in str(err.value)
