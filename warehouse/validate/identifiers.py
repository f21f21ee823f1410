"""Identifier values never leave the raw zone: not in a finding, a result, a report, a listing or an artifact.

Items flagged ``identifier`` in the export's metadata (REDCap "Identifier?", ODM ``redcap:Identifier``) are
dropped at staging; validation of the raw stage still reads them. Two rules keep their values out of everything
validation produces:

1. Structural (``core.py``): a finding on an identifier field, or built from a row's identifier column, carries
   neither the value nor any text made from it: its value is ``IDENTIFIER_WITHHELD`` and its message reads
   ``demographics.dob: value withheld (identifier) (subject ...): <rule>``. GX results of an expectation on an
   identifier column lose their value lists (what Data Docs render).
2. Belt and braces (``withhold_identifiers`` with the export's values): every text column of the findings (value,
   message, rule, ...) and of the results (rule, note), and every string of the GX results, is scrubbed of every
   identifier value of the export, whatever rule or template produced it. Applied once, where a build's
   validations are finalised (``warehouse.build``), before findings, history, results, report, site listings,
   Data Docs and artifacts take them.

Scrubbing is vectorised: values of 4 characters or more (dates of birth, names, ...) are replaced wherever they
occur, in one Aho-Corasick pass per column (``str.replace_many``); shorter ones (initials such as ``AB``, which
as plain substrings would hit ordinary words) only as whole tokens, and only in the findings of the subject they
belong to (the rows holding one are found by a join, then only those are rewritten). Values of one character
(a checkbox's ``1``) are not identifying and are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

IDENTIFIER_WITHHELD = "value withheld (identifier)"
# what replaces an identifier value found inside a text (the belt-and-braces scrub)
SCRUBBED = "[identifier withheld]"
LONG_VALUE = 4  # values this long or longer are scrubbed anywhere they occur
# columns that name things (keys, stages, items), never hold a value: not scrubbed
STRUCTURAL_COLUMNS = frozenset({
    "finding_id", "stage", "suite", "table", "expectation_type", "column", "severity", "subject_id", "site_id",
    "event", "repeat_instance", "form", "field", "status", "first_seen_build", "last_seen_build", "closed_build",
})
KEY_COLUMNS = frozenset({"subject_id", "site_id", "event", "repeat_instance"})
# GX result entries that list a column's values (dropped from the results of an identifier column's expectation)
GX_VALUE_KEYS = ("partial_unexpected_list", "partial_unexpected_counts", "partial_unexpected_index_list",
                 "unexpected_list", "unexpected_index_list", "unexpected_index_query", "unexpected_rows",
                 "observed_value", "details")


# --------------------------------------------------------------------------------------------- which items


def identifier_items(items: pl.DataFrame | None) -> set[str]:
    """Items flagged as identifiers in the export's metadata (``_meta/items.parquet``): staging's rule."""
    from warehouse.stage.typed import identifier_items as flagged

    return set() if items is None else flagged(items)


def is_identifier(column: str | None, identifiers: set[str]) -> bool:
    """A column of an identifier item (checkbox columns ``field___code`` follow their field's flag)."""
    from warehouse.stage.typed import is_identifier as flagged

    return bool(column) and bool(identifiers) and flagged(column, identifiers)


def metadata_identifiers(metadata: dict[str, pl.DataFrame] | None) -> set[str]:
    return identifier_items((metadata or {}).get("items"))


def withhold_row(row: dict, identifiers: set[str]) -> dict:
    """A failing row as findings may read it: every identifier column's value replaced by IDENTIFIER_WITHHELD
    (keys stay: they are the raw zone's record keys, not items)."""
    if not identifiers:
        return row
    hidden = [c for c in row if c not in KEY_COLUMNS and row[c] is not None and is_identifier(c, identifiers)]
    if not hidden:
        return row
    return {**row, **{c: IDENTIFIER_WITHHELD for c in hidden}}


def withhold_gx_result(result, identifiers: set[str], columns: list[str]) -> None:
    """Drop the value lists of a GX ExpectationValidationResult whose expectation reads an identifier column."""
    if any(is_identifier(c, identifiers) for c in columns) and isinstance(getattr(result, "result", None), dict):
        for key in GX_VALUE_KEYS:
            result.result.pop(key, None)


# --------------------------------------------------------------------------------------------- which values


@dataclass
class IdentifierValues:
    """The identifier values of an export: ``long`` ones (scrubbed anywhere) and ``short`` ones per subject
    (``subject_id``, ``value``: scrubbed as whole tokens from that subject's findings)."""

    long: list[str] = field(default_factory=list)
    short: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema={"subject_id": pl.Utf8,
                                                                             "value": pl.Utf8}))

    def __bool__(self) -> bool:
        return bool(self.long) or self.short.height > 0

    @classmethod
    def from_pairs(cls, pairs: pl.DataFrame) -> "IdentifierValues":
        """From (subject_id, value) rows; values as exported and with their spaces stripped."""
        frame = (pl.concat([pairs.select("subject_id", "value"),
                            pairs.select("subject_id", pl.col("value").str.strip_chars())])
                 .cast(pl.Utf8).filter(pl.col("value").str.len_chars() >= 2).unique())
        n = pl.col("value").str.len_chars()
        long = frame.filter(n >= LONG_VALUE).get_column("value").unique().to_list()
        short = frame.filter(n < LONG_VALUE).drop_nulls("subject_id").sort("subject_id", "value")
        return cls(long=sorted(long, key=lambda v: (-len(v), v)), short=short)


