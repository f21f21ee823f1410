"""validate_stage: run a stage's suites with Great Expectations and turn failures into row-level findings."""

from __future__ import annotations

import copy
import logging
import os
import string
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from warehouse.validate.derived import DERIVED_CHECKS
from warehouse.validate.findings import FINDINGS_COLUMNS, findings_frame
from warehouse.validate.identifiers import (
    IDENTIFIER_WITHHELD,
    engine_identifier_values,
    is_identifier,
    metadata_identifiers,
    withhold_gx_result,
    withhold_identifiers,
    withhold_row,
)
from warehouse.validate.suites import (
    STAGES,
    form_order,
    generate_raw_suites,
    generate_staging_range_suites,
    load_suites,
    save_suites,
    severity_of,
    suite_tables,
    suite_to_dict,
    suite_to_gx,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_FINDINGS_PER_EXPECTATION = 1000

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

# Where a finding's keys come from, first column present wins (a suite's meta.keys overrides).
DEFAULT_KEYS: dict[str, list[str]] = {
    "subject_id": ["subject_id", "USUBJID", "SUBJID"],
    "site_id": ["site_id", "SITEID"],
    "event": ["event", "AVISIT", "VISIT"],
    "repeat_instance": ["repeat_instance"],
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
    # (name, GX ExpectationSuiteValidationResult) per suite and table run: what GX Data Docs render
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


def preload_gx() -> threading.Thread:
    """Import Great Expectations on a background thread, from the start of a build.

    The import is ~8 s of pure Python (GX pulls in scipy.stats and builds hundreds of pydantic models); staging and
    the transform run in Polars and DuckDB, native code that leaves the interpreter free, so on a second core the
    import is done by the time validation starts instead of being paid then. Safe to call more than once; an import
    error surfaces where gx_runtime() is next called."""
    thread = threading.Thread(target=_preload, name="gx-preload", daemon=True)
    thread.start()
    return thread


def _preload() -> None:
    try:
        gx_runtime()
    except Exception:  # noqa: BLE001 - reported by the caller's own gx_runtime()
        log.debug("preloading Great Expectations failed", exc_info=True)


def to_pandas(frame: pl.DataFrame):
    """Polars -> Arrow-backed pandas with a RangeIndex (GX's unexpected_index_list are then row positions)."""
    return frame.to_pandas(use_pyarrow_extension_array=True)


# --------------------------------------------------------------------------------------------- helpers


def _columns_referenced(kwargs: dict) -> list[str]:
    cols = []
    for k in ("column", "column_A", "column_B"):
        if isinstance(kwargs.get(k), str):
            cols.append(kwargs[k])
    for k in ("column_list", "column_set"):
        if isinstance(kwargs.get(k), list):
            cols.extend(kwargs[k])

    def walk(node):
        if isinstance(node, dict):
            col = node.get("column")
            if isinstance(col, dict) and isinstance(col.get("name"), str):
                cols.append(col["name"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(kwargs.get("row_condition"))
    return cols


def _parameters_referenced(kwargs: dict) -> list[str]:
    return [v["$PARAMETER"] for v in kwargs.values() if isinstance(v, dict) and "$PARAMETER" in v]


def _source_values(tables: dict[str, pl.DataFrame], sources) -> pl.Series | None:
    for src in [sources] if isinstance(sources, str) else list(sources):
        table, _, column = str(src).rpartition(".")
        frame = tables.get(table)
        if frame is not None and column in frame.columns:
            return frame[column].drop_nulls().cast(pl.Utf8)
    return None


def _suite_parameters(meta: dict, tables: dict[str, pl.DataFrame], builtin: dict[str, Any]) -> dict[str, Any]:
    params = dict(builtin)
    for name, spec in (meta.get("parameters") or {}).items():
        if not isinstance(spec, dict):
            params[name] = spec
        elif "value" in spec:
            params[name] = spec["value"]
        elif "count_distinct" in spec:
            s = _source_values(tables, spec["count_distinct"])
            if s is not None:
                params[name] = int(s.n_unique())
        elif "values" in spec:
            s = _source_values(tables, spec["values"])
            if s is not None:
                params[name] = sorted(s.unique().to_list())
    return params


def _known_subjects(tables: dict[str, pl.DataFrame], metadata: dict[str, pl.DataFrame] | None) -> list[str] | None:
    """Raw stage: the subject list = subjects of the first form (the one holding the record id field)."""
    for form in form_order(metadata):
        frame = tables.get(form)
        if frame is not None and "subject_id" in frame.columns:
            return sorted(frame["subject_id"].drop_nulls().cast(pl.Utf8).unique().to_list())
    return None


def _text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return format(v, ".12g")  # 0.30000000000000004 -> 0.3
    return str(v)


class _Fmt(dict):
    def __missing__(self, key):
        return ""


def _where(keys: dict[str, str | None]) -> str:
    parts = []
    for label, k in (("subject", "subject_id"), ("site", "site_id"), ("event", "event"), ("instance", "repeat_instance")):
        if keys.get(k) not in (None, ""):
            parts.append(f"{label} {keys[k]}")
    return ", ".join(parts)


_TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {}


def _template_fields(template: str) -> tuple[str, ...]:
    """The names a message template reads (``{subject_id}``, ``{where}``, ...), parsed once per template."""
    if template not in _TEMPLATE_FIELDS:
        names = [f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f]
        _TEMPLATE_FIELDS[template] = tuple(dict.fromkeys(names))
    return _TEMPLATE_FIELDS[template]


def _message(template: str | None, row: dict, base: dict) -> str:
    where = _where(base)
    if template:
        # the row's columns, overridden by the finding's keys and where (only the names the template reads)
        ctx = _Fmt()
        for name in _template_fields(template):
            if name == "where":
                ctx[name] = where
            elif name in base:
                ctx[name] = "" if base[name] is None else base[name]
            elif name in row:
                ctx[name] = "" if row[name] is None else _text(row[name])
        text = template.format_map(ctx)
    else:
        if base.get("pair"):  # two columns compared: the value already names both
            text = f"{base['form']}: {base['value']}" + (f" ({where})" if where else "") + f": {base['rule']}"
        else:
            target = f"{base['form']}.{base['field']}" if base.get("field") else str(base.get("form"))
            shown = "is empty" if base.get("value") is None else f"= '{base['value']}'"
            text = f"{target} {shown}" + (f" ({where})" if where else "") + f": {base['rule']}"
    return " ".join(text.split())


# --------------------------------------------------------------------------------------------- the run


def validate_stage(
    stage: str,
    tables: dict[str, pl.DataFrame],
    metadata: dict[str, pl.DataFrame] | None = None,
    suites_dir: Path | None = None,
    *,
    max_findings_per_expectation: int = DEFAULT_MAX_FINDINGS_PER_EXPECTATION,
    generated_dir: Path | None = None,
    extra_suites: list | None = None,
    parameters: dict[str, Any] | None = None,
) -> StageValidation:
    """Validate one stage's tables with its suites; see the package docstring.

    raw: the suite files in ``<suites_dir>/raw`` plus one suite per form generated from ``metadata`` (items,
    choices); staging: the files in ``staging/`` (derived ``chk_*`` tables computed here) plus dictionary ranges
    generated from ``metadata``; marts: the files in ``marts/``. A suite whose table is absent is skipped (status
    'skipped'). ``generated_dir``: also write the generated suites there. ``extra_suites``: more suites (dicts or
    gx objects) to run. ``parameters``: values for ``$PARAMETER`` references, over those the suites compute.
    ``max_findings_per_expectation``: finding rows kept per expectation and table (counts stay complete).

    The tables are validated in memory by Great Expectations (pandas). For tables in DuckDB, large ones in
    particular, ``warehouse.validate.pushdown.validate_stage_duckdb`` gives the same output from SQL."""
    return run_stage(stage, PolarsEngine(tables), metadata, suites_dir,
                     max_findings_per_expectation=max_findings_per_expectation, generated_dir=generated_dir,
                     extra_suites=extra_suites, parameters=parameters)


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
        return _known_subjects(self.tables, metadata)

    def suite_parameters(self, meta: dict, builtin: dict[str, Any]) -> dict[str, Any]:
        return _suite_parameters(meta, self.tables, builtin)

    # the run
    def run(self, suite_name: str, table: str, runnable: list, params: dict[str, Any], cap: int):
        """[(i, GX ExpectationValidationResult | None, failing rows as dicts)] for the runnable configurations
        (each with meta._i)."""
        rt = gx_runtime()
        frame = self.tables[table]
        if table not in self._pandas:
            self._pandas[table] = to_pandas(frame)
        batch = rt["batch_definition"].get_batch(batch_parameters={"dataframe": self._pandas[table]})
        run_suite = rt["gx"].ExpectationSuite(name=f"{suite_name}:{table}", expectations=runnable)
        out = batch.validate(run_suite, result_format={"result_format": "COMPLETE"},
                             expectation_parameters=dict(params))
        by_i = {int(r.expectation_config.meta["_i"]): r for r in out.results}
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
        return rows_out, out


def plan_suites(stage: str, names: list[str], frames: dict[str, pl.DataFrame], metadata, suites_dir,
                extra_suites, generated_dir) -> list:
    """The suites a stage runs (gx objects): its files, extra suites and those generated from the metadata.

    ``frames``: the stage's tables (only their columns and types are read)."""
    file_suites = load_suites(stage, suites_dir)
    file_suites += [s if not isinstance(s, dict) else suite_to_gx(s) for s in (extra_suites or [])]
    gen_sev: dict[str, str] = {}
    for s in file_suites:
        gen_sev.update((s.meta or {}).get("generated_severity") or {})
    generated: list[dict] = []
    if metadata and stage == "raw":
        generated = generate_raw_suites(metadata, frames, severity=gen_sev)
    elif metadata and stage == "staging":
        ranged = set()
        for s in file_suites:
            for t in suite_tables(s.meta or {}, names):
                for e in s.expectations:
                    cfg = e.configuration
                    kw = cfg.kwargs
                    # a file range with both bounds and no row condition replaces the dictionary's range
                    if (cfg.type == "expect_column_values_to_be_between" and isinstance(kw.get("column"), str)
                            and kw.get("min_value") is not None and kw.get("max_value") is not None
                            and not kw.get("row_condition")):
                        ranged.add((t, cfg.kwargs["column"]))
        generated = generate_staging_range_suites(metadata, frames, skip=ranged, severity=gen_sev)
    if generated_dir is not None and generated:
        save_suites(generated, Path(generated_dir))
    return file_suites + [suite_to_gx(d) for d in generated]


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
    gx_runtime()
    suites = plan_suites(stage, engine.names(), engine.schema_frames(), metadata, suites_dir, extra_suites, generated_dir)

    # derived check tables named by suites
    for s in suites:
        name = (s.meta or {}).get("table")
        if isinstance(name, str) and name in DERIVED_CHECKS and name not in engine.names():
            frame = engine.derived(name, (s.meta or {}).get("derived") or {})
            if frame is not None:
                engine.add_table(name, frame)

    # identifier items (from the metadata): a finding on one, or built from a row holding one, never shows its value
    identifiers = metadata_identifiers(metadata)
    builtin: dict[str, Any] = {}
    if stage == "raw":
        ks = engine.known_subjects(metadata)
        if ks is not None:
            builtin["known_subjects"] = ks

    result_rows: list[dict] = []
    finding_rows: list[dict] = []
    gx_results: list = []
    names = engine.names()
    for suite in suites:
        meta = suite.meta or {}
        targets = suite_tables(meta, names)
        if not targets:
            result_rows.append(_row(stage, suite.name, str(meta.get("table")), None, {}, None, None, "skipped",
                                    "no such table in this stage"))
            continue
        params = {**engine.suite_parameters(meta, builtin), **(parameters or {})}
        for table in targets:
            columns = engine.columns(table)
            runnable, configs = [], {}
            for i, exp in enumerate(suite.expectations):
                cfg = exp.configuration
                kw = cfg.to_json_dict().get("kwargs", {})
                sev = severity_of(cfg.meta or {}, getattr(exp, "severity", None))
                missing_cols = [c for c in _columns_referenced(kw) if c not in columns]
                missing_params = [p for p in _parameters_referenced(kw) if p not in params]
                if missing_cols or missing_params:
                    note = (f"column(s) {', '.join(missing_cols)} not in {table}" if missing_cols
                            else f"parameter(s) {', '.join(missing_params)} not available")
                    result_rows.append(_row(stage, suite.name, table, cfg, kw, sev, None, "skipped", note, order=i))
                    continue
                c = copy.copy(cfg)  # shallow: only meta is replaced (a new dict), never mutated
                c.meta = {**(c.meta or {}), "_i": i}
                runnable.append(c)
                configs[i] = (cfg, kw, sev)
            if not runnable:
                continue
            outcomes, suite_result = engine.run(suite.name, table, runnable, params, max_findings_per_expectation)
            if suite_result is not None:
                gx_results.append((f"{stage}.{suite.name}.{table}", suite_result))
            for i, r, rows in outcomes:
                cfg, kw, sev = configs[i]
                res = (r.result or {}) if r is not None else {}
                exc = _exception_of(r)
                raised = bool(exc.get("raised_exception"))
                if r is None or raised:
                    note = (exc.get("exception_message") if isinstance(exc, dict) else None) or "no result from GX"
                    if any(is_identifier(c, identifiers) for c in _columns_referenced(kw)):
                        note = "details withheld (the check reads an identifier column)"
                    result_rows.append(_row(stage, suite.name, table, cfg, kw, sev, False, "error",
                                            f"could not run: {note}".splitlines()[0], order=i))
                    finding_rows.append(_table_finding(stage, suite.name, table, cfg, kw, sev,
                                                       f"{table}: check could not run ({note.splitlines()[0]})", None))
                    continue
                status = "passed" if r.success else "failed"
                result_rows.append(_row(stage, suite.name, table, cfg, kw, sev, bool(r.success), status, None,
                                        element_count=res.get("element_count"),
                                        unexpected_count=res.get("unexpected_count"), order=i))
                if not r.success:
                    finding_rows.extend(_findings_of(stage, suite.name, meta, table, columns, cfg, kw, sev, res, rows,
                                                     identifiers))

    if identifiers:  # what Data Docs render: no value list of an identifier column (after the findings used them)
        for _, suite_result in gx_results:
            for r in getattr(suite_result, "results", []) or []:
                cfg = getattr(r, "expectation_config", None)
                if cfg is not None:
                    withhold_gx_result(r, identifiers, _columns_referenced(cfg.to_json_dict().get("kwargs", {})))
    schema = {**RESULTS_SCHEMA, "_order": pl.Int64}
    results = pl.DataFrame(result_rows, schema=schema) if result_rows else pl.DataFrame(schema=schema)
    results = results.drop("_order")
    findings = findings_frame(finding_rows).select(FINDINGS_COLUMNS)
    all_suites = [suite_to_dict(s) for s in suites]
    for d, src in zip(all_suites, suites):
        if src.meta.get("generated_from"):
            d.setdefault("meta", {})["generated_from"] = src.meta["generated_from"]
    validation = StageValidation(stage=stage, results=results, findings=findings, suites=all_suites,
                                 gx_results=gx_results)
    # belt and braces: the identifier values the stage's tables hold (the raw zone's), scrubbed from every text
    # the validation produced, whatever rule, template or exception made it
    return withhold_identifiers(validation, identifiers, engine_identifier_values(engine, identifiers))


def _exception_of(r) -> dict:
    """GX's exception_info of a result: {raised_exception, exception_message, ...}, or, when a metric failed,
    the same keyed by metric id (GX 1.x): the first raised one is returned."""
    exc = (r.exception_info or {}) if r is not None else {}
    if not isinstance(exc, dict):
        return {}
    if "raised_exception" in exc:
        return exc
    for v in exc.values():
        if isinstance(v, dict) and v.get("raised_exception"):
            return v
    return {}


def _column_label(kw: dict) -> str | None:
    if isinstance(kw.get("column"), str):
        return kw["column"]
    if isinstance(kw.get("column_A"), str):
        return f"{kw['column_A']},{kw.get('column_B')}"
    for k in ("column_list", "column_set"):
        if isinstance(kw.get(k), list):
            return ",".join(kw[k])
    return None


def _rule(cfg, kw: dict) -> str:
    rule = (cfg.meta or {}).get("rule")
    if rule:
        return str(rule)
    shown = {k: v for k, v in kw.items() if k not in ("result_format", "catch_exceptions")}
    return f"{cfg.type} {shown}"


def _row(stage, suite, table, cfg, kw, sev, success, status, note, element_count=None, unexpected_count=None, order=-1):
    return {
        "stage": stage, "suite": suite, "table": table,
        "expectation_type": cfg.type if cfg is not None else None,
        "column": _column_label(kw), "severity": sev, "success": success,
        "element_count": element_count, "unexpected_count": unexpected_count,
        "rule": _rule(cfg, kw) if cfg is not None else None, "status": status, "note": note, "_order": order,
    }


def _table_finding(stage, suite, table, cfg, kw, sev, message, value) -> dict:
    meta = cfg.meta or {}
    return {
        "stage": stage, "suite": suite, "rule": _rule(cfg, kw), "expectation_type": cfg.type, "severity": sev,
        "subject_id": None, "site_id": None, "event": None, "repeat_instance": None,
        "form": meta.get("form", table), "field": meta.get("field", _column_label(kw)), "value": value,
        "message": " ".join(str(message).split()),
    }


def _key_cols(spec) -> tuple[str, ...] | None:
    if spec is None:
        return None
    return (spec,) if isinstance(spec, str) else tuple(spec)


def _key_value(row: dict, cols: tuple[str, ...] | None) -> str | None:
    """The text of a key from the row's columns ``cols`` (several are joined with " / "; absent or null ones
    left out)."""
    if not cols:
        return None
    if len(cols) == 1:
        c = cols[0]
        return _text(row[c]) if c in row else None
    vals = [_text(row.get(c)) for c in cols if c in row]
    vals = [v for v in vals if v is not None]
    return " / ".join(vals) if vals else None


def _withheld_message(form, fld, value, where: str, rule: str) -> str:
    """The message of a finding on an identifier field: what failed and where, never the value nor any text
    made from it."""
    target = f"{form}.{fld}" if fld else str(form)
    shown = f"{target} is empty" if value is None else f"{target}: {IDENTIFIER_WITHHELD}"
    return " ".join((shown + (f" ({where})" if where else "") + f": {rule}").split())


def _findings_of(stage, suite, suite_meta, table, columns: list[str], cfg, kw, sev, res: dict,
                 rows: list[dict], identifiers: set[str] = frozenset()) -> list[dict]:
    """Findings of one failed expectation: one per failing row given (``rows``, already capped), or one
    table-level finding when the expectation has no rows (e.g. a row count).

    ``identifiers``: identifier items. A row's identifier columns are withheld before anything reads the row; a
    finding whose field (or checked column) is one gets the value IDENTIFIER_WITHHELD and a fixed message
    (``form.field: value withheld (identifier) (subject ...): rule``), whatever the suite's template says."""
    meta = cfg.meta or {}
    rule = _rule(cfg, kw)
    suite_keys = suite_meta.get("keys") or {}
    # the columns whose values the finding shows (not those of a row condition)
    shown = [kw[k] for k in ("column", "column_A", "column_B") if isinstance(kw.get(k), str)]
    shown += [c for k in ("column_list", "column_set") if isinstance(kw.get(k), list) for c in kw[k]]
    shown += list(_key_cols(suite_keys.get("value")) or ())
    reads_identifier = any(is_identifier(c, identifiers) for c in shown + [meta.get("field")])
    idx = res.get("unexpected_index_list")
    if idx is None or (not idx and not res.get("unexpected_count")):
        observed = res.get("observed_value")
        if reads_identifier:
            msg = f"{table}: {rule}" + (f" ({IDENTIFIER_WITHHELD})" if observed is not None else "")
            return [_table_finding(stage, suite, table, cfg, kw, sev, msg,
                                   None if observed is None else IDENTIFIER_WITHHELD)]
        msg = f"{table}: {rule}" + (f" (observed {observed})" if observed is not None else "")
        return [_table_finding(stage, suite, table, cfg, kw, sev, msg, _text(observed))]
    keys = {k: next((c for c in cands if c in columns), None) for k, cands in DEFAULT_KEYS.items()}
    keys.update(suite_keys)
    key_cols = {k: _key_cols(keys.get(k)) for k in ("subject_id", "site_id", "event", "repeat_instance")}
    value_cols = _key_cols(suite_keys["value"]) if "value" in suite_keys else None
    form_cols = _key_cols(suite_keys["form"]) if "form" in suite_keys else None
    field_cols = _key_cols(suite_keys["field"]) if "field" in suite_keys else None
    column = kw.get("column") if isinstance(kw.get("column"), str) else None
    column_a, column_b = kw.get("column_A"), kw.get("column_B")
    col_list = kw.get("column_list") or kw.get("column_set")
    pair = bool(column_a) and column is None
    template = meta.get("message")
    out = []
    for row in rows:
        row = withhold_row(row, identifiers)
        if column is not None:
            value = _text(row.get(column))
        elif column_a:
            value = f"{column_a}={_text(row.get(column_a))}; {column_b}={_text(row.get(column_b))}"
        elif col_list:
            value = " / ".join("" if row.get(c) is None else _text(row.get(c)) for c in col_list)
        else:
            value = None
        if value_cols is not None:
            value = _key_value(row, value_cols)
        base = {k: _key_value(row, cols) for k, cols in key_cols.items()}
        form = meta.get("form") or (_key_value(row, form_cols) if form_cols is not None else table)
        fld = meta.get("field") or (_key_value(row, field_cols) if field_cols is not None else None)
        if fld is None:
            fld = column or column_a or (", ".join(col_list) if col_list else None)
        withheld = reads_identifier or any(is_identifier(part.strip(), identifiers) for part in str(fld).split(","))
        if withheld and value is not None:
            value = IDENTIFIER_WITHHELD
        base.update(form=form, field=fld, value=value, rule=rule, pair=pair)
        out.append({
            "stage": stage, "suite": suite, "rule": rule, "expectation_type": cfg.type, "severity": sev,
            "subject_id": base["subject_id"], "site_id": base["site_id"], "event": base["event"],
            "repeat_instance": base["repeat_instance"], "form": form, "field": fld, "value": value,
            "message": (_withheld_message(form, fld, value, _where(base), rule) if withheld
                        else _message(template, row, base)),
        })
    return out
