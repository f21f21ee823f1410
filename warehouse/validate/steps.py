"""The validate stage as the build calls it: raw, staging and marts suites, identifier values withheld, the
findings recorded into the build with their history across builds.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from warehouse.db import connect_build
from warehouse.extract.steps import raw_form_files, read_meta
from warehouse.publish import (
    BuildPaths,
    read_records,
    utc_now,
)
from warehouse.request import BuildResult
from warehouse.transform.runner import (
    quote_literal,
)

# what the marts suites reconcile row counts with: staging models, and `src` forms (every record, also those a
# staging model filters out, e.g. a randomisation record without its date-time)
MARTS_RECONCILE_WITH = ("stg_randomisation", "stg_adverse_events")


MARTS_RECONCILE_WITH_SRC = ("randomisation",)


def tables_of_schema(build_file: Path, schema: str) -> dict[str, pl.DataFrame]:
    with connect_build(build_file, read_only=True) as con:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = ? order by 1", [schema]
            ).fetchall()
        ]
        return {name: con.sql(f"select * from {schema}.{name}").pl() for name in names}


def preload_validation() -> None:
    """Start the build's Great Expectations worker (validate.gx_process): a process of its own that imports GX
    (~3-5 s of pure Python) on the second core while the build stages and transforms, then checks the suite files
    and renders Data Docs. The build's own process never imports GX (validation runs in DuckDB)."""
    from warehouse.validate.gx_process import start_worker

    start_worker(defer_checks=True)


def confirm_suites_checked() -> None:
    """Great Expectations' verdicts on the build's suite files, asked of its worker while validation ran: a file
    GX refuses fails the build here, before its findings are recorded or anything is published."""
    from warehouse.validate.gx_process import confirm_checks

    confirm_checks()


def stop_gx_worker() -> None:
    """End the build's GX worker if it still runs (a build that failed before its report: nothing waits for it,
    so it is killed rather than left to finish its import), and forget the checks nobody confirmed."""
    from warehouse.validate.gx_process import forget_checks, stop_worker

    stop_worker(kill=True)
    forget_checks()


def validate_raw(data_dir: Path, export_id: str):
    """The raw stage's suites: once a form has more than PUSHDOWN_ROW_THRESHOLD rows (0: any row), every
    expectation runs as SQL in DuckDB over the Parquet files (the same findings as Great Expectations on the forms
    in memory, which is the reference; memory flat in the size of the export)."""
    from warehouse.stage.typed import identifier_items
    from warehouse.validate import PUSHDOWN_ROW_THRESHOLD, validate_stage, validate_stage_duckdb
    from warehouse.validate.pushdown import RAW_MATERIALISE_ROWS, parquet_views
    from warehouse.validate.vanished import check_vanished

    meta = read_meta(data_dir, export_id)
    files = raw_form_files(data_dir, export_id, meta["forms"])
    rows = {form: pl.scan_parquet(path).select(pl.len()).collect().item() for form, path in files.items()}
    if max(rows.values(), default=0) <= PUSHDOWN_ROW_THRESHOLD:
        validation = validate_stage("raw", {f: pl.read_parquet(path) for f, path in files.items()}, metadata=meta)
    else:
        small = max(rows.values(), default=0) <= RAW_MATERIALISE_ROWS  # read once into memory; else views
        with connect_build() as con:
            validation = validate_stage_duckdb("raw", con, parquet_views(con, files, materialise=small), metadata=meta)
    validation = check_vanished(validation, data_dir, export_id)  # subjects/records of the published export gone
    return withhold_identifier_values(validation, identifier_items(meta["items"]), data_dir=data_dir,
                                      export_id=export_id)




def withhold_identifier_values(validation, identifiers: set[str] | None = None, *, data_dir: Path | None = None,
                               export_id: str | None = None):
    """Identifiers do not leave the raw zone, and findings go into the warehouse, the reports, the site listings,
    Data Docs and the artifacts. ``validation``: one StageValidation or a build's list of them, changed in place
    (and returned). Validation already withholds them where it makes findings (warehouse.validate.identifiers);
    this applies the same rules again to validations made elsewhere.

    ``identifiers`` (item names): a finding on an identifier field keeps subject and field, never the value; GX
    results of identifier columns lose their value lists. With ``data_dir`` and ``export_id``: every text column
    of every finding and result, and every string of the GX results, is also scrubbed of every identifier value
    of that export (read from its raw snapshot)."""
    from warehouse.validate.identifiers import export_identifier_values, withhold_identifiers

    values = None
    if data_dir is not None and export_id is not None:
        names, values = export_identifier_values(data_dir, export_id)
        identifiers = set(identifiers or ()) | names
    return withhold_identifiers(validation, identifiers, values)


