"""Stage: raw text forms -> typed Polars frames (the `src` schema of a build).

Types come from the export's own metadata, never from guessing at values, so that a value the site typed wrong
shows up as a typing failure (kept, with its raw text, in `typing_failures`) instead of silently changing a
column's type. A date or date-time item also keeps its text as entered, `<item>_dtc` (partial dates). Identifiers stop here: nothing flagged as one in the metadata reaches a build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

from warehouse.study import StudyConfig

ItemKind = Literal["integer", "number", "date", "datetime", "boolean", "coded", "checkbox", "text"]

KEY_COLUMNS = ["subject_id", "site_id", "event", "repeat_instance"]
PROVENANCE_COLUMNS = ["_export_id", "_source_file", "_source_row", "_source_path"]
UNTYPED_DTYPE = pl.List(pl.Struct({"item": pl.Utf8, "raw": pl.Utf8}))
TYPING_FAILURE_SCHEMA = {
    "form": pl.Utf8,
    "subject_id": pl.Utf8,
    "site_id": pl.Utf8,
    "event": pl.Utf8,
    "repeat_instance": pl.Int32,
    "item": pl.Utf8,
    "raw_value": pl.Utf8,
    "expected_type": pl.Utf8,
    "_source_row": pl.Int64,
}

# Formats by REDCap validation type; ODM's ISO types share the ymd ones. Several formats are tried in order so
# that a datetime exported with seconds, or ODM's "T" separator, still types.
_DATE_FORMATS = {
    "ymd": ["%Y-%m-%d"],
    "dmy": ["%d-%m-%Y", "%d/%m/%Y"],
    "mdy": ["%m-%d-%Y", "%m/%d/%Y"],
}
_DATETIME_FORMATS = {
    "ymd": ["%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"],
    "dmy": ["%d-%m-%Y %H:%M", "%d-%m-%Y %H:%M:%S", "%d/%m/%Y %H:%M"],
    "mdy": ["%m-%d-%Y %H:%M", "%m-%d-%Y %H:%M:%S", "%m/%d/%Y %H:%M"],
}


@dataclass(frozen=True)
class ItemSpec:
    item: str
    kind: ItemKind
    order: str = "ymd"  # date component order for dates and date-times


def item_kind(field_type: str | None, validation: str | None, has_choices: bool) -> tuple[ItemKind, str]:
    """The staged type of an item, from REDCap field/validation types or ODM DataTypes, and its date order."""
    ftype = (field_type or "").strip().lower()
    vtype = (validation or "").strip().lower()
    order = next((o for o in ("dmy", "mdy", "ymd") if vtype.endswith(o)), "ymd")
    if ftype == "checkbox":
        return "checkbox", order
    if ftype in {"yesno", "truefalse", "boolean"}:
        return "boolean", order
    if ftype in {"radio", "dropdown"} or (has_choices and ftype not in {"calc", "slider"}):
        return "coded", order
    if vtype.startswith("datetime") or ftype == "datetime":
        return "datetime", order
    if vtype.startswith("date") or ftype == "date":
        return "date", order
    if vtype == "integer" or ftype == "integer":
        return "integer", order
    if vtype.startswith("number") or vtype == "float" or ftype in {"float", "double", "calc", "slider"}:
        return "number", order
    return "text", order


def _parse_first_format(values: pl.Series, dtype: pl.DataType, formats: list[str]) -> pl.Series:
    """Each value parsed with the first of ``formats`` that parses it (null when none does). A format is
    tried only on the values the earlier ones left unparsed: the same result as coalescing every format over
    every value, without parsing each value with every format."""
    out = values.str.strptime(dtype, formats[0], strict=False, exact=True, cache=False)
    for fmt in formats[1:]:
        left = out.is_null() & values.is_not_null()
        if not left.any():
            break
        retry = pl.select(pl.when(left).then(values)).to_series()
        out = out.fill_null(retry.str.strptime(dtype, fmt, strict=False, exact=True, cache=False))
    return out.rename(values.name)


def first_format(raw: pl.Expr, dtype: pl.DataType, formats: list[str]) -> pl.Expr:
    """``raw`` parsed with the first format of ``formats`` that parses it, else null (never an error)."""
    return raw.map_batches(lambda s: _parse_first_format(s, dtype, formats), return_dtype=dtype,
                           is_elementwise=True)


def typed_expression(column: str, spec: ItemSpec) -> pl.Expr:
    """A Polars expression typing one raw text column; values that do not type become null (never an error)."""
    raw = pl.col(column).str.strip_chars()
    raw = pl.when(raw == "").then(None).otherwise(raw)
    if spec.kind == "integer":
        # "12.0" is not an integer the site meant to type; keep strict digits (with sign) only.
        return pl.when(raw.str.contains(r"^[+-]?\d+$")).then(raw).otherwise(None).cast(pl.Int64, strict=False)
    if spec.kind == "number":
        # Decimal comma (European sites): "1,25" -> 1.25. Thousands separators are not accepted.
        normalised = raw.str.replace(r"^([+-]?\d*),(\d+)$", "${1}.${2}")
        ok = normalised.str.contains(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
        return pl.when(ok).then(normalised).otherwise(None).cast(pl.Float64, strict=False)
    if spec.kind == "date":
        return first_format(raw, pl.Date, _DATE_FORMATS[spec.order])
    if spec.kind == "datetime":
        return first_format(raw, pl.Datetime("us"), _DATETIME_FORMATS[spec.order])
    if spec.kind in {"boolean", "checkbox"}:
        lowered = raw.str.to_lowercase()
        return (
            pl.when(lowered.is_in(["1", "true", "yes", "y"]))
            .then(True)
            .when(lowered.is_in(["0", "false", "no", "n"]))
            .then(False)
            .otherwise(None)
        )
    return raw


def item_specs(items: pl.DataFrame, choices: pl.DataFrame, form: str, columns: list[str]) -> dict[str, ItemSpec]:
    """Specs of the value columns of one raw form, from the export's item metadata."""
    coded_items = set(choices.get_column("item").to_list()) if choices.height else set()
    rows = list(items.iter_rows(named=True))  # rows in Python, no eager Polars filter: see identifier_items
    meta = {row["item"]: row for row in rows if row["form"] == form}
    # Items can be listed under another form in the metadata (ODM item groups shared across forms).
    meta_any = {row["item"]: row for row in rows}
    specs: dict[str, ItemSpec] = {}
    for column in columns:
        row = meta.get(column) or meta_any.get(column)
        if row is None and "___" in column:
            row = meta.get(column.split("___")[0]) or meta_any.get(column.split("___")[0])
            if row is not None:
                row = {**row, "field_type": "checkbox"}
        if row is None:
            if column.endswith("_complete"):
                specs[column] = ItemSpec(column, "coded")
            continue
        kind, order = item_kind(row.get("field_type"), row.get("validation"), column in coded_items)
        specs[column] = ItemSpec(column, kind, order)
    return specs


