"""Per-site query sheets: the queried findings of one site, a query id per row, as CSV and XLSX to send to the
site (the columns of the validation report's site listings, with the query's id and text first).
"""

from __future__ import annotations

import io

import polars as pl

from warehouse.review.source import ReviewSource
from warehouse.review.store import read_decisions
from warehouse.validate.report import RECORD_COLUMNS, site_file_name

SHEET_COLUMNS: list[tuple[str, str]] = [  # (column, header a site reads)
    ("query_id", "query id"),
    *RECORD_COLUMNS,
    ("query_text", "query"),
    ("queried_at", "queried at"),
    ("rule", "rule"),
    ("finding_id", "finding id"),
]


def query_sites(source: ReviewSource) -> list[str]:
    """The sites (file keys) with queried findings."""
    if source.findings.height == 0:
        return []
    queried = source.findings.filter(pl.col("review_status") == "queried")
    return sorted({site_file_name(s) for s in queried.get_column("site_id").to_list()})


def query_sheet(source: ReviewSource, site: str) -> pl.DataFrame:
    """The queried findings of ``site`` (a file key), ordered by subject, event, form, field, with their latest
    query's id, text and time."""
    if source.findings.height == 0:
        return pl.DataFrame(schema={h: pl.Utf8 for _, h in SHEET_COLUMNS})
    queried = source.findings.filter(pl.col("review_status") == "queried").filter(
        pl.col("site_id").map_elements(site_file_name, return_dtype=pl.Utf8) == site)
    queries = read_decisions(source.data_dir, queried.get_column("finding_id").to_list()).filter(
        pl.col("action") == "query").select("query_id", query_text="text", queried_at="decided_at")
    rows = queried.join(queries, on="query_id", how="left")
    return (rows.sort(["subject_id", "event", "repeat_instance", "form", "field"], nulls_last=True)
            .select([pl.col(c).cast(pl.Utf8).alias(h) for c, h in SHEET_COLUMNS]))


def sheet_csv(sheet: pl.DataFrame) -> bytes:
    return sheet.write_csv().encode("utf-8")


def sheet_xlsx(sheet: pl.DataFrame, site: str, build_id: str) -> bytes:
    """The sheet as an XLSX workbook, laid out as the build's site listings are."""
    from warehouse.validate.report import write_sheet_xlsx

    out = io.BytesIO()
    write_sheet_xlsx(sheet, out, "queries", f"Data queries, site {site}", f"build {build_id}")
    return out.getvalue()
