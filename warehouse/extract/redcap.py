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
import re
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import ExportError
from .rawzone import PROVENANCE_COLUMNS, Extracted, TableSink, meta_frame, table_name
from .readahead import read_ahead
from .redcap_meta import (
    CHOICE_TYPES,
    IMPLICIT_CHOICES,
    NUMERIC_VALIDATIONS,
    Field,
    blank,
    checkbox_suffix,
    dictionary_rows,
    override_hint,
    parse_choices,
    read_dictionary,
    read_small_csv,
    scan_csv,
    units_from_note,
)
from .redcap_split import RecordSplit
from .sniff import FileKind

# re-exported: the dictionary's helpers have long been imported from here
__all__ = ["RedcapReader", "Field", "checkbox_suffix", "override_hint", "parse_choices", "read_dictionary",
           "read_small_csv", "scan_csv", "units_from_note"]

SYSTEM_KEY_COLUMNS = ("redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
                      "redcap_data_access_group")
SYSTEM_VALUE_COLUMNS = ("redcap_survey_identifier",)
MAX_DUPLICATE_NOTES = 50  # identical duplicates named one by one in export.json notes
# pyarrow's streaming CSV reader reads ahead several blocks on its threads: 16 MB blocks held ~1 GB for a 250 MB
# export, 4 MB blocks ~0.5 GB, at the same speed (measured on the demo study, 1,000 subjects at monitor resolution)
READ_BLOCK_BYTES = 4 << 20