def identifier_items(items: pl.DataFrame) -> set[str]:
    """Items flagged as identifiers in the metadata; checkbox columns follow their field's flag."""
    if "identifier" not in items.columns:
        return set()
    # plain Python over two columns, not a Polars filter: called per form and column, and each eager Polars
    # query gives the GIL away (with Great Expectations importing beside staging, ~5 ms to get it back)
    return {item for item, flag in zip(items.get_column("item").to_list(), items.get_column("identifier").to_list())
            if flag}


def is_identifier(column: str, identifiers: set[str]) -> bool:
    return column in identifiers or column.split("___")[0] in identifiers


def stage_form(
    raw: pl.DataFrame | pl.LazyFrame, form: str, items: pl.DataFrame, choices: pl.DataFrame
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Type one raw form: the typed frame and its typing failures, both lazy so a large form streams."""
    raw = raw.lazy()
    columns = raw.collect_schema().names()
    provenance = [c for c in PROVENANCE_COLUMNS if c in columns]
    values = value_columns(columns, items)
    specs = item_specs(items, choices, form, values)

    typed_columns = [
        pl.col("subject_id").cast(pl.Utf8),
        (pl.col("site_id") if "site_id" in columns else pl.lit(None)).cast(pl.Utf8).alias("site_id"),
        (pl.col("event") if "event" in columns else pl.lit(None)).cast(pl.Utf8).alias("event"),
        (pl.col("repeat_instance") if "repeat_instance" in columns else pl.lit(None))
        .cast(pl.Int32, strict=False)
        .alias("repeat_instance"),
    ]
    checked = checked_specs(specs, values)
    # each checked value is typed once, beside its raw text: the typed column and `_untyped` both read it
    typed_name = {spec.item: f"__typed:{spec.item}" for spec in checked}
    raw = raw.with_columns([typed_expression(spec.item, spec).alias(typed_name[spec.item]) for spec in checked])
    for column in values:
        spec = specs.get(column, ItemSpec(column, "text"))
        typed_columns.append(
            (pl.col(typed_name[column]) if column in typed_name else typed_expression(column, spec)).alias(column))
        if spec.kind in {"date", "datetime"}:
            typed_columns.append(entered_text(column))
    typed_columns.append(untyped_values(checked, typed_name))
    typed_columns += [
        pl.col(c).cast(pl.Int64, strict=False) if c == "_source_row" else pl.col(c) for c in provenance
    ]
    typed = raw.select(typed_columns)
    failures = failures_from_untyped(typed, form, checked)
    for column in values:
        if specs.get(column) and specs[column].kind == "coded":
            typed = decode_choices(typed, column, choices)
    return typed, failures


def entered_text(column: str) -> pl.Expr:
    """`<item>_dtc`: a date or date-time item's text as entered (CDISC --DTC: ISO 8601 text, possibly partial,
    e.g. '2019-06'), trimmed, null when blank; kept beside the typed value, so a date that did not type in full
    stays readable by the models (partial-date imputation) without reading the validation log."""
    text = pl.col(column).cast(pl.Utf8).str.strip_chars()
    return pl.when(text != "").then(text).alias(f"{column}_dtc")


def value_columns(columns: list[str], items: pl.DataFrame) -> list[str]:
    """The item columns of a raw form that staging keeps (keys, provenance and identifiers left out)."""
    identifiers = identifier_items(items)
    keys = [c for c in KEY_COLUMNS if c in columns]
    provenance = [c for c in PROVENANCE_COLUMNS if c in columns]
    values = [c for c in columns if c not in keys and c not in provenance and not c.startswith("_")]
    return [c for c in values if not is_identifier(c, identifiers)]


def form_checks(raw: pl.DataFrame | pl.LazyFrame, form: str, items: pl.DataFrame,
                choices: pl.DataFrame) -> list[ItemSpec]:
    """The items of one raw form whose values can fail to type, in column order (the `_untyped` items)."""
    values = value_columns(raw.lazy().collect_schema().names(), items)
    return checked_specs(item_specs(items, choices, form, values), values)


def checked_specs(specs: dict[str, ItemSpec], values: list[str]) -> list[ItemSpec]:
    """The items whose raw text can fail to type (not text, not codes), in column order."""
    return [specs[c] for c in values if c in specs and specs[c].kind not in {"text", "coded"}]


def decode_choices(frame: pl.LazyFrame, column: str, choices: pl.DataFrame) -> pl.LazyFrame:
    """Add `<column>_decod`, the label of each code; an unknown code keeps its code and gets no label."""
    # the item's labels picked in Python (first label of a code), not by eager Polars queries: see identifier_items
    pairs: dict[str, str] = {}
    if choices.height:
        for item, code, label in zip(*(choices.get_column(c).to_list() for c in ("item", "code", "label"))):
            if item == column:
                pairs.setdefault(code, label)
    if column.endswith("_complete") and not pairs:
        pairs = {"0": "Incomplete", "1": "Unverified", "2": "Complete"}
    labels = pl.DataFrame({column: list(pairs), f"{column}_decod": list(pairs.values())},
                          schema={column: choices.schema.get("code", pl.Utf8),
                                  f"{column}_decod": choices.schema.get("label", pl.Utf8)})
    return frame.join(labels.lazy(), on=column, how="left", maintain_order="left")


def untyped_values(specs: list[ItemSpec], typed: dict[str, str] | None = None) -> pl.Expr:
    """`_untyped`: beside a row's typed values, the raw text of each value that did not type (null when all did).

    A list of {item, raw} so that a failed value stays in its row, readable, while its column holds null.
    ``typed``: item -> the column already holding its typed value (else the value is typed here).
    """
    if not specs:
        return pl.lit(None, dtype=UNTYPED_DTYPE).alias("_untyped")
    typed = typed or {}
    failed = []
    for spec in specs:
        text = pl.col(spec.item).str.strip_chars()
        value = pl.col(typed[spec.item]) if spec.item in typed else typed_expression(spec.item, spec)
        failed.append(
            pl.when(text.is_not_null() & (text != "") & value.is_null())
            .then(pl.struct(pl.lit(spec.item).alias("item"), pl.col(spec.item).cast(pl.Utf8).alias("raw")))
        )
    listed = pl.concat_list(failed).list.drop_nulls()
    return pl.when(listed.list.len() > 0).then(listed).alias("_untyped")


def failures_from_untyped(typed: pl.LazyFrame, form: str, specs: list[ItemSpec]) -> pl.LazyFrame:
    """Typing failures of one staged form, read from its `_untyped` column: rows whose raw text is present but
    did not type, kept so that no value disappears unexplained. Item by item (in column order), then in row
    order. `typing_failures_sql` is the same over the form loaded in DuckDB."""
    if not specs:
        return pl.LazyFrame(schema=TYPING_FAILURE_SCHEMA)
    position = {spec.item: k for k, spec in enumerate(specs)}
    kinds = {spec.item: spec.kind for spec in specs}
    source_row = pl.col("_source_row") if "_source_row" in typed.collect_schema().names() else pl.lit(None)
    return (
        typed.filter(pl.col("_untyped").is_not_null())
        .select("subject_id", "site_id", "event", "repeat_instance", "_untyped", source_row.alias("_source_row"))
        .explode("_untyped")
        .select(
            pl.lit(form).alias("form"),
            "subject_id", "site_id", "event", "repeat_instance",
            pl.col("_untyped").struct.field("item").alias("item"),
            pl.col("_untyped").struct.field("raw").alias("raw_value"),
            pl.col("_untyped").struct.field("item").replace_strict(kinds, return_dtype=pl.Utf8).alias("expected_type"),
            pl.col("_source_row").cast(pl.Int64, strict=False),
            pl.col("_untyped").struct.field("item").replace_strict(position, return_dtype=pl.Int64).alias("__pos"),
        )
        .sort("__pos", maintain_order=True)
        .drop("__pos")
        .cast(TYPING_FAILURE_SCHEMA)
    )


def typing_failures_sql(table: str, form: str, specs: list[ItemSpec], has_source_row: bool = True) -> str | None:
    """A DuckDB query of the typing failures of one staged form already loaded as ``table``: the rows of
    `failures_from_untyped` (same columns and types) read from the table's `_untyped` column, plus `__pos` (the
    item's place among ``specs``) and `__row` (the table's row): ``order by __pos, __row`` is that order."""
    if not specs:
        return None

    def lit(text: str) -> str:
        return "'" + text.replace("'", "''") + "'"

    kind = " ".join(f"when {lit(s.item)} then {lit(s.kind)}" for s in specs)
    position = " ".join(f"when {lit(s.item)} then {k}" for k, s in enumerate(specs))
    return (
        f"select {lit(form)}::varchar as form, subject_id::varchar as subject_id, site_id::varchar as site_id, "
        "event::varchar as event, repeat_instance::integer as repeat_instance, u.item::varchar as item, "
        f"u.raw::varchar as raw_value, (case u.item {kind} end)::varchar as expected_type, "
        f"_source_row::bigint as _source_row, (case u.item {position} end) as __pos, __row "
        f"from (select rowid as __row, subject_id, site_id, event, repeat_instance, "
        f"{'_source_row' if has_source_row else 'null'} as _source_row, unnest(_untyped) as u "
        f"from {table} where _untyped is not null)"
    )


def randomisation_times(anchor: pl.LazyFrame | pl.DataFrame | None, study: StudyConfig) -> pl.DataFrame:
    """Each subject's H0 (the configured anchor item, e.g. the randomisation date-time): subject_id, h0."""
    empty = pl.DataFrame(schema={"subject_id": pl.Utf8, "h0": pl.Datetime("us")})
    if anchor is None or study.anchor_item not in anchor.lazy().collect_schema().names():
        return empty
    return (
        anchor.lazy()
        .filter(pl.col(study.anchor_item).is_not_null())
        .group_by("subject_id")
        .agg(pl.col(study.anchor_item).min().alias("h0"))
        .collect()
    )


