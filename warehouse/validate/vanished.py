"""Vanished subjects and records: what the last published export held and this export no longer does.

An export cut short (a records CSV truncated at a line boundary, a filter left on in the eCRF's export screen)
reads as a smaller, perfectly valid export: every rule on its rows passes. So the raw stage also compares this
export's raw snapshot with the snapshot of the newest *published* build (blinded or unblinded root, whichever
published last; a blocked build never becomes the reference, so rebuilding a blocked export cannot hide what it
lost):

- ``raw.subject_vanished`` (error, blocks publishing): one finding per subject of the reference export that has
  no record at all in this export, naming subject, site and the forms it had;
- ``raw.record_vanished`` (warning, reported): one finding per record (form, event, repeat instance) of the
  reference export that is gone while its subject is still there (a deleted form instance, an event cut off).

A real removal (a test record deleted in the eCRF, a subject who withdrew consent to data use) is accepted in a
plain CSV file in the data directory, ``DIR/accepted_removals.csv`` (see docs/operations.md, "When subjects
disappear from an export"):

    subject_id,form,event,repeat_instance,reason,who,when
    01-017,,,,test record created in production,J. Smith (DM),2024-03-02
    01-004,labs,h24_arm_1,,duplicate lab panel deleted in REDCap,J. Smith (DM),2024-03-02

``subject_id``, ``reason``, ``who`` and ``when`` are required; an empty ``form`` accepts the subject's removal
and every record of it; a ``form`` (and optionally ``event``, ``repeat_instance``) accepts the matching records
only. A file that does not read this way stops the build, naming file, line and field.

The result is a ``StageValidation`` of stage ``raw`` (results and findings shaped as the suites' ones), merged
into the raw validation by ``check_vanished``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from warehouse.validate.findings import findings_frame

ACCEPTED_REMOVALS_FILE = "accepted_removals.csv"
ACCEPTED_COLUMNS = ("subject_id", "form", "event", "repeat_instance", "reason", "who", "when")
ACCEPTED_REQUIRED = ("subject_id", "reason", "who", "when")
SUITE = "raw_vanished"
SUBJECT_RULE = "raw.subject_vanished"
RECORD_RULE = "raw.record_vanished"
SUBJECT_RULE_TEXT = ("every subject of the last published export is in this export (or its removal is accepted in "
                     f"{ACCEPTED_REMOVALS_FILE})")
RECORD_RULE_TEXT = ("every record of the last published export is in this export (or its removal is accepted in "
                    f"{ACCEPTED_REMOVALS_FILE})")
KEYS = ("subject_id", "event", "repeat_instance")
MAX_FINDINGS = 1000  # per rule, as for the suites' expectations (counts stay complete)


class AcceptedRemovalsError(ValueError):
    """The accepted-removals file cannot be read as documented; the message names file, line and field."""


@dataclass(frozen=True)
class Reference:
    """The snapshot this export is compared with: the export of the newest published build."""

    export_id: str
    build_id: str


@dataclass(frozen=True)
class AcceptedRemoval:
    line: int
    subject_id: str
    form: str | None
    event: str | None
    repeat_instance: str | None
    reason: str
    who: str
    when: str

    def covers_subject(self, subject_id: str) -> bool:
        return self.form is None and self.subject_id == subject_id

    def covers_record(self, subject_id: str, form: str, event: str | None, repeat_instance: str | None) -> bool:
        if self.subject_id != subject_id:
            return False
        if self.form is None:
            return True
        return (self.form == form and (self.event is None or self.event == event)
                and (self.repeat_instance is None or self.repeat_instance == repeat_instance))


# -- the reference --------------------------------------------------------------------------------------------


def reference_export(data_dir: Path) -> Reference | None:
    """The export of the newest published build of the data directory (blinded and unblinded roots alike: they
    land into the same raw zone) whose raw snapshot is still there; None before the first publish."""
    from warehouse.publish import BuildPaths, read_records

    records = [r for blinded in (True, False) for r in read_records(BuildPaths(Path(data_dir), blinded))]
    for record in sorted(records, key=lambda r: r.build_id, reverse=True):
        if record.status == "published" and record.export_id and snapshot_present(data_dir, record.export_id):
            return Reference(record.export_id, record.build_id)
    return None


def snapshot_present(data_dir: Path, export_id: str) -> bool:
    return (Path(data_dir) / "raw" / export_id / "_meta" / "export.json").is_file()


# -- accepted removals ------------------------------------------------------------------------------------------


def accepted_removals_path(data_dir: Path) -> Path:
    return Path(data_dir) / ACCEPTED_REMOVALS_FILE


def read_accepted_removals(data_dir: Path) -> list[AcceptedRemoval]:
    """The accepted removals of the data directory ([] when the file is absent). Lines starting with '#' and
    blank lines are skipped. AcceptedRemovalsError names file, line and field of anything else that is wrong."""
    path = accepted_removals_path(data_dir)
    if not path.is_file():
        return []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise AcceptedRemovalsError(f"{path}: cannot be read as UTF-8 text: {err}") from err
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return []
    header_line, header = lines[0][0], next(csv.reader([lines[0][1]]))
    header = [h.strip().lower() for h in header]
    missing = [c for c in ACCEPTED_REQUIRED if c not in header]
    if missing:
        raise AcceptedRemovalsError(
            f"{path}:{header_line}: header lacks column(s) {', '.join(missing)} (expected: {', '.join(ACCEPTED_COLUMNS)})")
    unknown = [h for h in header if h not in ACCEPTED_COLUMNS]
    if unknown:
        raise AcceptedRemovalsError(
            f"{path}:{header_line}: unknown column(s) {', '.join(unknown)} (expected: {', '.join(ACCEPTED_COLUMNS)})")
    out = []
    for number, line in lines[1:]:
        values = next(csv.reader([line]))
        if len(values) > len(header):
            raise AcceptedRemovalsError(f"{path}:{number}: {len(values)} values for {len(header)} columns")
        row = {h: (values[k].strip() if k < len(values) else "") for k, h in enumerate(header)}
        for column in ACCEPTED_REQUIRED:
            if not row.get(column):
                raise AcceptedRemovalsError(f"{path}:{number}: field '{column}' is empty (subject "
                                            f"{row.get('subject_id') or '?'}): a removal is accepted with "
                                            f"{', '.join(ACCEPTED_REQUIRED)}")
        if not row.get("form") and (row.get("event") or row.get("repeat_instance")):
            raise AcceptedRemovalsError(f"{path}:{number}: field 'form' is empty but event/repeat_instance is set "
                                        f"(subject {row['subject_id']}): name the form of the record")
        out.append(AcceptedRemoval(number, row["subject_id"], row.get("form") or None, row.get("event") or None,
                                   row.get("repeat_instance") or None, row["reason"], row["who"], row["when"]))
    return out


# -- the comparison ---------------------------------------------------------------------------------------------


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _forms(data_dir: Path, export_id: str) -> dict[str, Path]:
    """The raw tables of a snapshot: table name -> Parquet file (form order of the metadata, then by name)."""
    d = Path(data_dir) / "raw" / export_id
    order: dict[str, int] = {}
    meta = d / "_meta" / "forms.parquet"
    if meta.is_file():
        order = {f: k for k, f in enumerate(pl.read_parquet(meta, columns=["form"])["form"].to_list())}
    files = sorted(d.glob("*.parquet"), key=lambda p: (order.get(p.stem, len(order)), p.stem))
    return {p.stem: p for p in files}


def _keys_select(path: Path, distinct: bool = True, site: bool = True) -> str:
    """The record keys (and site) of a form's Parquet file, rows without a subject left out; a key missing from the
    file reads as null. ``distinct``: each record once."""
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    cols = [(_ident(k) if k in names else f"null::varchar as {_ident(k)}") for k in (*KEYS, *(("site_id",) if site else ()))]
    return (f"select {'distinct ' if distinct else ''}{', '.join(cols)} from read_parquet({_lit(str(path))}) "
            "where subject_id is not null")


def _subjects_select(path: Path, with_site: bool) -> str:
    """The distinct subjects (and their sites) of a form's Parquet file: a subject's presence needs no record keys
    (a group by one or two columns, not by every record: ~0.4 s against ~10 s on 14 million rows)."""
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    site = ("site_id" if "site_id" in names else "null::varchar as site_id") if with_site else None
    cols = ", ".join(["subject_id", *([site] if site else [])])
    return f"select distinct {cols} from read_parquet({_lit(str(path))}) where subject_id is not null"


def vanished_records(data_dir: Path, reference: str, current: str) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(records, subjects, reference subject count): the records (form, subject_id, site_id, event,
    repeat_instance) of the reference snapshot with no record of the same form and keys in the current one, and
    the subjects (subject_id, site_id, forms, records) of the reference with no record at all in the current one.

    Where the time goes at 10,000 subjects (14 million hemodynamics rows): the records' anti join reads every
    key of both snapshots once, without a distinct on either side first (the result, a handful of records, is made
    distinct instead: ~2x less); the subjects are compared on their distinct subject ids alone, and only a subject
    that is gone has its records counted. The same snapshot as reference (the export rebuilt) loses nothing by
    construction: only the reference's subjects are counted."""
    old, new = _forms(data_dir, reference), _forms(data_dir, current)
    old_subjects = Path(data_dir) / "raw" / reference / "_meta" / "subjects.parquet"
    new_subjects = Path(data_dir) / "raw" / current / "_meta" / "subjects.parquet"
    same = reference == current
    on = " and ".join(f"o.{_ident(k)} is not distinct from n.{_ident(k)}" for k in KEYS)
    parts = []
    for k, (form, path) in enumerate(old.items()):
        other = new.get(form)
        if other is None:
            gone = f"select * from ({_keys_select(path)})"
        else:
            gone = (f"select distinct o.* from ({_keys_select(path, distinct=False)}) o "
                    f"anti join ({_keys_select(other, distinct=False, site=False)}) n on {on}")
        parts.append(f"select {k} as form_order, {_lit(form)} as form, * from ({gone})")
    with duckdb.connect() as con:
        con.execute("set threads = 2")
        empty = ("select null::integer as form_order, null::varchar as form, null::varchar as subject_id, "
                 "null::varchar as event, null::varchar as repeat_instance, null::varchar as site_id limit 0")
        records_sql = " union all ".join(parts) if parts else empty
        records = con.sql(f"select * from ({records_sql}) limit 0" if same else records_sql).pl()

        def subjects_sql(forms: dict[str, Path], meta: Path, with_site: bool) -> str:
            site = ", site_id, {form} as form" if with_site else ""
            selects = [f"select subject_id{site.format(form=_lit(f))} from ({_subjects_select(p, with_site)})"
                       for f, p in forms.items()]
            if meta.is_file():
                selects.append(f"select subject_id::varchar{', site_id::varchar, null::varchar' if with_site else ''} "
                               f"from read_parquet({_lit(str(meta))}) where subject_id is not null")
            return " union all ".join(selects) if selects else \
                f"select null::varchar as subject_id{', null::varchar as site_id, null::varchar as form' if with_site else ''} limit 0"

        con.execute(f"create temp table o as {subjects_sql(old, old_subjects, True)}")
        count = con.execute("select count(distinct subject_id) from o").fetchall()[0][0]
        if same:
            con.execute("create temp table n as select subject_id from o")
        else:
            con.execute(f"create temp table n as {subjects_sql(new, new_subjects, False)}")
        con.execute("create temp table gone as select distinct subject_id from o "
                    "where subject_id not in (select subject_id from n)")
        n_gone = con.execute("select count(*) from gone").fetchall()[0][0]
        # the records of a gone subject: its distinct record keys over the reference's forms (only gone subjects)
        counted = [f"select {_lit(f)} as form, * from ({_keys_select(p)} and subject_id in (select subject_id from gone))"
                   for f, p in old.items()] if n_gone else []
        per_subject = (f"select subject_id, count(*) as records from ({' union all '.join(counted)}) group by subject_id"
                       if counted else "select null::varchar as subject_id, 0::bigint as records limit 0")
        subjects = con.sql(
            "select o.subject_id, min(o.site_id) as site_id, "
            "list(distinct o.form order by o.form) filter (where o.form is not null) as forms, "
            "coalesce(any_value(r.records), 0) as records "
            f"from o left join ({per_subject}) r on r.subject_id = o.subject_id "
            "where o.subject_id in (select subject_id from gone) group by o.subject_id order by o.subject_id"
        ).pl()
    records = records.sort("form_order", "subject_id", "event", "repeat_instance", nulls_last=False).drop("form_order")
    return records, subjects, int(count)


