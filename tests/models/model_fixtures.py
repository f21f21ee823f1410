"""Helpers shared by the tests in tests/models (a uniquely named module, not conftest)."""

from __future__ import annotations

from pathlib import Path

SRC = {
    "vitals": {"subject_id": "VARCHAR", "site_id": "VARCHAR", "vs_dt": "TIMESTAMP", "vs_dt_hrs": "DOUBLE",
               "mapv": "DOUBLE", "hr": "BIGINT", "pos": "VARCHAR", "pos_decod": "VARCHAR"},
    "build_info": {"study_id": "VARCHAR"},
}


def write(root: Path, layer: str, name: str, sql: str) -> Path:
    path = root / layer / f"{name}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql, encoding="utf-8")
    return path


def small_project(root: Path) -> Path:
    """stg_vitals <- src.vitals; int_map_mean <- stg_vitals; int_hr_max <- stg_vitals; vitals_mart <- both."""
    write(root, "staging", "stg_vitals",
          "-- description: Vitals.\n-- grain: subject_id, vsdtm\n-- columns:\n--   map_mmhg: MAP (mmHg)\n"
          "with source as (select * from src.vitals)\n"
          "select subject_id, vs_dt as vsdtm, vs_dt_hrs as vsdtm_hrs, mapv as map_mmhg, hr, pos_decod as position\n"
          "from source")
    write(root, "intermediate", "int_map_mean",
          "select subject_id, avg(map_mmhg) as map_mean from stg_vitals group by subject_id")
    write(root, "intermediate", "int_hr_max",
          "select subject_id, max(hr) as hr_max from stg_vitals group by subject_id")
    write(root, "marts", "vitals_mart",
          "-- description: One row per subject.\n-- grain: USUBJID\n-- tags: marts\n"
          "select b.study_id || '-' || m.subject_id as USUBJID, m.map_mean as MAPMEAN, h.hr_max as HRMAX\n"
          "from int_map_mean as m\njoin int_hr_max as h using (subject_id)\ncross join src.build_info as b")
    return root