def add_study_time(frame: pl.LazyFrame, h0: pl.DataFrame) -> pl.LazyFrame:
    """Add `<item>_hrs`, hours since H0, for every date-time column: the study's common clock."""
    schema = frame.collect_schema()
    datetime_columns = [c for c, t in schema.items() if isinstance(t, pl.Datetime) and not c.startswith("_")]
    if not datetime_columns:
        return frame
    hours = [
        ((pl.col(c) - pl.col("h0")).dt.total_microseconds() / 3_600_000_000).alias(f"{c}_hrs")
        for c in datetime_columns
    ]
    return frame.join(h0.lazy(), on="subject_id", how="left", maintain_order="left").with_columns(hours).drop("h0")


def ne_salt_factor(salt: pl.Expr, study: StudyConfig) -> pl.Expr:
    """The multiplier from a labelled NE dose to base, for a salt code (null for an unknown salt)."""
    return salt.cast(pl.Utf8).replace_strict(study.ne_salt_factors, default=None, return_dtype=pl.Float64)


def subject_ne_salts(frame: pl.LazyFrame | None, spec: dict[str, str], study: StudyConfig) -> pl.DataFrame:
    """The salt each subject's NE is labelled in, read from a form that records it (first NE row)."""
    empty = pl.DataFrame(schema={"subject_id": pl.Utf8, "_ne_salt": pl.Utf8})
    if frame is None or "salt" not in spec or spec["salt"] not in frame.collect_schema().names():
        return empty
    if "drug" in spec:
        frame = frame.filter(pl.col(spec["drug"]) == study.ne_drug_code)
    return (
        frame.filter(pl.col(spec["salt"]).is_not_null())
        .select("subject_id", "repeat_instance", pl.col(spec["salt"]).alias("_ne_salt"))
        .sort(["subject_id", "repeat_instance"], nulls_last=True)
        .group_by("subject_id", maintain_order=True)
        .agg(pl.col("_ne_salt").first())
        .collect()
    )


