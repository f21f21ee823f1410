"""Rule families on the datasets' structure: metadata (names, labels, types, grain, lineage), required variables
per class, and keys."""

from __future__ import annotations

import re
from collections.abc import Iterator

import duckdb

from warehouse.validate.adam.engine import Dataset, Outcome, q, row_rule, table_rule
from warehouse.validate.adam.rules import (
    ADSL_REQUIRED,
    AE_REQUIRED,
    BDS_REQUIRED,
    CHARACTER_TYPES,
    CONFIG_FILE,
    EXPORTABLE_TYPES,
    OCCDS_REQUIRED,
    TTE_REQUIRED,
)


def _names(ds: Dataset) -> Iterator[Outcome]:
    name = ds.name.upper()
    yield table_rule("ADAM-001", ds, None, [(None, ds.name)] if len(name) > 8 else [], 1,
                     "dataset name {value} is longer than 8 characters")
    yield table_rule("ADAM-002", ds, None, [] if re.fullmatch(r"AD[A-Z0-9]*", name) else [(None, ds.name)], 1,
                     "dataset name {value} does not start with AD or has a character other than letters/digits")
    yield table_rule("ADAM-003", ds, None, [(c, c) for c in ds.columns if len(c) > 8], len(ds.columns),
                     "variable {column} is longer than 8 characters")
    yield table_rule("ADAM-004", ds, None,
                     [(c, c) for c in ds.columns if not re.fullmatch(r"[A-Z][A-Z0-9_]*", c)], len(ds.columns),
                     "variable {column} is not upper case letters, digits and underscores starting with a letter")


def _labels(ds: Dataset) -> Iterator[Outcome]:
    from warehouse.analyse.labels import XPT_LABEL_MAX, dataset_labels

    yield table_rule("ADAM-005", ds, None, [] if ds.label.strip() else [(None, "")], 1,
                     "dataset has no label (table comment)")
    missing = [(c, "") for c, text in ds.labels.items() if not text.strip()]
    yield table_rule("ADAM-006", ds, None, missing, len(ds.columns), "variable {column} has no label")
    shortened = dataset_labels({c: t for c, t in ds.labels.items() if t.strip()})
    seen: dict[str, str] = {}
    bad = []
    for c, text in shortened.items():
        if len(text) > XPT_LABEL_MAX or not text or text.lower() in seen:
            bad.append((c, text))
        seen[text.lower()] = c
    yield table_rule("ADAM-007", ds, None, bad, len(shortened),
                     "label of {column} as exported ({value}) is longer than 40 characters or not unique")


def check_metadata(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    for ds in datasets:
        yield from _names(ds)
        yield from _labels(ds)
        yield table_rule("ADAM-008", ds, None,
                         [(c, t) for c, t in ds.columns.items() if t not in EXPORTABLE_TYPES and
                          not t.startswith("DECIMAL")], len(ds.columns),
                         "variable {column} has type {value}, neither character nor numeric")
        for c, t in ds.columns.items():
            if t in CHARACTER_TYPES:
                yield row_rule(con, "ADAM-009", ds, c, f"length({q(c)}) > 200", q(c),
                               f"{c} is longer than 200 characters")
        yield table_rule("ADAM-010", ds, None, [] if ds.grain else [(None, "")], 1,
                         "main.catalog gives no grain (keys) for the dataset")
        try:
            traced = {r[0] for r in con.execute(
                "select distinct column_name from main.lineage where table_name = ?", [ds.name]).fetchall()}
        except duckdb.Error:
            traced = None
        if traced is not None:
            yield table_rule("ADAM-011", ds, None, [(c, "") for c in ds.columns if c not in traced],
                             len(ds.columns), "variable {column} has no lineage in main.lineage")


def _required(ds: Dataset, rule_id: str, names, not_collected: dict[str, str]) -> Outcome:
    missing = [(n, "") for n in names if n not in ds.columns and n not in not_collected]
    return table_rule(rule_id, ds, None, missing, len(tuple(names)),
                      f"{ds.cls} required variable {{column}} is missing from {ds.name} (and "
                      f"expectations/marts/{CONFIG_FILE} does not declare it not collected)")


def _required_bds(ds: Dataset, declared: dict[str, str]) -> Iterator[Outcome]:
    yield _required(ds, "ADAM-022", BDS_REQUIRED, declared)
    yield table_rule("ADAM-023", ds, None,
                     [] if ("AVAL" in ds.columns or "AVALC" in ds.columns) else [("AVAL", "")], 1,
                     "neither AVAL nor AVALC")
    pair = {"AVISIT", "AVISITN"} & set(ds.columns)
    yield table_rule("ADAM-024", ds, None, [(c, "") for c in {"AVISIT", "AVISITN"} - pair] if pair else [],
                     1, "{column} is missing while its pair (AVISIT/AVISITN) is present")
    if ds.cls == "BDS-TTE" or ds.name == "adtte":
        yield _required(ds, "ADAM-025", TTE_REQUIRED, declared)


def check_required(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    declared_all = (ctx.get("config") or {}).get("not_collected", {}) or {}
    for ds in datasets:
        declared = {k.upper(): v for k, v in (declared_all.get(ds.name) or {}).items()}
        if declared:
            yield table_rule("ADAM-021", ds, None, [(c, "") for c in declared if c in ds.columns], len(declared),
                             f"{{column}} is declared not collected in {CONFIG_FILE} but {ds.name} has it")
        if ds.cls == "ADSL":
            yield _required(ds, "ADAM-020", ADSL_REQUIRED, declared)
            continue
        treatment = [c for c in ds.columns if re.fullmatch(r"TRT(P|A|\d\dP|\d\dA)", c)]
        yield table_rule("ADAM-028", ds, None, [] if treatment else [(None, "")], 1,
                         "no treatment variable (TRTP, TRTA, TRTxxP, TRTxxA)")
        if ds.cls.startswith("BDS"):
            yield from _required_bds(ds, declared)
        else:
            yield _required(ds, "ADAM-026", OCCDS_REQUIRED, declared)
            if ds.name == "adae" or any(c.startswith("AE") for c in ds.columns):
                yield _required(ds, "ADAM-027", AE_REQUIRED, declared)


def check_keys(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    for ds in datasets:
        if ds.cls == "ADSL":
            yield table_rule("ADAM-093", ds, None, [] if ds.grain == ["USUBJID"] else [(None, ", ".join(ds.grain))],
                             1, "ADSL's key is {value}, not USUBJID")
        if not ds.grain:
            continue
        absent = [c for c in ds.grain if c not in ds.columns]
        yield table_rule("ADAM-090", ds, None, [(c, "") for c in absent], len(ds.grain),
                         "key variable {column} (main.catalog grain) is not in the dataset")
        keys = ds.key_cols
        if not keys:
            continue
        cols = ", ".join(q(c) for c in keys)
        yield row_rule(con, "ADAM-091", ds, ", ".join(keys),
                       f"({cols}) in (select ({cols}) from main.{q(ds.name)} group by all having count(*) > 1)",
                       "concat_ws('/', " + ", ".join(f"cast(t.{q(c)} as varchar)" for c in keys) + ")",
                       "duplicate record at the key " + ", ".join(keys) + " ({value})")
        for c in keys:
            yield row_rule(con, "ADAM-092", ds, c, f"{q(c)} is null", q(c), f"key variable {c} is null")