def export_identifier_values(data_dir: Path, export_id: str) -> tuple[set[str], IdentifierValues]:
    """(identifier items, their values) of one raw snapshot, read from its Parquet files (identifier columns and
    subject only)."""
    import pyarrow.parquet as pq

    from warehouse.extract.rawzone import read_raw_meta, snapshot_dir

    identifiers = identifier_items(read_raw_meta(data_dir, export_id, "items"))
    if not identifiers:
        return identifiers, IdentifierValues()
    frames = []
    for path in sorted(snapshot_dir(data_dir, export_id).glob("*.parquet")):
        names = pq.read_schema(path).names
        cols = [c for c in names if c not in KEY_COLUMNS and not c.startswith("_") and is_identifier(c, identifiers)]
        if not cols:
            continue
        scan = pl.scan_parquet(path)
        subject = pl.col("subject_id") if "subject_id" in names else pl.lit(None, dtype=pl.Utf8).alias("subject_id")
        frames.append(scan.select(subject.cast(pl.Utf8), *[pl.col(c).cast(pl.Utf8) for c in cols])
                      .unpivot(index="subject_id", value_name="value").select("subject_id", "value")
                      .drop_nulls("value").unique())
    if not frames:
        return identifiers, IdentifierValues()
    return identifiers, IdentifierValues.from_pairs(pl.concat(pl.collect_all(frames)))


def engine_identifier_values(engine, identifiers: set[str]) -> IdentifierValues:
    """The identifier values held by the tables a validation engine validates (the raw stage's forms; none at
    staging and marts, where identifiers are dropped)."""
    if not identifiers:
        return IdentifierValues()
    frames = []
    for table in engine.names():
        columns = engine.columns(table)
        cols = [c for c in columns if c not in KEY_COLUMNS and not c.startswith("_") and is_identifier(c, identifiers)]
        if not cols:
            continue
        frame = engine.values_of(table, (["subject_id"] if "subject_id" in columns else []) + cols)
        if "subject_id" not in frame.columns:
            frame = frame.with_columns(subject_id=pl.lit(None, dtype=pl.Utf8))
        frames.append(frame.select(pl.col("subject_id").cast(pl.Utf8), *[pl.col(c).cast(pl.Utf8) for c in cols])
                      .unpivot(index="subject_id", value_name="value").select("subject_id", "value")
                      .drop_nulls("value"))
    return IdentifierValues.from_pairs(pl.concat(frames)) if frames else IdentifierValues()


# --------------------------------------------------------------------------------------------- scrubbing


