"""The analyse and report steps as the build calls them: the change report against the previous export, the
analysis tables and report, the validation report.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from warehouse.db import connect_build
from warehouse.extract.steps import read_meta
from warehouse.publish import (
    BuildPaths,
)
from warehouse.request import BuildRequest


def record_changes(build_file: Path, data_dir: Path, export_id: str) -> int:
    """The change report against the previously landed export, as `main.export_changes` (what a data manager
    reviews after each transfer). Items flagged as identifiers are left out: they never leave the raw zone."""
    from warehouse.extract.changes import TABLE, write_changes_table
    from warehouse.stage.typed import identifier_items, is_identifier

    identifiers = identifier_items(read_meta(data_dir, export_id)["items"])
    with connect_build(build_file) as con:
        rows = write_changes_table(con, data_dir, export_id)
        fields = [f for (f,) in con.execute(f"select distinct field from {TABLE} where field is not null").fetchall()
                  if is_identifier(f, identifiers)] if rows else []
        if fields:
            con.execute(f"delete from {TABLE} where field in ({', '.join('?' for _ in fields)})", fields)
        return con.execute(f"select count(*) from {TABLE}").fetchall()[0][0]


def analyse(request: BuildRequest, build_file: Path, build_id: str, blocked: bool = False) -> Path:
    """Analysis tables (`ar_*`) into the build, and the analysis report; arms pooled in a blinded build."""
    from warehouse.analyse import analyse_build

    return analyse_build(build_file, request.paths.reports, build_id, list(request.study.arms.values()), blocked)


def write_report(paths: BuildPaths, build_id: str, validations: list, history: pl.DataFrame,
                 blocked: bool = False) -> Path:
    from warehouse.validate.report import write_validation_report

    return write_validation_report(paths.reports, build_id, validations, history, blocked)
