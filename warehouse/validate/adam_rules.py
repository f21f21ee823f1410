"""ADaM conformance at the marts stage: rules of the ADaM Implementation Guide (ADaMIG v1.3, OCCDS v1.1, ADaM
structure for TTE) and of the CDISC ADaM conformance checks, run as plain SQL over the ADaM datasets of a build.

Every rule has an id of this module's scheme (``ADAM-nnn``; the CDISC conformance rule numbers are not
reproduced here, see docs/adam-conformance.md), a family, what it checks and a severity. ``RULES`` is the list;
docs/adam-conformance.md lists the same rules and a test keeps the two equal.

Which datasets: the tables of ``main`` that ``main.catalog`` tags ``adam`` (else adsl/adeff/adae/adtte). Their
class: ADSL (the table ``adsl``), BDS (has PARAMCD; BDS-TTE when it also has CNSR), else OCCDS.

What the study does not collect: ``expectations/marts/adam_conformance.toml`` (the active project's), table
``[not_collected.<dataset>]``, one line per variable with the reason. A required variable declared there is
not a finding; a declared variable that is present is a warning (the declaration is stale).

    validation = check_adam(con, suites_dir)      # -> StageValidation("marts", results, findings)

Findings have the shape of every marts finding (warehouse.validate.findings.FINDINGS_COLUMNS): suite
``adam_conformance``, rule ``"ADAM-041 PARAMCD at most 8 characters"``, expectation_type ``adam_conformance``,
subject_id = USUBJID, site_id = SITEID, event = AVISIT (or PARAMCD), repeat_instance = the row's key at the
dataset's grain (minus USUBJID), form = the dataset, field = the variable, value = the failing value.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

SUITE = "adam_conformance"
CONFIG_FILE = "adam_conformance.toml"
MAX_FINDINGS_PER_RULE = 1000  # finding rows kept per rule and dataset (counts stay complete), as core.py does

ADAM_TABLES = ("adsl", "adeff", "adae", "adtte")

# ADaMIG v1.3 section 3.2 (ADSL), 3.3 (BDS), OCCDS v1.1 section 3, ADaM BDS-TTE: the variables the IG marks Req
ADSL_REQUIRED = ("STUDYID", "USUBJID", "SUBJID", "SITEID", "AGE", "AGEU", "SEX", "RACE", "ARM", "ACTARM",
                 "TRT01P", "TRT01A")
BDS_REQUIRED = ("STUDYID", "USUBJID", "PARAMCD", "PARAM")
TTE_REQUIRED = ("CNSR",)
OCCDS_REQUIRED = ("STUDYID", "USUBJID")
AE_REQUIRED = ("AETERM", "AEDECOD", "AEBODSYS")

POPULATION_FLAG = re.compile(r"^(ITT|SAF|FAS|PPROT|PP|COMPL|COMP\d\d|RAND|ENRL|SCRN)FL$")
RECORD_FLAG = re.compile(r"^(ABLFL|ANL\d\dFL|ONTRTFL|TRTEMFL|AOCC\w*FL|LVOTFL)$")
SEX_TERMS = ("M", "F", "U", "UNDIFFERENTIATED")
DTF_TERMS = ("Y", "M", "D")
TMF_TERMS = ("H", "M", "S")
CHARACTER_TYPES = ("VARCHAR",)
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "FLOAT", "DOUBLE", "REAL")
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT")
EXPORTABLE_TYPES = (*CHARACTER_TYPES, *NUMERIC_TYPES, "BOOLEAN", "DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE",
                    "TIME")


@dataclass(frozen=True)
class Rule:
    id: str
    family: str
    what: str
    severity: str  # error (blocks publishing) | warning (reported)
    source: str = ""  # where the IG says so


RULES: list[Rule] = [
    # metadata: names and labels, as exported (XPT v5) and as the IG requires
    Rule("ADAM-001", "metadata", "Dataset name at most 8 characters", "error", "ADaMIG 3.1 / XPT v5"),
    Rule("ADAM-002", "metadata", "Dataset name starts with AD, letters and digits only", "error", "ADaMIG 3.1"),
    Rule("ADAM-003", "metadata", "Variable name at most 8 characters", "error", "ADaMIG 3.1 / XPT v5"),
    Rule("ADAM-004", "metadata", "Variable name upper case, starts with a letter, letters/digits/underscore only",
         "error", "ADaMIG 3.1"),
    Rule("ADAM-005", "metadata", "Dataset label (table comment) present", "error", "ADaMIG 3.1"),
    Rule("ADAM-006", "metadata", "Variable label (column comment) present", "error", "ADaMIG 3.1"),
    Rule("ADAM-007", "metadata", "Variable label as exported (labels.py rule) at most 40 characters and unique "
         "within the dataset", "error", "ADaMIG 3.1 / XPT v5"),
    Rule("ADAM-008", "metadata", "Variable type exportable as character or numeric", "error", "ADaMIG 3.1"),
    Rule("ADAM-009", "metadata", "Character value at most 200 characters", "error", "XPT v5"),
    Rule("ADAM-010", "metadata", "Dataset has a grain (keys) in main.catalog", "error", "Define-XML KeySequence"),
    Rule("ADAM-011", "metadata", "Every variable of the dataset has column lineage in main.lineage", "warning",
         "ADaMIG 1.2 traceability"),
    # required variables per class
    Rule("ADAM-020", "required", "ADSL required variable present (or declared not collected)", "error",
         "ADaMIG 3.2"),
    Rule("ADAM-021", "required", "Variable declared not collected is absent", "warning",
         "adam_conformance.toml"),
    Rule("ADAM-022", "required", "BDS required variable present (STUDYID, USUBJID, PARAMCD, PARAM)", "error",
         "ADaMIG 3.3"),
    Rule("ADAM-023", "required", "BDS analysis value present (AVAL or AVALC)", "error", "ADaMIG 3.3"),
    Rule("ADAM-024", "required", "BDS AVISIT and AVISITN present together", "error", "ADaMIG 3.3.3"),
    Rule("ADAM-025", "required", "BDS-TTE required variable present (CNSR)", "error", "ADaM BDS for TTE"),
    Rule("ADAM-026", "required", "OCCDS required variable present (STUDYID, USUBJID)", "error", "OCCDS 3"),
    Rule("ADAM-027", "required", "OCCDS adverse-event required variable present (AETERM, AEDECOD, AEBODSYS)",
         "error", "OCCDS 3.1"),
    Rule("ADAM-028", "required", "BDS/OCCDS carries a treatment variable (TRTP, TRTA, TRTxxP or TRTxxA)", "error",
         "ADaMIG 3.3.2"),
    # identifiers and ADSL
    Rule("ADAM-030", "identifiers", "STUDYID not null", "error", "ADaMIG 3.2"),
    Rule("ADAM-031", "identifiers", "USUBJID not null", "error", "ADaMIG 3.2"),
    Rule("ADAM-032", "identifiers", "One STUDYID across the ADaM datasets", "error", "ADaMIG 3.2"),
    Rule("ADAM-033", "identifiers", "USUBJID of a BDS/OCCDS dataset is in ADSL", "error", "ADaMIG 3.3, OCCDS 3"),
    Rule("ADAM-034", "identifiers", "ADSL SUBJID and SITEID not null", "error", "ADaMIG 3.2"),
    Rule("ADAM-035", "identifiers", "Variable copied from ADSL has the subject's ADSL value", "error",
         "ADaMIG 3.3.1"),
    Rule("ADAM-036", "identifiers", "AGEU populated where AGE is", "error", "ADaMIG 3.2"),
    Rule("ADAM-037", "identifiers", "SEX in the CDISC SEX codelist (M, F, U, UNDIFFERENTIATED)", "error",
         "SDTM CT C66731"),
    # parameters (BDS)
    Rule("ADAM-040", "parameter", "PARAMCD not null", "error", "ADaMIG 3.3.4"),
    Rule("ADAM-041", "parameter", "PARAMCD at most 8 characters", "error", "ADaMIG 3.3.4"),
    Rule("ADAM-042", "parameter", "PARAMCD starts with a letter, letters/digits/underscore only", "error",
         "ADaMIG 3.3.4"),
    Rule("ADAM-043", "parameter", "PARAM not null", "error", "ADaMIG 3.3.4"),
    Rule("ADAM-044", "parameter", "One PARAM per PARAMCD", "error", "ADaMIG 3.3.4"),
    Rule("ADAM-045", "parameter", "One PARAMCD per PARAM", "error", "ADaMIG 3.3.4"),
    Rule("ADAM-046", "parameter", "PARAMN one-to-one with PARAMCD", "error", "ADaMIG 3.3.4"),
    Rule("ADAM-047", "parameter", "At most one baseline record (ABLFL = 'Y') per subject and parameter", "error",
         "ADaMIG 3.3.5"),
    Rule("ADAM-048", "parameter", "BASE constant within subject and parameter", "error", "ADaMIG 3.3.5"),
    Rule("ADAM-049", "parameter", "CHG = AVAL - BASE where all three are populated", "error", "ADaMIG 3.3.5"),
    # timing (BDS)
    Rule("ADAM-050", "timing", "One AVISITN per AVISIT", "warning", "ADaMIG 3.3.3"),
    Rule("ADAM-051", "timing", "One AVISIT per AVISITN", "warning", "ADaMIG 3.3.3"),
    Rule("ADAM-052", "timing", "AVISIT populated where AVISITN is", "error", "ADaMIG 3.3.3"),
    Rule("ADAM-053", "timing", "One ATPTN per ATPT", "warning", "ADaMIG 3.3.3"),
    # flags
    Rule("ADAM-060", "flags", "Flag (*FL) is Y, N or null", "error", "ADaMIG 3.1.4"),
    Rule("ADAM-061", "flags", "Population flag (ITTFL, SAFFL, ...) is Y or N, never null", "error",
         "ADaMIG 3.1.4"),
    Rule("ADAM-062", "flags", "Record-level flag (ABLFL, ANLzzFL, TRTEMFL, AOCCzzFL, ...) is Y or null", "warning",
         "ADaMIG 3.1.4, OCCDS 3"),
    Rule("ADAM-063", "flags", "Flag (*FL) is character", "error", "ADaMIG 3.1.4"),
    Rule("ADAM-064", "flags", "Numeric flag (*FN) is 0, 1 or null", "error", "ADaMIG 3.1.4"),
    # time to event
    Rule("ADAM-070", "tte", "CNSR is 0 (event) or 1 (censored), never null", "error", "ADaM BDS for TTE"),
    Rule("ADAM-071", "tte", "TTE AVAL populated and not negative", "error", "ADaM BDS for TTE"),
    Rule("ADAM-072", "tte", "STARTDT on or before ADT", "error", "ADaM BDS for TTE"),
    # dates and study days
    Rule("ADAM-080", "dates", "Study day (ADY, ASTDY, AENDY) = date - TRTSDT (+1 on or after TRTSDT, no day 0)",
         "error", "ADaMIG 3.1.5"),
    Rule("ADAM-081", "dates", "Date variable (*DT) is a date", "error", "ADaMIG 3.1.5"),
    Rule("ADAM-082", "dates", "Date-time variable (*DTM) is a date-time", "error", "ADaMIG 3.1.5"),
    Rule("ADAM-083", "dates", "Study day (*DY) is an integer", "error", "ADaMIG 3.1.5"),
    Rule("ADAM-084", "dates", "*DT equals the date part of *DTM where both are populated", "error",
         "ADaMIG 3.1.5"),
    Rule("ADAM-085", "dates", "Date imputation flag (*DTF) in Y, M, D", "error", "ADaMIG 3.1.5 (DATEFL)"),
    Rule("ADAM-086", "dates", "Time imputation flag (*TMF) in H, M, S", "error", "ADaMIG 3.1.5 (TIMEFL)"),
    Rule("ADAM-087", "dates", "Start on or before end (TRTSDTM <= TRTEDTM, ASTDTM <= AENDTM)", "warning",
         "ADaMIG 3.1.5"),
    # keys
    Rule("ADAM-090", "keys", "Key variables (main.catalog grain) exist in the dataset", "error",
         "Define-XML KeySequence"),
    Rule("ADAM-091", "keys", "No duplicate records at the dataset's key", "error", "ADaMIG 3.1"),
    Rule("ADAM-092", "keys", "Key variables not null", "error", "ADaMIG 3.1"),
    Rule("ADAM-093", "keys", "ADSL has one record per subject (key USUBJID)", "error", "ADaMIG 3.2"),
]
RULE_BY_ID = {r.id: r for r in RULES}


# ------------------------------------------------------------------------------------------------ datasets


@dataclass
class Dataset:
    name: str
    cls: str  # ADSL | BDS | BDS-TTE | OCCDS
    columns: dict[str, str]  # name -> DuckDB type, in table order
    labels: dict[str, str]
    label: str
    grain: list[str]

    @property
    def key_cols(self) -> list[str]:
        return [c for c in self.grain if c in self.columns]

    def has(self, *names: str) -> bool:
        return all(n in self.columns for n in names)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def adam_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    present = [r[0] for r in con.execute(
        "select table_name from duckdb_tables() where schema_name = 'main' order by 1").fetchall()]
    try:
        tagged = {r[0] for r in con.execute(
            "select distinct table_name from main.catalog where schema_name = 'main' and tags like '%adam%'"
        ).fetchall()}
    except duckdb.Error:
        tagged = set()
    chosen = [t for t in present if t in tagged] or [t for t in present if t in ADAM_TABLES]
    return sorted(chosen, key=lambda t: (t != "adsl", t))


def describe(con: duckdb.DuckDBPyConnection, table: str) -> Dataset:
    rows = con.execute(
        "select column_name, data_type, comment from duckdb_columns() where schema_name = 'main' "
        "and table_name = ? order by column_index", [table]).fetchall()
    columns = {r[0]: r[1] for r in rows}
    labels = {r[0]: r[2] or "" for r in rows}
    label = con.execute("select comment from duckdb_tables() where schema_name = 'main' and table_name = ?",
                        [table]).fetchall()
    try:
        grain_row = con.execute("select max(grain) from main.catalog where schema_name = 'main' and table_name = ?",
                                [table]).fetchall()
        grain_text = (grain_row[0][0] or "") if grain_row else ""
    except duckdb.Error:
        grain_text = ""
    grain = [g.strip() for g in grain_text.split(",") if g.strip()]
    if table == "adsl":
        cls = "ADSL"
    elif "PARAMCD" in columns:
        cls = "BDS-TTE" if "CNSR" in columns else "BDS"
    else:
        cls = "OCCDS"
    return Dataset(table, cls, columns, labels, (label[0][0] or "") if label else "", grain)


def load_config(suites_dir: Path | None) -> dict:
    """The project's expectations/marts/adam_conformance.toml ({} when there is none)."""
    if suites_dir is None:
        from warehouse.validate.suites import expectations_dir

        suites_dir = expectations_dir()
    path = Path(suites_dir) / "marts" / CONFIG_FILE
    return tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


