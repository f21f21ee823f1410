"""The catalog: every table and column of a warehouse with its type, description, grain and upstream tables,
queryable in DuckDB as `main.catalog` and rendered as one self-contained HTML page with the dependency graph.

Descriptions are the DuckDB comments the runner writes from each model's header (`COMMENT ON`), so the catalog,
any DuckDB client and the HTML page show the same text. The page makes no network request: CSS, the small
filter script and the graph (SVG, laid out here by topological depth) are inline.

`main.catalog` columns: schema_name, table_name, kind (table or view), layer (src, staging, intermediate, marts,
analysis, build), table_description, grain, tags, upstream (comma-separated `schema.table` the model reads), rows,
column_index, column_name, column_type, description.

Every table of the build file is listed, also those the build writes after the models: the analysis results
(`ar_*`, layer analysis, upstream the marts they are computed from), the findings, their history, the validation
results and the export's change report (layer build). Their descriptions are the comments written where they are
written; their grains are `BUILD_TABLE_GRAINS` here. `document_build` runs right after the models, before those
tables exist, so the build calls `refresh_catalog` once more just before it publishes.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from warehouse.transform.models import LAYER_SCHEMAS, Model
from warehouse.transform.order import model_graph
from warehouse.transform.runner import quote_literal, write_commented_table

CATALOG_SCHEMAS = ("src", "staging", "intermediate", "main")
CATALOG_COMMENT = (
    "Catalog of the warehouse: one row per table and column, with type, description, grain, tags and the "
    "tables a model reads (upstream)."
)
CATALOG_COLUMNS = {
    "schema_name": "DuckDB schema: src (staged forms), staging, intermediate, main (marts and build tables)",
    "table_name": "Table or view name",
    "kind": "table or view",
    "layer": "src, staging, intermediate, marts, analysis (ar_* results), or build (other tables the build writes)",
    "table_description": "What one row is and what the table is for (the model header's description)",
    "grain": "The columns that identify a row (the model header's grain)",
    "tags": "The model header's tags",
    "upstream": "The tables the model (or the analysis of an ar_* table) reads, schema.table, comma-separated",
    "rows": "Row count when the catalog was written",
    "column_index": "Position of the column in its table, 1-based",
    "column_name": "Column name",
    "column_type": "DuckDB type",
    "description": "Column description (DuckDB comment, from the model header)",
}
SCHEMA_LAYER = {schema: layer for layer, schema in LAYER_SCHEMAS.items()} | {"src": "src"}
# The grain of each table in `main` the build writes that is not a model (models declare theirs in the header).
BUILD_TABLE_GRAINS = {
    "ar_baseline": "characteristic, statistic, arm",
    "ar_primary": "avisit, arm",
    "ar_mortality": "landmark, arm",
    "ar_secondary": "paramcd, avisit, arm",
    "ar_teae": "category, aebodsys, aedecod, arm",
    "ar_km": "arm, time",
    "findings": "finding_id",
    "findings_history": "finding_id",
    "finding_decisions": "decision_id",
    "validation_results": "stage, suite, table, column, rule",
    "export_changes": "form, change, subject_id, event, repeat_instance, field",
    "catalog": "schema_name, table_name, column_index",
    "lineage": "table_name, column_name, model, model_column, upstream_table, upstream_column",
}


def build_table_config(schema: str, table: str) -> dict | None:
    """Layer, grain and upstream of a table in `main` the build writes that is not a model; None for others."""
    from warehouse.transform.lineage import ANALYSIS_READS

    if schema != "main" or table not in BUILD_TABLE_GRAINS:
        return None
    reads = ANALYSIS_READS.get(table)
    return {"layer": "analysis" if reads else "build", "grain": BUILD_TABLE_GRAINS[table], "tags": None,
            "upstream": ", ".join(f"main.{m}" for m in sorted(reads)) if reads else None}


def catalog_frame(con: duckdb.DuckDBPyConnection, models: list[Model] | dict[str, Model],
                  known: dict[tuple[str, str], dict] | None = None) -> pl.DataFrame:
    """The catalog of the open database, models' config joined to DuckDB's own column list and comments.
    A table that is no model takes its config from `BUILD_TABLE_GRAINS`, else from `known` (the stored catalog's
    config, by (schema, table): what `refresh_catalog` keeps of the models' headers)."""
    known = known or {}
    by_name = {m.name: m for m in (models.values() if isinstance(models, dict) else models)}
    if any(not m.upstream for m in by_name.values()) and by_name:
        sources = {r[0] for r in con.sql("select table_name from duckdb_tables() where schema_name = 'src'").fetchall()}
        try:
            model_graph(by_name, sources)
        except Exception:  # noqa: BLE001 - a catalog of a warehouse built from other SQL: upstream stays empty
            pass
    schemas = ", ".join(quote_literal(s) for s in CATALOG_SCHEMAS)
    tables = con.sql(
        f"""
        select schema_name, table_name, 'table' as kind, comment, estimated_size as rows
        from duckdb_tables() where schema_name in ({schemas}) and database_name = current_database()
        union all
        select schema_name, view_name, 'view', comment, null
        from duckdb_views() where schema_name in ({schemas}) and not internal and database_name = current_database()
        """
    ).pl()
    columns = con.sql(
        f"""
        select schema_name, table_name, column_index, column_name, data_type as column_type, comment as description
        from duckdb_columns() where schema_name in ({schemas}) and database_name = current_database()
        """
    ).pl()
    config = []
    for row in tables.iter_rows(named=True):
        model = by_name.get(row["table_name"])
        if model is not None and model.schema != row["schema_name"]:
            model = None
        built = build_table_config(row["schema_name"], row["table_name"])
        if model is None and built is None and (row["schema_name"], row["table_name"]) in known:
            built = known[(row["schema_name"], row["table_name"])]
        if built is not None and model is None:
            config.append({"schema_name": row["schema_name"], "table_name": row["table_name"],
                           "layer": built["layer"], "table_description": row["comment"],
                           "grain": built["grain"], "tags": built["tags"], "upstream": built["upstream"]})
            continue
        layer = SCHEMA_LAYER.get(row["schema_name"], "build") if model or row["schema_name"] == "src" else "build"
        upstream = sorted(
            f"{by_name[u].schema}.{u}" for u in (model.upstream if model else set())
        ) + sorted(f"src.{r.rpartition('.')[2]}" for r in (model.depends_on if model else set())
                   if (r.startswith("src.") or (r not in by_name and "." not in r)))
        config.append(
            {
                "schema_name": row["schema_name"],
                "table_name": row["table_name"],
                "layer": layer,
                "table_description": row["comment"] or (model.description if model else None),
                "grain": model.grain if model else None,
                "tags": ", ".join(model.tags) if model else None,
                "upstream": ", ".join(upstream) or None,
            }
        )
    config_frame = pl.DataFrame(
        config,
        schema={"schema_name": pl.Utf8, "table_name": pl.Utf8, "layer": pl.Utf8, "table_description": pl.Utf8,
                "grain": pl.Utf8, "tags": pl.Utf8, "upstream": pl.Utf8},
    )
    return (
        tables.select("schema_name", "table_name", "kind", pl.col("rows").cast(pl.Int64))
        .join(config_frame, on=["schema_name", "table_name"], how="left")
        .join(columns, on=["schema_name", "table_name"], how="left")
        .select(
            "schema_name", "table_name", "kind", "layer", "table_description", "grain", "tags", "upstream", "rows",
            pl.col("column_index").cast(pl.Int32), "column_name", "column_type", "description",
        )
        .sort("schema_name", "table_name", "column_index")
    )


def write_catalog(con: duckdb.DuckDBPyConnection, models: list[Model] | dict[str, Model],
                  known: dict[tuple[str, str], dict] | None = None) -> pl.DataFrame:
    """Store the catalog as `main.catalog` in the open build database (it lists itself too); returns it."""
    for _ in range(2):  # the second pass lists the catalog table itself, with its columns and comments
        frame = catalog_frame(con, models, known)
        write_commented_table(con, "catalog", frame, CATALOG_COMMENT, CATALOG_COLUMNS)
    return frame


def stored_table_config(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, str], dict]:
    """Layer, grain, tags and upstream per table of the stored `main.catalog` (empty when there is none)."""
    stored = con.execute("select count(*) from duckdb_tables() where schema_name = 'main' and table_name = 'catalog' "
                         "and database_name = current_database()").fetchall()[0][0]
    if not stored:
        return {}
    rows = con.execute("select distinct schema_name, table_name, layer, grain, tags, upstream from main.catalog"
                       ).fetchall()
    return {(r[0], r[1]): {"layer": r[2], "grain": r[3], "tags": r[4], "upstream": r[5]} for r in rows}


