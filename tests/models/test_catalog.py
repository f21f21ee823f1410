"""Item 5: the catalog table and its self-contained HTML page with the dependency graph."""

import re
import shutil

import duckdb
import pytest

from warehouse.transform.catalog import document_build, graph_layout, read_catalog, render_catalog_html, write_catalog_html
from warehouse.transform.models import discover_models
from warehouse.resources import sql_dir


@pytest.fixture(scope="module")
def documented(demo_build, tmp_path_factory):
    path = tmp_path_factory.mktemp("catalog") / "w.duckdb"
    shutil.copyfile(demo_build.published, path)
    with duckdb.connect(str(path)) as con:
        document_build(con, discover_models(sql_dir()))
    return path


def test_catalog_table(documented):
    with duckdb.connect(str(documented), read_only=True) as con:
        adeff = con.sql("select * from main.catalog where table_name = 'adeff' order by column_index").pl()
        layers = dict(con.execute("select layer, count(distinct table_name) from main.catalog group by 1").fetchall())
        itself = con.execute("select count(*) from main.catalog where table_name = 'catalog' "
                             "and description is not null").fetchall()[0][0]
    first = adeff.row(0, named=True)
    assert first["column_name"] == "STUDYID" and first["column_type"] == "VARCHAR"
    assert first["description"] == "Study identifier" and first["grain"] == "USUBJID, PARAMCD, AVISIT"
    assert "intermediate.int_pe_response" in first["upstream"] and "main.adsl" in first["upstream"]
    assert first["layer"] == "marts" and first["rows"] > 0 and first["table_description"].startswith("ADEFF")
    assert layers["staging"] == 14 and layers["marts"] == 5  # 13 forms + stg_visits and layers["src"] >= 13
    assert itself == 13  # the catalog documents its own columns


def test_graph_layers_by_depth(documented):
    nodes, edges = graph_layout(read_catalog(documented))
    assert nodes["src.vasopressors"].depth == 0 and nodes["staging.stg_vasopressors"].depth == 1
    assert nodes["main.adeff"].depth > nodes["main.adsl"].depth > nodes["staging.stg_randomisation"].depth
    assert ("intermediate.int_pe_response", "main.adeff") in edges


def test_html_is_self_contained(documented, tmp_path):
    out = write_catalog_html(documented, tmp_path / "reports" / "catalog.html")
    page = out.read_text(encoding="utf-8")
    urls = set(re.findall(r"(?:https?:)?//[\w.-]+[^\s\"'<>]*", page)) - {"http://www.w3.org/2000/svg"}
    assert not urls
    assert not re.search(r"<(link|img|iframe)\b|<script[^>]+src=|@import|url\(", page)
    assert page.count('<g class="node"') >= 28 + 13 and "<svg" in page
    assert 'id="t-main.adeff"' in page and "Study identifier" in page
    assert "pe_challenge.pe_map_max" in page  # raw sources from the stored lineage


def test_render_escapes():
    import polars as pl

    frame = pl.DataFrame([{"schema_name": "main", "table_name": "t<x>", "kind": "table", "layer": "marts",
                           "table_description": "a & b", "grain": None, "tags": None, "upstream": None,
                           "rows": 1, "column_index": 1, "column_name": "c", "column_type": "INTEGER",
                           "description": "<b>"}])
    page = render_catalog_html(frame)
    assert "t&lt;x&gt;" in page and "&lt;b&gt;" in page and "<b>" not in page.split("</style>")[1]
