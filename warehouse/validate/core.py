"""validate_stage: run a stage's suites with Great Expectations and turn failures into row-level findings.

Here: the GX runtime (imported lazily, once, only for the in-memory engine), the in-memory engine (Polars frames,
GX on pandas: the reference), the suites a stage runs and the run itself, the same for both engines
(``pushdown.py``: DuckDB, what a build uses, which needs no GX in its process: ``expectations.py``). What an expectation's outcome
becomes, a results row and findings, is ``outcomes.py``; what a stage runs, ``plan.py``."""

from __future__ import annotations

import copy
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

import polars as pl

from warehouse.validate.derived import DERIVED_CHECKS
from warehouse.validate.expectations import SuiteResult, result_from_gx
from warehouse.validate.findings import FINDINGS_COLUMNS, findings_frame
from warehouse.validate.identifiers import (
    engine_identifier_values,
    is_identifier,
    metadata_identifiers,
    withhold_gx_result,
    withhold_identifiers,
)
from warehouse.validate.outcomes import (
    exception_of,
    findings_of,
    result_row,
    table_finding,
)
from warehouse.validate.plan import (
    add_derived_tables,
    columns_referenced,
    parameters_referenced,
    plan_suites,
    suite_parameters,
)
from warehouse.validate.suites import (
    STAGES,
    form_order,
    save_suites,
    severity_of,
    suite_tables,
    suite_to_dict,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

log = logging.getLogger(__name__)

DEFAULT_MAX_FINDINGS_PER_EXPECTATION = 1000


class StageOptions(TypedDict, total=False):
    """The keyword options of a stage's validation, the same on every entry point (``validate_stage``,
    ``pushdown.validate_stage_duckdb``, ``pushdown.validate_stage_auto``), which pass them on to ``run_stage``."""

    max_findings_per_expectation: int  # finding rows kept per expectation and table (counts stay complete)
    generated_dir: Path | None  # also write the generated suites there
    extra_suites: list | None  # more suites (dicts or gx objects) to run
    parameters: dict[str, Any] | None  # values for ``$PARAMETER`` references, over those the suites compute

RESULTS_SCHEMA: dict[str, pl.DataType] = {
    "stage": pl.Utf8,
    "suite": pl.Utf8,
    "table": pl.Utf8,
    "expectation_type": pl.Utf8,
    "column": pl.Utf8,
    "severity": pl.Utf8,
    "success": pl.Boolean,  # null when skipped
    "element_count": pl.Int64,
    "unexpected_count": pl.Int64,
    "rule": pl.Utf8,
    "status": pl.Utf8,  # passed | failed | skipped | error (GX raised: counted as failed)
    "note": pl.Utf8,
}


@dataclass
class StageValidation:
    """What one stage's validation found.

    ``errors`` / ``warnings``: numbers of failed expectations by severity (an expectation that GX could not run
    counts as failed); ``success`` is False iff ``errors`` > 0. ``results``: one row per expectation run (and per
    skipped suite / expectation, status 'skipped'). ``findings``: FINDINGS_COLUMNS. ``suites``: every suite that
    was considered, as GX JSON dicts (files and generated ones), for the data manager to read."""

    stage: str
    results: pl.DataFrame
    findings: pl.DataFrame
    suites: list[dict] = field(default_factory=list)
    # (name, expectations.SuiteResult) per suite and table run: what GX Data Docs render (gx_worker.py)
    gx_results: list = field(default_factory=list, repr=False)

    @property
    def errors(self) -> int:
        return self._failed("error")

    @property
    def warnings(self) -> int:
        return self._failed("warning")

    @property
    def skipped(self) -> int:
        return self.results.filter(pl.col("status") == "skipped").height

    @property
    def success(self) -> bool:
        return self.errors == 0

    def _failed(self, severity: str) -> int:
        return self.results.filter((pl.col("success") == False) & (pl.col("severity") == severity)).height  # noqa: E712

    @property
    def generated_suites(self) -> list[dict]:
        return [s for s in self.suites if (s.get("meta") or {}).get("generated_from")]

    def save_suites(self, out_dir: Path, generated_only: bool = True) -> list[Path]:
        """Write the suites run (by default the generated ones) as JSON files under ``out_dir``."""
        return save_suites(self.generated_suites if generated_only else self.suites, Path(out_dir))

    def summary(self) -> str:
        return (f"{self.stage}: {'passed' if self.success else 'FAILED'}, {self.errors} error and {self.warnings} "
                f"warning expectations failed, {self.findings.height} findings, {self.skipped} skipped")


# --------------------------------------------------------------------------------------------- GX runtime

_GX: dict[str, Any] = {}


_GX_LOCK = threading.Lock()


def gx_runtime() -> dict[str, Any]:
    """Great Expectations imported once, lazily: an ephemeral context, progress bars off, one pandas asset."""
    with _GX_LOCK:
        return _gx_runtime()


def _gx_runtime() -> dict[str, Any]:
    if not _GX:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        ds = ctx.data_sources.add_pandas("warehouse_validate")
        batch_def = ds.add_dataframe_asset("frame").add_batch_definition_whole_dataframe("whole")
        _GX.update(gx=gx, context=ctx, batch_definition=batch_def)
    return _GX


def to_pandas(frame: pl.DataFrame):
    """Polars -> Arrow-backed pandas with a RangeIndex (GX's unexpected_index_list are then row positions)."""
    return frame.to_pandas(use_pyarrow_extension_array=True)


# --------------------------------------------------------------------------------------------- the run


def validate_stage(
    stage: str,
    tables: dict[str, pl.DataFrame],
    metadata: dict[str, pl.DataFrame] | None = None,
    suites_dir: Path | None = None,
    **options: Unpack[StageOptions],
) -> StageValidation:
    """Validate one stage's tables with its suites; see the package docstring.

    raw: the suite files in ``<suites_dir>/raw`` plus one suite per form generated from ``metadata`` (items,
    choices); staging: the files in ``staging/`` (derived ``chk_*`` tables computed here) plus dictionary ranges
    generated from ``metadata``; marts: the files in ``marts/``. A suite whose table is absent is skipped (status
    'skipped'). ``options``: see ``StageOptions``.

    The tables are validated in memory by Great Expectations (pandas). For tables in DuckDB, large ones in
    particular, ``warehouse.validate.pushdown.validate_stage_duckdb`` gives the same output from SQL."""
    return run_stage(stage, PolarsEngine(tables), metadata, suites_dir, **options)


class PolarsEngine:
    """Tables as Polars frames, validated by Great Expectations on Arrow-backed pandas."""

    def __init__(self, tables: dict[str, pl.DataFrame]):
        self.tables = dict(tables)
        self._pandas: dict[str, Any] = {}

    # what the planning needs
    def names(self) -> list[str]:
        return list(self.tables)

    def frames(self) -> dict[str, pl.DataFrame]:
        """Frames the derived checks read (here: the data itself)."""
        return self.tables

    def derived(self, name: str, params: dict[str, Any]) -> pl.DataFrame | None:
        """A derived check table (``chk_*``), computed in Polars from the frames."""
        return DERIVED_CHECKS[name](self.frames(), params)

    def schema_frames(self) -> dict[str, pl.DataFrame]:
        """Frames whose columns and types the suite generators read."""
        return self.tables

    def add_table(self, name: str, frame: pl.DataFrame) -> None:
        self.tables[name] = frame

    def values_of(self, table: str, columns: list[str]) -> pl.DataFrame:
        """The distinct rows of some columns of a table (identifier values: see identifiers.py)."""
        return self.tables[table].select(columns).unique()

    def columns(self, table: str) -> list[str]:
        return self.tables[table].columns

    def known_subjects(self, metadata) -> list[str] | None:
        """Raw stage: the subject list = subjects of the first form (the one holding the record id field)."""
        for form in form_order(metadata):
            frame = self.tables.get(form)
            if frame is not None and "subject_id" in frame.columns:
                return sorted(frame["subject_id"].drop_nulls().cast(pl.Utf8).unique().to_list())
        return None

    def _source_values(self, sources, distinct_count: bool):
        for src in [sources] if isinstance(sources, str) else list(sources):
            table, _, column = str(src).rpartition(".")
            frame = self.tables.get(table)
            if frame is not None and column in frame.columns:
                s = frame[column].drop_nulls().cast(pl.Utf8)
                return int(s.n_unique()) if distinct_count else sorted(s.unique().to_list())
        return None

    def suite_parameters(self, meta: dict, builtin: dict[str, Any]) -> dict[str, Any]:
        return suite_parameters(meta, builtin, self._source_values)

    # the run
    def run(self, suite_name: str, table: str, runnable: list, params: dict[str, Any], cap: int):
        """[(i, expectations.Result | None, failing rows as dicts)] for the runnable configurations (each with
        meta._i), and the suite's result; GX on pandas runs them (imported here)."""
        rt = gx_runtime()
        frame = self.tables[table]
        if table not in self._pandas:
            self._pandas[table] = to_pandas(frame)
        batch = rt["batch_definition"].get_batch(batch_parameters={"dataframe": self._pandas[table]})
        run_suite = rt["gx"].ExpectationSuite(name=f"{suite_name}:{table}",
                                              expectations=[c.to_json_dict() for c in runnable])
        out = batch.validate(run_suite, result_format={"result_format": "COMPLETE"},
                             expectation_parameters=dict(params))
        by_i = {int(r.expectation_config.meta["_i"]): result_from_gx(r) for r in out.results}
        rows_out = []
        for c in runnable:
            i = int(c.meta["_i"])
            r = by_i.get(i)
            rows: list[dict] = []
            if r is not None and not r.success:
                idx = (r.result or {}).get("unexpected_index_list") or []
                positions = [int(p) for p in idx[:cap] if isinstance(p, int) or str(p).isdigit()]
                rows = frame[positions].to_dicts() if positions else []
            rows_out.append((i, r, rows))
        suite_result = SuiteResult(success=bool(out.success), results=list(by_i.values()), suite_name=out.suite_name,
                                   statistics=dict(out.statistics or {}), meta=dict(out.meta or {}))
        return rows_out, suite_result


def run_stage(
    stage: str,
    engine,
    metadata: dict[str, pl.DataFrame] | None = None,
    suites_dir: Path | None = None,
    *,
    max_findings_per_expectation: int = DEFAULT_MAX_FINDINGS_PER_EXPECTATION,
    generated_dir: Path | None = None,
    extra_suites: list | None = None,
    parameters: dict[str, Any] | None = None,
) -> StageValidation:
    """The stage's validation on an engine (PolarsEngine: GX on pandas; pushdown.DuckDBEngine: SQL in DuckDB).

    Planning (suites, generated suites, derived tables, parameters, skipped expectations), results and findings are
    the same code for both engines; only ``engine.run`` differs."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    try:
        return _run_stage(stage, engine, metadata, suites_dir, max_findings_per_expectation, generated_dir,
                          extra_suites, parameters)
    except Exception:
        from warehouse.validate.gx_process import confirm_checks

        confirm_checks()  # a suite GX refuses explains a failure better than its symptom
        raise


def _run_stage(stage: str, engine, metadata, suites_dir, max_findings_per_expectation: int, generated_dir,
               extra_suites, parameters) -> StageValidation:
    suites = plan_suites(stage, engine.names(), engine.schema_frames(), metadata, suites_dir, extra_suites, generated_dir)
    add_derived_tables(engine, suites)
    # identifier items (from the metadata): a finding on one, or built from a row holding one, never shows its value
    run = _StageRun(stage, metadata_identifiers(metadata), max_findings_per_expectation)
    builtin = _builtin_parameters(stage, engine, metadata)
    names = engine.names()
    jobs: list[_Job] = []  # in suite order, then table order: the order of the results rows
    for suite in suites:
        meta = suite.meta or {}
        targets = suite_tables(meta, names)
        if not targets:
            table = str(meta.get("table"))
            jobs.append(_Job(suite, table, [], [], {}, {}, [result_row(
                stage, suite.name, table, None, {}, None, None, "skipped", "no such table in this stage")]))
            continue
        params = {**engine.suite_parameters(meta, builtin), **(parameters or {})}
        jobs += [run.job(engine, suite, table, params) for table in targets]
    run.run_jobs(engine, jobs)
    if run.identifiers:  # what Data Docs render: no value list of an identifier column (after the findings used them)
        _withhold_from_data_docs(run.gx_results, run.identifiers)
    validation = run.validation(suites)
    # belt and braces: the identifier values the stage's tables hold (the raw zone's), scrubbed from every text
    # the validation produced, whatever rule, template or exception made it
    return withhold_identifiers(validation, run.identifiers, engine_identifier_values(engine, run.identifiers))


def _builtin_parameters(stage: str, engine, metadata) -> dict[str, Any]:
    """Parameters every suite of the stage may read: at raw, ``known_subjects``."""
    builtin: dict[str, Any] = {}
    if stage == "raw":
        ks = engine.known_subjects(metadata)
        if ks is not None:
            builtin["known_subjects"] = ks
    return builtin


def _withhold_from_data_docs(gx_results: list, identifiers: set[str]) -> None:
    """The GX results (what Data Docs render) lose the value lists of identifier columns."""
    for _, suite_result in gx_results:
        for r in getattr(suite_result, "results", []) or []:
            cfg = getattr(r, "expectation_config", None)
            if cfg is not None:
                withhold_gx_result(r, identifiers, columns_referenced(cfg.kwargs or {}))


@dataclass
class _Job:
    """One suite on one table: its runnable expectations (copies tagged with meta._i), per position (configuration,
    kwargs, severity), its parameters, the results rows of its skipped expectations (or of the suite, when its
    table is not in the stage), and, once run, its outcomes and suite result."""

    suite: Any
    table: str
    columns: list[str]
    runnable: list
    configs: dict
    params: dict[str, Any]
    skipped: list[dict]
    outcomes: list = field(default_factory=list)
    suite_result: Any = None


@dataclass
class _StageRun:
    """What a stage's run collects, in run order: results rows, finding rows, (name, suite result)."""

    stage: str
    identifiers: set[str]
    cap: int
    results: list[dict] = field(default_factory=list)
    findings: list[dict] = field(default_factory=list)
    gx_results: list = field(default_factory=list)

    def job(self, engine, suite, table: str, params: dict[str, Any]) -> _Job:
        columns = engine.columns(table)
        runnable, configs, skipped = self._runnable(suite, table, columns, params)
        return _Job(suite, table, columns, runnable, configs, params, skipped)

    def run_jobs(self, engine, jobs: list[_Job]) -> None:
        """Run every suite on its tables, all suites on a table in one pass where the engine can (DuckDB: one
        aggregate query per table, not per suite and table), then record their outcomes in the jobs' order."""
        by_table: dict[str, list[_Job]] = {}
        for j in jobs:
            if j.runnable:
                by_table.setdefault(j.table, []).append(j)
        for table, table_jobs in by_table.items():
            requests = [(j.suite.name, j.runnable, j.params) for j in table_jobs]
            if hasattr(engine, "run_many"):
                answers = engine.run_many(table, requests, self.cap)
            else:
                answers = [engine.run(name, table, runnable, params, self.cap) for name, runnable, params in requests]
            for j, (outcomes, suite_result) in zip(table_jobs, answers):
                j.outcomes, j.suite_result = outcomes, suite_result
        for j in jobs:
            self.results += j.skipped
            if not j.runnable:
                continue
            if j.suite_result is not None:
                self.gx_results.append((f"{self.stage}.{j.suite.name}.{j.table}", j.suite_result))
            for i, r, rows in j.outcomes:
                self._record(j.suite, j.table, j.columns, i, *j.configs[i], r, rows)

    def _runnable(self, suite, table: str, columns: list[str],
                  params: dict[str, Any]) -> tuple[list, dict, list[dict]]:
        """The suite's expectations that can run on the table (copies tagged with meta._i, their position), per
        position (configuration, kwargs, severity), and the results rows of those that cannot (skipped)."""
        runnable, configs, skipped = [], {}, []
        for i, exp in enumerate(suite.expectations):
            cfg = exp.configuration
            kw = cfg.kwargs or {}  # read, never changed: no copy per expectation and table
            sev = severity_of(cfg.meta or {}, getattr(exp, "severity", None))
            missing_cols = [c for c in columns_referenced(kw) if c not in columns]
            missing_params = [p for p in parameters_referenced(kw) if p not in params]
            if missing_cols or missing_params:
                note = (f"column(s) {', '.join(missing_cols)} not in {table}" if missing_cols
                        else f"parameter(s) {', '.join(missing_params)} not available")
                skipped.append(result_row(self.stage, suite.name, table, cfg, kw, sev, None, "skipped", note, order=i))
                continue
            c = copy.copy(cfg)  # shallow: only meta is replaced (a new dict), never mutated
            c.meta = {**(c.meta or {}), "_i": i}
            runnable.append(c)
            configs[i] = (cfg, kw, sev)
        return runnable, configs, skipped

    def _record(self, suite, table: str, columns: list[str], i: int, cfg, kw, sev, r, rows: list[dict]) -> None:
        """One expectation's outcome: its results row, and its findings when it failed or could not run."""
        res = (r.result or {}) if r is not None else {}
        exc = exception_of(r)
        if r is None or exc.get("raised_exception"):
            note = (exc.get("exception_message") if isinstance(exc, dict) else None) or "no result from GX"
            if any(is_identifier(c, self.identifiers) for c in columns_referenced(kw)):
                note = "details withheld (the check reads an identifier column)"
            self.results.append(result_row(self.stage, suite.name, table, cfg, kw, sev, False, "error",
                                           f"could not run: {note}".splitlines()[0], order=i))
            self.findings.append(table_finding(self.stage, suite.name, table, cfg, kw, sev,
                                               f"{table}: check could not run ({note.splitlines()[0]})", None))
            return
        status = "passed" if r.success else "failed"
        self.results.append(result_row(self.stage, suite.name, table, cfg, kw, sev, bool(r.success), status, None,
                                       element_count=res.get("element_count"),
                                       unexpected_count=res.get("unexpected_count"), order=i))
        if not r.success:
            self.findings.extend(findings_of(self.stage, suite.name, suite.meta or {}, table, columns, cfg, kw, sev,
                                             res, rows, self.identifiers))

    def validation(self, suites: list) -> StageValidation:
        """The StageValidation of what was collected; ``suites`` (``expectations.Suite``): every suite considered,
        kept as GX JSON dicts."""
        schema = {**RESULTS_SCHEMA, "_order": pl.Int64}
        results = pl.DataFrame(self.results, schema=schema) if self.results else pl.DataFrame(schema=schema)
        results = results.drop("_order")
        findings = findings_frame(self.findings).select(FINDINGS_COLUMNS)
        all_suites = [suite_to_dict(s) for s in suites]
        for d, src in zip(all_suites, suites):
            if src.meta.get("generated_from"):
                d.setdefault("meta", {})["generated_from"] = src.meta["generated_from"]
        return StageValidation(stage=self.stage, results=results, findings=findings, suites=all_suites,
                               gx_results=self.gx_results)