@dataclass
class StagingContext:
    """What staging one form needs from others: each subject's H0, and NE salts recorded elsewhere."""

    h0: pl.DataFrame
    salts: dict[str, pl.DataFrame]

    @classmethod
    def from_typed(cls, typed: dict[str, pl.LazyFrame], study: StudyConfig) -> "StagingContext":
        salts = {}
        for form, spec in study.ne_base_doses.items():
            source = spec.get("salt_from")
            if source:
                salts[form] = subject_ne_salts(typed.get(source), study.ne_base_doses.get(source, {}), study)
        return cls(randomisation_times(typed.get(study.anchor_form), study), salts)


def add_ne_base(frame: pl.LazyFrame, form: str, study: StudyConfig, context: StagingContext) -> pl.LazyFrame:
    """Add `<rate>_base` (NE in µg/kg/min as base) where the study configuration says this form records NE."""
    spec = study.ne_base_doses.get(form)
    if spec is None or spec["rate"] not in frame.collect_schema().names():
        return frame
    rate = pl.col(spec["rate"])
    if "salt_from" in spec:
        frame = frame.join(context.salts[form].lazy(), on="subject_id", how="left", maintain_order="left")
        base = rate * ne_salt_factor(pl.col("_ne_salt"), study)
    else:
        base = rate * ne_salt_factor(pl.col(spec["salt"]), study)
    if "drug" in spec:
        base = pl.when(pl.col(spec["drug"]) == study.ne_drug_code).then(base).otherwise(None)
    return frame.with_columns(base.alias(f"{spec['rate']}_base")).drop("_ne_salt", strict=False)