# ------------------------------------------------------------------------------------------------ outcomes


@dataclass
class Outcome:
    """One rule run on one dataset: rows checked, failing rows (complete count) and the findings kept."""
    rule: Rule
    table: str
    column: str | None
    checked: int
    failed: int
    findings: list[dict] = field(default_factory=list)
    note: str | None = None
    severity: str | None = None  # the rule's, unless a known deviation made it a warning


def _row_context(ds: Dataset, alias: str = "") -> str:
    """SQL expressions: usubjid, siteid, event, instance (the key minus USUBJID) of a row."""
    p = f"{alias}." if alias else ""
    usubjid = f"cast({p}USUBJID as varchar)" if "USUBJID" in ds.columns else "null"
    siteid = f"cast({p}SITEID as varchar)" if "SITEID" in ds.columns else "null"
    event = (f"cast({p}AVISIT as varchar)" if "AVISIT" in ds.columns
             else f"cast({p}PARAMCD as varchar)" if "PARAMCD" in ds.columns else "null")
    rest = [c for c in ds.key_cols if c != "USUBJID"]
    instance = ("concat_ws('/', " + ", ".join(f"cast({p}{_q(c)} as varchar)" for c in rest) + ")") if rest else "null"
    return f"{usubjid} as _usubjid, {siteid} as _siteid, {event} as _event, {instance} as _instance"


