"""Derived check tables (``chk_*``): small frames computed from several staging tables so that a cross-form or
temporal rule becomes a plain column expectation in a suite file a data manager can read.

The builders are in ``derived_staging.py`` (staging: cross-form, windows, consistency) and ``derived_marts.py``
(marts: reconciliations); here the registries the run looks them up in. Each builder takes the stage's tables and the suite's ``meta.derived`` parameters, and returns a frame with the
finding keys (subject_id, site_id, event, repeat_instance; at marts the ADaM keys USUBJID, SITEID, ... that the
suite's ``meta.keys`` names) plus the columns its suite checks, or None when an input table is missing (the suite is
then reported as skipped). ``tables`` may be a lazy mapping (pushdown: a table is read only when asked for).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from warehouse.validate.derived_marts import (
    chk_adae_events,
    chk_adeff_peresp,
    chk_adsl_randomised,
    chk_adtte_subjects,
)
from warehouse.validate.derived_staging import (
    chk_death_status,
    chk_hemo_hourly,
    chk_hemo_hourly_sql,
    chk_pe_ne_rate_constant,
    chk_randomised_has_pe_h0,
    chk_ventilation_overlap,
)

# SQL versions of derived checks, used when validation runs in DuckDB (the rest read the tables into Polars: they are
# small at every size, a row per subject or per event)
DERIVED_CHECKS_SQL: dict[str, Callable[[Mapping[str, str], Callable[[str], list[str]], dict[str, Any]], str | None]] = {
    "chk_hemo_hourly": chk_hemo_hourly_sql,
}


DERIVED_CHECKS: dict[str, Callable[[dict[str, pl.DataFrame], dict[str, Any]], pl.DataFrame | None]] = {
    "chk_randomised_has_pe_h0": chk_randomised_has_pe_h0,
    "chk_pe_ne_rate_constant": chk_pe_ne_rate_constant,
    "chk_hemo_hourly": chk_hemo_hourly,
    "chk_ventilation_overlap": chk_ventilation_overlap,
    "chk_death_status": chk_death_status,
    "chk_adsl_randomised": chk_adsl_randomised,
    "chk_adeff_peresp": chk_adeff_peresp,
    "chk_adtte_subjects": chk_adtte_subjects,
    "chk_adae_events": chk_adae_events,
}