def finish_form(typed: pl.LazyFrame, form: str, study: StudyConfig, context: StagingContext) -> pl.LazyFrame:
    """The derivations that need other forms: NE as base and study time."""
    return add_study_time(add_ne_base(typed, form, study, context), context.h0)


def stage_lazy(
    raw_forms: dict[str, pl.LazyFrame | pl.DataFrame], items: pl.DataFrame, choices: pl.DataFrame,
    study: StudyConfig,
) -> tuple[dict[str, pl.LazyFrame], pl.LazyFrame]:
    """Every form staged, lazily: the typed forms and all typing failures, ready to collect or stream."""
    typed, failures = {}, []
    for form, raw in sorted(raw_forms.items()):
        typed[form], failed = stage_form(raw, form, items, choices)
        failures.append(failed)
    context = StagingContext.from_typed(typed, study)
    staged = {form: finish_form(frame, form, study, context) for form, frame in typed.items()}
    all_failures = pl.concat(failures, how="vertical_relaxed") if failures else pl.LazyFrame(
        schema=TYPING_FAILURE_SCHEMA)
    return staged, all_failures


def stage_forms(
    raw_forms: dict[str, pl.DataFrame], items: pl.DataFrame, choices: pl.DataFrame, study: StudyConfig
) -> dict[str, pl.DataFrame]:
    """Stage every raw form: typed, decoded, identifiers dropped, NE as base, in study time.

    The result also holds `typing_failures`, one row per value that did not type.
    """
    staged, failures = stage_lazy(raw_forms, items, choices, study)
    out = {form: frame.collect() for form, frame in staged.items()}
    out["typing_failures"] = failures.collect()
    return out
