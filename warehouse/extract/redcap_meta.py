"""A REDCap export's data dictionary: its fields (`read_dictionary`), choices, units, the small metadata CSVs
(`read_small_csv`), and the raw zone's items and choices rows made from it (`dictionary_rows`)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ExportError
from .sniff import REDCAP_DICTIONARY_HEADERS, FileKind, TextInfo, column_at, scan_text

FORM_STATUS_CHOICES = "0, Incomplete | 1, Unverified | 2, Complete"
IMPLICIT_CHOICES = {"yesno": "1, Yes | 0, No", "truefalse": "1, True | 0, False"}
CHOICE_TYPES = {"radio", "dropdown", "checkbox"}
NUMERIC_VALIDATIONS = re.compile(r"^(number|integer|float)")


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


def blank(v: str | None) -> str | None:
    """None for an empty or blank cell."""
    if v is None:
        return None
    return v if v.strip() != "" else None


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
        likely = getattr(err, "likely_encoding", None)
        if getattr(err, "mojibake", False) and not likely:
            hint = ""  # the file itself is garbled (double-encoded): no override reads it right
        elif likely:
            hint = f"; remove the encoding override, or set {override_hint('encoding', likely)}"
        elif encoding:
            hint = f"; the encoding override is {encoding!r}: is that the file's encoding?"
        else:
            hint = f"; if the file is in another encoding (cp1252, latin-1, ...), set {override_hint('encoding')}"
        raised = ExportError(err.file, err.reason + hint, location=err.location, field=fld)
        raised.likely_encoding = likely  # type: ignore[attr-defined]
        raise raised from err


def read_small_csv(path: Path, kind: FileKind, encoding: str | None) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """A small CSV (metadata) read whole: header and (start line, row) pairs; blank lines skipped."""
    info = scan_csv(path, kind, encoding)
    kind.encoding, kind.bom = info.encoding, info.bom  # as read: export.json's provenance of the file
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
        return blank(row[i]) if i is not None else None

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


def dictionary_rows(fields: list[Field], forms: list[str], tables: dict) -> tuple[list[dict], list[dict]]:
    """The items and choices rows: per form (in order), its survey columns, its fields (a checkbox: an item per
    choice), then its form status ``<form>_complete``; ``tables``: form -> its sink (the columns written)."""
    items: list[dict] = []
    choices: list[dict] = []
    order = 0
    fields_by_form: dict[str, list[Field]] = {}
    for f in fields:
        fields_by_form.setdefault(f.form, []).append(f)
    for form in forms:
        cols = set(tables[form].columns)
        if f"{form}_timestamp" in cols:
            order += 1
            items.append({"form": form, "item": f"{form}_timestamp", "label": "Survey timestamp",
                          "field_type": "survey_timestamp", "order": order, "variable": f"{form}_timestamp",
                          "identifier": False, "required": False})
        if form == forms[0] and "redcap_survey_identifier" in cols:
            order += 1
            items.append({"form": form, "item": "redcap_survey_identifier", "label": "Survey identifier",
                          "field_type": "survey_identifier", "order": order,
                          "variable": "redcap_survey_identifier", "identifier": False, "required": False})
        for f in fields_by_form.get(form, []):
            order = _field_rows(form, f, items, choices, order)
        order += 1
        items.append({"form": form, "item": f"{form}_complete", "label": "Complete?",
                      "field_type": "form_status", "choices": FORM_STATUS_CHOICES, "order": order,
                      "variable": f"{form}_complete", "identifier": False, "required": False})
        for k, (code, label) in enumerate(parse_choices(FORM_STATUS_CHOICES), 1):
            choices.append({"item": f"{form}_complete", "code": code, "label": label, "order": k})
    return items, choices


def _field_rows(form: str, f: Field, items: list[dict], choices: list[dict], order: int) -> int:
    """A field's items row (a checkbox: one per choice) and choices rows; returns the last item's order."""
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
    return order