def start_data_docs(paths: BuildPaths, build_id: str, validations: list) -> bool:
    """Send the build's Data Docs to its GX worker (validate.datadocs.start_data_docs) once the results are final
    (identifier values withheld): the report takes the worker's site instead of rendering it itself."""
    from warehouse.validate.datadocs import start_data_docs

    return start_data_docs(Path(paths.reports) / build_id / "data_docs", validations, build_id)


def schema_tables(con: duckdb.DuckDBPyConnection, schema: str) -> list[str]:
    return [f"{schema}.{r[0]}" for r in con.execute(
        "select table_name from information_schema.tables where table_schema = ? order by 1", [schema]).fetchall()]


def validate_staging(data_dir: Path, export_id: str, build_file: Path):
    """The staging suites on the typed `src` tables, in DuckDB when a table is large (see validate_raw)."""
    from warehouse.validate import validate_stage_auto

    meta = read_meta(data_dir, export_id)
    with connect_build(build_file, read_only=True) as con:
        return validate_stage_auto("staging", con, schema_tables(con, "src"), metadata=meta)


def validate_marts(build_file: Path):
    """The marts suites on `main` (plus the staging tables they reconcile with), in DuckDB when large; then the
    ADaM conformance suite (warehouse/validate/adam/) on the ADaM datasets, its results and findings added."""
    from warehouse.validate import validate_stage_auto
    from warehouse.validate.adam import check_adam, merge

    with connect_build(build_file, read_only=True) as con:
        staging = [t for t in schema_tables(con, "staging") if t.split(".")[-1] in MARTS_RECONCILE_WITH]
        src = [t for t in schema_tables(con, "src") if t.split(".")[-1] in MARTS_RECONCILE_WITH_SRC]
        validation = validate_stage_auto("marts", con, schema_tables(con, "main") + staging + src)
        return merge(validation, check_adam(con))


def previous_findings(paths: BuildPaths) -> pl.DataFrame | None:
    """The findings history of the newest finished build, published or blocked, so that a finding keeps its
    first-seen build across builds that validation blocked (error findings live only in those), and a later
    export that fixes the value closes it. Falls back to the published warehouse (its build file pruned)."""
    candidates = [paths.build_file(r.build_id) for r in read_records(paths) if r.status in ("published", "blocked")]
    for path in [*candidates, paths.published]:
        if not path.exists():
            continue
        try:
            with duckdb.connect(str(path), read_only=True) as con:
                return con.sql("select * from main.findings_history").pl()
        except duckdb.Error:
            continue
    return None


VALIDATION_COLUMNS = {
    "finding_id": "Stable id of the finding across builds: hash of stage, rule, subject, event, instance, form and field",
    "stage": "Validation stage: raw, staging or marts",
    "suite": "Expectation suite (file in expectations/, or generated from the export's metadata)",
    "table": "Table the expectation ran on",
    "rule": "The rule, in words",
    "expectation_type": "Great Expectations expectation type",
    "column": "Column the expectation checks",
    "severity": "error (blocks publishing) or warning (reported)",
    "success": "Whether the expectation passed",
    "element_count": "Rows checked",
    "unexpected_count": "Rows failing (counted in full; findings are capped per expectation)",
    "status": "passed | failed | skipped | error (results); open | closed (history)",
    "note": "Why an expectation was skipped, or what went wrong",
    "subject_id": "Subject of the failing row",
    "site_id": "Site of the failing row",
    "event": "Event (visit) of the failing row",
    "repeat_instance": "Repeat instance of the failing row",
    "form": "Form (or mart) of the failing row",
    "field": "Field that failed",
    "value": "The failing value as found (an identifier's value is withheld)",
    "message": "What to ask the site, in one line",
    "first_seen_build": "Build in which the finding was first seen",
    "last_seen_build": "Latest build in which the finding was seen",
    "first_seen_at": "When the finding was first seen (UTC)",
    "last_seen_at": "When the finding was last seen (UTC)",
    "closed_build": "Build in which the finding was no longer there (fixed), null while open",
    "closed_at": "When the finding was closed (UTC), null while open",
    "builds_seen": "Number of builds that saw the finding",
}


