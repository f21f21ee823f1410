"""Issue 14 item 11: the catalog of a published warehouse lists every table of the file (also the ones the build
writes after the models: ar_*, findings, findings_history, validation_results, export_changes) with description
and grain; `warehouse lineage` explains an analysis result column; the catalog page's dependency graph shows every
node at 1,400 px (real headless Chromium)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from warehouse.transform.catalog import BUILD_TABLE_GRAINS, graph_layout, graph_svg, render_catalog_html, write_catalog_html
from warehouse.cli import app
from warehouse.transform.lineage import ANALYSIS_READS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validate"))
from cdp import browser  # noqa: E402, F401 - the module's headless Chromium (a fixture)

runner = CliRunner()
LATE_TABLES = {"ar_baseline", "ar_primary", "ar_mortality", "ar_secondary", "ar_teae", "ar_km", "findings",
               "findings_history", "validation_results", "export_changes"}


def file_tables(con) -> set[tuple[str, str]]:
    """Every table and view a user can query in the file, in every schema."""
    return set(con.execute(
        "select schema_name, table_name from duckdb_tables() where database_name = current_database() "
        "union select schema_name, view_name from duckdb_views() where not internal "
        "and database_name = current_database()").fetchall())


@pytest.mark.slow
def test_published_catalog_lists_every_table_with_description_and_grain(demo_build):
    with duckdb.connect(str(demo_build.published), read_only=True) as con:
        tables = file_tables(con)
        catalog = con.sql("select * from main.catalog").pl()
        columns = set(con.execute("select schema_name, table_name, column_name from duckdb_columns() "
                                  "where database_name = current_database()").fetchall())
    listed = set(catalog.select("schema_name", "table_name").unique().iter_rows())
    assert {("main", t) for t in LATE_TABLES} <= tables  # the build wrote them ...
    assert listed == tables  # ... and the catalog lists every table of the file, no more, no less
    assert set(catalog.select("schema_name", "table_name", "column_name").iter_rows()) == columns
    per_table = catalog.unique(["schema_name", "table_name"])
    assert per_table.filter(pl.col("table_description").is_null()).height == 0
    main = {r["table_name"]: r for r in per_table.filter(pl.col("schema_name") == "main").iter_rows(named=True)}
    assert all(main[t]["grain"] for t in main), {t: r["grain"] for t, r in main.items()}
    assert main["ar_primary"]["table_description"].startswith("Primary endpoint")
    assert main["ar_primary"]["grain"] == "avisit, arm" and main["ar_primary"]["layer"] == "analysis"
    assert main["ar_primary"]["upstream"] == "main.adeff" and main["ar_teae"]["upstream"] == "main.adae, main.adsl"
    assert main["findings"]["grain"] == "finding_id" and main["findings"]["layer"] == "build"
    assert main["export_changes"]["table_description"].startswith("Change report")
    # the models keep what their headers say, after the refresh as before it
    assert main["adeff"]["grain"] == "USUBJID, PARAMCD, AVISIT" and main["adeff"]["layer"] == "marts"
    assert "intermediate.int_pe_response" in main["adeff"]["upstream"]
    staged = per_table.filter(pl.col("schema_name") == "staging")
    assert staged.height >= 13 and staged.filter(pl.col("grain").is_null()).height == 0
    # column descriptions of the late tables come through too
    described = catalog.filter((pl.col("table_name") == "ar_primary") & (pl.col("column_name") == "p_ancova"))
    assert described.item(0, "description").startswith("Two-sided p")


@pytest.mark.slow
def test_build_table_grains_identify_one_row(demo_build):
    with duckdb.connect(str(demo_build.published), read_only=True) as con:
        present = {t for _, t in file_tables(con)}
        for table, grain in BUILD_TABLE_GRAINS.items():
            assert table in present, table
            keys = ", ".join(f'"{c.strip()}"' for c in grain.split(","))
            total, distinct = con.execute(
                f"select (select count(*) from main.{table}), (select count(*) from (select distinct {keys} "
                f"from main.{table}))").fetchall()[0]
            assert total == distinct, f"{table}: {total - distinct} rows share a grain ({grain})"


@pytest.mark.slow
def test_analysis_reads_are_what_the_analysis_reads(demo_build):
    """The declared inputs of the ar_* tables (their lineage) are enough to compute them: the analysis on the marts
    cut down to those columns gives the same tables."""
    from warehouse.analyse import RESULT_TABLES, analyse, read_marts
    from warehouse.study import load_study

    assert set(ANALYSIS_READS) == set(RESULT_TABLES) == {t for t in BUILD_TABLE_GRAINS if t.startswith("ar_")}
    with duckdb.connect(str(demo_build.published), read_only=True) as con:
        marts = read_marts(con)
    needed: dict[str, set[str]] = {}
    for reads in ANALYSIS_READS.values():
        for mart, columns in reads.items():
            needed.setdefault(mart, set()).update(columns)
    cut = {name: frame.select(sorted(needed.get(name, set()))) for name, frame in marts.items()}
    arms = list(load_study().arms.values())
    full, narrow = analyse(marts, arms), analyse(cut, arms)
    for name, frame in full.tables.items():
        assert narrow.tables[name].equals(frame), name


@pytest.mark.slow
def test_lineage_of_analysis_results_and_unknown_names(demo_build):
    stored_dir = demo_build.published.parent  # DIR/unblinded: its warehouse.duckdb has the stored lineage
    result = runner.invoke(app, ["lineage", "ar_primary.mean", "--data-dir", str(stored_dir)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "ar_primary.mean" and "analysis step" in lines[1] and "main.adeff" in lines[1]
    assert "  <- main.adeff.AVAL" in lines and "  <- main.adeff.TRT01P" in lines
    assert "pe_challenge.pe_map_max" in result.output and "stored lineage" in result.output
    # derived live from the SQL (no published file under this dir): the same explanation
    live = runner.invoke(app, ["lineage", "ar_primary.mean", "--data-dir", str(stored_dir.parent)])
    assert live.exit_code == 0, live.output
    assert live.output.splitlines()[:2] == lines[:2] and "derived from the current SQL" in live.output
    with duckdb.connect(str(demo_build.published), read_only=True) as con:
        stored = {r[0] for r in con.execute("select distinct column_name from main.lineage "
                                            "where table_name = 'ar_km'").fetchall()}
        columns = {r[0] for r in con.execute("select column_name from duckdb_columns() "
                                             "where table_name = 'ar_km'").fetchall()}
    assert stored == columns
    # the build's other tables say what they are; an unknown table and column are named as such
    result = runner.invoke(app, ["lineage", "findings.value", "--data-dir", str(stored_dir)])
    assert result.exit_code == 2 and "validation step" in result.output and "no model named" not in result.output
    result = runner.invoke(app, ["lineage", "nosuch.value", "--data-dir", str(stored_dir)])
    assert result.exit_code == 2 and "no table named 'nosuch'" in result.output and "ar_primary" in result.output
    result = runner.invoke(app, ["lineage", "ar_primary.nosuch", "--data-dir", str(stored_dir)])
    assert result.exit_code == 2 and "ar_primary has no column 'nosuch'" in result.output


def test_graph_columns_are_as_wide_as_their_labels():
    """A layout check without a browser: the demo-sized graph's natural width fits 1,400 px less the margins."""
    rows = []
    for i in range(17):
        rows.append(("src", f"form_{i:02d}_long_name", "src", None))
        rows.append(("staging", f"stg_form_{i:02d}_long_name", "staging", f"src.form_{i:02d}_long_name"))
    rows.append(("intermediate", "int_vasopressor_segments", "intermediate", "staging.stg_form_00_long_name"))
    rows.append(("main", "adsl", "marts", "intermediate.int_vasopressor_segments"))
    rows.append(("main", "hemodynamics", "marts", "main.adsl"))
    rows.append(("src", "hemodynamics", "src", None))
    rows.append(("staging", "stg_hemo", "staging", "src.hemodynamics"))
    rows.append(("main", "ar_primary", "analysis", "main.hemodynamics"))
    frame = pl.DataFrame(rows, schema=["schema_name", "table_name", "layer", "upstream"], orient="row")
    nodes, _ = graph_layout(frame)
    assert nodes["src.hemodynamics"].label == "src.hemodynamics" and nodes["main.adsl"].label == "adsl"
    by_depth: dict[int, list] = {}
    for n in nodes.values():
        by_depth.setdefault(n.depth, []).append(n)
    lefts = [min(n.x for n in by_depth[d]) for d in sorted(by_depth)]
    assert lefts == sorted(lefts) and len(set(lefts)) == len(lefts)  # columns left to right, no overlap
    for d in sorted(by_depth)[:-1]:
        assert max(n.x + n.width for n in by_depth[d]) < min(n.x for n in by_depth[d + 1])
    svg = graph_svg(frame)
    assert 'style="max-width:100%;height:auto"' in svg