def refresh_catalog(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """Complete `main.catalog` (and `main.lineage`) of the open build with the tables written after the models:
    analysis results, findings, validation results, the change report. The models' config is kept from the
    stored catalog, so the models need not be read again. Call just before publishing; returns the catalog."""
    from warehouse.transform.lineage import extend_lineage_with_analysis

    extend_lineage_with_analysis(con)
    return write_catalog(con, {}, known=stored_table_config(con))


def refresh_build_catalog(build_file: Path) -> None:
    """`refresh_catalog` on a build file (the build's last step before it is published)."""
    with duckdb.connect(str(build_file)) as con:
        refresh_catalog(con)
        con.execute("checkpoint")


def read_catalog(database: Path, models: list[Model] | dict[str, Model] | None = None) -> pl.DataFrame:
    """The catalog of a warehouse file: its stored `main.catalog`, else computed (read-only) from its tables."""
    from warehouse.transform.models import discover_models
    from warehouse.resources import sql_dir

    with duckdb.connect(str(database), read_only=True) as con:
        stored = con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'main' and table_name = 'catalog'"
        ).fetchall()[0][0]
        if stored:
            return con.sql("select * from main.catalog order by schema_name, table_name, column_index").pl()
        return catalog_frame(con, models if models is not None else discover_models(sql_dir()))