def _shown(value: str | None) -> str:
    return "empty" if value is None else repr(value)


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
            out.append({"event": ev, "label": blank(r[idx["event_name"]]), "arm": arm,
                        "day_offset": blank(r[idx["day_offset"]]) if "day_offset" in idx else None,
                        "arm_label": arms.get(arm), "order": order,
                        "event_oid": blank(r[idx["event_id"]]) if "event_id" in idx else None})
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
        """Split the records file into one raw table per form (see the module's docstring), batch by batch,
        checking every row; then the duplicate keys, the decimal marks and the metadata tables."""
        res = self.result
        path = self.folder / rk.name
        self.text = scan_csv(path, rk, self.encoding)
        rk.encoding, rk.bom = self.text.encoding, self.text.bom
        res.files[rk.name] = {"role": "records", "encoding": self.text.encoding, "bom": self.text.bom,
                              "delimiter": rk.delimiter}
        form_cols = self._plan_columns(rk)
        if self.text.quotes_odd:
            err = self._structure_error(rk, len(rk.header), None)
            if "unterminated" in err.reason or "expected" in err.reason:
                raise err
        sp = self._start_split(rk, form_cols)
        self._read_batches(sp)
        for s in sp.sinks.values():
            s.close()
        if sp.done == 0:
            raise ExportError(rk.name, "header only: the export holds no records")
        self._check_duplicates(rk, sp.keys, sp.done)
        res.decimal_comma_fields = sorted(sp.decimal_comma)
        for declared, other, fields in ((False, "comma", sp.decimal_comma), (True, "dot", sp.decimal_dot)):
            if self.decimal_comma is declared and fields:
                res.notes.append(f"{rk.name}: decimal {other} values in numeric field(s) {', '.join(sorted(fields))} "
                                 f"although the export is declared decimal {'comma' if declared else 'dot'} "
                                 "(values kept as exported)")
        unknown_rep = sp.observed_repeating - set(self.forms)
        assert not unknown_rep  # check_rows raised already
        self._write_meta(sp.observed_events, sp.observed_repeating, sp.event_order, sp.sites, sp.rep_events_seen)

    def _start_split(self, rk: FileKind, form_cols: dict[str, list[str]]) -> RecordSplit:
        """The split's columns, sinks (one Parquet table per form) and key expressions, before the first batch."""
        header = rk.header
        has = set(header)
        rid = self.record_id
        coded = {c for f in self.fields if f.field_type in CHOICE_TYPES or f.field_type in IMPLICIT_CHOICES
                 for c in f.columns} | {f"{form}_complete" for form in self.forms}
        sinks = {f: TableSink(self.out_dir / f"{table_name(f)}.parquet", form_cols[f], coded) for f in self.forms}
        self.result.tables = sinks
        numeric = [c for f in self.fields if f.field_type == "calc" or (
            f.validation and NUMERIC_VALIDATIONS.match(f.validation)) for c in f.columns if c in has]
        value_cols = {f: [c for c in form_cols[f] if c != rid] for f in self.forms}
        column_index = {c: i for i, c in enumerate(header)}
        # the source of each key column (KEY_COLUMNS: subject_id, event, repeat_instance, site_id); None: null
        key_sources = [c if c in has else None for c in
                       (rid, "redcap_event_name", "redcap_repeat_instance", "redcap_data_access_group")]
        return RecordSplit(
            rk=rk, has=has, rid=rid, form_cols=form_cols, value_cols=value_cols,
            all_value_cols=[c for f in self.forms for c in value_cols[f]], numeric=numeric, sinks=sinks,
            export_id=self.export_id, sha=self.hashes[rk.name], ev_known={e["event"] for e in self.events_meta},
            designated=self.designation,
            rep_events={f: evs for f, evs in self.declared_repeating.items() if f},
            nn={f: f"__nn:{f}" for f in self.forms},
            source_keys=[c for c in dict.fromkeys([rid, "redcap_event_name", "redcap_repeat_instrument",
                                                   "redcap_repeat_instance", "redcap_data_access_group"]) if c in has],
            column_index=column_index, key_sources=key_sources,
            key_index=[column_index[c] for c in key_sources if c is not None],
            forms=self.forms, observed_events={f: set() for f in self.forms})

    def _read_batches(self, sp: RecordSplit) -> None:
        """Parse the records file with Arrow's streaming reader (on a thread, ahead) and split each batch."""
        rk = sp.rk
        read_opts = pacsv.ReadOptions(block_size=READ_BLOCK_BYTES, use_threads=True,
                                      encoding="utf8" if self.text.encoding == "utf-8" else self.text.encoding)
        # tracking quotes across lines costs ~15% of the parse: only when a quoted value holds a line break
        parse_opts = pacsv.ParseOptions(delimiter=rk.delimiter or ",", newlines_in_values=self.text.newline_in_quotes,
                                        quote_char='"', double_quote=True)
        conv_opts = pacsv.ConvertOptions(column_types={c: pa.string() for c in rk.header}, strings_can_be_null=True,
                                         null_values=[""], quoted_strings_can_be_null=True)

        def fail_at(record: int, reason: str, fld: str | None = None) -> ExportError:
            line = self._line_of(rk, {record}).get(record)
            return ExportError(rk.name, reason, location=line, field=fld)

        batches = None
        try:
            reader = pacsv.open_csv(self.folder / rk.name, read_options=read_opts, parse_options=parse_opts,
                                    convert_options=conv_opts)
            batches = read_ahead(reader)
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                self._split_batch(sp, batch, fail_at)
        except ExportError:
            raise
        except (pa.ArrowInvalid, pa.ArrowException) as exc:
            raise self._structure_error(rk, len(rk.header), exc) from exc
        finally:
            if batches is not None:  # an error in the loop: the parse thread stops now, not when collected
                batches.close()

    def _split_batch(self, sp: RecordSplit, batch: pa.RecordBatch, fail_at) -> None:
        """One batch: its row checks, record keys, sites, events and decimal marks, then each form's rows."""
        # the values stay in Arrow: Polars gets the key columns and, per value column, whether it is
        # non-empty; each form's rows are then taken from the batch itself (one copy of its columns)
        n = batch.num_rows
        rec = np.arange(sp.done + 1, sp.done + n + 1, dtype=np.int64)
        df = pl.from_arrow(batch.select(sp.source_keys))
        assert isinstance(df, pl.DataFrame)
        present = pl.DataFrame({c: pc.is_valid(batch.column(sp.column_index[c])) for c in sp.all_value_cols}) \
            if sp.all_value_cols else pl.DataFrame()
        # per form, how many of its value columns are non-empty on each row: one pass over the
        # columns serves both the row checks and the split (a form gets a row where it has a value)
        df = df.with_columns(
            pl.Series("__rec", rec),
            *[(pl.sum_horizontal([present.get_column(c) for c in sp.value_cols[f]]) if sp.value_cols[f]
               else pl.lit(0, dtype=pl.UInt32)).cast(pl.UInt32).alias(sp.nn[f]) for f in self.forms])
        del present
        first = sp.done + 1
        sp.done += n

        def values_of(record: int, batch=batch, first=first) -> dict[str, str | None]:
            return batch.slice(record - first, 1).to_pylist()[0]

        sp.check_rows(df, fail_at, values_of)
        sp.observe(df)
        sp.scan_decimal_marks(batch, self.decimal_comma)
        masks = df.select([sp.form_mask(f).alias(f) for f in self.forms])
        for form in self.forms:
            mask = masks.get_column(form)
            if mask.any():
                sp.write_form_rows(form, batch, df, mask, rec)

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
        items, choices = dictionary_rows(self.fields, self.forms, res.tables)
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