def _token_pattern(value: str) -> re.Pattern:
    return re.compile(rf"(?<![0-9A-Za-z]){re.escape(value)}(?![0-9A-Za-z])")


def scrub_strings(texts: pl.Series, values: IdentifierValues) -> pl.Series:
    """Texts with every long identifier value replaced by SCRUBBED (no subject: short values are left)."""
    if not values.long or texts.len() == 0:
        return texts
    return texts.cast(pl.Utf8).str.replace_many(values.long, [SCRUBBED] * len(values.long), leftmost=True,
                                                ascii_case_insensitive=True)


def scrub_identifier_values(frame: pl.DataFrame, values: IdentifierValues,
                            columns: list[str] | None = None) -> pl.DataFrame:
    """``frame`` with its text columns (by default every String column that is not structural: value, message,
    rule, note, ...) scrubbed of the identifier values: long ones anywhere, short ones as whole tokens in the
    rows of their own subject."""
    if not values or frame.height == 0:
        return frame
    cols = [c for c in (columns or [c for c, t in frame.schema.items() if t == pl.Utf8 and c not in STRUCTURAL_COLUMNS])
            if c in frame.columns and frame.schema[c] == pl.Utf8]
    if not cols:
        return frame
    if values.long:
        frame = frame.with_columns(pl.col(c).str.replace_many(values.long, [SCRUBBED] * len(values.long),
                                                              leftmost=True, ascii_case_insensitive=True)
                                   for c in cols)
    if values.short.height and "subject_id" in frame.columns:
        frame = _scrub_short(frame, values.short, cols)
    return frame


def _scrub_short(frame: pl.DataFrame, short: pl.DataFrame, cols: list[str]) -> pl.DataFrame:
    """Short values (initials) as whole tokens, in the rows of their subject: the candidate rows are found by a
    join and a literal search; only the rows that hold one are rewritten."""
    cells = (frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), pl.col("subject_id").cast(pl.Utf8),
                          *cols)
             .unpivot(index=["_row", "subject_id"], variable_name="_column", value_name="_text")
             .drop_nulls("_text"))
    hits = (cells.join(short, on="subject_id", how="inner")
            .filter(pl.col("_text").str.contains(pl.col("value"), literal=True)))
    if hits.height == 0:
        return frame
    changed: dict[str, dict[int, str]] = {}
    for (row, column), group in hits.group_by(["_row", "_column"]):
        text = group.get_column("_text")[0]
        for value in sorted(group.get_column("value").to_list(), key=len, reverse=True):
            text = _token_pattern(value).sub(SCRUBBED, text)
        changed.setdefault(column, {})[int(row)] = text
    updates = []
    for column, rows in changed.items():
        patch = pl.DataFrame({"_row": list(rows), "_new": list(rows.values())},
                             schema={"_row": pl.UInt32, "_new": pl.Utf8})
        replaced = (frame.select(pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), pl.col(column))
                    .join(patch, on="_row", how="left", maintain_order="left")
                    .select(pl.coalesce("_new", column).alias(column)))
        updates.append(replaced.get_column(column))
    return frame.with_columns(updates)


def _strings_in(node: Any, found: list[str]) -> None:
    """Every string inside a GX result structure (dicts: keys and values, lists, tuples, sets), in order."""
    if isinstance(node, str):
        found.append(node)
    elif isinstance(node, dict):
        for k, v in node.items():
            _strings_in(k, found)
            _strings_in(v, found)
    elif isinstance(node, (list, tuple, set)):
        for v in node:
            _strings_in(v, found)


def _rebuilt(node: Any, clean: dict[str, str]) -> Any:
    """``node`` rebuilt with every string replaced by its scrubbed text (``clean``: the strings that change)."""
    if isinstance(node, str):
        return clean.get(node, node)
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            key = _rebuilt(k, clean)
            out[key] = _rebuilt(v, clean)
        return out
    if isinstance(node, (list, tuple, set)):
        items = [_rebuilt(v, clean) for v in node]
        return type(node)(items) if not isinstance(node, list) else items
    return node


