"""Item 4: column lineage back to the raw eCRF form and item; stored for every mart column."""

import shutil

import duckdb
import pytest

from warehouse.transform.compile import compile_sql
from warehouse.transform.lineage import Lineage, format_chain, raw_item, stored_lineage, write_lineage
from warehouse.transform.testing import load_src_schema
from warehouse.transform.models import ModelError, discover_models
from warehouse.resources import sql_dir


@pytest.fixture(scope="module")
def lineage() -> Lineage:
    return Lineage(compile_sql(load_src_schema()))


def test_adeff_aval_reaches_the_pe_challenge_items(lineage):
    rows = lineage.chain("adeff", "aval")
    assert rows[0]["table_name"] == "adeff" and rows[0]["column_name"] == "AVAL"
    steps = {(r["model"], r["model_column"], r["upstream_table"], r["upstream_column"]) for r in rows}
    assert ("adeff", "AVAL", "intermediate.int_pe_response", "pe_response") in steps
    assert ("int_pe_response", "pe_response", "staging.stg_pe_challenge", "map_at_max") in steps
    raw = {(r["raw_form"], r["raw_item"]) for r in rows if r["raw_form"]}
    assert {("pe_challenge", "pe_map_max"), ("pe_challenge", "pe_map_before")} <= raw
    depth = {r["model"]: r["depth"] for r in rows}
    assert depth["adeff"] == 1 and depth["int_pe_response"] == 2 and depth["stg_pe_challenge"] == 3


def test_derived_staged_columns_map_to_their_raw_item(lineage):
    columns = {"vp_dt": "TIMESTAMP", "vp_dt_hrs": "DOUBLE", "vp_rate": "DOUBLE", "vp_rate_base": "DOUBLE",
               "vp_drug": "VARCHAR", "vp_drug_decod": "VARCHAR", "pe_ne_rate_base": "DOUBLE"}
    assert raw_item("vasopressors", "vp_dt_hrs", columns) == "vp_dt"
    assert raw_item("vasopressors", "vp_rate_base", columns) == "vp_rate"
    assert raw_item("vasopressors", "vp_drug_decod", columns) == "vp_drug"
    assert raw_item("vasopressors", "vp_drug", columns) == "vp_drug"
    assert raw_item("vasopressors", "pe_ne_rate_base", columns) == "pe_ne_rate_base"  # no pe_ne_rate item here
    rows = lineage.chain("int_vasopressor_segments", "rate")
    raw = {(r["raw_form"], r["raw_item"]) for r in rows if r["raw_form"]}
    assert ("vasopressors", "vp_rate") in raw and ("vasopressors", "vp_drug") in raw


def test_build_metadata_is_not_an_ecrf_form(lineage):
    rows = lineage.chain("adsl", "STUDYID")
    assert {r["upstream_table"] for r in rows} == {"src.build_info"} and not any(r["raw_form"] for r in rows)


def test_constants_have_no_upstream(lineage):
    rows = lineage.chain("adeff", "PARAMCD")
    assert rows and all(r["upstream_table"] is None for r in rows)


def test_format_chain(lineage):
    text = format_chain(lineage.chain("int_pe_response", "pe_response"))
    assert text.splitlines()[0] == "int_pe_response.pe_response"
    assert "<- src.pe_challenge.pe_map_max   raw eCRF: form pe_challenge, item pe_map_max" in text
    assert "map_at_max / stg_pe_challenge.map_before" in text


def test_unknown_column(lineage):
    with pytest.raises(ModelError, match="adeff has no column 'nope'"):
        lineage.chain("adeff", "nope")


def test_write_lineage_stores_every_mart_column(demo_build, tmp_path):
    path = tmp_path / "w.duckdb"
    shutil.copyfile(demo_build.published, path)
    with duckdb.connect(str(path)) as con:
        frame = write_lineage(con, discover_models(sql_dir()))
        marts = con.execute("select table_name, column_name from information_schema.columns "
                            "where table_schema = 'main' and table_name in "
                            "('adsl', 'adae', 'adeff', 'adtte', 'hemodynamics')").fetchall()
        stored = set(con.execute("select distinct table_name, column_name from main.lineage").fetchall())
        comment = con.execute("select comment from duckdb_tables() where table_name = 'lineage'").fetchall()[0][0]
    assert set(marts) == stored and frame.height > len(marts)
    assert "raw eCRF" in comment
    rows = stored_lineage(path, "ADEFF", "aval")
    assert rows and any(r["raw_item"] == "pe_map_max" for r in rows)


def test_lineage_cache_gives_the_computed_lineage_and_follows_the_sql(demo_build, tmp_path):
    from warehouse.transform.lineage import lineage_cache_key, project_lineage

    path = tmp_path / "w.duckdb"
    shutil.copyfile(demo_build.published, path)
    path.chmod(0o644)
    cache = tmp_path / "cache"
    models = discover_models(sql_dir())
    with duckdb.connect(str(path)) as con:
        computed = write_lineage(con, models, cache_dir=cache)
        assert len(list(cache.glob("lineage-*.parquet"))) == 1
        cached = write_lineage(con, models, cache_dir=cache)  # read back from the cache
        assert cached.equals(computed) and cached.height > 100
        stored = con.execute("select count(*) from main.lineage").fetchall()[0][0]
        # another SQL text is another key: a changed model never reads a stale lineage
        key = lineage_cache_key(project_lineage(con, models).compiled)
        models["adsl"].sql = models["adsl"].sql + "\n-- edited"
        assert lineage_cache_key(project_lineage(con, models).compiled) != key
    assert stored == computed.height
