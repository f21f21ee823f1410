"""Per-site query sheets: the queried findings of one site, a query id per row, as CSV and XLSX to send to the
site (the columns of the validation report's site listings, with the query's id and text first).
"""

from __future__ import annotations

import io
import re

import polars as pl

from warehouse.review.source import ReviewSource
from warehouse.review.store import read_decisions

SHEET_COLUMNS: list[tuple[str, str]] = [  # (column, header a site reads)
    ("query_id", "query id"),
    ("subject_id", "subject"),
    ("event", "event"),
    ("repeat_instance", "instance"),
    ("form", "form"),
    ("field", "field"),
    ("value", "value"),
    ("query_text", "query"),
    ("queried_at", "queried at"),
    ("rule", "rule"),
    ("finding_id", "finding id"),
]
NO_SITE = "no_site"
WIDTHS = {"query id": 10, "subject": 12, "event": 18, "instance": 9, "form": 16, "field": 18, "value": 16,
          "query": 60, "queried at": 22, "rule": 45, "finding id": 18}


def site_key(site: str | None) -> str:
    """A site's name in a file name (the site listings' rule): letters, digits, _ . - only; none -> no_site."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", site) if site else NO_SITE


def query_sites(source: ReviewSource) -> list[str]:
    """The sites (file keys) with queried findings."""
    if source.findings.height == 0:
        return []
    queried = source.findings.filter(pl.col("review_status") == "queried")
    return sorted({site_key(s) for s in queried.get_column("site_id").to_list()})


def query_sheet(source: ReviewSource, site: str) -> pl.DataFrame:
    """The queried findings of ``site`` (a file key), ordered by subject, event, form, field, with their latest
    query's id, text and time."""
    if source.findings.height == 0:
        return pl.DataFrame(schema={h: pl.Utf8 for _, h in SHEET_COLUMNS})
    queried = source.findings.filter(pl.col("review_status") == "queried").filter(
        pl.col("site_id").map_elements(site_key, return_dtype=pl.Utf8) == site)
    queries = read_decisions(source.data_dir, queried.get_column("finding_id").to_list()).filter(
        pl.col("action") == "query").select("query_id", query_text="text", queried_at="decided_at")
    rows = queried.join(queries, on="query_id", how="left")
    return (rows.sort(["subject_id", "event", "repeat_instance", "form", "field"], nulls_last=True)
            .select([pl.col(c).cast(pl.Utf8).alias(h) for c, h in SHEET_COLUMNS]))


def sheet_csv(sheet: pl.DataFrame) -> bytes:
    return sheet.write_csv().encode("utf-8")


def sheet_xlsx(sheet: pl.DataFrame, site: str, build_id: str) -> bytes:
    """The sheet as an XLSX workbook (header row bold and frozen, a filter on every column)."""
    import xlsxwriter

    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True})
    try:
        ws = wb.add_worksheet("queries")
        head = wb.add_format({"bold": True, "bg_color": "#F3F3F3", "border": 1})
        wrap = wb.add_format({"text_wrap": True, "valign": "top"})
        top = wb.add_format({"valign": "top"})
        for j, name in enumerate(sheet.columns):
            ws.write(0, j, name, head)
            ws.set_column(j, j, WIDTHS.get(name, 14), wrap if name in ("query", "rule") else top)
        for i, row in enumerate(sheet.iter_rows(), start=1):
            for j, v in enumerate(row):
                ws.write_string(i, j, "" if v is None else str(v))
        ws.freeze_panes(1, 0)
        ws.autofilter(0, 0, max(sheet.height, 1), sheet.width - 1)
        wb.set_properties({"title": f"Data queries, site {site}", "subject": f"build {build_id}"})
    finally:
        wb.close()
    return out.getvalue()
