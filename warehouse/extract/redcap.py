"""REDCap CSV exports: data dictionary (+ events, arms, instrument designations, repeating instruments)
and the flat records CSV, split into one raw table per instrument.

Splitting the flat records file (one row per record x event x repeat instance):
- a row whose ``redcap_repeat_instrument`` names a form belongs to that form only (its other forms'
  columns must be empty: anything else would be lost, so it is an ExportError);
- a row without a repeat instrument (a non-repeating row, or an instance of a repeating *event*) goes to
  every non-repeating form that is designated to its event (instrument designation file) or, whatever
  the designation says, that has any non-empty value on it (its fields, checkbox columns, ``<form>_complete``
  or survey timestamp; the record id alone does not count) - so no value is ever dropped.
The record id column stays in the first form's table (it is that form's first field, as in REDCap's ODM).
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import ExportError
from .rawzone import PROVENANCE_COLUMNS, Extracted, TableSink, meta_frame, table_name
from .readahead import read_ahead
from .sniff import REDCAP_DICTIONARY_HEADERS, FileKind, TextInfo, column_at, scan_text

SYSTEM_KEY_COLUMNS = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
                      "redcap_data_access_group")
SYSTEM_VALUE_COLUMNS = ("redcap_survey_identifier",)
FORM_STATUS_CHOICES = "0, Incomplete | 1, Unverified | 2, Complete"
IMPLICIT_CHOICES = {"yesno": "1, Yes | 0, No", "truefalse": "1, True | 0, False"}
CHOICE_TYPES = {"radio", "dropdown", "checkbox"}
NUMERIC_VALIDATIONS = re.compile(r"^(number|integer|float)")
DECIMAL_COMMA = r"^\s*[-+]?\d*,\d+\s*$"
DECIMAL_DOT = r"^\s*[-+]?\d*\.\d+\s*$"
MAX_DUPLICATE_NOTES = 50  # identical duplicates named one by one in export.json notes
# pyarrow's streaming CSV reader reads ahead several blocks on its threads: 16 MB blocks held ~1 GB for a 250 MB
# export, 4 MB blocks ~0.5 GB, at the same speed (measured on the demo study, 1,000 subjects at monitor resolution)
READ_BLOCK_BYTES = 4 << 20


def override_hint(key: str, value: str | None = None) -> str:
    """How to set a CSV dialect override: the study TOML's [export] table or the extract command's option."""
    toml = json.dumps(value) if value else "..."
    cli = ("tab" if value == "\t" else f"'{value}'") if value else "..."
    return f"{key} = {toml} in the study configuration's [export] table, or `warehouse extract --{key} {cli}`"


@dataclass
class Field:
    name: str
    form: str
    field_type: str
    label: str | None
    choices: str | None
    note: str | None
    validation: str | None
    vmin: str | None
    vmax: str | None
    identifier: bool
    required: bool
    section: str | None
    branching: str | None
    annotation: str | None
    line: int
    columns: list[str] = field(default_factory=list)  # its columns in the records file


def _blank(v: str | None) -> str | None:
    if v is None:
        return None
    return v if v.strip() != "" else None


def _shown(value: str | None) -> str:
    return "empty" if value is None else repr(value)


def checkbox_suffix(code: str) -> str:
    """REDCap's column suffix for a checkbox code: lower case, other than [a-z0-9_] becomes '_'."""
    return re.sub(r"[^a-z0-9_]", "_", code.strip().lower())


def parse_choices(raw: str | None) -> list[tuple[str, str]]:
    """``"1, Yes | 0, No"`` -> [("1", "Yes"), ("0", "No")], codes kept as written (stripped)."""
    if not raw or not raw.strip():
        return []
    out = []
    for part in raw.split("|"):
        part = part.strip()
        if not part:
            continue
        code, sep, label = part.partition(",")
        out.append((code.strip(), label.strip() if sep else code.strip()))
    return out


def scan_csv(path: Path, kind: FileKind, encoding: str | None) -> TextInfo:
    """``scan_text`` for a CSV file: an undecodable byte is named with its field (the header's column
    at that place) and the error says how to set, or check, the encoding override."""
    try:
        return scan_text(path, encoding)
    except ExportError as err:
        offset = getattr(err, "byte_offset", None)
        if offset is None:
            raise
        col = column_at(path, offset, kind.delimiter or ",")
        fld = kind.header[col] if col is not None and col < len(kind.header) else None
        hint = (f"; the encoding override is {encoding!r}: is that the file's encoding?" if encoding else
                f"; if the file is in another encoding (cp1252, latin-1, ...), set {override_hint('encoding')}")
        raise ExportError(err.file, err.reason + hint, location=err.location, field=fld) from err


