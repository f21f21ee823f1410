"""The state of splitting a REDCap records file into per-form raw tables (``RedcapReader._split_records``): the
plan made from the header, and what is gathered batch by batch (record keys, sites, events, decimal marks)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from .rawzone import TableSink
from .sniff import FileKind

DECIMAL_COMMA = r"^\s*[-+]?\d*,\d+\s*$"
DECIMAL_DOT = r"^\s*[-+]?\d*\.\d+\s*$"


def _redcap_column(name: str) -> property:
    """A REDCap column of the records file as an expression (``RecordSplit.col_or_null``: a null string when the
    header lacks it)."""
    return property(lambda self: self.col_or_null(name), doc=f"``{name}``, or a null string when the header lacks it")


@dataclass
class RecordSplit:
    """One records file being split: its columns by form, the sinks, and what the batches so far showed."""

    rk: FileKind
    has: set[str]  # the header's columns
    rid: str  # the record id column
    form_cols: dict[str, list[str]]  # form -> its columns in the records file
    value_cols: dict[str, list[str]]  # form -> its columns other than the record id
    all_value_cols: list[str]
    numeric: list[str]  # columns of numeric fields (decimal marks are looked for in these)
    sinks: dict[str, TableSink]
    export_id: str
    sha: str  # the records file's SHA-256 (provenance)
    ev_known: set[str]  # the events file's events (empty: none given)
    designated: dict[str, set[str]] | None  # instrument designations: form -> events
    rep_events: dict[str, set[str | None]]  # repeating instruments: form -> events where it repeats
    nn: dict[str, str]  # form -> the column counting its non-empty values on a row
    source_keys: list[str]  # the key columns present, for Polars
    column_index: dict[str, int]
    key_sources: list[str | None]  # the source of each key column (subject_id, event, repeat_instance, site_id)
    key_index: list[int]
    forms: list[str]  # the dictionary's forms, in order
    observed_events: dict[str, set[str]]  # form -> events it got rows in
    done: int = 0  # records read so far
    keys: list[pl.DataFrame] = field(default_factory=list)  # per batch, every row's record key (duplicate check)
    sites: list[pl.DataFrame] = field(default_factory=list)  # per batch, subjects (first-seen order) and site
    rep_events_seen: set[str] = field(default_factory=set)  # events seen with an instance and no instrument
    observed_repeating: set[str] = field(default_factory=set)  # repeat instruments seen
    event_order: dict[str, None] = field(default_factory=dict)  # events in first-seen order
    decimal_comma: set[str] = field(default_factory=set)  # numeric columns with a decimal comma value
    decimal_dot: set[str] = field(default_factory=set)  # ... with a decimal dot value
    constants: dict[str | None, pa.Array] = field(default_factory=dict)  # provenance columns the same on every row

    def col_or_null(self, name: str) -> pl.Expr:
        return pl.col(name) if name in self.has else pl.lit(None, dtype=pl.String)

    @property
    def subject(self) -> pl.Expr:
        return pl.col(self.rid)

    event = _redcap_column("redcap_event_name")
    instrument = _redcap_column("redcap_repeat_instrument")
    instance = _redcap_column("redcap_repeat_instance")
    site = _redcap_column("redcap_data_access_group")

    def constant(self, value: str | None, rows: int) -> pa.Array:
        """``rows`` copies of a value: a slice (no copy) of one array built for the longest batch so far."""
        have = self.constants.get(value)
        if have is None or len(have) < rows:
            have = self.constants[value] = (pa.nulls(rows, pa.string()) if value is None
                                            else pa.repeat(pa.scalar(value, pa.string()), rows))
        return have.slice(0, rows)

    def form_mask(self, form: str) -> pl.Expr:
        """Rows of a form: its repeating-instrument rows, and the other rows where it has a value or
        (instrument designations) its event is one of the form's non-repeating events."""
        keep = pl.col(self.nn[form]) > 0
        if self.designated is not None:
            evs = [e for e in self.designated.get(form, set()) if e not in self.rep_events.get(form, set())]
            keep = keep | self.event.is_in(evs) if evs else keep
        return ((self.instrument.is_null() & keep) | (self.instrument == form)).fill_null(False)

    def _row_checks(self) -> dict[str, tuple[pl.Expr, str | None]]:
        """Check name -> (expression true on an offending row, the field to name)."""
        has, rid, nn = self.has, self.rid, self.nn
        ri = pl.col("redcap_repeat_instrument") if "redcap_repeat_instrument" in has else None
        checks: dict[str, tuple[pl.Expr, str | None]] = {"rid": (pl.col(rid).is_null(), rid)}
        if "redcap_event_name" in has:
            ev = pl.col("redcap_event_name")
            checks["ev_null"] = (ev.is_null(), "redcap_event_name")
            if self.ev_known:
                checks["ev_unknown"] = (ev.is_not_null() & ~ev.is_in(list(self.ev_known)), "redcap_event_name")
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
        return checks

    def check_rows(self, df: pl.DataFrame, fail_at, values_of=None) -> None:
        """All row checks of a batch in one pass; the offending row is looked up only on a hit.
        ``df``: the batch's keys, ``__rec`` and, per form, the number of its non-empty value columns (``nn``);
        ``values_of``: record number -> that row's values, when ``df`` holds the keys only."""
        checks = self._row_checks()
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
            col = next(c for c in self.all_value_cols if c not in self.form_cols[form] and row.get(c) is not None)
            raise fail_at(rec, f"a row of repeating instrument {form!r} holds a value ({row[col]!r}) for "
                          "another form's field", col)

    def observe(self, df: pl.DataFrame) -> None:
        """A batch's record keys, subjects with their site, events (seen repeating, in order) and repeat
        instruments."""
        has = self.has
        # the record keys of every row, for the duplicate check: hashed from the text, kept as
        # categoricals (4 bytes a key part) so that memory grows slowly with the export's rows
        self.keys.append(df.select(self.subject.alias("s"), self.event.alias("e"), self.instrument.alias("i"),
                                   self.instance.alias("n"), pl.col("__rec"))
                         .with_columns(pl.struct("s", "e", "i", "n").hash(seed=7).alias("h"))
                         .with_columns(pl.col("s", "e", "i", "n").cast(pl.Categorical)))
        # subjects (first-seen order) with their site, and events seen repeating: per batch, small
        self.sites.append(df.group_by(self.subject.alias("s"), maintain_order=True)
                          .agg(self.site.drop_nulls().first().alias("g")))
        self.rep_events_seen.update(df.filter(self.instrument.is_null() & self.instance.is_not_null())
                                    .get_column("redcap_event_name").drop_nulls().unique().to_list()
                                    if "redcap_event_name" in has else [])
        if "redcap_event_name" in has:
            self.event_order.update(dict.fromkeys(df.get_column("redcap_event_name").unique(maintain_order=True)
                                                  .drop_nulls().to_list()))
        if "redcap_repeat_instrument" in has:
            self.observed_repeating.update(df.get_column("redcap_repeat_instrument").drop_nulls().unique().to_list())

    def scan_decimal_marks(self, batch: pa.RecordBatch, declared_comma: bool | None) -> None:
        """Numeric columns of the batch with a decimal comma value, and (declared decimal comma) a dot one."""
        todo = [c for c in self.numeric if c not in self.decimal_comma]
        # a regex only where there is a comma at all (found by Arrow); the regex itself in Polars
        todo = [c for c in todo if pc.any(pc.match_substring(batch.column(self.column_index[c]), ",")).as_py()]
        if todo:
            hit = pl.from_arrow(batch.select(todo)).select(
                [pl.col(c).str.contains(DECIMAL_COMMA).any() for c in todo]).row(0)
            self.decimal_comma.update(c for c, h in zip(todo, hit) if h)
        todo = [c for c in self.numeric if c not in self.decimal_dot] if declared_comma else []
        if todo:  # declared decimal comma: numeric values written with a dot are noted
            hit = pl.from_arrow(batch.select(todo)).select(
                [pl.col(c).str.contains(DECIMAL_DOT).any() for c in todo]).row(0)
            self.decimal_dot.update(c for c, h in zip(todo, hit) if h)

    def write_form_rows(self, form: str, batch: pa.RecordBatch, df: pl.DataFrame, mask: pl.Series,
                        rec: np.ndarray) -> None:
        """The form's rows of the batch, with keys and provenance, to its table."""
        taken = mask.to_arrow()
        rows = int(mask.sum())
        part = batch.select(self.key_index + [self.column_index[c] for c in self.form_cols[form]]).filter(taken)
        taken_keys = iter(part.columns[:len(self.key_index)])
        key_arrays = [next(taken_keys) if c is not None else self.constant(None, rows) for c in self.key_sources]
        value_arrays = part.columns[len(self.key_index):]
        prov_arrays = [self.constant(self.export_id, rows), self.constant(self.rk.name, rows),
                       pc.cast(pa.array(rec).filter(taken), pa.string()), self.constant(None, rows),
                       self.constant(self.sha, rows)]
        self.sinks[form].write_arrow(key_arrays + list(value_arrays) + prov_arrays)
        if "redcap_event_name" in self.has:
            self.observed_events[form].update(df.get_column("redcap_event_name").filter(mask).drop_nulls()
                                              .unique().to_list())
