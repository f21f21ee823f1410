"""Issue 14 item 4 and issue 15 item 4: the demo's own ODM export builds, and gives the same typed forms and the
same marts as its REDCap export of the same seed; identifiers flagged in the ODM (redcap:Identifier) stay out.

Columns that legitimately differ between the two builds, and are left out of the comparison:
- `_export_id`, `_source_file`, `_source_row`, `_source_path`, `_file_sha256` (and any other `_`-prefixed
  provenance column): where a row came from in which file (a CSV record number against an XML path; the export
  id is a hash over the export's bytes, which differ by format);
- `build_id`, `export_id`, `built_at` (src.build_info): the build's own id and time, and the export's hash.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pytest

from warehouse.demo.generate import generate_demo
from warehouse.extract.rawzone import quoted_table
from warehouse.build import BuildRequest, BuildResult, run_build

MARTS = ("adsl", "adeff", "adae", "adtte", "hemodynamics")
BUILD_COLUMNS = {"build_id", "export_id", "built_at"}


def compared_columns(columns: list[str]) -> list[str]:
    return [c for c in columns if not c.startswith("_") and c not in BUILD_COLUMNS]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, BuildResult]:
    """One demo (default seed and 32 subjects) in both formats, each built unblinded into its own data dir."""
    root = tmp_path_factory.mktemp("odm-demo")
    demo = generate_demo(root / "demo", subjects=32)
    return {fmt: run_build(BuildRequest(data_dir=root / fmt, export=export, blinded=False,
                                        randomisation=demo.randomisation_file))
            for fmt, export in (("redcap", demo.redcap_dir), ("odm", demo.odm_file))}


def column_types(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> dict[tuple[str, str], list]:
    rows = con.execute("select schema_name, table_name, column_name, data_type from duckdb_columns() "
                       f"where schema_name in ({', '.join('?' for _ in schemas)}) "
                       "order by schema_name, table_name, column_index", list(schemas)).fetchall()
    out: dict[tuple[str, str], list] = {}
    for schema, table, column, dtype in rows:
        out.setdefault((schema, table), []).append((column, dtype))
    return out


def content(con: duckdb.DuckDBPyConnection, schema: str, table: str, columns: list[str]) -> pl.DataFrame:
    """The table's rows over ``columns``, sorted by every column: an order-insensitive comparison."""
    frame = con.sql(f"select * from {quoted_table(table, schema)}").pl().select(columns)
    return frame.sort(columns, nulls_last=True)


@pytest.mark.slow
def test_demo_odm_export_builds_the_same_typed_forms_and_marts_as_redcap(builds):
    redcap, odm = builds["redcap"], builds["odm"]
    assert odm.published is not None and redcap.published is not None
    assert odm.errors == redcap.errors == 0
    with duckdb.connect(str(redcap.published), read_only=True) as a, \
            duckdb.connect(str(odm.published), read_only=True) as b:
        types_a, types_b = column_types(a, ("src", "staging", "main")), column_types(b, ("src", "staging", "main"))
        # the typed forms and the staging models: the same tables, columns and types (pe_aborted: BOOLEAN)
        typed = sorted(k for k in types_a if k[0] in ("src", "staging"))
        assert typed == sorted(k for k in types_b if k[0] in ("src", "staging"))
        for key in typed:
            assert types_a[key] == types_b[key], key
        assert ("pe_aborted", "BOOLEAN") in types_b[("src", "pe_challenge")]
        # the marts: the same columns and types, and the same rows (order aside)
        for mart in MARTS:
            assert types_a[("main", mart)] == types_b[("main", mart)], mart
            columns = compared_columns([c for c, _ in types_a[("main", mart)]])
            x, y = content(a, "main", mart, columns), content(b, "main", mart, columns)
            assert x.height > 0 and x.equals(y), mart
        # and the typed forms' values, provenance aside
        for schema, table in typed:
            columns = compared_columns([c for c, _ in types_a[(schema, table)]])
            assert content(a, schema, table, columns).equals(content(b, schema, table, columns)), (schema, table)


@pytest.mark.slow
def test_identifiers_flagged_in_the_demo_odm_do_not_reach_a_build(builds):
    for fmt, result in builds.items():
        with duckdb.connect(str(result.published), read_only=True) as con:
            columns = {r[0] for r in con.execute("select column_name from duckdb_columns() where schema_name = 'src' "
                                                 "and table_name = 'demographics'").fetchall()}
        assert columns and not {"initials", "dob"} & columns, fmt
        assert "sex" in columns, fmt