def _scrub_nested(obj: Any, values: IdentifierValues) -> Any:
    """Every string inside a GX result structure (dicts, lists, tuples), scrubbed of the long values; the same
    object when none changes."""
    return _scrub_all([obj], values)[0]


def _scrub_all(objs: list[Any], values: IdentifierValues) -> list[Any]:
    """``_scrub_nested`` of many structures with one vectorised pass over their distinct strings: the scrub builds
    an automaton of every long identifier value (~8,000 at 10,000 subjects: ~9 ms a build), so one pass per GX
    result (hundreds per stage) cost ~12 s of the 10,000-subject validate stage. A structure holding no string that
    changes is returned as it is."""
    per_obj: list[list[str]] = []
    for obj in objs:
        found: list[str] = []
        _strings_in(obj, found)
        per_obj.append(found)
    distinct = list(dict.fromkeys(s for found in per_obj for s in found))
    if not distinct or not values.long:
        return list(objs)
    scrubbed = scrub_strings(pl.Series(distinct, dtype=pl.Utf8), values).to_list()
    clean = {a: b for a, b in zip(distinct, scrubbed) if a != b}
    if not clean:
        return list(objs)
    return [_rebuilt(obj, clean) if any(s in clean for s in found) else obj for obj, found in zip(objs, per_obj)]


def scrub_gx_results(gx_results: list, values: IdentifierValues) -> None:
    """The GX results of a validation (what Data Docs render) scrubbed of the long identifier values, in place;
    every result's ``result`` and ``exception_info`` in one pass (``_scrub_all``)."""
    if not values.long:
        return
    targets = [(result, attr)
               for _, suite_result in gx_results
               for result in getattr(suite_result, "results", []) or []
               for attr in ("result", "exception_info")
               if isinstance(getattr(result, attr, None), dict)]
    cleaned = _scrub_all([getattr(result, attr) for result, attr in targets], values)
    for (result, attr), obj in zip(targets, cleaned):
        if obj is not getattr(result, attr):
            setattr(result, attr, obj)


def withhold_identifiers(validations, identifiers: set[str] | None = None, values: IdentifierValues | None = None):
    """One StageValidation or a list of them, in place (and returned): findings on an identifier field lose their
    value (structural, by field name), GX results of identifier columns their value lists; with ``values``, every
    text column of the findings and results and every string of the GX results is scrubbed of them (the GX results
    of all the validations in one pass)."""
    single = not isinstance(validations, (list, tuple))
    gx_results: list = []
    for v in [validations] if single else validations:
        if identifiers:
            _withhold_by_field(v, identifiers)
        if values:
            v.findings = scrub_identifier_values(v.findings, values)
            v.results = scrub_identifier_values(v.results, values)
            gx_results.extend(getattr(v, "gx_results", []) or [])
    if values:
        scrub_gx_results(gx_results, values)
    return validations


def _withhold_by_field(v, identifiers: set[str]) -> None:
    from warehouse.validate.plan import columns_referenced

    findings = v.findings
    if findings.height and {"field", "value"} <= set(findings.columns):
        fields = [f for f in findings.get_column("field").drop_nulls().unique().to_list()
                  if any(is_identifier(part.strip(), identifiers) for part in str(f).split(","))]
        if fields:
            v.findings = findings.with_columns(
                pl.when(pl.col("field").is_in(fields) & pl.col("value").is_not_null())
                .then(pl.lit(IDENTIFIER_WITHHELD)).otherwise(pl.col("value")).alias("value"))
    for _, suite_result in getattr(v, "gx_results", []) or []:
        for result in getattr(suite_result, "results", []) or []:
            cfg = getattr(result, "expectation_config", None)
            if cfg is not None:
                withhold_gx_result(result, identifiers, columns_referenced(cfg.kwargs or {}))


__all__ = ["IDENTIFIER_WITHHELD", "IdentifierValues", "SCRUBBED", "export_identifier_values", "identifier_items",
           "is_identifier", "scrub_identifier_values", "withhold_identifiers", "withhold_row"]
