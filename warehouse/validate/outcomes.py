"""An expectation's outcome as rows: its row of the results table, and its row-level findings (one per failing row
shown, or one for the table), with the messages a data manager reads. Used by ``core.run_stage`` for both engines."""

from __future__ import annotations

import string
from typing import Any

from warehouse.validate.identifiers import (
    IDENTIFIER_WITHHELD,
    is_identifier,
    withhold_row,
)

# Where a finding's keys come from, first column present wins (a suite's meta.keys overrides).
DEFAULT_KEYS: dict[str, list[str]] = {
    "subject_id": ["subject_id", "USUBJID", "SUBJID"],
    "site_id": ["site_id", "SITEID"],
    "event": ["event", "AVISIT", "VISIT"],
    "repeat_instance": ["repeat_instance"],
}

_FINDING_KEYS = ("subject_id", "site_id", "event", "repeat_instance")


# --------------------------------------------------------------------------------------------- texts


def value_text(v: Any) -> str | None:
    """A value as a finding shows it (a whole float without its '.0', others to 12 significant digits)."""
    if v is None:
        return None
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return format(v, ".12g")  # 0.30000000000000004 -> 0.3
    return str(v)


class _Fmt(dict):
    def __missing__(self, key):
        return ""


def _where(keys: dict[str, str | None]) -> str:
    parts = []
    for label, k in (("subject", "subject_id"), ("site", "site_id"), ("event", "event"), ("instance", "repeat_instance")):
        if keys.get(k) not in (None, ""):
            parts.append(f"{label} {keys[k]}")
    return ", ".join(parts)


_TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {}


def _template_fields(template: str) -> tuple[str, ...]:
    """The names a message template reads (``{subject_id}``, ``{where}``, ...), parsed once per template."""
    if template not in _TEMPLATE_FIELDS:
        names = [f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f]
        _TEMPLATE_FIELDS[template] = tuple(dict.fromkeys(names))
    return _TEMPLATE_FIELDS[template]


def _message(template: str | None, row: dict, base: dict) -> str:
    where = _where(base)
    if template:
        # the row's columns, overridden by the finding's keys and where (only the names the template reads)
        ctx = _Fmt()
        for name in _template_fields(template):
            if name == "where":
                ctx[name] = where
            elif name in base:
                ctx[name] = "" if base[name] is None else base[name]
            elif name in row:
                ctx[name] = "" if row[name] is None else value_text(row[name])
        text = template.format_map(ctx)
    else:
        if base.get("pair"):  # two columns compared: the value already names both
            text = f"{base['form']}: {base['value']}" + (f" ({where})" if where else "") + f": {base['rule']}"
        else:
            target = f"{base['form']}.{base['field']}" if base.get("field") else str(base.get("form"))
            shown = "is empty" if base.get("value") is None else f"= '{base['value']}'"
            text = f"{target} {shown}" + (f" ({where})" if where else "") + f": {base['rule']}"
    return " ".join(text.split())


def _withheld_message(form, fld, value, where: str, rule: str) -> str:
    """The message of a finding on an identifier field: what failed and where, never the value nor any text
    made from it."""
    target = f"{form}.{fld}" if fld else str(form)
    shown = f"{target} is empty" if value is None else f"{target}: {IDENTIFIER_WITHHELD}"
    return " ".join((shown + (f" ({where})" if where else "") + f": {rule}").split())


# --------------------------------------------------------------------------------------------- results rows


def exception_of(r) -> dict:
    """GX's exception_info of a result: {raised_exception, exception_message, ...}, or, when a metric failed,
    the same keyed by metric id (GX 1.x): the first raised one is returned."""
    exc = (r.exception_info or {}) if r is not None else {}
    if not isinstance(exc, dict):
        return {}
    if "raised_exception" in exc:
        return exc
    for v in exc.values():
        if isinstance(v, dict) and v.get("raised_exception"):
            return v
    return {}