# -- findings ---------------------------------------------------------------------------------------------------


def vanished_validation(data_dir: Path, export_id: str, max_findings: int = MAX_FINDINGS):
    """The raw stage's vanished-subject and vanished-record checks of export ``export_id`` against the newest
    published build's export, as a StageValidation (no rows at all before the first publish)."""
    from warehouse.validate.core import RESULTS_SCHEMA, StageValidation
    from warehouse.validate.findings import empty_findings

    reference = reference_export(data_dir)
    if reference is None:
        return StageValidation("raw", pl.DataFrame(schema=RESULTS_SCHEMA), empty_findings())
    accepted = read_accepted_removals(data_dir)
    records, subjects, reference_subjects = vanished_records(data_dir, reference.export_id, export_id)
    # messages name the reference export, never its build id or the data directory's path: a finding's text is
    # a function of the two exports and the accepted removals only (see tests/test_reproducible.py)
    where = f"the last published export ({reference.export_id})"
    accept = f"or accept the removal in {ACCEPTED_REMOVALS_FILE} in the data directory"

    subject_rows, accepted_subjects = [], 0
    gone = set()
    for row in subjects.iter_rows(named=True):
        gone.add(row["subject_id"])
        if any(a.covers_subject(row["subject_id"]) for a in accepted):
            accepted_subjects += 1
            continue
        forms = row["forms"] or []
        shown = ", ".join(forms[:8]) + (f" and {len(forms) - 8} more" if len(forms) > 8 else "")
        subject_rows.append({
            "stage": "raw", "suite": SUITE, "rule": SUBJECT_RULE_TEXT, "expectation_type": SUBJECT_RULE,
            "severity": "error", "subject_id": row["subject_id"], "site_id": row["site_id"], "event": None,
            "repeat_instance": None, "form": None, "field": "subject_id", "value": row["subject_id"],
            "message": (f"subject {row['subject_id']} (site {row['site_id'] or 'none'}) had {row['records']} "
                        f"record(s) in {where}, in form(s) {shown or 'none'}, and has none in this export: check the "
                        f"export is complete (not cut short, no filter), {accept}"),
        })
    record_rows, accepted_records = [], 0
    for row in records.filter(~pl.col("subject_id").is_in(sorted(gone))).iter_rows(named=True):
        if any(a.covers_record(row["subject_id"], row["form"], row["event"], row["repeat_instance"]) for a in accepted):
            accepted_records += 1
            continue
        place = ", ".join(f"{k} {row[k]}" for k in ("event", "repeat_instance") if row[k] is not None)
        record_rows.append({
            "stage": "raw", "suite": SUITE, "rule": RECORD_RULE_TEXT, "expectation_type": RECORD_RULE,
            "severity": "warning", "subject_id": row["subject_id"], "site_id": row["site_id"],
            "event": row["event"], "repeat_instance": row["repeat_instance"], "form": row["form"], "field": None,
            "value": None,
            "message": (f"subject {row['subject_id']} (site {row['site_id'] or 'none'}): form {row['form']}"
                        f"{f' ({place})' if place else ''} was in {where} and is not in this export: ask the site "
                        f"whether it was deleted, {accept}"),
        })
    results = pl.DataFrame([
        _result(SUBJECT_RULE, SUBJECT_RULE_TEXT, "error", reference_subjects, len(subject_rows),
                accepted_subjects, "subject(s)", reference),
        _result(RECORD_RULE, RECORD_RULE_TEXT, "warning", records.height, len(record_rows), accepted_records,
                "record(s)", reference),
    ], schema=RESULTS_SCHEMA)
    findings = findings_frame(subject_rows[:max_findings] + record_rows[:max_findings])
    return StageValidation("raw", results, findings)


def _result(rule: str, text: str, severity: str, checked: int, failing: int, accepted: int, what: str,
            reference: Reference) -> dict:
    note = f"compared with the last published export, {reference.export_id}"
    if accepted:
        note += f"; {accepted} {what} accepted as removed in {ACCEPTED_REMOVALS_FILE}"
    return {"stage": "raw", "suite": SUITE, "table": f"raw/{reference.export_id}", "expectation_type": rule,
            "column": "subject_id", "severity": severity, "success": failing == 0, "element_count": checked,
            "unexpected_count": failing, "rule": text, "status": "passed" if failing == 0 else "failed",
            "note": note}


def check_vanished(validation, data_dir: Path, export_id: str):
    """The raw validation with the vanished checks' results and findings added (see module docstring)."""
    extra = vanished_validation(Path(data_dir), export_id)
    if extra.results.height:
        validation.results = pl.concat([validation.results, extra.results], how="diagonal_relaxed")
        validation.findings = pl.concat([validation.findings, extra.findings], how="diagonal_relaxed")
    return validation