def read_raw_sources(database: Path) -> dict[tuple[str, str], list[str]]:
    """Per mart column, its raw eCRF `form.item`s from the stored lineage (empty when there is none)."""
    with duckdb.connect(str(database), read_only=True) as con:
        stored = con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'main' and table_name = 'lineage'"
        ).fetchall()[0][0]
        if not stored:
            return {}
        rows = con.sql(
            "select distinct table_name, column_name, raw_form || '.' || raw_item from main.lineage "
            "where raw_form is not null order by 1, 2, 3"
        ).fetchall()
    found: dict[tuple[str, str], list[str]] = {}
    for table, column, raw in rows:
        found.setdefault((table.lower(), column.lower()), []).append(raw)
    return found


# -- the dependency graph as SVG ------------------------------------------------------------------------------

LAYER_COLOURS = {"src": "#e8eef7", "staging": "#e4f3e6", "intermediate": "#fdf1dc", "marts": "#f6e0e0",
                 "analysis": "#ece3f5", "build": "#eeeeee"}
CHAR_WIDTH, NODE_PAD, COLUMN_GAP, ROW_HEIGHT = 7.3, 12, 36, 30


@dataclass
class GraphNode:
    relation: str
    layer: str
    depth: int
    x: float = 0.0
    y: float = 0.0
    label: str = ""
    width: float = 0.0


def node_label(relation: str, relations: set[str] | dict) -> str:
    """A node's text: the table name (its colour says the layer, its tooltip the schema), or schema.table when
    another schema has a table of that name (src.hemodynamics and main.hemodynamics)."""
    table = relation.rpartition(".")[2]
    same = [r for r in relations if r.rpartition(".")[2] == table]
    return relation if len(same) > 1 else table