def column_label(kw: dict) -> str | None:
    """The column(s) an expectation checks, as the results table's ``column`` shows them."""
    if isinstance(kw.get("column"), str):
        return kw["column"]
    if isinstance(kw.get("column_A"), str):
        return f"{kw['column_A']},{kw.get('column_B')}"
    for k in ("column_list", "column_set"):
        if isinstance(kw.get(k), list):
            return ",".join(kw[k])
    return None


def rule_text(cfg, kw: dict) -> str:
    """The rule of an expectation: its meta.rule, else its type and kwargs."""
    rule = (cfg.meta or {}).get("rule")
    if rule:
        return str(rule)
    shown = {k: v for k, v in kw.items() if k not in ("result_format", "catch_exceptions")}
    return f"{cfg.type} {shown}"


def result_row(stage, suite, table, cfg, kw, sev, success, status, note, element_count=None, unexpected_count=None,
               order=-1) -> dict:
    """One row of the results table (RESULTS_SCHEMA, plus ``_order``)."""
    return {
        "stage": stage, "suite": suite, "table": table,
        "expectation_type": cfg.type if cfg is not None else None,
        "column": column_label(kw), "severity": sev, "success": success,
        "element_count": element_count, "unexpected_count": unexpected_count,
        "rule": rule_text(cfg, kw) if cfg is not None else None, "status": status, "note": note, "_order": order,
    }


# --------------------------------------------------------------------------------------------- findings


def table_finding(stage, suite, table, cfg, kw, sev, message, value) -> dict:
    """A finding on a table as a whole (no row: a row count, a check that could not run)."""
    meta = cfg.meta or {}
    return {
        "stage": stage, "suite": suite, "rule": rule_text(cfg, kw), "expectation_type": cfg.type, "severity": sev,
        "subject_id": None, "site_id": None, "event": None, "repeat_instance": None,
        "form": meta.get("form", table), "field": meta.get("field", column_label(kw)), "value": value,
        "message": " ".join(str(message).split()),
    }


def _key_cols(spec) -> tuple[str, ...] | None:
    if spec is None:
        return None
    return (spec,) if isinstance(spec, str) else tuple(spec)


def _key_value(row: dict, cols: tuple[str, ...] | None) -> str | None:
    """The text of a key from the row's columns ``cols`` (several are joined with " / "; absent or null ones
    left out)."""
    if not cols:
        return None
    if len(cols) == 1:
        c = cols[0]
        return value_text(row[c]) if c in row else None
    vals = [value_text(row.get(c)) for c in cols if c in row]
    vals = [v for v in vals if v is not None]
    return " / ".join(vals) if vals else None


def findings_of(stage, suite, suite_meta, table, columns: list[str], cfg, kw, sev, res: dict,
                rows: list[dict], identifiers: set[str] = frozenset()) -> list[dict]:
    """Findings of one failed expectation: one per failing row given (``rows``, already capped), or one
    table-level finding when the expectation has no rows (e.g. a row count).

    ``identifiers``: identifier items. A row's identifier columns are withheld before anything reads the row; a
    finding whose field (or checked column) is one gets the value IDENTIFIER_WITHHELD and a fixed message
    (``form.field: value withheld (identifier) (subject ...): rule``), whatever the suite's template says."""
    rule = rule_text(cfg, kw)
    suite_keys = suite_meta.get("keys") or {}
    # the columns whose values the finding shows (not those of a row condition)
    shown = [kw[k] for k in ("column", "column_A", "column_B") if isinstance(kw.get(k), str)]
    shown += [c for k in ("column_list", "column_set") if isinstance(kw.get(k), list) for c in kw[k]]
    shown += list(_key_cols(suite_keys.get("value")) or ())
    reads_identifier = any(is_identifier(c, identifiers) for c in shown + [(cfg.meta or {}).get("field")])
    idx = res.get("unexpected_index_list")
    if idx is None or (not idx and not res.get("unexpected_count")):
        return [_observed_finding(stage, suite, table, cfg, kw, sev, rule, res.get("observed_value"),
                                  reads_identifier)]
    rows_of = _RowFindings(stage, suite, suite_keys, table, columns, cfg, kw, sev, rule)
    return [rows_of.finding(row, identifiers, reads_identifier) for row in rows]


