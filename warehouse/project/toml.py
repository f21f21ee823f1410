"""`warehouse init`: study.toml, written from the export's metadata: identity, export format and dialect, forms,
sites, identifiers, dates; the time anchor and randomisation as commented choices with their candidates."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from warehouse.project.forms import Form

ANCHOR_WORDS = re.compile(r"rand|enrol|consent|inclu|baseline|screen", re.IGNORECASE)
RANDOMISATION_WORDS = re.compile(r"rand|\barm\b|allocat|treatment.(arm|group)|study.group", re.IGNORECASE)


def toml_str(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def toml_key(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z0-9_-]+", text) else toml_str(text)


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def wrapped_list(values: list[str], indent: int, width: int = 116) -> str:
    """A TOML array that starts `indent` characters into its line, wrapped onto indented lines when long (an
    array may span lines, also inside an inline table)."""
    one_line = toml_list(values)
    if indent + len(one_line) <= width or len(values) <= 1:
        return one_line
    lines, line = [], "    "
    for value in values:
        text = toml_str(value) + ","
        if len(line) + len(text) > width and line.strip():
            lines.append(line.rstrip())
            line = "    "
        line += text + " "
    lines.append(line.rstrip().rstrip(","))
    return "[\n" + "\n".join(lines) + "\n]"


def dialect_lines(info: dict) -> list[str]:
    records = [f for f in info.get("files", []) if f.get("role") == "records"]
    if not records:
        return ["# (an XML file: no CSV dialect)"]
    first = records[0]
    delimiter = {"\t": "tab"}.get(first.get("delimiter"), first.get("delimiter") or ",")
    return [
        "# Detected from the files (uncomment a key only when detection gets it wrong):",
        f"# encoding = {toml_str(first.get('encoding') or 'utf-8')}" + ("   # with a BOM" if first.get("bom") else ""),
        f"# delimiter = {toml_str(delimiter)}",
        f"# decimal_comma = {'true' if info.get('decimal_comma') else 'false'}",
    ]


def study_toml(study: dict, info: dict, forms: list[Form], meta: dict[str, pl.DataFrame]) -> str:
    out = [
        f"# Study project written by `warehouse init` from {study['source']} (export {info['export_id']}).",
        "# Edit freely: the engine reads this file at every build. Commented tables are choices still to make.",
        "",
        "[study]",
        f"id = {toml_str(study['id'])}",
        f"title = {toml_str(study['title'])}",
        "",
        "[export]",
        f"format = {toml_str(info['format'])}   # redcap (CSV + data dictionary) or odm (CDISC ODM XML)",
        *dialect_lines(info),
        "",
        "[forms]",
        "# table = { label, repeating, events }: one `src` table and one staging model (sql/staging) per form",
    ]
    for form in forms:
        head = (f"{toml_key(form.table)} = {{ label = {toml_str(form.label)}, repeating = "
                f"{'true' if form.repeating else 'false'}, events = ")
        out.append(head + wrapped_list(form.events, len(head)) + " }")
    out += ["", "[sites]", "# site id = name: REDCap data access groups / ODM sites found in the export"]
    sites = sorted({s for s in meta["subjects"]["site_id"].to_list() if s})
    if not sites:
        out.append("# (none: the export has no sites)")
    for site in sites:
        out.append(f"{toml_key(site)} = {toml_str(study['site_names'].get(site, site))}")
    out += ["", "[identifiers]",
            "# form = [items]: flagged as identifiers in the metadata; staging drops them, nothing downstream sees them"]
    flagged = [f for f in forms if f.identifiers]
    if not flagged:
        out.append("# (none flagged)")
    for form in flagged:
        out.append(f"{toml_key(form.table)} = {toml_list(form.identifiers)}")
    out += ["", "[datetimes]", "# form = { date = [items], datetime = [items] }: typed by staging from the metadata"]
    for form in forms:
        parts = []
        for kind in ("date", "datetime"):
            items = [c.source for c in form.dates if c.kind == kind]
            if items:
                head = f"{toml_key(form.table)} = {{ " if not parts else ""
                parts.append(f"{kind} = " + wrapped_list(items, len(head) + len(kind) + 3))
        if parts:
            out.append(f"{toml_key(form.table)} = {{ {', '.join(parts)} }}")
    out += ["", *anchor_lines(forms), "", *randomisation_lines(forms, meta), ""]
    return "\n".join(out)


def anchor_lines(forms: list[Form]) -> list[str]:
    dates = [(f, c) for f in forms for c in f.dates]
    ranked = sorted(dates, key=lambda fc: (0 if ANCHOR_WORDS.search(f"{fc[1].source} {fc[1].comment}") else 1,
                                           0 if fc[1].kind == "datetime" else 1))
    out = ["# [time]",
           "# Study time zero (H0): staging adds `<item>_hrs`, hours since each subject's anchor, to every",
           "# date-time item. Choose the item (randomisation, enrolment or consent date-time), then uncomment."]
    if not ranked:
        return out + ["# (the export has no date or date-time item)"]
    best_form, best = ranked[0]
    out += [f"# anchor_form = {toml_str(best_form.table)}", f"# anchor_item = {toml_str(best.source)}",
            "# candidates:"]
    out += [f"#   {f.table}.{c.source}: {c.comment}" for f, c in ranked[:8]]
    if len(ranked) > 8:
        out.append(f"#   ... and {len(ranked) - 8} more date items ([datetimes] above)")
    return out


def randomisation_lines(forms: list[Form], meta: dict[str, pl.DataFrame]) -> list[str]:
    out = ["# [randomisation]",
           "# Where each subject's arm is recorded (blinded builds hide it), and the arms. Uncomment and choose."]
    candidates = [(f, c) for f in forms for c in f.columns
                  if c.kind in ("coded", "text")
                  and RANDOMISATION_WORDS.search(f"{c.source} {c.comment}")]
    if candidates:
        form, column = candidates[0]
        out += [f"# form = {toml_str(form.table)}", f"# item = {toml_str(column.source)}", "# candidates:"]
        out += [f"#   {f.table}.{c.source}: {c.comment}" for f, c in candidates[:8]]
    else:
        out.append("# (no item named like randomisation, arm or treatment in the metadata)")
    events = meta["events"]
    if events.height and "arm" in events.columns:
        arms = events.filter(pl.col("arm").is_not_null()).unique("arm", keep="first", maintain_order=True)
        if arms.height:
            pairs = ", ".join(f"{toml_str(str(r['arm']))} = {toml_str(r['arm_label'] or str(r['arm']))}"
                              for r in arms.iter_rows(named=True))
            out.append(f"# arms = {{ {pairs} }}   # the export's design arms (REDCap arms)")
    return out