def read_small_csv(path: Path, kind: FileKind, encoding: str | None) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A small CSV (metadata) read whole: header and (start line, row) pairs; blank lines skipped."""
    info = scan_csv(path, kind, encoding)
    text = path.read_bytes().decode("utf-8-sig" if info.encoding == "utf-8" else info.encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=kind.delimiter or ",", strict=True)
    rows: list[tuple[int, list[str]]] = []
    header: list[str] | None = None
    prev = 0
    try:
        for row in reader:
            start = prev + 1
            prev = reader.line_num
            if not row or all(c == "" for c in row) and len(row) == 1:
                continue
            if header is None:
                header = [c.strip() for c in row]
                continue
            if len(row) != len(header):
                raise ExportError(path.name, f"expected {len(header)} fields, found {len(row)} "
                                  "(truncated file or wrong delimiter?)", location=start)
            rows.append((start, row))
    except csv.Error as exc:
        raise ExportError(path.name, f"malformed CSV ({exc}); an unterminated quote?", location=prev + 1) from exc
    if header is None:
        raise ExportError(path.name, "empty file")
    return header, rows


def read_dictionary(path: Path, kind: FileKind, encoding: str | None) -> list[Field]:
    header, rows = read_small_csv(path, kind, encoding)
    if kind.role == "dictionary":
        header = [REDCAP_DICTIONARY_HEADERS.get(h, h) for h in header]
    idx = {h: i for i, h in enumerate(header)}
    for need in ("field_name", "form_name", "field_type"):
        if need not in idx:
            raise ExportError(path.name, f"data dictionary has no {need!r} column", location=1)

    def get(row: list[str], col: str) -> str | None:
        i = idx.get(col)
        return _blank(row[i]) if i is not None else None

    fields: list[Field] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        name = get(row, "field_name")
        if name is None:
            raise ExportError(path.name, "empty variable / field name", location=line)
        name = name.strip()
        if name in seen:
            raise ExportError(path.name, f"field defined twice (lines {seen[name]} and {line})",
                              location=line, field=name)
        seen[name] = line
        form = get(row, "form_name")
        if form is None:
            raise ExportError(path.name, "field has no form name", location=line, field=name)
        fields.append(Field(
            name=name, form=form.strip(), field_type=(get(row, "field_type") or "").strip(),
            label=get(row, "field_label"), choices=get(row, "select_choices_or_calculations"),
            note=get(row, "field_note"), validation=get(row, "text_validation_type_or_show_slider_number"),
            vmin=get(row, "text_validation_min"), vmax=get(row, "text_validation_max"),
            identifier=(get(row, "identifier") or "").strip().lower() == "y",
            required=(get(row, "required_field") or "").strip().lower() == "y",
            section=get(row, "section_header"), branching=get(row, "branching_logic"),
            annotation=get(row, "field_annotation"), line=line))
    if not fields:
        raise ExportError(path.name, "data dictionary has no fields (header only)")
    return fields


def units_from_note(f: Field) -> str | None:
    """REDCap has no units column: a short field note on a numeric field is taken as its unit."""
    numeric = f.field_type == "calc" or bool(f.validation and NUMERIC_VALIDATIONS.match(f.validation))
    if numeric and f.note and len(f.note.strip()) <= 20:
        return f.note.strip()
    return None


class RedcapReader:
    """Reads one REDCap export folder (already recognised by land.py) into a snapshot directory."""

    def __init__(self, folder: Path, kinds: dict[str, FileKind], out_dir: Path, *, export_id: str,
                 hashes: dict[str, str], encoding: str | None, delimiter: str | None,
                 decimal_comma: bool | None = None, display: str | None = None) -> None:
        self.folder = folder
        self.display = display or folder.name
        self.kinds = kinds
        self.out_dir = out_dir
        self.export_id = export_id
        self.hashes = hashes
        self.encoding = encoding
        self.delimiter = delimiter
        self.decimal_comma = decimal_comma  # the declared decimal mark (None: detected)
        self.result = Extracted("redcap")

    # ------------------------------------------------------------------ file roles
    def _one(self, role: str) -> FileKind | None:
        found = [k for k in self.kinds.values() if k.kind == "csv" and k.role == role]
        if len(found) > 1:
            raise ExportError(self.display, f"several {role} files: {', '.join(sorted(k.name for k in found))}")
        return found[0] if found else None

    def run(self) -> Extracted:
        res = self.result
        dict_kind = self._one("dictionary")
        meta_kind = self._one("metadata")
        primary = dict_kind or meta_kind
        if primary is None:
            raise ExportError(self.display, "no REDCap data dictionary (a CSV with 'Variable / Field Name', "
                              "'Form Name', ... or API metadata 'field_name', 'form_name', ...)")
        self.fields = read_dictionary(self.folder / primary.name, primary, self.encoding)
        res.files[primary.name] = {"role": "dictionary"}
        if dict_kind and meta_kind:
            res.files[meta_kind.name] = {"role": "metadata (not used: the data dictionary is)"}
            res.notes.append(f"{meta_kind.name} (API metadata) ignored in favour of {dict_kind.name}")
        self.record_id = self.fields[0].name
        self.forms: list[str] = list(dict.fromkeys(f.form for f in self.fields))
        records = self._find_records()
        self.events_meta = self._read_events()
        self.designation = self._read_designation()
        self.declared_repeating = self._read_repeating()
        self._split_records(records)
        return res

    def _find_records(self) -> FileKind:
        cands, near, misread = [], [], []
        rid = self.record_id
        for k in self.kinds.values():
            if k.kind != "csv" or k.role is not None:
                continue
            first = k.header[0].strip() if k.header else ""
            if first == rid:
                cands.append(k)
            elif first.startswith(rid) and re.match(r"[^A-Za-z0-9_]", first[len(rid):]):
                misread.append((k, first[len(rid)]))  # the record id, then a character no field name has
            else:
                near.append(f"{k.name} (delimiter {k.delimiter!r}, first column {first[:40]!r})")
        if not cands and misread:
            k, sep = misread[0]
            how = "the override's" if self.delimiter else "the detected"
            seen = f"header split on {how} delimiter {k.delimiter!r} has first column {k.header[0][:60]!r} " \
                   f"({len(k.header)} column(s)), not the record id {rid!r}"
            if sep == k.delimiter:  # the delimiter is right, but the header line is quoted as one value
                raise ExportError(k.name, f"{seen}: the header line is one quoted value (re-saved by a "
                                  "spreadsheet?); wrong delimiter or a mangled file", location=1)
            raise ExportError(k.name, f"{seen}: wrong delimiter? the file looks delimited by {sep!r}; set the "
                              f"override: {override_hint('delimiter', sep)}", location=1)
        if not cands:
            raise ExportError(self.display, f"no records CSV whose first column is the record id "
                              f"{rid!r} (the dictionary's first field)"
                              + (f"; other files: {', '.join(near)}" if near else ""))
        if len(cands) > 1:
            raise ExportError(self.display, "several records CSV files: "
                              + ", ".join(sorted(k.name for k in cands)))
        return cands[0]

    def _read_events(self) -> list[dict]:
        ek = self._one("events")
        if ek is None:
            return []
        header, rows = read_small_csv(self.folder / ek.name, ek, self.encoding)
        self.result.files[ek.name] = {"role": "events"}
        arms = {}
        ak = self._one("arms")
        if ak is not None:
            ah, arows = read_small_csv(self.folder / ak.name, ak, self.encoding)
            self.result.files[ak.name] = {"role": "arms"}
            i_num, i_name = ah.index("arm_num"), ah.index("name" if "name" in ah else "arm_name")
            arms = {r[i_num].strip(): r[i_name] for _, r in arows}
        idx = {h: i for i, h in enumerate(header)}
        out = []
        for order, (line, r) in enumerate(rows, 1):
            ev = r[idx["unique_event_name"]].strip()
            if not ev:
                raise ExportError(ek.name, "empty unique_event_name", location=line)
            arm = r[idx["arm_num"]].strip()
            out.append({"event": ev, "label": _blank(r[idx["event_name"]]), "arm": arm,
                        "day_offset": _blank(r[idx["day_offset"]]) if "day_offset" in idx else None,
                        "arm_label": arms.get(arm), "order": order,
                        "event_oid": _blank(r[idx["event_id"]]) if "event_id" in idx else None})
        return out

    def _read_designation(self) -> dict[str, set[str]] | None:
        dk = self._one("designation")
        if dk is None:
            return None
        header, rows = read_small_csv(self.folder / dk.name, dk, self.encoding)
        self.result.files[dk.name] = {"role": "instrument designations"}
        i_ev, i_form = header.index("unique_event_name"), header.index("form")
        out: dict[str, set[str]] = {}
        for line, r in rows:
            form = r[i_form].strip()
            if form not in self.forms:
                raise ExportError(dk.name, f"form {form!r} is not in the data dictionary", location=line)
            out.setdefault(form, set()).add(r[i_ev].strip())
        return out

    def _read_repeating(self) -> dict[str, set[str | None]]:
        """form -> events where it repeats (None: classic project); '' form = a repeating event."""
        rk = self._one("repeating")
        out: dict[str, set[str | None]] = {}
        if rk is None:
            return out
        header, rows = read_small_csv(self.folder / rk.name, rk, self.encoding)
        self.result.files[rk.name] = {"role": "repeating instruments"}
        i_form = header.index("form_name")
        i_ev = header.index("event_name") if "event_name" in header else None
        for line, r in rows:
            form = r[i_form].strip()
            if form and form not in self.forms:
                raise ExportError(rk.name, f"form {form!r} is not in the data dictionary", location=line)
            out.setdefault(form, set()).add(r[i_ev].strip() if i_ev is not None else None)
        return out

    # ------------------------------------------------------------------ records
    def _plan_columns(self, rk: FileKind) -> dict[str, list[str]]:
        """form -> its columns in the records file; validates the header against the dictionary."""
        header = rk.header
        dup = [c for c in dict.fromkeys(header) if header.count(c) > 1]
        if dup:
            raise ExportError(rk.name, f"duplicate column(s) in the header: {', '.join(dup)}", location=1)
        present = set(header)
        form_cols: dict[str, list[str]] = {f: [] for f in self.forms}
        owner: dict[str, str] = {}
        missing: list[str] = []
        for fld in self.fields:
            if fld.field_type == "descriptive":
                continue
            if fld.field_type == "checkbox":
                cols = [f"{fld.name}___{checkbox_suffix(c)}" for c, _ in parse_choices(fld.choices)]
            else:
                cols = [fld.name]
            fld.columns = cols
            for c in cols:
                if c in present:
                    owner[c] = fld.form
                else:
                    missing.append(c)
        for form in self.forms:
            for c in (f"{form}_timestamp", f"{form}_complete"):
                if c in present and c not in owner:
                    owner[c] = form
        for c in SYSTEM_VALUE_COLUMNS:
            if c in present:
                owner[c] = self.forms[0]
        extra = [c for c in header if c not in owner and c not in SYSTEM_KEY_COLUMNS]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"dictionary fields missing from the data: {', '.join(missing)}")
            if extra:
                parts.append(f"data columns not in the dictionary: {', '.join(extra)}")
            raise ExportError(rk.name, "; ".join(parts) + " (dictionary and data do not match)", location=1,
                              field=(missing + extra)[0])
        for c in header:  # keep the records file's column order
            if c in owner:
                form_cols[owner[c]].append(c)
        for form in self.forms:
            if f"{form}_complete" not in present:
                self.result.notes.append(f"{rk.name} has no {form}_complete column")
        return form_cols

    def _line_of(self, rk: FileKind, records: set[int], total: int | None = None) -> dict[int, int]:
        """Record numbers (1-based, header excluded) -> physical start lines (error and duplicate paths).

        ``total`` (the number of records read): when the file has exactly one physical line per record
        plus the header (no blank lines, no line breaks inside values), record n is on line n + 1.
        """
        if total is not None and getattr(self, "text", None) is not None and self.text.lines == total + 1:
            return {r: r + 1 for r in records}
        path = self.folder / rk.name
        text = path.read_bytes().decode("utf-8-sig" if self.text.encoding == "utf-8" else self.text.encoding)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=rk.delimiter or ",")
        out, n, prev = {}, -1, 0
        for row in reader:
            start, prev = prev + 1, reader.line_num
            if not row:
                continue
            n += 1
            if n in records:
                out[n] = start
                if len(out) == len(records):
                    break
        return out

    def _structure_error(self, rk: FileKind, ncols: int, cause: Exception | None) -> ExportError:
        """Find the first malformed record with the csv module (error path only)."""
        path = self.folder / rk.name
        text = path.read_bytes().decode("utf-8-sig" if self.text.encoding == "utf-8" else self.text.encoding)
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=rk.delimiter or ",", strict=True)
        prev = 0
        try:
            for row in reader:
                start, prev = prev + 1, reader.line_num
                if not row:
                    continue
                if len(row) != ncols:
                    return ExportError(rk.name, f"expected {ncols} fields, found {len(row)} "
                                       "(truncated row or wrong delimiter?)", location=start)
        except csv.Error as exc:
            return ExportError(rk.name, f"unterminated quoted value ({exc}): the file is truncated or "
                               "a quote is not closed", location=prev + 1)
        return ExportError(rk.name, f"malformed CSV: {cause}" if cause else "a quoted value is not closed "
                           "(odd number of quote characters): truncated file?")

    def _split_records(self, rk: FileKind) -> None:
        res = self.result
        path = self.folder / rk.name
        self.text = scan_csv(path, rk, self.encoding)
        res.files[rk.name] = {"role": "records", "encoding": self.text.encoding, "bom": self.text.bom,
                              "delimiter": rk.delimiter}
        form_cols = self._plan_columns(rk)
        header = rk.header
        if self.text.quotes_odd:
            err = self._structure_error(rk, len(header), None)
            if "unterminated" in err.reason or "expected" in err.reason:
                raise err
        has = set(header)
        rid = self.record_id
        coded = {c for f in self.fields if f.field_type in CHOICE_TYPES or f.field_type in IMPLICIT_CHOICES
                 for c in f.columns} | {f"{form}_complete" for form in self.forms}
        sinks = {f: TableSink(self.out_dir / f"{table_name(f)}.parquet", form_cols[f], coded) for f in self.forms}
        res.tables = sinks
        numeric = [c for f in self.fields if f.field_type == "calc" or (
            f.validation and NUMERIC_VALIDATIONS.match(f.validation)) for c in f.columns if c in has]
        decimal_comma: set[str] = set()
        decimal_dot: set[str] = set()
        ev_known = {e["event"] for e in self.events_meta}
        designated = self.designation
        rep_events = {f: evs for f, evs in self.declared_repeating.items() if f}
        value_cols = {f: [c for c in form_cols[f] if c != rid] for f in self.forms}
        all_value_cols = [c for f in self.forms for c in value_cols[f]]
        sha = self.hashes[rk.name]

        def col_or_null(name: str) -> pl.Expr:
            return pl.col(name) if name in has else pl.lit(None, dtype=pl.String)

        subject, event = pl.col(rid), col_or_null("redcap_event_name")
        instrument, instance = col_or_null("redcap_repeat_instrument"), col_or_null("redcap_repeat_instance")
        site = col_or_null("redcap_data_access_group")
        keys: list[pl.DataFrame] = []
        sites: list[pl.DataFrame] = []
        rep_events_seen: set[str] = set()
        observed_events: dict[str, set[str]] = {f: set() for f in self.forms}
        observed_repeating: set[str] = set()
        event_order: dict[str, None] = {}

        read_opts = pacsv.ReadOptions(block_size=READ_BLOCK_BYTES, use_threads=True,
                                      encoding="utf8" if self.text.encoding == "utf-8" else self.text.encoding)
        # tracking quotes across lines costs ~15% of the parse: only when a quoted value holds a line break
        parse_opts = pacsv.ParseOptions(delimiter=rk.delimiter or ",", newlines_in_values=self.text.newline_in_quotes,
                                        quote_char='"', double_quote=True)
        conv_opts = pacsv.ConvertOptions(column_types={c: pa.string() for c in header}, strings_can_be_null=True,
                                         null_values=[""], quoted_strings_can_be_null=True)
        done = 0
        nn = {f: f"__nn:{f}" for f in self.forms}
        source_keys = [c for c in dict.fromkeys([rid, "redcap_event_name", "redcap_repeat_instrument",
                                                 "redcap_repeat_instance", "redcap_data_access_group"]) if c in has]
        column_index = {c: i for i, c in enumerate(header)}
        # the source of each key column (KEY_COLUMNS: subject_id, event, repeat_instance, site_id); None: null
        key_sources = [c if c in has else None for c in
                       (rid, "redcap_event_name", "redcap_repeat_instance", "redcap_data_access_group")]
        key_index = [column_index[c] for c in key_sources if c is not None]
        constants: dict[str, pa.Array] = {}  # the provenance columns that are the same on every row

        def constant(value: str | None, rows: int) -> pa.Array:
            """``rows`` copies of a value: a slice (no copy) of one array built for the longest batch so far."""
            have = constants.get(value)
            if have is None or len(have) < rows:
                have = constants[value] = (pa.nulls(rows, pa.string()) if value is None
                                           else pa.repeat(pa.scalar(value, pa.string()), rows))
            return have.slice(0, rows)

        def form_mask(form: str) -> pl.Expr:
            """Rows of a form: its repeating-instrument rows, and the other rows where it has a value or
            (instrument designations) its event is one of the form's non-repeating events."""
            keep = pl.col(nn[form]) > 0
            if designated is not None:
                evs = [e for e in designated.get(form, set()) if e not in rep_events.get(form, set())]
                keep = keep | event.is_in(evs) if evs else keep
            return ((instrument.is_null() & keep) | (instrument == form)).fill_null(False)

        def fail_at(record: int, reason: str, fld: str | None = None) -> ExportError:
            line = self._line_of(rk, {record}).get(record)
            return ExportError(rk.name, reason, location=line, field=fld)

        batches = None
        try:
            reader = pacsv.open_csv(path, read_options=read_opts, parse_options=parse_opts,
                                    convert_options=conv_opts)
            batches = read_ahead(reader)
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                # the values stay in Arrow: Polars gets the key columns and, per value column, whether it is
                # non-empty; each form's rows are then taken from the batch itself (one copy of its columns)
                n = batch.num_rows
                rec = np.arange(done + 1, done + n + 1, dtype=np.int64)
                df = pl.from_arrow(batch.select(source_keys))
                assert isinstance(df, pl.DataFrame)
                present = pl.DataFrame({c: pc.is_valid(batch.column(column_index[c])) for c in all_value_cols}) \
                    if all_value_cols else pl.DataFrame()
                # per form, how many of its value columns are non-empty on each row: one pass over the
                # columns serves both the row checks and the split (a form gets a row where it has a value)
                df = df.with_columns(
                    pl.Series("__rec", rec),
                    *[(pl.sum_horizontal([present.get_column(c) for c in value_cols[f]]) if value_cols[f]
                       else pl.lit(0, dtype=pl.UInt32)).cast(pl.UInt32).alias(nn[f]) for f in self.forms])
                del present
                first = done + 1
                done += n

                def values_of(record: int, batch=batch, first=first) -> dict[str, str | None]:
                    return batch.slice(record - first, 1).to_pylist()[0]

                self._check_batch(df, has, rid, ev_known, form_cols, all_value_cols, fail_at, nn, values_of)
                # the record keys of every row, for the duplicate check: hashed from the text, kept as
                # categoricals (4 bytes a key part) so that memory grows slowly with the export's rows
                keys.append(df.select(subject.alias("s"), event.alias("e"), instrument.alias("i"),
                                      instance.alias("n"), pl.col("__rec"))
                            .with_columns(pl.struct("s", "e", "i", "n").hash(seed=7).alias("h"))
                            .with_columns(pl.col("s", "e", "i", "n").cast(pl.Categorical)))
                # subjects (first-seen order) with their site, and events seen repeating: per batch, small
                sites.append(df.group_by(subject.alias("s"), maintain_order=True).agg(site.drop_nulls().first()
                                                                                     .alias("g")))
                rep_events_seen.update(df.filter(instrument.is_null() & instance.is_not_null())
                                       .get_column("redcap_event_name").drop_nulls().unique().to_list()
                                       if "redcap_event_name" in has else [])
                if "redcap_event_name" in has:
                    event_order.update(dict.fromkeys(df.get_column("redcap_event_name").unique(maintain_order=True)
                                                     .drop_nulls().to_list()))
                if "redcap_repeat_instrument" in has:
                    observed_repeating.update(df.get_column("redcap_repeat_instrument").drop_nulls().unique().to_list())
                todo = [c for c in numeric if c not in decimal_comma]
                # a regex only where there is a comma at all (found by Arrow); the regex itself in Polars
                todo = [c for c in todo if pc.any(pc.match_substring(batch.column(column_index[c]), ",")).as_py()]
                if todo:
                    hit = pl.from_arrow(batch.select(todo)).select(
                        [pl.col(c).str.contains(DECIMAL_COMMA).any() for c in todo]).row(0)
                    decimal_comma.update(c for c, h in zip(todo, hit) if h)
                todo = [c for c in numeric if c not in decimal_dot] if self.decimal_comma else []
                if todo:  # declared decimal comma: numeric values written with a dot are noted
                    hit = pl.from_arrow(batch.select(todo)).select(
                        [pl.col(c).str.contains(DECIMAL_DOT).any() for c in todo]).row(0)
                    decimal_dot.update(c for c, h in zip(todo, hit) if h)
                masks = df.select([form_mask(f).alias(f) for f in self.forms])
                for form in self.forms:
                    mask = masks.get_column(form)
                    if not mask.any():
                        continue
                    taken = mask.to_arrow()
                    rows = int(mask.sum())
                    part = batch.select(key_index + [column_index[c] for c in form_cols[form]]).filter(taken)
                    taken_keys = iter(part.columns[:len(key_index)])
                    key_arrays = [next(taken_keys) if c is not None else constant(None, rows)
                                  for c in key_sources]
                    value_arrays = part.columns[len(key_index):]
                    prov_arrays = [constant(self.export_id, rows), constant(rk.name, rows),
                                   pc.cast(pa.array(rec).filter(taken), pa.string()), constant(None, rows),
                                   constant(sha, rows)]
                    sinks[form].write_arrow(key_arrays + list(value_arrays) + prov_arrays)
                    if "redcap_event_name" in has:
                        observed_events[form].update(df.get_column("redcap_event_name").filter(mask).drop_nulls()
                                                     .unique().to_list())
        except ExportError:
            raise
        except (pa.ArrowInvalid, pa.ArrowException) as exc:
            raise self._structure_error(rk, len(header), exc) from exc
        finally:
            if batches is not None:  # an error in the loop: the parse thread stops now, not when collected
                batches.close()
        for s in sinks.values():
            s.close()
        if done == 0:
            raise ExportError(rk.name, "header only: the export holds no records")
        self._check_duplicates(rk, keys, done)
        res.decimal_comma_fields = sorted(decimal_comma)
        for declared, other, fields in ((False, "comma", decimal_comma), (True, "dot", decimal_dot)):
            if self.decimal_comma is declared and fields:
                res.notes.append(f"{rk.name}: decimal {other} values in numeric field(s) {', '.join(sorted(fields))} "
                                 f"although the export is declared decimal {'comma' if declared else 'dot'} "
                                 "(values kept as exported)")
        unknown_rep = observed_repeating - set(self.forms)
        assert not unknown_rep  # _check_batch raised already
        self._write_meta(observed_events, observed_repeating, event_order, sites, rep_events_seen)

    def _check_batch(self, df: pl.DataFrame, has: set[str], rid: str, ev_known: set[str],
                     form_cols: dict[str, list[str]], all_value_cols: list[str], fail_at,
                     nn: dict[str, str], values_of=None) -> None:
        """All row checks of a batch in one pass; the offending row is looked up only on a hit.
        ``nn``: form -> column holding the number of the form's non-empty value columns on each row;
        ``values_of``: record number -> that row's values, when ``df`` holds the keys only."""
        ri = pl.col("redcap_repeat_instrument") if "redcap_repeat_instrument" in has else None
        checks: dict[str, tuple[pl.Expr, str | None]] = {"rid": (pl.col(rid).is_null(), rid)}
        if "redcap_event_name" in has:
            ev = pl.col("redcap_event_name")
            checks["ev_null"] = (ev.is_null(), "redcap_event_name")
            if ev_known:
                checks["ev_unknown"] = (ev.is_not_null() & ~ev.is_in(list(ev_known)), "redcap_event_name")
        if ri is not None:
            checks["ri_unknown"] = (ri.is_not_null() & ~ri.is_in(self.forms), "redcap_repeat_instrument")
            if "redcap_repeat_instance" in has:
                checks["ri_no_instance"] = (ri.is_not_null() & pl.col("redcap_repeat_instance").is_null(),
                                            "redcap_repeat_instance")
            # a repeating instrument's row with a value of another form: all its non-empty values minus its own
            total = pl.sum_horizontal([pl.col(c) for c in nn.values()])
            own = pl.lit(None, dtype=pl.UInt32)
            for form in self.forms:
                own = pl.when(ri == form).then(pl.col(nn[form])).otherwise(own)
            checks["other"] = ((total - own) > 0, None)
        hits = df.select([expr.any().alias(name) for name, (expr, _) in checks.items()]).row(0, named=True)
        for name, hit in hits.items():
            if not hit:
                continue
            expr, fld = checks[name]
            row = df.filter(expr).row(0, named=True)
            rec = row["__rec"]
            if name == "rid":
                raise fail_at(rec, "empty record id", fld)
            if name == "ev_null":
                raise fail_at(rec, "empty event name in a longitudinal export", fld)
            if name == "ev_unknown":
                raise fail_at(rec, f"event {row['redcap_event_name']!r} is not in the events file", fld)
            if name == "ri_unknown":
                raise fail_at(rec, f"repeat instrument {row['redcap_repeat_instrument']!r} is not a form of the "
                              "data dictionary", fld)
            if name == "ri_no_instance":
                raise fail_at(rec, "repeating instrument row without a repeat instance", fld)
            form = row["redcap_repeat_instrument"]
            if values_of is not None:
                row = values_of(rec)
            col = next(c for c in all_value_cols if c not in form_cols[form] and row.get(c) is not None)
            raise fail_at(rec, f"a row of repeating instrument {form!r} holds a value ({row[col]!r}) for "
                          "another form's field", col)

    def _check_duplicates(self, rk: FileKind, keys: list[pl.DataFrame], records: int) -> None:
        """Rows sharing a record key (record, event, repeat instrument, instance).

        Rows identical in every value (only the line differs) lose nothing and are unambiguous: both
        stay in the raw tables, each with its own ``_source_row``, and a note in export.json names the
        lines (raw validation reports the non-unique key). Rows that differ in any value: ExportError.
        """
        allk = pl.concat(keys, rechunk=False)
        cand = allk.filter(pl.col("h").is_duplicated())  # a 64-bit hash first, exact keys on its hits
        cand = cand.with_columns(pl.col("s", "e", "i", "n").cast(pl.String))
        dup = cand.filter(cand.select("s", "e", "i", "n").is_duplicated()) if cand.height else cand
        if dup.height == 0:
            return
        groups = (dup.group_by("s", "e", "i", "n", maintain_order=True).agg(pl.col("__rec").sort())
                  .with_columns(pl.col("__rec").list.first().alias("first")).sort("first"))
        recs_all = {r for g in groups.get_column("__rec").to_list() for r in g}
        values = self._row_values(recs_all)
        lines = self._line_of(rk, recs_all, records)
        identical = []
        for g in groups.iter_rows(named=True):
            recs = g["__rec"]
            where = " and ".join(str(lines.get(r, f"record {r}")) for r in recs)
            key = f"record {g['s']!r}" + (f", event {g['e']!r}" if g["e"] else "") + (
                f", instrument {g['i']!r}" if g["i"] else "") + (f", instance {g['n']!r}" if g["n"] else "")
            base = values.get(recs[0], {})
            for r in recs[1:]:
                other = values.get(r, {})
                if other == base:
                    continue
                col = next(c for c in dict.fromkeys([*base, *other]) if base.get(c) != other.get(c))
                raise ExportError(
                    rk.name, f"duplicate record key ({key}) on lines {where} with different values: "
                    f"{col} is {_shown(base.get(col))} on line {lines.get(recs[0])} and {_shown(other.get(col))} on line "
                    f"{lines.get(r)}", location=lines.get(r), field=col)
            identical.append(f"{rk.name}: identical duplicate record ({key}) on lines {where}: every value "
                             "is the same, all rows kept")
        notes = self.result.notes
        notes.extend(identical[:MAX_DUPLICATE_NOTES])
        if len(identical) > MAX_DUPLICATE_NOTES:
            notes.append(f"{rk.name}: {len(identical) - MAX_DUPLICATE_NOTES} more identical duplicate records "
                         f"({len(identical)} in all), all rows kept")

    def _row_values(self, recs: set[int]) -> dict[int, dict[str, str]]:
        """The non-null values of some records, read back from the raw tables written (duplicate path only):
        record number -> {column: value} over every form the record went to, keys and site included."""
        wanted = [str(r) for r in recs]
        out: dict[int, dict[str, str]] = {r: {} for r in recs}
        for sink in self.result.tables.values():
            part = (pl.scan_parquet(sink.path).filter(pl.col("_source_row").is_in(wanted))
                    .drop([c for c in PROVENANCE_COLUMNS if c != "_source_row"]).collect())
            for row in part.iter_rows(named=True):
                vals = out[int(row.pop("_source_row"))]
                vals.update((c, v) for c, v in row.items() if v is not None)
        return out

    # ------------------------------------------------------------------ metadata
    def _write_meta(self, observed_events, observed_repeating, event_order, sites: list[pl.DataFrame],
                    rep_events_seen: set[str]) -> None:
        res = self.result
        items, choices = [], []
        order = 0
        fields_by_form: dict[str, list[Field]] = {}
        for f in self.fields:
            fields_by_form.setdefault(f.form, []).append(f)
        for form in self.forms:
            sink = res.tables[form]
            cols = set(sink.columns)
            if f"{form}_timestamp" in cols:
                order += 1
                items.append({"form": form, "item": f"{form}_timestamp", "label": "Survey timestamp",
                              "field_type": "survey_timestamp", "order": order, "variable": f"{form}_timestamp",
                              "identifier": False, "required": False})
            if form == self.forms[0] and "redcap_survey_identifier" in cols:
                order += 1
                items.append({"form": form, "item": "redcap_survey_identifier", "label": "Survey identifier",
                              "field_type": "survey_identifier", "order": order,
                              "variable": "redcap_survey_identifier", "identifier": False, "required": False})
            for f in fields_by_form.get(form, []):
                ftype = f.field_type
                is_choice = ftype in CHOICE_TYPES
                raw_choices = f.choices if is_choice else IMPLICIT_CHOICES.get(ftype)
                calc = f.choices if not is_choice and ftype not in ("slider",) else None
                common = {"form": form, "label": f.label, "field_type": ftype, "validation": f.validation,
                          "min": f.vmin, "max": f.vmax, "units": units_from_note(f), "identifier": f.identifier,
                          "choices": raw_choices if raw_choices else (f.choices if ftype == "slider" else None),
                          "required": f.required, "variable": f.name, "field_note": f.note,
                          "section_header": f.section, "branching_logic": f.branching, "calculation": calc,
                          "annotation": f.annotation}
                parsed = parse_choices(raw_choices) if raw_choices else []
                for k, (code, label) in enumerate(parsed, 1):
                    choices.append({"item": f.name, "code": code, "label": label, "order": k})
                if ftype == "checkbox":
                    for code, label in parsed:
                        order += 1
                        items.append({**common, "item": f"{f.name}___{checkbox_suffix(code)}", "order": order,
                                      "choice_code": code, "choice_label": label})
                else:
                    order += 1
                    items.append({**common, "item": f.name, "order": order})
            order += 1
            items.append({"form": form, "item": f"{form}_complete", "label": "Complete?",
                          "field_type": "form_status", "choices": FORM_STATUS_CHOICES, "order": order,
                          "variable": f"{form}_complete", "identifier": False, "required": False})
            for k, (code, label) in enumerate(parse_choices(FORM_STATUS_CHOICES), 1):
                choices.append({"item": f"{form}_complete", "code": code, "label": label, "order": k})
        rep_events_declared = {e for e in self.declared_repeating.get("", set()) if e}
        events = list(self.events_meta)
        if not events:
            events = [{"event": e, "order": k} for k, e in enumerate(event_order, 1)]
        for e in events:
            e["repeating"] = e["event"] in rep_events_declared or e["event"] in rep_events_seen
        forms = []
        for k, form in enumerate(self.forms, 1):
            evs = sorted(self.designation.get(form, set())) if self.designation else sorted(observed_events[form])
            forms.append({"form": form, "label": None, "order": k, "events": evs,
                          "repeating": form in observed_repeating or form in self.declared_repeating})
        subjects = (pl.concat(sites).group_by("s", maintain_order=True).agg(pl.col("g").drop_nulls().first())
                    .select(pl.col("s").alias("subject_id"), pl.col("g").alias("site_id"),
                            pl.lit(None, dtype=pl.String).alias("label"),
                            pl.lit(None, dtype=pl.String).alias("attributes")))
        res.meta = {"items": meta_frame("items", items), "choices": meta_frame("choices", choices),
                    "events": meta_frame("events", events), "forms": meta_frame("forms", forms),
                    "subjects": subjects}