def _observed_finding(stage, suite, table, cfg, kw, sev, rule: str, observed, reads_identifier: bool) -> dict:
    """The table-level finding of a failed expectation without failing rows: the value GX observed."""
    if reads_identifier:
        msg = f"{table}: {rule}" + (f" ({IDENTIFIER_WITHHELD})" if observed is not None else "")
        return table_finding(stage, suite, table, cfg, kw, sev, msg, None if observed is None else IDENTIFIER_WITHHELD)
    msg = f"{table}: {rule}" + (f" (observed {observed})" if observed is not None else "")
    return table_finding(stage, suite, table, cfg, kw, sev, msg, value_text(observed))


class _RowFindings:
    """How one failed expectation's failing rows become findings: where keys, form, field and value come from."""

    def __init__(self, stage, suite, suite_keys: dict, table, columns: list[str], cfg, kw, sev, rule: str):
        self.stage, self.suite, self.table, self.cfg, self.sev, self.rule = stage, suite, table, cfg, sev, rule
        self.meta = cfg.meta or {}
        keys = {k: next((c for c in cands if c in columns), None) for k, cands in DEFAULT_KEYS.items()}
        keys.update(suite_keys)
        self.key_cols = {k: _key_cols(keys.get(k)) for k in _FINDING_KEYS}
        self.value_cols = _key_cols(suite_keys["value"]) if "value" in suite_keys else None
        self.form_cols = _key_cols(suite_keys["form"]) if "form" in suite_keys else None
        self.field_cols = _key_cols(suite_keys["field"]) if "field" in suite_keys else None
        self.column = kw.get("column") if isinstance(kw.get("column"), str) else None
        self.column_a, self.column_b = kw.get("column_A"), kw.get("column_B")
        self.col_list = kw.get("column_list") or kw.get("column_set")
        self.pair = bool(self.column_a) and self.column is None

    def _value(self, row: dict) -> str | None:
        if self.value_cols is not None:
            return _key_value(row, self.value_cols)
        if self.column is not None:
            return value_text(row.get(self.column))
        if self.column_a:
            return (f"{self.column_a}={value_text(row.get(self.column_a))}; "
                    f"{self.column_b}={value_text(row.get(self.column_b))}")
        if self.col_list:
            return " / ".join("" if row.get(c) is None else value_text(row.get(c)) for c in self.col_list)
        return None

    def _form_and_field(self, row: dict) -> tuple[Any, Any]:
        form = self.meta.get("form") or (_key_value(row, self.form_cols) if self.form_cols is not None else self.table)
        fld = self.meta.get("field") or (_key_value(row, self.field_cols) if self.field_cols is not None else None)
        if fld is None:
            fld = self.column or self.column_a or (", ".join(self.col_list) if self.col_list else None)
        return form, fld

    def finding(self, row: dict, identifiers: set[str], reads_identifier: bool) -> dict:
        row = withhold_row(row, identifiers)
        value = self._value(row)
        base = {k: _key_value(row, cols) for k, cols in self.key_cols.items()}
        form, fld = self._form_and_field(row)
        withheld = reads_identifier or any(is_identifier(part.strip(), identifiers) for part in str(fld).split(","))
        if withheld and value is not None:
            value = IDENTIFIER_WITHHELD
        base.update(form=form, field=fld, value=value, rule=self.rule, pair=self.pair)
        return {
            "stage": self.stage, "suite": self.suite, "rule": self.rule, "expectation_type": self.cfg.type,
            "severity": self.sev, "subject_id": base["subject_id"], "site_id": base["site_id"],
            "event": base["event"], "repeat_instance": base["repeat_instance"], "form": form, "field": fld,
            "value": value,
            "message": (_withheld_message(form, fld, value, _where(base), self.rule) if withheld
                        else _message(self.template, row, base)),
        }

    @property
    def template(self) -> str | None:
        return self.meta.get("message")
