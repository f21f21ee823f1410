"""Expectation suites: where they live, how they are read, and the ones generated from the export's metadata.

A suite is a Great Expectations 1.x ExpectationSuite as JSON (held as ``expectations.Suite`` in a build)::

    {"name": "...", "meta": {"table": "hemodynamics" | "*" | ["labs", "sofa"], ...},
     "expectations": [{"type": "expect_...", "kwargs": {...},
                       "meta": {"severity": "error" | "warning", "rule": "human text"}}]}

Suite ``meta`` keys understood here (all optional but ``table``):

- ``table``: the table (or fnmatch glob, or list of them) the suite runs on; a glob never matches ``typing_failures``
  or derived ``chk_*`` tables, name those explicitly;
- ``keys``: where a finding's subject/site/event/instance/form/field/value come from, e.g.
  ``{"subject_id": "USUBJID", "event": ["PARAMCD", "AVISIT"], "field": "item"}`` (a list is joined with " / ");
- ``parameters``: values for ``{"$PARAMETER": name}`` in kwargs, computed from the tables of the stage:
  ``{"name": {"count_distinct": ["randomisation.subject_id", ...]}}`` or ``{"values": [...]}`` (first source present);
- ``derived``: parameters of a derived check table (``chk_*``, see ``derived.py``);
- ``generated_severity``: severities of the rules generated from the metadata at this stage, by kind.

Expectation ``meta``: ``severity``, ``rule`` (one line, the data manager's wording), optionally ``message`` (a
``str.format`` template over the row's columns plus form, field, value, subject_id, site_id, event, repeat_instance,
where), ``form`` / ``field`` (report the finding on this form / field, for derived tables).
"""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import polars as pl

STAGES = ("raw", "staging", "marts")

# Severities of the rules generated from the metadata, by kind (a suite file's meta.generated_severity overrides).
GENERATED_SEVERITY: dict[str, str] = {
    "required": "error",  # a required item is empty
    "type": "error",  # a value that cannot be typed for its validation type (staging would null it)
    "code": "error",  # a code not in the item's code list (staging could not decode it)
    "form_complete": "error",  # REDCap <form>_complete not 0, 1 or 2
    "range": "warning",  # outside the dictionary's min/max: REDCap's soft limits, the site may have confirmed it
}


def expectations_dir() -> Path:
    """The active study project's expectations/ folder (warehouse.resources)."""
    from warehouse.resources import expectations_dir as project_expectations

    return project_expectations()


# --------------------------------------------------------------------------------------------- loading / saving


def suite_to_gx(suite: dict[str, Any]):
    """A suite dict -> gx.ExpectationSuite (GX's own classes validate type names and kwargs; imports GX).

    The GX-native ``severity`` of each expectation is set from ``meta.severity`` (error -> critical)."""
    from warehouse.validate.expectations import suite_from_dict
    from warehouse.validate.gx_worker import suite_to_gx as to_gx

    return to_gx(suite_from_dict(suite).to_json_dict())


def suite_to_dict(suite) -> dict[str, Any]:
    """A suite (``expectations.Suite`` or gx.ExpectationSuite) -> its JSON dict (what a data manager reads)."""
    d = suite.to_json_dict()
    d.pop("id", None)
    for e in d.get("expectations", []):
        e.pop("id", None)
    return d


def load_suite_file(path: Path, study=None):
    """A suite file as an ``expectations.Suite``, windows and codes resolved (see `resolve_study_values`). GX's
    check of its types and kwargs is `check_suites_with_gx`, once per suite and process."""
    from warehouse.validate.expectations import suite_from_dict

    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if "name" not in data:
        data["name"] = path.stem
    meta = data.setdefault("meta", {})
    meta.setdefault("source_file", str(path))
    try:
        return suite_from_dict(resolve_study_values(data, path, study))
    except ValueError as e:
        raise ValueError(f"{path}: {e}") if str(path) not in str(e) else e from None


def check_suites_with_gx(suites: list) -> None:
    """Great Expectations' verdict on suites (type names, kwargs: what its classes accept): a suite GX refuses
    raises ValueError naming its file and GX's reason; in a build, once its validation results are in
    (``gx_process.check_suites``)."""
    from warehouse.validate.gx_process import check_suites

    check_suites([((s.meta or {}).get("source_file") or s.name, s.to_json_dict()) for s in suites])