def open_at_width(browser, path: Path, width: int, height: int = 900):
    """A tab with a `width` px wide viewport, the page loaded."""
    return browser.open(path, width=width, height=height)


NODE_BOXES = """JSON.stringify((() => {
  const g = document.querySelector('#graph').getBoundingClientRect();
  const svg = document.querySelector('#graph svg');
  const nodes = [...svg.querySelectorAll('.node')].map(n => { const r = n.getBoundingClientRect();
    return [n.dataset.rel, r.left, r.top, r.right, r.bottom]; });
  return {graph: [g.left, g.top, g.right, g.bottom], inner: window.innerWidth,
          scale: svg.getBoundingClientRect().width / svg.viewBox.baseVal.width, nodes: nodes};
})())"""


@pytest.mark.slow
def test_catalog_page_graph_shows_every_node_at_1400_px(demo_build, browser, tmp_path):
    out = write_catalog_html(demo_build.published, tmp_path / "catalog.html")
    page = open_at_width(browser, out, 1400)
    assert page.requests == [out.resolve().as_uri()] and page.errors == []
    boxes = json.loads(page.evaluate(NODE_BOXES))
    shot = base64.b64decode(page.send("Page.captureScreenshot", {"format": "png"})["data"])
    (tmp_path / "catalog-1400.png").write_bytes(shot)
    left, top, right, bottom = boxes["graph"]
    nodes = {rel: box for rel, *box in boxes["nodes"]}
    marts = {"main.adsl", "main.adae", "main.adeff", "main.adtte", "main.hemodynamics"}
    assert marts | {f"main.{t}" for t in ANALYSIS_READS} <= set(nodes)
    hidden = {rel: box for rel, box in nodes.items()
              if not (box[0] >= left and box[2] <= right and box[2] <= boxes["inner"] and box[1] >= top
                      and box[3] <= bottom)}
    assert not hidden, f"nodes outside the graph's box {boxes['graph']}: {hidden}"
    assert boxes["scale"] > 0.99  # it fits at its natural size: no shrinking needed at 1,400 px
    # a narrower window shrinks the graph to fit instead of hiding columns
    narrow = open_at_width(browser, out, 900)
    boxes = json.loads(narrow.evaluate(NODE_BOXES))
    assert boxes["scale"] < 0.99
    assert all(box[2] <= boxes["graph"][2] + 0.5 for _, *box in boxes["nodes"])


def test_catalog_page_lists_a_late_table(tmp_path):
    """The page renders a build table that no model makes (layer, grain, the marts it reads)."""
    frame = pl.DataFrame([{"schema_name": "main", "table_name": "ar_primary", "kind": "table", "layer": "analysis",
                           "table_description": "Primary endpoint", "grain": "avisit, arm", "tags": None,
                           "upstream": "main.adeff", "rows": 6, "column_index": 1, "column_name": "mean",
                           "column_type": "DOUBLE", "description": "Mean"},
                          {"schema_name": "main", "table_name": "adeff", "kind": "table", "layer": "marts",
                           "table_description": "ADEFF", "grain": "USUBJID", "tags": None, "upstream": None,
                           "rows": 6, "column_index": 1, "column_name": "AVAL", "column_type": "DOUBLE",
                           "description": "Value"}])
    page = render_catalog_html(frame)
    assert 'id="t-main.ar_primary"' in page and "grain: <code>avisit, arm</code>" in page
    assert 'href="#t-main.adeff">main.adeff</a>' in page and 'data-rel="main.ar_primary"' in page
