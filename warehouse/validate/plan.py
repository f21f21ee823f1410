"""What a stage runs: its suites (the files, extra suites, those generated from the export's metadata), the derived
check tables they name, and what an expectation reads (columns, parameters), which tells a runnable expectation from
a skipped one. The same for both engines (``core.run_stage``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl

from warehouse.validate.derived import DERIVED_CHECKS
from warehouse.validate.expectations import suite_from_dict
from warehouse.validate.suites import (
    generate_raw_suites,
    generate_staging_range_suites,
    load_suites,
    check_suites_with_gx,
    save_suites,
    suite_tables,
    suite_to_dict,
)


def plan_suites(stage: str, names: list[str], frames: dict[str, pl.DataFrame], metadata, suites_dir,
                extra_suites, generated_dir) -> list:
    """The suites a stage runs (``expectations.Suite``): its files, extra suites and those generated from the
    metadata, each checked by GX's classes (``check_suites_with_gx``: in a build, by its GX worker while the
    validation runs).

    ``frames``: the stage's tables (only their columns and types are read)."""
    file_suites = load_suites(stage, suites_dir)
    file_suites += [suite_from_dict(s if isinstance(s, dict) else suite_to_dict(s)) for s in (extra_suites or [])]
    check_suites_with_gx(file_suites)
    gen_sev: dict[str, str] = {}
    for s in file_suites:
        gen_sev.update((s.meta or {}).get("generated_severity") or {})
    generated: list[dict] = []
    if metadata and stage == "raw":
        generated = generate_raw_suites(metadata, frames, severity=gen_sev)
    elif metadata and stage == "staging":
        ranged = set()
        for s in file_suites:
            for t in suite_tables(s.meta or {}, names):
                for e in s.expectations:
                    cfg = e.configuration
                    kw = cfg.kwargs
                    # a file range with both bounds and no row condition replaces the dictionary's range
                    if (cfg.type == "expect_column_values_to_be_between" and isinstance(kw.get("column"), str)
                            and kw.get("min_value") is not None and kw.get("max_value") is not None
                            and not kw.get("row_condition")):
                        ranged.add((t, cfg.kwargs["column"]))
        generated = generate_staging_range_suites(metadata, frames, skip=ranged, severity=gen_sev)
    if generated_dir is not None and generated:
        save_suites(generated, Path(generated_dir))
    generated_suites = [suite_from_dict(d) for d in generated]
    check_suites_with_gx(generated_suites)  # made by our code from the metadata; GX judges them all the same
    return file_suites + generated_suites



def add_derived_tables(engine, suites: list) -> None:
    """The derived check tables (``chk_*``) the suites name, computed by the engine and added to its tables."""
    for s in suites:
        name = (s.meta or {}).get("table")
        if isinstance(name, str) and name in DERIVED_CHECKS and name not in engine.names():
            frame = engine.derived(name, (s.meta or {}).get("derived") or {})
            if frame is not None:
                engine.add_table(name, frame)



def columns_referenced(kwargs: dict) -> list[str]:
    cols = []
    for k in ("column", "column_A", "column_B"):
        if isinstance(kwargs.get(k), str):
            cols.append(kwargs[k])
    for k in ("column_list", "column_set"):
        if isinstance(kwargs.get(k), list):
            cols.extend(kwargs[k])

    def walk(node):
        if isinstance(node, dict):
            col = node.get("column")
            if isinstance(col, dict) and isinstance(col.get("name"), str):
                cols.append(col["name"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(kwargs.get("row_condition"))
    return cols


def parameters_referenced(kwargs: dict) -> list[str]:
    return [v["$PARAMETER"] for v in kwargs.values() if isinstance(v, dict) and "$PARAMETER" in v]


def suite_parameters(meta: dict, builtin: dict[str, Any], source_values: Callable[[Any, bool], Any]) -> dict[str, Any]:
    """The builtin parameters, and those a suite's ``meta.parameters`` give (``value``) or compute from the stage's
    tables (``count_distinct``, ``values``): ``source_values(sources, distinct_count)`` is the engine's, the number
    of distinct values or the sorted distinct values of the first source column present (None when none is)."""
    params = dict(builtin)
    for name, spec in (meta.get("parameters") or {}).items():
        if not isinstance(spec, dict):
            params[name] = spec
        elif "value" in spec:
            params[name] = spec["value"]
        elif "count_distinct" in spec or "values" in spec:
            v = source_values(spec.get("count_distinct", spec.get("values")), "count_distinct" in spec)
            if v is not None:
                params[name] = v
    return params