def resolve_study_values(data: dict[str, Any], path: Path, study=None) -> dict[str, Any]:
    """Windows and codes come from the study configuration, not copies in the suite file:

    - an expectation naming a window (``meta.window``: ``"pe_h6"``) gets its bounds, ``kwargs.min_value`` /
      ``max_value``, from the study's ``[windows]``, and ``{window}`` in its ``rule`` and ``message`` reads
      ``[lo, hi]`` (bounds written in the file too are an error: one place for the numbers);
    - a value ``{"study": "<parameter>"}`` anywhere (``"parameter": {"study": "ne_drug_code"}``) is that parameter.

    ``study``: the StudyConfig (default: the demo study, loaded only when a suite refers to it)."""
    loaded: list = [study]

    def config():
        if loaded[0] is None:
            from warehouse.study import load_study

            loaded[0] = load_study()
        return loaded[0]

    def number(v: float) -> int | float:
        return int(v) if float(v).is_integer() else v

    def walk(value):
        if isinstance(value, dict):
            if set(value) == {"study"} and isinstance(value["study"], str):
                if not hasattr(config(), value["study"]):
                    raise ValueError(f"{path}: unknown study parameter {value['study']!r}")
                return getattr(config(), value["study"])
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    data = walk(data)
    for e in data.get("expectations", []):
        name = (e.get("meta") or {}).get("window")
        if not name:
            continue
        kwargs = e.setdefault("kwargs", {})
        if "min_value" in kwargs or "max_value" in kwargs:
            raise ValueError(f"{path}: window {name!r} gives its bounds in the file: they come from the study "
                             "configuration ([windows])")
        try:
            lo, hi = config().window(name)
        except KeyError as exc:
            raise ValueError(f"{path}: {exc.args[0]}") from None
        kwargs["min_value"], kwargs["max_value"] = number(lo), number(hi)
        text = f"[{number(lo)}, {number(hi)}]"
        for key in ("rule", "message"):
            if isinstance(e["meta"].get(key), str):
                e["meta"][key] = e["meta"][key].replace("{window}", text)
    return data