def graph_layout(catalog: pl.DataFrame) -> tuple[dict[str, GraphNode], list[tuple[str, str]]]:
    """Nodes (tables that are models or read by one) layered by topological depth, and their edges. Each depth
    is a column as wide as its longest label, so the whole graph fits a laptop screen (1,400 px) unscaled."""
    tables = catalog.unique(["schema_name", "table_name"]).sort("schema_name", "table_name")
    upstream: dict[str, list[str]] = {}
    layers: dict[str, str] = {}
    for row in tables.iter_rows(named=True):
        relation = f"{row['schema_name']}.{row['table_name']}"
        layers[relation] = row["layer"]
        upstream[relation] = [u.strip() for u in (row["upstream"] or "").split(",") if u.strip()]
    used = {u for ups in upstream.values() for u in ups}
    keep = {r for r, ups in upstream.items() if ups} | used
    depth: dict[str, int] = {}

    def depth_of(relation: str, trail: frozenset = frozenset()) -> int:
        if relation not in depth:
            parents = [p for p in upstream.get(relation, []) if p not in trail]
            depth[relation] = 1 + max((depth_of(p, trail | {relation}) for p in parents), default=-1)
        return depth[relation]

    nodes = {r: GraphNode(r, layers.get(r, "src"), depth_of(r)) for r in sorted(keep)}
    for node in nodes.values():
        node.label = node_label(node.relation, nodes)
        node.width = NODE_PAD + round(CHAR_WIDTH * len(node.label))
    edges = [(p, r) for r in sorted(keep) for p in upstream.get(r, []) if p in nodes]
    columns: dict[int, list[GraphNode]] = {}
    for node in nodes.values():
        columns.setdefault(node.depth, []).append(node)
    x = 10.0
    for d in sorted(columns):
        members = columns[d]
        if d > 0:  # barycentre of the parents keeps edges short
            for node in members:
                ys = [nodes[p].y for p, c in edges if c == node.relation]
                node.y = sum(ys) / len(ys) if ys else 0
            members.sort(key=lambda n: (n.y, n.relation))
        width = max(n.width for n in members)
        for i, node in enumerate(members):
            node.x, node.y, node.width = x, 40 + i * ROW_HEIGHT, width
        x += width + COLUMN_GAP
    return nodes, edges


