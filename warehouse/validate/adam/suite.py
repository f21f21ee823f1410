"""The ADaM conformance suite: every rule family on the build's ADaM datasets, the project's known deviations
applied, and the outcomes turned into a StageValidation of the marts stage (results and findings).

    validation = check_adam(con, suites_dir)      # -> StageValidation("marts", results, findings)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import duckdb
import polars as pl

from warehouse.validate.adam.dates import check_dates
from warehouse.validate.adam.engine import Outcome, adam_tables, describe, load_config
from warehouse.validate.adam.rules import RULES, SUITE
from warehouse.validate.adam.structure import check_keys, check_metadata, check_required
from warehouse.validate.adam.values import (
    check_flags,
    check_identifiers,
    check_parameter,
    check_timing,
    check_tte,
)

Family = Callable[..., Iterator[Outcome]]

FAMILIES: dict[str, Family] = {
    "metadata": check_metadata,
    "required": check_required,
    "identifiers": check_identifiers,
    "parameter": check_parameter,
    "timing": check_timing,
    "flags": check_flags,
    "tte": check_tte,
    "dates": check_dates,
    "keys": check_keys,
}


def run_rules(con: duckdb.DuckDBPyConnection, suites_dir: Path | None = None,
              config: dict | None = None) -> list[Outcome]:
    """Every family on the build's ADaM datasets (none: no outcome)."""
    datasets = [describe(con, t) for t in adam_tables(con)]
    if not datasets:
        return []
    ctx = {"config": load_config(suites_dir) if config is None else config}
    outcomes: list[Outcome] = []
    for check in FAMILIES.values():
        outcomes.extend(check(con, datasets, ctx))
    return outcomes


def _apply_deviations(outcomes: list[Outcome], config: dict) -> list[Outcome]:
    """Findings the project declares known deviations (``[deviations.<rule>]`` "dataset.VARIABLE" = reason) become
    warnings, their reason in the message; a result whose failures are all such becomes a warning."""
    deviations = {(rule, key.split(".", 1)[0].lower(), key.split(".", 1)[-1].upper()): reason
                  for rule, entries in ((config or {}).get("deviations") or {}).items()
                  for key, reason in (entries or {}).items()}
    if not deviations:
        return outcomes
    for o in outcomes:
        known = 0
        for f in o.findings:
            reason = deviations.get((o.rule.id, o.table, str(f.get("field") or "").upper()))
            if reason:
                f["severity"] = "warning"
                f["message"] = f"{f['message']} (known deviation: {reason})"
                known += 1
        if o.failed and known == o.failed:
            o.note = "known deviation (expectations/marts/adam_conformance.toml)"
            o.severity = "warning"
    return outcomes


def _merge_outcomes(outcomes: list[Outcome]) -> list[Outcome]:
    """One outcome per rule, dataset and column."""
    merged: dict[tuple[str, str, str | None], Outcome] = {}
    for o in outcomes:
        key = (o.rule.id, o.table, o.column)
        if key in merged:
            m = merged[key]
            m.checked += o.checked
            m.failed += o.failed
            m.findings.extend(o.findings)
            m.severity = "error" if "error" in (m.severity or o.rule.severity, o.severity or o.rule.severity) \
                else "warning"
            m.note = m.note or o.note
        else:
            merged[key] = Outcome(o.rule, o.table, o.column, o.checked, o.failed, list(o.findings), o.note,
                                  o.severity)
    return list(merged.values())


def check_adam(con: duckdb.DuckDBPyConnection, suites_dir: Path | None = None, config: dict | None = None):
    """The conformance suite as a StageValidation of the marts stage: one result row per rule, dataset and
    variable checked; one finding per failing row (capped at MAX_FINDINGS_PER_RULE per rule and dataset)."""
    from warehouse.validate.core import RESULTS_SCHEMA, StageValidation
    from warehouse.validate.findings import findings_frame

    config = load_config(suites_dir) if config is None else config
    merged = _merge_outcomes(_apply_deviations(run_rules(con, suites_dir, config), config))
    results = [{
        "stage": "marts", "suite": SUITE, "table": o.table, "expectation_type": SUITE, "column": o.column,
        "severity": o.severity or o.rule.severity, "success": o.failed == 0, "element_count": o.checked,
        "unexpected_count": o.failed, "rule": f"{o.rule.id} {o.rule.what}",
        "status": "passed" if o.failed == 0 else "failed", "note": o.note,
    } for o in merged]
    rows = [f for o in merged for f in o.findings]
    return StageValidation(
        stage="marts",
        results=pl.DataFrame(results, schema=RESULTS_SCHEMA) if results else pl.DataFrame(schema=RESULTS_SCHEMA),
        findings=findings_frame(rows),
        suites=[{"name": SUITE, "meta": {"table": [o.table for o in merged][:1] or None,
                                         "description": "ADaM conformance rules (warehouse/validate/adam/, "
                                                        "docs/adam-conformance.md)",
                                         "rules": [r.id for r in RULES]}, "expectations": []}],
    )


def merge(validation, adam):
    """The marts validation with the conformance suite's results, findings and suite added."""
    from warehouse.validate.core import StageValidation

    results = pl.concat([validation.results, adam.results.select(validation.results.columns)
                         if set(validation.results.columns) <= set(adam.results.columns) else adam.results],
                        how="diagonal_relaxed")
    findings = pl.concat([validation.findings, adam.findings], how="diagonal_relaxed")
    return StageValidation(stage=validation.stage, results=results, findings=findings,
                           suites=[*validation.suites, *adam.suites], gx_results=list(validation.gx_results))
