"""Validation at every stage with Great Expectations: suites from expectations/ (and generated from the export's
metadata), severities (error gates the build, warning informs), row-level findings with a history across builds.

A build validates in DuckDB (pushdown.py) with suites and results held as plain data in GX's shapes
(expectations.py); Great Expectations itself checks the suite files and renders Data Docs in a worker process of
the build (gx_worker.py, gx_process.py), and is imported in the caller's process only by GX on pandas
(``validate_stage``, the reference engine).

    v = validate_stage("raw", tables, metadata)        # -> StageValidation(.success, .errors, .warnings, .results,
                                                       #                    .findings, .suites)
    history = update_findings_history(previous, v.findings, build_id, built_at)

Tables in DuckDB (large ones): ``validate_stage_duckdb(stage, con, ["src.labs", ...], metadata)`` gives the same
output from SQL (pushdown.py); ``use_pushdown(con, tables)`` is the threshold rule. For the orchestrator:
``findings_markdown(validations, build_id)`` and ``findings_table_rows(findings)`` (artifacts.py).
"""

from warehouse.validate.artifacts import findings_markdown, findings_table_rows
from warehouse.validate.core import DEFAULT_MAX_FINDINGS_PER_EXPECTATION, StageValidation, validate_stage
from warehouse.validate.findings import (
    FINDINGS_COLUMNS,
    HISTORY_COLUMNS,
    finding_id,
    update_findings_history,
)
from warehouse.validate.pushdown import (
    PUSHDOWN_ROW_THRESHOLD,
    use_pushdown,
    validate_stage_auto,
    validate_stage_duckdb,
)
from warehouse.validate.suites import (
    GENERATED_SEVERITY,
    expectations_dir,
    generate_raw_suites,
    generate_staging_range_suites,
    load_suites,
    save_suites,
)

__all__ = [
    "DEFAULT_MAX_FINDINGS_PER_EXPECTATION",
    "FINDINGS_COLUMNS",
    "GENERATED_SEVERITY",
    "PUSHDOWN_ROW_THRESHOLD",
    "HISTORY_COLUMNS",
    "StageValidation",
    "expectations_dir",
    "finding_id",
    "findings_markdown",
    "findings_table_rows",
    "generate_raw_suites",
    "generate_staging_range_suites",
    "load_suites",
    "save_suites",
    "update_findings_history",
    "use_pushdown",
    "validate_stage",
    "validate_stage_auto",
    "validate_stage_duckdb",
]