def row_rule(con, rule_id: str, ds: Dataset, column: str | None, condition: str, value: str,
             message: str, *, source: str | None = None, where: str = "true") -> Outcome:
    """Rows of ``ds`` (or of ``source``, a select with the dataset's columns) where ``condition`` holds are
    findings; ``value`` is the SQL of the failing value; ``where`` selects the rows checked."""
    rule = RULE_BY_ID[rule_id]
    base = source or f"select * from main.{_q(ds.name)}"
    checked = con.execute(f"select count(*) from ({base}) t where {where}").fetchone()[0]
    sql = (f"select {_row_context(ds, 't')}, cast({value} as varchar) as _value from ({base}) t "
           f"where ({where}) and ({condition})")
    failed = con.execute(f"select count(*) from ({sql})").fetchone()[0]
    rows = con.execute(f"{sql} limit {MAX_FINDINGS_PER_RULE}").fetchall() if failed else []
    findings = [_finding(rule, ds.name, column, u, s, e, i, v, message.format(value=v, usubjid=u, event=e))
                for u, s, e, i, v in rows]
    return Outcome(rule, ds.name, column, int(checked), int(failed), findings)


def table_rule(rule_id: str, ds: Dataset, column: str | None, failing: list[tuple[str | None, str]], checked: int,
               message: str) -> Outcome:
    """A rule on the dataset's metadata: ``failing`` = (column, value) per failure."""
    rule = RULE_BY_ID[rule_id]
    findings = [_finding(rule, ds.name, col, None, None, None, None, val, message.format(column=col, value=val))
                for col, val in failing]
    return Outcome(rule, ds.name, column, checked, len(failing), findings)