def graph_svg(catalog: pl.DataFrame) -> str:
    """The dependency graph as inline SVG. Its natural size fits 1,400 px; on a narrower page it scales down to
    the page's width (viewBox, max-width 100%) rather than hiding columns behind a scroll bar."""
    nodes, edges = graph_layout(catalog)
    if not nodes:
        return "<p>No models.</p>"
    width = max(n.x + n.width for n in nodes.values()) + 10
    height = max(n.y for n in nodes.values()) + 40
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
             f'viewBox="0 0 {width:.0f} {height:.0f}" style="max-width:100%;height:auto" role="img" '
             f'aria-label="Model dependency graph">']
    firsts: dict[int, GraphNode] = {}
    for node in nodes.values():
        firsts.setdefault(node.depth, node)
    for d, node in sorted(firsts.items()):
        label = "sources (src)" if d == 0 else f"depth {d}"
        parts.append(f'<text x="{node.x:.0f}" y="20" class="hdr">{label}</text>')
    for parent, child in edges:
        a, b = nodes[parent], nodes[child]
        x1, y1, x2, y2 = a.x + a.width, a.y + 10, b.x, b.y + 10
        mid = (x1 + x2) / 2
        parts.append(f'<path class="edge" data-from="{html.escape(parent)}" data-to="{html.escape(child)}" '
                     f'd="M{x1:.0f},{y1:.0f} C{mid:.0f},{y1:.0f} {mid:.0f},{y2:.0f} {x2:.0f},{y2:.0f}"/>')
    for node in nodes.values():
        name = html.escape(node.relation)
        parts.append(
            f'<a href="#t-{name}"><g class="node" data-rel="{name}"><rect x="{node.x:.0f}" y="{node.y:.0f}" '
            f'width="{node.width:.0f}" height="20" rx="4" fill="{LAYER_COLOURS.get(node.layer, "#eee")}"/>'
            f'<text x="{node.x + 6:.0f}" y="{node.y + 14:.0f}">{html.escape(node.label)}</text>'
            f'<title>{name} ({node.layer})</title></g></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


# -- the page -------------------------------------------------------------------------------------------------

def render_catalog_html(catalog: pl.DataFrame, title: str = "Warehouse catalog",
                        raw_sources: dict[tuple[str, str], list[str]] | None = None, subtitle: str = "") -> str:
    """The catalog as one self-contained HTML page (no external CSS, script, font or image), rendered from
    templates/catalog.html.j2: tables in layer order (marts first), each with its columns, grain, rows, tags, the
    tables it reads and, where the lineage knows them, the raw eCRF items behind each column."""
    from warehouse.templates import Markup, render

    raw_sources = raw_sources or {}
    order = {"main": 0, "intermediate": 1, "staging": 2, "src": 3}
    tables = (
        catalog.unique(["schema_name", "table_name"])
        .with_columns(pl.col("schema_name").replace_strict(order, default=9, return_dtype=pl.Int32).alias("_o"))
        .sort("_o", "table_name")
    )
    listed = []
    for t in tables.iter_rows(named=True):
        cols = catalog.filter((pl.col("schema_name") == t["schema_name"]) & (pl.col("table_name") == t["table_name"]))
        columns = [{"name": c["column_name"], "type": c["column_type"] or "", "description": c["description"] or "",
                    "raw": raw_sources.get((t["table_name"].lower(), c["column_name"].lower()), [])}
                   for c in cols.iter_rows(named=True) if c["column_name"] is not None]
        meta = []  # (what, value), shown in this order
        if t["grain"]:
            meta.append(("grain", t["grain"]))
        if t["rows"] is not None:
            meta.append(("rows", t["rows"]))
        if t["tags"]:
            meta.append(("tags", t["tags"]))
        if t["upstream"]:
            meta.append(("reads", [u.strip() for u in t["upstream"].split(",")]))
        listed.append({
            "relation": f"{t['schema_name']}.{t['table_name']}", "layer": t["layer"] or "", "kind": t["kind"] or "",
            "colour": LAYER_COLOURS.get(t["layer"] or "build", "#eee"), "description": t["table_description"] or "",
            "meta": meta, "columns": columns,
            "with_raw": any((t["table_name"].lower(), (c or "").lower()) in raw_sources for c in cols["column_name"]),
        })
    return render("catalog.html.j2", title=title, subtitle=subtitle, graph=Markup(graph_svg(catalog)), tables=listed)


def write_catalog_html(database: Path, out: Path, title: str = "Warehouse catalog") -> Path:
    """Render the catalog of a warehouse file (its stored `main.catalog`, else computed) to `out`."""
    catalog = read_catalog(database)
    raw = read_raw_sources(database)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_catalog_html(catalog, title, raw, subtitle=str(database)), encoding="utf-8")
    return out


def document_build(con: duckdb.DuckDBPyConnection, models: list[Model] | dict[str, Model],
                   cache_dir: Path | None = None) -> None:
    """After the models ran: store `main.lineage` (every mart column back to its raw form and item), then
    `main.catalog` (which lists the lineage table too). Both are derived from the models' SQL and the open build;
    the lineage is cached in `cache_dir` (see lineage.cached_mart_lineage)."""
    from warehouse.transform.lineage import write_lineage

    write_lineage(con, models, cache_dir)
    write_catalog(con, models)
