"""REDCap project export writer: flat records CSV (streamed) and the project's metadata CSVs."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TextIO

from .dictionary import (EVENTS, FIELDS, FORM_BY_NAME, FORMS, REPEAT_LABELS, REPEATING_EVENT, data_columns)
from .simulate import Record

DICTIONARY_HEADER = [
    "Variable / Field Name", "Form Name", "Section Header", "Field Type", "Field Label",
    "Choices, Calculations, OR Slider Labels", "Field Note", "Text Validation Type OR Show Slider Number",
    "Text Validation Min", "Text Validation Max", "Identifier?", "Branching Logic (Show field only if...)",
    "Required Field?", "Custom Alignment", "Question Number (surveys only)", "Matrix Group Name", "Matrix Ranking?",
    "Field Annotation",
]
SECTION_HEADERS = {"elig_adult": "Inclusion criteria", "excl_cardiac_arrest": "Exclusion criteria",
                   "scr_ne_dose": "Screening measurements"}
BRANCHING = {"pe_abort_reason": "[pe_aborted] = '1'", "ae_ser_crit": "[ae_serious] = '1'",
             "death_dt": "[vital_status] = '2'", "death_cause": "[vital_status] = '2'"}


def file_names(study_id: str, date: str) -> dict[str, str]:
    return {
        "data": f"{study_id}_DATA_{date}.csv",
        "dictionary": f"{study_id}_DataDictionary_{date}.csv",
        "events": f"{study_id}_Events_{date}.csv",
        "arms": f"{study_id}_Arms_{date}.csv",
        "designations": f"{study_id}_InstrumentDesignations_{date}.csv",
        "repeating": f"{study_id}_RepeatingInstruments_{date}.csv",
    }


def _csv_text(rows: list[list[str]], quote_cols: frozenset[int] = frozenset()) -> str:
    """RFC 4180 quoting, LF line ends like REDCap; columns in `quote_cols` always quoted (labels, as REDCap does)."""
    out = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            v = "" if v is None else str(v)
            if (i in quote_cols and v != "") or any(ch in v for ch in ',"\n\r') or (v and v != v.strip()):
                v = '"' + v.replace('"', '""') + '"'
            cells.append(v)
        out.append(",".join(cells) + "\n")
    return "".join(out)


def write_metadata(redcap_dir: Path, names: dict[str, str]) -> None:
    """Data dictionary, events, arms, instrument designations and repeating instruments."""
    rows = [DICTIONARY_HEADER]
    for f in FIELDS:
        choices = " | ".join(f"{c}, {label}" for c, label in f.choices) if f.ftype in ("radio", "checkbox") else ""
        rows.append([
            f.name, f.form, SECTION_HEADERS.get(f.name, ""), f.ftype, f.label, choices, f.note, f.validation,
            f.vmin, f.vmax, "y" if f.identifier else "", BRANCHING.get(f.name, ""), "y" if f.required else "",
            "", "", "", "", "",
        ])
    label_cols = frozenset({2, 4, 5, 11})
    _write(redcap_dir / names["dictionary"], _csv_text(rows[:1], frozenset(range(18)) - {10}) +
           _csv_text(rows[1:], label_cols))
    ev_rows = [["event_name", "arm_num", "day_offset", "offset_min", "offset_max", "unique_event_name",
                "custom_event_label", "event_id"]]
    for i, e in enumerate(EVENTS):
        ev_rows.append([e.label, "1", str(e.day_offset), "0", "0", e.name, "", str(41001 + i)])
    _write(redcap_dir / names["events"], _csv_text(ev_rows[:1]) + _csv_text(ev_rows[1:], frozenset({0})))
    _write(redcap_dir / names["arms"], _csv_text([["arm_num", "name"]]) + _csv_text([["1", "Arm 1"]],
                                                                                       frozenset({1})))
    des = [["arm_num", "unique_event_name", "form"]]
    for e in EVENTS:
        for form in e.forms:
            des.append(["1", e.name, form])
    _write(redcap_dir / names["designations"], _csv_text(des))
    rep = [["event_name", "form_name", "custom_form_label"]]
    for f in FORMS:
        if f.repeating:
            rep.append([REPEATING_EVENT, f.name, REPEAT_LABELS.get(f.name, "")])
    _write(redcap_dir / names["repeating"], _csv_text(rep))


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)


class RedcapDataWriter:
    """Streams the flat records CSV, one subject at a time (REDCap's layout and row order)."""

    def __init__(self, fh: TextIO):
        self.fh = fh
        self.columns = data_columns()
        self.index = {c: i for i, c in enumerate(self.columns)}
        self.writer = csv.writer(fh, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        self.writer.writerow(self.columns)
        self.rows = 0

    def write_subject(self, record_id: str, site: str, records: list[Record]) -> None:
        """Non-repeating forms of an event share one row; each repeating instance is a row of its own."""
        n = len(self.columns)
        dag = f"site_{site}"
        rows: list[tuple[list[str], bool]] = []
        current_event = None
        event_row: list[str] | None = None
        for r in records:
            if r.instance is None:
                if r.event != current_event or event_row is None:
                    event_row = [""] * n
                    event_row[0:5] = [record_id, r.event, "", "", dag]
                    rows.append((event_row, False))
                    current_event = r.event
                row = event_row
            else:
                row = [""] * n
                row[0:5] = [record_id, r.event, r.form if FORM_BY_NAME[r.form].repeating else "",
                            str(r.instance), dag]
                rows.append((row, r.duplicate))
                current_event = None
                event_row = None
            for c, v in r.values.items():
                if c != "record_id":
                    row[self.index[c]] = v
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        for row, dup in rows:
            w.writerow(row)
            if dup:
                w.writerow(row)
            self.rows += 2 if dup else 1
        self.fh.write(buf.getvalue())