def _finding(rule: Rule, table: str, column, usubjid, siteid, event, instance, value, message) -> dict:
    return {
        "stage": "marts", "suite": SUITE, "rule": f"{rule.id} {rule.what}", "expectation_type": SUITE,
        "severity": rule.severity, "subject_id": usubjid, "site_id": siteid, "event": event,
        "repeat_instance": instance, "form": table, "field": column,
        "value": None if value is None else str(value), "message": " ".join(f"{rule.id}: {message}".split()),
    }


# ------------------------------------------------------------------------------------------------ families

Check = Callable[..., Iterator[Outcome]]


def check_metadata(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    from warehouse.analyse.labels import XPT_LABEL_MAX, dataset_labels

    for ds in datasets:
        name = ds.name.upper()
        yield table_rule("ADAM-001", ds, None, [(None, ds.name)] if len(name) > 8 else [], 1,
                         "dataset name {value} is longer than 8 characters")
        yield table_rule("ADAM-002", ds, None, [] if re.fullmatch(r"AD[A-Z0-9]*", name) else [(None, ds.name)], 1,
                         "dataset name {value} does not start with AD or has a character other than letters/digits")
        yield table_rule("ADAM-003", ds, None, [(c, c) for c in ds.columns if len(c) > 8], len(ds.columns),
                         "variable {column} is longer than 8 characters")
        yield table_rule("ADAM-004", ds, None,
                         [(c, c) for c in ds.columns if not re.fullmatch(r"[A-Z][A-Z0-9_]*", c)], len(ds.columns),
                         "variable {column} is not upper case letters, digits and underscores starting with a letter")
        yield table_rule("ADAM-005", ds, None, [] if ds.label.strip() else [(None, "")], 1,
                         "dataset has no label (table comment)")
        missing = [(c, "") for c, text in ds.labels.items() if not text.strip()]
        yield table_rule("ADAM-006", ds, None, missing, len(ds.columns), "variable {column} has no label")
        shortened = dataset_labels({c: t for c, t in ds.labels.items() if t.strip()})
        seen: dict[str, str] = {}
        bad = []
        for c, text in shortened.items():
            if len(text) > XPT_LABEL_MAX or not text or text.lower() in seen:
                bad.append((c, text))
            seen[text.lower()] = c
        yield table_rule("ADAM-007", ds, None, bad, len(shortened),
                         "label of {column} as exported ({value}) is longer than 40 characters or not unique")
        yield table_rule("ADAM-008", ds, None,
                         [(c, t) for c, t in ds.columns.items() if t not in EXPORTABLE_TYPES and
                          not t.startswith("DECIMAL")], len(ds.columns),
                         "variable {column} has type {value}, neither character nor numeric")
        for c, t in ds.columns.items():
            if t in CHARACTER_TYPES:
                yield row_rule(con, "ADAM-009", ds, c, f"length({_q(c)}) > 200", _q(c),
                               f"{c} is longer than 200 characters")
        yield table_rule("ADAM-010", ds, None, [] if ds.grain else [(None, "")], 1,
                         "main.catalog gives no grain (keys) for the dataset")
        try:
            traced = {r[0] for r in con.execute(
                "select distinct column_name from main.lineage where table_name = ?", [ds.name]).fetchall()}
        except duckdb.Error:
            traced = None
        if traced is not None:
            yield table_rule("ADAM-011", ds, None, [(c, "") for c in ds.columns if c not in traced],
                             len(ds.columns), "variable {column} has no lineage in main.lineage")


def _required(ds: Dataset, rule_id: str, names, not_collected: dict[str, str]) -> Outcome:
    missing = [(n, "") for n in names if n not in ds.columns and n not in not_collected]
    return table_rule(rule_id, ds, None, missing, len(tuple(names)),
                      f"{ds.cls} required variable {{column}} is missing from {ds.name} (and "
                      f"expectations/marts/{CONFIG_FILE} does not declare it not collected)")


def check_required(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    declared_all = (ctx.get("config") or {}).get("not_collected", {}) or {}
    for ds in datasets:
        declared = {k.upper(): v for k, v in (declared_all.get(ds.name) or {}).items()}
        if declared:
            yield table_rule("ADAM-021", ds, None, [(c, "") for c in declared if c in ds.columns], len(declared),
                             f"{{column}} is declared not collected in {CONFIG_FILE} but {ds.name} has it")
        if ds.cls == "ADSL":
            yield _required(ds, "ADAM-020", ADSL_REQUIRED, declared)
            continue
        treatment = [c for c in ds.columns if re.fullmatch(r"TRT(P|A|\d\dP|\d\dA)", c)]
        yield table_rule("ADAM-028", ds, None, [] if treatment else [(None, "")], 1,
                         "no treatment variable (TRTP, TRTA, TRTxxP, TRTxxA)")
        if ds.cls.startswith("BDS"):
            yield _required(ds, "ADAM-022", BDS_REQUIRED, declared)
            yield table_rule("ADAM-023", ds, None,
                             [] if ("AVAL" in ds.columns or "AVALC" in ds.columns) else [("AVAL", "")], 1,
                             "neither AVAL nor AVALC")
            pair = {"AVISIT", "AVISITN"} & set(ds.columns)
            yield table_rule("ADAM-024", ds, None, [(c, "") for c in {"AVISIT", "AVISITN"} - pair] if pair else [],
                             1, "{column} is missing while its pair (AVISIT/AVISITN) is present")
            if ds.cls == "BDS-TTE" or ds.name == "adtte":
                yield _required(ds, "ADAM-025", TTE_REQUIRED, declared)
        else:
            yield _required(ds, "ADAM-026", OCCDS_REQUIRED, declared)
            if ds.name == "adae" or any(c.startswith("AE") for c in ds.columns):
                yield _required(ds, "ADAM-027", AE_REQUIRED, declared)


def check_identifiers(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    adsl = next((d for d in datasets if d.cls == "ADSL"), None)
    studies = []
    for ds in datasets:
        if "STUDYID" in ds.columns:
            yield row_rule(con, "ADAM-030", ds, "STUDYID", "STUDYID is null", "STUDYID", "STUDYID is null")
            studies.append(f"select distinct cast(STUDYID as varchar) as s, {_lit(ds.name)} as t "
                           f"from main.{_q(ds.name)} where STUDYID is not null")
        if "USUBJID" in ds.columns:
            yield row_rule(con, "ADAM-031", ds, "USUBJID", "USUBJID is null", "USUBJID", "USUBJID is null")
    if studies:
        rows = con.execute(" union ".join(studies) + " order by t, s").fetchall()
        first = rows[0][0] if rows else None
        for ds in datasets:
            if "STUDYID" in ds.columns:
                yield row_rule(con, "ADAM-032", ds, "STUDYID", f"cast(STUDYID as varchar) <> {_lit(first)}",
                               "STUDYID", f"STUDYID {{value}} differs from {first} (the first dataset's)")
    if adsl is None:
        return
    for ds in datasets:
        if ds is adsl or "USUBJID" not in ds.columns or "USUBJID" not in adsl.columns:
            continue
        yield row_rule(con, "ADAM-033", ds, "USUBJID",
                       f"USUBJID is not null and USUBJID not in (select USUBJID from main.{_q(adsl.name)} "
                       "where USUBJID is not null)", "USUBJID", "{value} is not in ADSL")
        copied = [c for c in ds.columns if c in adsl.columns and c != "USUBJID"]
        for c in copied:
            source = (f"select d.*, a.{_q(c)} as _adsl from main.{_q(ds.name)} d "
                      f"join main.{_q(adsl.name)} a using (USUBJID)")
            yield row_rule(con, "ADAM-035", ds, c, f"t.{_q(c)} is distinct from t._adsl",
                           f"t.{_q(c)}", f"{c} = {{value}} differs from the subject's ADSL value", source=source)
    for c in ("SUBJID", "SITEID"):
        if c in adsl.columns:
            yield row_rule(con, "ADAM-034", adsl, c, f"{_q(c)} is null", _q(c), f"{c} is null")
    if adsl.has("AGE", "AGEU"):
        yield row_rule(con, "ADAM-036", adsl, "AGEU", "AGE is not null and AGEU is null", "AGE",
                       "AGE {value} without AGEU")
    if "SEX" in adsl.columns:
        terms = ", ".join(_lit(t) for t in SEX_TERMS)
        yield row_rule(con, "ADAM-037", adsl, "SEX", f"SEX is not null and cast(SEX as varchar) not in ({terms})",
                       "SEX", "SEX {value} is not in the SEX codelist")


def _one_to_one(con, rule_id: str, ds: Dataset, a: str, b: str, message: str) -> Outcome:
    """Rows whose ``a`` value has more than one distinct ``b`` (nulls of ``b`` count as a value)."""
    condition = (f"t.{_q(a)} in (select {_q(a)} from main.{_q(ds.name)} where {_q(a)} is not null "
                 f"group by 1 having count(distinct coalesce(cast({_q(b)} as varchar), chr(0))) > 1)")
    return row_rule(con, rule_id, ds, b, condition, f"t.{_q(b)}", message, where=f"t.{_q(a)} is not null")


def check_parameter(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    for ds in datasets:
        if not ds.cls.startswith("BDS"):
            continue
        if "PARAMCD" in ds.columns:
            yield row_rule(con, "ADAM-040", ds, "PARAMCD", "PARAMCD is null", "PARAMCD", "PARAMCD is null")
            yield row_rule(con, "ADAM-041", ds, "PARAMCD", "length(PARAMCD) > 8", "PARAMCD",
                           "PARAMCD {value} is longer than 8 characters")
            yield row_rule(con, "ADAM-042", ds, "PARAMCD",
                           "not regexp_full_match(PARAMCD, '[A-Za-z][A-Za-z0-9_]*')", "PARAMCD",
                           "PARAMCD {value} does not start with a letter or has a character other than "
                           "letters, digits and underscore", where="PARAMCD is not null")
        if "PARAM" in ds.columns:
            yield row_rule(con, "ADAM-043", ds, "PARAM", "PARAM is null", "PARAM", "PARAM is null")
        if ds.has("PARAMCD", "PARAM"):
            yield _one_to_one(con, "ADAM-044", ds, "PARAMCD", "PARAM",
                              "PARAM {value}: its PARAMCD has more than one PARAM")
            yield _one_to_one(con, "ADAM-045", ds, "PARAM", "PARAMCD",
                              "PARAMCD {value}: its PARAM has more than one PARAMCD")
        if ds.has("PARAMCD", "PARAMN"):
            yield _one_to_one(con, "ADAM-046", ds, "PARAMCD", "PARAMN", "PARAMN {value} is not one-to-one with PARAMCD")
            yield _one_to_one(con, "ADAM-046", ds, "PARAMN", "PARAMCD", "PARAMCD {value} is not one-to-one with PARAMN")
        by = ["USUBJID", "PARAMCD"] + (["BASETYPE"] if "BASETYPE" in ds.columns else [])
        if ds.has("ABLFL", *by):
            keys = ", ".join(by)
            yield row_rule(con, "ADAM-047", ds, "ABLFL",
                           f"t.ABLFL = 'Y' and ({keys}) in (select ({keys}) from main.{_q(ds.name)} "
                           f"where ABLFL = 'Y' group by all having count(*) > 1)",
                           "t.ABLFL", "more than one baseline record for the subject and parameter",
                           where="t.ABLFL = 'Y'")
        if ds.has("BASE", *by):
            keys = ", ".join(by)
            yield row_rule(con, "ADAM-048", ds, "BASE",
                           f"({keys}) in (select ({keys}) from main.{_q(ds.name)} group by all "
                           "having count(distinct BASE) > 1)", "t.BASE",
                           "BASE {value}: more than one BASE for the subject and parameter")
        if ds.has("AVAL", "BASE", "CHG"):
            yield row_rule(con, "ADAM-049", ds, "CHG",
                           "abs(CHG - (AVAL - BASE)) > 1e-9 * greatest(1, abs(AVAL), abs(BASE))", "CHG",
                           "CHG {value} is not AVAL - BASE",
                           where="AVAL is not null and BASE is not null and CHG is not null")


def check_timing(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    for ds in datasets:
        if not ds.cls.startswith("BDS"):
            continue
        if ds.has("AVISIT", "AVISITN"):
            yield _one_to_one(con, "ADAM-050", ds, "AVISIT", "AVISITN",
                              "AVISITN {value}: AVISIT {event} has more than one AVISITN")
            yield _one_to_one(con, "ADAM-051", ds, "AVISITN", "AVISIT",
                              "AVISIT {value}: its AVISITN has more than one AVISIT")
            yield row_rule(con, "ADAM-052", ds, "AVISIT", "AVISIT is null", "AVISITN",
                           "AVISITN {value} without AVISIT", where="AVISITN is not null")
        if ds.has("ATPT", "ATPTN"):
            yield _one_to_one(con, "ADAM-053", ds, "ATPT", "ATPTN", "ATPTN {value}: its ATPT has more than one ATPTN")


def check_flags(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    for ds in datasets:
        flags = [c for c in ds.columns if c.endswith("FL")]
        for c in flags:
            if ds.columns[c] not in CHARACTER_TYPES:
                yield table_rule("ADAM-063", ds, c, [(c, ds.columns[c])], 1, "flag {column} has type {value}")
                continue
            yield table_rule("ADAM-063", ds, c, [], 1, "")
            yield row_rule(con, "ADAM-060", ds, c, f"{_q(c)} not in ('Y', 'N')", _q(c),
                           f"{c} = {{value}} is not Y, N or null", where=f"{_q(c)} is not null")
            if POPULATION_FLAG.match(c):
                yield row_rule(con, "ADAM-061", ds, c, f"{_q(c)} is null", _q(c), f"population flag {c} is null")
            elif ds.cls != "ADSL" and RECORD_FLAG.match(c):
                yield row_rule(con, "ADAM-062", ds, c, f"{_q(c)} = 'N'", _q(c),
                               f"record-level flag {c} is N (ADaM: Y or null)")
        for c in (c for c in ds.columns if c.endswith("FN")):
            yield row_rule(con, "ADAM-064", ds, c, f"{_q(c)} not in (0, 1)", _q(c), f"{c} = {{value}} is not 0 or 1",
                           where=f"{_q(c)} is not null")


def check_tte(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    for ds in datasets:
        if "CNSR" not in ds.columns:
            continue
        yield row_rule(con, "ADAM-070", ds, "CNSR", "CNSR is null or CNSR not in (0, 1)", "CNSR",
                       "CNSR = {value} is not 0 or 1")
        if "AVAL" in ds.columns:
            yield row_rule(con, "ADAM-071", ds, "AVAL", "AVAL is null or AVAL < 0", "AVAL",
                           "time-to-event AVAL {value} is missing or negative")
        if ds.has("STARTDT", "ADT"):
            yield row_rule(con, "ADAM-072", ds, "ADT", "ADT < STARTDT", "ADT", "ADT {value} is before STARTDT",
                           where="ADT is not null and STARTDT is not null")


def _date_expr(ds: Dataset, stem: str, alias: str = "t") -> str | None:
    """The date of ``<stem>DT`` (or the date part of ``<stem>DTM``) as SQL, None when neither exists."""
    if f"{stem}DT" in ds.columns:
        return f"cast({alias}.{stem}DT as date)"
    if f"{stem}DTM" in ds.columns:
        return f"cast({alias}.{stem}DTM as date)"
    return None


def check_dates(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    adsl = next((d for d in datasets if d.cls == "ADSL"), None)
    for ds in datasets:
        for c, t in ds.columns.items():
            if c.endswith("DT") and t != "DATE":
                yield table_rule("ADAM-081", ds, c, [(c, t)], 1, "{column} has type {value}, not a date")
            if c.endswith("DTM") and not t.startswith("TIMESTAMP"):
                yield table_rule("ADAM-082", ds, c, [(c, t)], 1, "{column} has type {value}, not a date-time")
            if c.endswith("DY") and t not in INTEGER_TYPES:
                yield table_rule("ADAM-083", ds, c, [(c, t)], 1, "{column} has type {value}, not an integer")
            if c.endswith("DTF"):
                terms = ", ".join(_lit(x) for x in DTF_TERMS)
                yield row_rule(con, "ADAM-085", ds, c, f"{_q(c)} not in ({terms})", _q(c),
                               f"{c} = {{value}} is not Y, M or D", where=f"{_q(c)} is not null")
            if c.endswith("TMF"):
                terms = ", ".join(_lit(x) for x in TMF_TERMS)
                yield row_rule(con, "ADAM-086", ds, c, f"{_q(c)} not in ({terms})", _q(c),
                               f"{c} = {{value}} is not H, M or S", where=f"{_q(c)} is not null")
        for c in ds.columns:
            if c.endswith("DTM") and c[:-1] in ds.columns and ds.columns[c].startswith("TIMESTAMP") \
                    and ds.columns[c[:-1]] == "DATE":
                dt = c[:-1]
                yield row_rule(con, "ADAM-084", ds, dt, f"{_q(dt)} <> cast({_q(c)} as date)", _q(dt),
                               f"{dt} {{value}} is not the date of {c}",
                               where=f"{_q(dt)} is not null and {_q(c)} is not null")
        for start, end in (("TRTS", "TRTE"), ("AST", "AEN")):
            a, b = f"{start}DTM", f"{end}DTM"
            if ds.has(a, b):
                yield row_rule(con, "ADAM-087", ds, b, f"{_q(b)} < {_q(a)}", _q(b), f"{b} {{value}} is before {a}",
                               where=f"{_q(a)} is not null and {_q(b)} is not null")
        # study days against TRTSDT: the dataset's own TRTSDT(M), else ADSL's
        for day, stem in (("ADY", "A"), ("ASTDY", "AST"), ("AENDY", "AEN")):
            date = _date_expr(ds, stem)
            if day not in ds.columns or date is None or ds.columns[day] not in INTEGER_TYPES:
                continue
            own = _date_expr(ds, "TRTS")
            if own is not None:
                source, ref = f"select * from main.{_q(ds.name)}", own
            elif adsl is not None and ds is not adsl and "USUBJID" in ds.columns and _date_expr(adsl, "TRTS"):
                adsl_date = _date_expr(adsl, "TRTS", "a")
                source = (f"select d.*, {adsl_date} as _trtsdt from main.{_q(ds.name)} d "
                          f"left join main.{_q(adsl.name)} a using (USUBJID)")
                ref = "t._trtsdt"
            else:
                continue
            expected = f"(({date}) - ({ref})) + case when ({date}) >= ({ref}) then 1 else 0 end"
            yield row_rule(con, "ADAM-080", ds, day, f"t.{day} <> {expected}", f"t.{day}",
                           f"{day} = {{value}} is not the study day of its date from TRTSDT", source=source,
                           where=f"t.{day} is not null and ({date}) is not null and ({ref}) is not null")


def check_keys(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    for ds in datasets:
        if ds.cls == "ADSL":
            yield table_rule("ADAM-093", ds, None, [] if ds.grain == ["USUBJID"] else [(None, ", ".join(ds.grain))],
                             1, "ADSL's key is {value}, not USUBJID")
        if not ds.grain:
            continue
        absent = [c for c in ds.grain if c not in ds.columns]
        yield table_rule("ADAM-090", ds, None, [(c, "") for c in absent], len(ds.grain),
                         "key variable {column} (main.catalog grain) is not in the dataset")
        keys = ds.key_cols
        if not keys:
            continue
        cols = ", ".join(_q(c) for c in keys)
        yield row_rule(con, "ADAM-091", ds, ", ".join(keys),
                       f"({cols}) in (select ({cols}) from main.{_q(ds.name)} group by all having count(*) > 1)",
                       "concat_ws('/', " + ", ".join(f"cast(t.{_q(c)} as varchar)" for c in keys) + ")",
                       "duplicate record at the key " + ", ".join(keys) + " ({value})")
        for c in keys:
            yield row_rule(con, "ADAM-092", ds, c, f"{_q(c)} is null", _q(c), f"key variable {c} is null")


FAMILIES: dict[str, Check] = {
    "metadata": check_metadata,
    "required": check_required,
    "identifiers": check_identifiers,
    "parameter": check_parameter,
    "timing": check_timing,
    "flags": check_flags,
    "tte": check_tte,
    "dates": check_dates,
    "keys": check_keys,
}


# ------------------------------------------------------------------------------------------------ the suite


def run_rules(con: duckdb.DuckDBPyConnection, suites_dir: Path | None = None,
              config: dict | None = None) -> list[Outcome]:
    """Every family on the build's ADaM datasets (none: no outcome)."""
    datasets = [describe(con, t) for t in adam_tables(con)]
    if not datasets:
        return []
    ctx = {"config": load_config(suites_dir) if config is None else config}
    outcomes: list[Outcome] = []
    for check in FAMILIES.values():
        outcomes.extend(check(con, datasets, ctx))
    return outcomes


def _apply_deviations(outcomes: list[Outcome], config: dict) -> list[Outcome]:
    """Findings the project declares known deviations (``[deviations.<rule>]`` "dataset.VARIABLE" = reason) become
    warnings, their reason in the message; a result whose failures are all such becomes a warning."""
    deviations = {(rule, key.split(".", 1)[0].lower(), key.split(".", 1)[-1].upper()): reason
                  for rule, entries in ((config or {}).get("deviations") or {}).items()
                  for key, reason in (entries or {}).items()}
    if not deviations:
        return outcomes
    for o in outcomes:
        known = 0
        for f in o.findings:
            reason = deviations.get((o.rule.id, o.table, str(f.get("field") or "").upper()))
            if reason:
                f["severity"] = "warning"
                f["message"] = f"{f['message']} (known deviation: {reason})"
                known += 1
        if o.failed and known == o.failed:
            o.note = "known deviation (expectations/marts/adam_conformance.toml)"
            o.severity = "warning"
    return outcomes


def check_adam(con: duckdb.DuckDBPyConnection, suites_dir: Path | None = None, config: dict | None = None):
    """The conformance suite as a StageValidation of the marts stage: one result row per rule, dataset and
    variable checked; one finding per failing row (capped at MAX_FINDINGS_PER_RULE per rule and dataset)."""
    from warehouse.validate.core import RESULTS_SCHEMA, StageValidation
    from warehouse.validate.findings import findings_frame

    config = load_config(suites_dir) if config is None else config
    outcomes = _apply_deviations(run_rules(con, suites_dir, config), config)
    merged: dict[tuple[str, str, str | None], Outcome] = {}
    for o in outcomes:  # one result per rule, dataset and column
        key = (o.rule.id, o.table, o.column)
        if key in merged:
            m = merged[key]
            m.checked += o.checked
            m.failed += o.failed
            m.findings.extend(o.findings)
            m.severity = "error" if "error" in (m.severity or o.rule.severity, o.severity or o.rule.severity) \
                else "warning"
            m.note = m.note or o.note
        else:
            merged[key] = Outcome(o.rule, o.table, o.column, o.checked, o.failed, list(o.findings), o.note,
                                  o.severity)
    results = [{
        "stage": "marts", "suite": SUITE, "table": o.table, "expectation_type": SUITE, "column": o.column,
        "severity": o.severity or o.rule.severity, "success": o.failed == 0, "element_count": o.checked,
        "unexpected_count": o.failed, "rule": f"{o.rule.id} {o.rule.what}",
        "status": "passed" if o.failed == 0 else "failed", "note": o.note,
    } for o in merged.values()]
    rows = [f for o in merged.values() for f in o.findings]
    return StageValidation(
        stage="marts",
        results=pl.DataFrame(results, schema=RESULTS_SCHEMA) if results else pl.DataFrame(schema=RESULTS_SCHEMA),
        findings=findings_frame(rows),
        suites=[{"name": SUITE, "meta": {"table": [o.table for o in merged.values()][:1] or None,
                                         "description": "ADaM conformance rules (warehouse/validate/adam_rules.py, "
                                                        "docs/adam-conformance.md)",
                                         "rules": [r.id for r in RULES]}, "expectations": []}],
    )


def merge(validation, adam):
    """The marts validation with the conformance suite's results, findings and suite added."""
    from warehouse.validate.core import StageValidation

    results = pl.concat([validation.results, adam.results.select(validation.results.columns)
                         if set(validation.results.columns) <= set(adam.results.columns) else adam.results],
                        how="diagonal_relaxed")
    findings = pl.concat([validation.findings, adam.findings], how="diagonal_relaxed")
    return StageValidation(stage=validation.stage, results=results, findings=findings,
                           suites=[*validation.suites, *adam.suites], gx_results=list(validation.gx_results))