def review_findings(data_dir: Path, validations: list):
    """The data manager's decisions (warehouse/review/) applied to this build's findings: read once, they decide
    whether the build blocks (an error finding nobody accepted or queried) and go into the build."""
    from warehouse.review.gate import review_build
    from warehouse.validate import DEFAULT_MAX_FINDINGS_PER_EXPECTATION

    return review_build(data_dir, validations, DEFAULT_MAX_FINDINGS_PER_EXPECTATION)


def record_validation(build_file: Path, paths: BuildPaths, build_id: str, validations: list,
                      review=None) -> pl.DataFrame:
    """Write results, current findings and their history into the build file; returns the history. With the
    build's ``review`` (review_findings): the decisions as main.finding_decisions, the review columns on the
    findings and their history."""
    from warehouse.validate import update_findings_history

    results = pl.concat([v.results for v in validations], how="diagonal_relaxed")
    findings = pl.concat([v.findings for v in validations], how="diagonal_relaxed")
    history = update_findings_history(
        previous_findings(paths), findings, build_id, utc_now(), stages=[v.stage for v in validations]
    )
    if review is not None:
        findings, history = review.with_review(findings), review.with_review(history)
    with connect_build(build_file) as con:
        for name, frame in (("validation_results", results), ("findings", findings), ("findings_history", history)):
            con.register("_frame", frame.to_arrow())
            con.execute(f"create or replace table main.{name} as select * from _frame")
            con.unregister("_frame")
        con.execute("comment on table main.findings is 'Validation findings of this build: one row per failing row and field, with subject, site, event, form, field, value, rule and severity.'")
        con.execute("comment on table main.findings_history is 'Every finding ever seen, with first and last build seen; a finding absent from a later build is closed.'")
        con.execute("comment on table main.validation_results is 'One row per expectation run in this build: stage, suite, rule, severity, counts.'")
        for table in ("findings", "findings_history", "validation_results"):
            present = {r[0] for r in con.execute(f"describe main.{table}").fetchall()}
            for column, text in VALIDATION_COLUMNS.items():
                if column in present:
                    con.execute(f'comment on column main.{table}."{column}" is {quote_literal(text)}')
        if review is not None:
            from warehouse.review.gate import comment_review_columns, write_decisions

            write_decisions(con, review, quote_literal)
            for table in ("findings", "findings_history"):
                comment_review_columns(con, table, quote_literal)
        con.execute("checkpoint")
    return history


def count_findings(validations: list) -> tuple[int, int]:
    """Error and warning findings (failing rows, not rules) of a build's validations."""
    findings = pl.concat([v.findings for v in validations], how="diagonal_relaxed")
    if findings.height == 0:
        return 0, 0
    severity = findings.get_column("severity")
    return int((severity == "error").sum()), int((severity == "warning").sum())


def blocked_message(validations: list, result: BuildResult, review=None) -> str:
    failing = pl.concat([v.results for v in validations], how="diagonal_relaxed").filter(
        (pl.col("severity") == "error") & ~pl.col("success")
    )
    # a rule that failed on several tables (one record per subject, event and instance) is named once
    distinct = failing.select("stage", "rule").unique(maintain_order=True)
    rules = ", ".join(f"{r['stage']}/{r['rule']}" for r in distinct.head(3).iter_rows(named=True))
    more = f" and {distinct.height - 3} more" if distinct.height > 3 else ""
    reviewed = ""
    if review is not None and review.decisions.height:  # what the review left blocking
        gate = review.gate
        reviewed = (f"; after review {gate.open_errors} error finding(s) open"
                    + (f", {len(gate.undecidable_rules)} rule(s) without findings" if gate.undecidable_rules else "")
                    + (f", {len(gate.capped_rules)} rule(s) with capped findings" if gate.capped_rules else ""))
    return (
        f"publishing blocked: {result.errors} error finding(s) from {distinct.height} failed rule(s) on "
        f"{failing.height} table(s) and column(s) ({rules}{more})"
        f"{reviewed}; "
        f"the previous warehouse stays published; report: {result.report}"
    )