def load_suites(stage: str, suites_dir: Path | None = None, study=None) -> list:
    """The stage's suite files (``<suites_dir>/<stage>/*.json``, sorted by name) as ``expectations.Suite`` objects,
    windows and codes resolved from ``study`` (default: the demo study; see `resolve_study_values`)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {STAGES}")
    folder = (suites_dir or expectations_dir()) / stage
    return [load_suite_file(p, study) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def save_suites(suites: list, out_dir: Path) -> list[Path]:
    """Write suites (gx objects or dicts) as JSON, one file per suite named after it; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in suites:
        d = s if isinstance(s, dict) else suite_to_dict(s)
        p = out_dir / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', d['name'])}.json"
        p.write_text(json.dumps(d, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
        paths.append(p)
    return paths


def severity_of(meta: dict, native: Any = None) -> str:
    """'error' | 'warning' from an expectation's meta.severity, else from GX's own severity (critical = error)."""
    sev = (meta or {}).get("severity")
    if sev in ("error", "warning"):
        return sev
    if sev is not None:
        raise ValueError(f"severity must be 'error' or 'warning', not {sev!r}")
    native = getattr(native, "value", native)
    return "warning" if native in ("warning", "info") else "error"


def suite_tables(meta: dict, available: list[str]) -> list[str]:
    """The tables of ``available`` a suite's meta.table names (globs skip typing_failures and chk_* tables)."""
    pats = meta.get("table")
    if pats is None:
        return []
    pats = [pats] if isinstance(pats, str) else list(pats)
    out = []
    for name in available:
        for p in pats:
            is_glob = any(ch in p for ch in "*?[")
            if (not is_glob and name == p) or (
                is_glob
                and name != "typing_failures"
                and not name.startswith("chk_")
                and fnmatch.fnmatchcase(name, p)
            ):
                out.append(name)
                break
    return out


# --------------------------------------------------------------------------------------------- raw: generated

# Typeability patterns by validation type. Dates and date-times accept ISO order (REDCap's raw export and ODM) and
# the declared order; numbers accept a decimal comma. Calendar validity (e.g. 30 February) is checked by staging's
# typing (typing_failures), not here.
_D = {"Y": r"\d{4}", "M": r"(0?[1-9]|1[0-2])", "D": r"(0?[1-9]|[12]\d|3[01])"}
_HM = r"([01]?\d|2[0-3]):[0-5]\d"
_HMS = _HM + r":[0-5]\d"
_NUMBER = r"^[-+]?(\d+([.,]\d*)?|[.,]\d+)([eE][-+]?\d+)?$"
_INTEGER = r"^[-+]?\d+$"


def _date_re(order: str) -> str:
    return "[-/.]".join(_D[c] for c in order)


def _iso_date() -> str:
    return f"{_D['Y']}-{_D['M']}-{_D['D']}"


def _datetime_re(order: str, seconds: bool | None) -> str:
    t = {True: _HMS, False: _HM, None: _HM + r"(:[0-5]\d(\.\d+)?)?"}[seconds]
    return rf"^(({_iso_date()})[ T]{t}(Z|[+-]\d\d:?\d\d)?|({_date_re(order)}) {t})$"


# Validation types (or ODM DataTypes) checked by name: (regex, what a value must be).
_TYPE_PATTERNS: dict[str, tuple[str, str]] = {
    **dict.fromkeys(("integer", "int"), (_INTEGER, "an integer")),
    **dict.fromkeys(("number", "float", "double", "decimal"), (_NUMBER, "a number")),
    "date": (rf"^{_iso_date()}$", "a date (YYYY-MM-DD)"),
    "partialdate": (rf"^{_D['Y']}(-{_D['M']}(-{_D['D']})?)?$", "a (partial) date"),
    **dict.fromkeys(("datetime", "partialdatetime"), (_datetime_re("YMD", None), "a date-time")),
    **dict.fromkeys(("time", "time_hh_mm"), (rf"^{_HM}(:[0-5]\d)?$", "a time (HH:MM)")),
    "time_hh_mm_ss": (rf"^{_HMS}$", "a time (HH:MM:SS)"),
    "time_mm_ss": (r"^[0-5]?\d:[0-5]\d$", "a duration (MM:SS)"),
    "email": (r"^[^@\s]+@[^@\s]+\.[^@\s]+$", "an e-mail address"),
    "alpha_only": (r"^[A-Za-z]+$", "letters only"),
    "zipcode": (r"^\d{5}(-\d{4})?$", "a US ZIP code"),
    "mrn_10d": (r"^\d{10}$", "a 10-digit MRN"),
    "phone": (r"^\(?\d{3}\)?[-. ]?\d{3}[-. ]?\d{4}$", "a phone number"),
}


def type_pattern(validation: str | None, field_type: str | None) -> tuple[str, str] | None:
    """(regex, what it means) for a REDCap validation type or an ODM DataType; None when not checkable here."""
    v = (validation or "").strip().lower()
    ft = (field_type or "").strip().lower()
    if not v and ft in ("integer", "float", "double", "date", "datetime", "time", "partialdate", "partialdatetime"):
        v = ft
    if v in _TYPE_PATTERNS:
        return _TYPE_PATTERNS[v]
    if re.fullmatch(r"number(_\d+dp)?(_comma_decimal)?", v):
        return _NUMBER, "a number"
    m = re.fullmatch(r"date_(ymd|dmy|mdy)", v)
    if m:
        o = m.group(1).upper()
        return rf"^({_iso_date()}|{_date_re(o)})$", f"a date ({m.group(1).upper()})"
    m = re.fullmatch(r"datetime(_seconds)?_(ymd|dmy|mdy)", v)
    if m:
        return _datetime_re(m.group(2).upper(), bool(m.group(1))), f"a date-time ({m.group(2).upper()} HH:MM{':SS' if m.group(1) else ''})"
    return None


_YES_NO = {"yesno": [("0", "No"), ("1", "Yes")], "truefalse": [("0", "False"), ("1", "True")]}
_COMPLETE = [("0", "Incomplete"), ("1", "Unverified"), ("2", "Complete")]
_SKIP_TYPES = {"descriptive", "file", "sql", "calc"}


def parse_choices(text: str | None) -> list[tuple[str, str]]:
    """REDCap '1, Yes | 0, No' -> [('1', 'Yes'), ('0', 'No')]."""
    out = []
    for part in (text or "").split("|"):
        part = part.strip()
        if not part:
            continue
        code, _, label = part.partition(",")
        out.append((code.strip(), label.strip()))
    return out


def _codes_text(codes: list[tuple[str, str]], limit: int = 8) -> str:
    shown = ", ".join(f"{c} ({lab})" if lab else c for c, lab in codes[:limit])
    return shown + (f", ... ({len(codes)} codes)" if len(codes) > limit else "")


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("1", "y", "yes", "true", "t")
    return bool(v) if v is not None else False


def _exp(etype: str, kwargs: dict, severity: str, rule: str, kind: str, **meta) -> dict:
    return {"type": etype, "kwargs": kwargs, "meta": {"severity": severity, "rule": rule, "generated": kind, **meta}}


def _items_by_form(items: pl.DataFrame) -> dict[str, list[dict]]:
    if "order" in items.columns:
        items = items.sort("order", nulls_last=True, maintain_order=True)
    out: dict[str, list[dict]] = {}
    for row in items.iter_rows(named=True):
        out.setdefault(row.get("form"), []).append(row)
    return out


def _choices_by_item(metadata: dict[str, pl.DataFrame]) -> dict[str, list[tuple[str, str]]]:
    ch = metadata.get("choices")
    out: dict[str, list[tuple[str, str]]] = {}
    if ch is not None and ch.height:
        for row in ch.iter_rows(named=True):
            out.setdefault(str(row["item"]), []).append((str(row["code"]), "" if row.get("label") is None else str(row["label"])))
    return out


def form_order(metadata: dict[str, pl.DataFrame] | None) -> list[str]:
    """Forms in metadata order (forms frame, else first appearance in items)."""
    metadata = metadata or {}
    forms = metadata.get("forms")
    if forms is not None and forms.height and "form" in forms.columns:
        return [str(f) for f in forms["form"].to_list()]
    items = metadata.get("items")
    if items is not None and items.height:
        if "order" in items.columns:
            items = items.sort("order", nulls_last=True, maintain_order=True)
        return list(dict.fromkeys(str(f) for f in items["form"].to_list()))
    return []


def generate_raw_suites(
    metadata: dict[str, pl.DataFrame],
    tables: dict[str, pl.DataFrame] | None = None,
    severity: dict[str, str] | None = None,
) -> list[dict]:
    """One suite per form, generated from the export's items / choices metadata (dicts, GX suite JSON).

    Per item present as a column of the raw form (when ``tables`` is given): required -> not null; a validation type
    -> regex of values typeable for it; radio / dropdown / yesno / truefalse -> codes in the code list; checkbox
    ``item___code`` columns -> 0/1; plus ``<form>_complete`` in 0/1/2.
    """
    sev = {**GENERATED_SEVERITY, **(severity or {})}
    items = metadata.get("items")
    if items is None or items.height == 0:
        return []
    choices = _choices_by_item(metadata)
    suites = []
    for form, rows in _items_by_form(items).items():
        if form is None:
            continue
        cols = None if tables is None or form not in tables else set(tables[form].columns)
        if tables is not None and cols is None:
            continue
        suites.append({
            "name": f"raw_dictionary_{form}",
            "expectations": _form_expectations(form, rows, cols, choices, sev),
            "meta": {"table": form, "generated_from": "export metadata (items, choices)",
                     "description": f"Dictionary checks of form {form}: required items, value types, code lists."},
        })
    return suites


def _form_expectations(form: str, rows: list[dict], cols: set[str] | None, choices: dict[str, list[tuple[str, str]]],
                       sev: dict[str, str]) -> list[dict]:
    """The dictionary checks of one form's items, in item order; ``cols``: the raw form's columns (None: all)."""
    has = (lambda c: True) if cols is None else (lambda c: c in cols)
    exps: list[dict] = []
    done_complete = False
    for it in rows:
        item, ftype = str(it["item"]), (it.get("field_type") or "").strip().lower()
        if ftype in _SKIP_TYPES or ftype.startswith("survey_"):
            continue
        if ftype == "form_status" or item == f"{form}_complete":
            if has(item):
                codes = choices.get(item) or parse_choices(it.get("choices")) or _COMPLETE
                exps.append(_exp("expect_column_values_to_be_in_set", {"column": item, "value_set": [c for c, _ in codes]},
                                 sev["form_complete"], f"{item} must be one of {_codes_text(codes)}", "form_complete"))
                done_complete = True
        elif ftype == "checkbox":
            exps += _checkbox_expectations(it, choices, has, sev)
        elif has(item):
            exps += _item_expectations(form, it, ftype, cols, choices, sev)
    complete = f"{form}_complete"
    if not done_complete and cols is not None and has(complete):
        exps.append(_exp("expect_column_values_to_be_in_set", {"column": complete, "value_set": ["0", "1", "2"]},
                         sev["form_complete"], f"{complete} must be one of {_codes_text(_COMPLETE)}", "form_complete"))
    return exps


def _checkbox_expectations(it: dict, choices: dict[str, list[tuple[str, str]]], has, sev: dict[str, str]) -> list[dict]:
    """A checkbox's columns (``item___code``) in 0/1: the extract lists each as its own item, or the item's codes
    name them."""
    item, label = str(it["item"]), it.get("label") or str(it["item"])
    if "___" in item:
        if not has(item):
            return []
        what = f"checkbox '{label}'" + (f": {it.get('choice_label')}" if it.get("choice_label") else "")
        return [_exp("expect_column_values_to_be_in_set", {"column": item, "value_set": ["0", "1"]},
                     sev["code"], f"{item} ({what}) must be 0 or 1", "code")]
    exps = []
    for code, lab in choices.get(item) or parse_choices(it.get("choices")):
        col = f"{item}___{code}"
        if has(col):
            exps.append(_exp("expect_column_values_to_be_in_set", {"column": col, "value_set": ["0", "1"]},
                             sev["code"], f"{col} (checkbox '{label}': {lab}) must be 0 or 1", "code"))
    return exps


def _item_expectations(form: str, it: dict, ftype: str, cols: set[str] | None,
                       choices: dict[str, list[tuple[str, str]]], sev: dict[str, str]) -> list[dict]:
    """An item's checks: required -> not null; then its code list, or else the pattern of its validation type."""
    item, label = str(it["item"]), it.get("label") or str(it["item"])
    exps = []
    if _truthy(it.get("required")):
        # required applies to a form that was entered (REDCap enforces it on save): a form never started on
        # an event (its `_complete` status empty: a subject who died before the visit) is not a missing
        # value; the cross-form checks report the missing visit itself
        kwargs = {"column": item}
        if cols is not None and f"{form}_complete" in cols:
            kwargs["row_condition"] = {"type": "nullity", "column": {"name": f"{form}_complete"}, "is_null": False}
        exps.append(_exp("expect_column_values_to_not_be_null", kwargs, sev["required"],
                         f"{item} ('{label}') is required", "required"))
    coded = ftype in ("radio", "dropdown", "yesno", "truefalse") or (
        item in choices and ftype not in ("slider", "boolean"))  # ODM items with a code list
    if coded:
        codes = _YES_NO.get(ftype) or choices.get(item) or parse_choices(it.get("choices"))
        if codes:
            exps.append(_exp("expect_column_values_to_be_in_set",
                             {"column": item, "value_set": [c for c, _ in codes]}, sev["code"],
                             f"{item} must be one of its codes: {_codes_text(codes)}", "code"))
        return exps
    pat = type_pattern(it.get("validation"), ftype) if ftype not in ("slider",) else (_NUMBER, "a number")
    if pat:
        regex = r"^\s*(" + pat[0].removeprefix("^").removesuffix("$") + r")\s*$"
        regex = re.sub(r"(?<!\\)\((?!\?)", "(?:", regex)  # non-capturing: pandas warns on groups
        exps.append(_exp("expect_column_values_to_match_regex", {"column": item, "regex": regex}, sev["type"],
                         f"{item} must be {pat[1]} (validation '{it.get('validation') or ftype}')", "type"))
    return exps


def generate_staging_range_suites(
    metadata: dict[str, pl.DataFrame],
    tables: dict[str, pl.DataFrame],
    skip: set[tuple[str, str]] | None = None,
    severity: dict[str, str] | None = None,
) -> list[dict]:
    """Dictionary min/max as expect_column_values_to_be_between on the typed numeric columns of ``src`` tables.

    ``skip``: (table, column) pairs already range-checked by a suite file (its range wins)."""
    sev = {**GENERATED_SEVERITY, **(severity or {})}["range"]
    items = metadata.get("items")
    if items is None or items.height == 0 or "min" not in items.columns:
        return []
    skip = skip or set()
    suites = []
    for form, rows in _items_by_form(items).items():
        frame = tables.get(form)
        if frame is None:
            continue
        exps = []
        for it in rows:
            item = str(it["item"])
            if item not in frame.columns or (form, item) in skip or not frame.schema[item].is_numeric():
                continue
            lo, hi = _num(it.get("min")), _num(it.get("max"))
            if lo is None and hi is None:
                continue
            units = f" {it['units']}" if it.get("units") else ""
            rng = f"[{'' if lo is None else _fmt(lo)}, {'' if hi is None else _fmt(hi)}]{units}"
            exps.append(_exp("expect_column_values_to_be_between", {"column": item, "min_value": lo, "max_value": hi},
                             sev, f"{item} should be within its dictionary range {rng}", "range"))
        if exps:
            suites.append({"name": f"staging_dictionary_ranges_{form}", "expectations": exps,
                           "meta": {"table": form, "generated_from": "export metadata (items min/max)",
                                    "description": f"Dictionary ranges of form {form} on typed values (soft limits)."}})
    return suites


def _num(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, (int, float)):
        return float(v)
    s = str(v).strip().replace(",", ".")
    try:
        return float(s)
    except ValueError:
        return None  # date or 'today' limits: not a numeric range


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)
