"""Derived check tables (``chk_*``): small frames computed from several staging tables so that a cross-form or
temporal rule becomes a plain column expectation in a suite file a data manager can read.

Each builder takes the stage's tables and the suite's ``meta.derived`` parameters, and returns a frame with the
finding keys (subject_id, site_id, event, repeat_instance) plus the columns its suite checks, or None when an input
table is missing (the suite is then reported as skipped).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

_KEYS = ["subject_id", "site_id", "event", "repeat_instance"]


def _keys(frame: pl.DataFrame) -> list[pl.Expr]:
    return [
        (pl.col(k).cast(pl.Utf8) if k in frame.columns else pl.lit(None, dtype=pl.Utf8)).alias(k) for k in _KEYS
    ]


def chk_randomised_has_pe_h0(tables: dict[str, pl.DataFrame], params: dict[str, Any]) -> pl.DataFrame | None:
    """One row per randomised subject: ``has_pe_h0`` = a pe_challenge record exists at the H0 event.

    params: ``randomisation_table`` (randomisation), ``pe_table`` (pe_challenge), ``h0_event`` (h0_arm_1)."""
    rand = tables.get(params.get("randomisation_table", "randomisation"))
    pe = tables.get(params.get("pe_table", "pe_challenge"))
    if rand is None or pe is None:
        return None
    h0 = params.get("h0_event", "h0_arm_1")
    subjects = (
        rand.select(pl.col("subject_id").cast(pl.Utf8), (pl.col("site_id").cast(pl.Utf8) if "site_id" in rand.columns else pl.lit(None, dtype=pl.Utf8)).alias("site_id"))
        .filter(pl.col("subject_id").is_not_null())
        .unique(subset=["subject_id"], keep="first", maintain_order=True)
    )
    with_pe = pe.filter(pl.col("event") == h0).select(pl.col("subject_id").cast(pl.Utf8)).unique().with_columns(has_pe_h0=pl.lit(True))
    return subjects.join(with_pe, on="subject_id", how="left").select(
        "subject_id",
        "site_id",
        pl.lit(h0, dtype=pl.Utf8).alias("event"),
        pl.lit(None, dtype=pl.Utf8).alias("repeat_instance"),
        pl.col("has_pe_h0").fill_null(False),
    )


def chk_pe_ne_rate_constant(tables: dict[str, pl.DataFrame], params: dict[str, Any]) -> pl.DataFrame | None:
    """One row per PE challenge: the norepinephrine (NE) rate during the test, from the vasopressors form.

    - ``ne_changes_during_test``: NE rate changes in the vasopressors form within (pe_dt, pe_dt + test minutes];
    - ``ne_rate_in_effect_base``: the last NE rate (base, µg/kg/min) recorded at or before pe_dt (0 if none);
    - ``ne_rate_diff``: |pe_ne_rate_base - ne_rate_in_effect_base|.

    params: ``pe_test_minutes`` (30), ``ne_drug_code`` ("1"), ``pe_table``, ``vasopressors_table``, column names
    ``pe_dt``, ``pe_rate`` (pe_ne_rate_base), ``vp_dt``, ``vp_rate`` (vp_rate_base), ``vp_drug``."""
    pe = tables.get(params.get("pe_table", "pe_challenge"))
    vp = tables.get(params.get("vasopressors_table", "vasopressors"))
    if pe is None or vp is None:
        return None
    c = {"pe_dt": "pe_dt", "pe_rate": "pe_ne_rate_base", "vp_dt": "vp_dt", "vp_rate": "vp_rate_base", "vp_drug": "vp_drug"}
    c.update({k: params[k] for k in c if k in params})
    if not {c["pe_dt"], c["pe_rate"]} <= set(pe.columns) or not {c["vp_dt"], c["vp_rate"], c["vp_drug"]} <= set(vp.columns):
        return None
    minutes = float(params.get("pe_test_minutes", 30))
    ne_code = str(params.get("ne_drug_code", "1"))
    tests = pe.select(
        *_keys(pe), pl.col(c["pe_dt"]).alias("pe_dt"), pl.col(c["pe_rate"]).cast(pl.Float64).alias("pe_ne_rate_base")
    ).with_row_index("_test")
    ne = vp.filter(pl.col(c["vp_drug"]).cast(pl.Utf8) == ne_code).select(
        pl.col("subject_id").cast(pl.Utf8), pl.col(c["vp_dt"]).alias("vp_dt"), pl.col(c["vp_rate"]).cast(pl.Float64).alias("vp_rate")
    ).filter(pl.col("vp_dt").is_not_null())
    pairs = tests.select("_test", "subject_id", "pe_dt").join(ne, on="subject_id", how="inner")
    window_end = pl.col("pe_dt") + pl.duration(seconds=minutes * 60)
    changes = (
        pairs.filter((pl.col("vp_dt") > pl.col("pe_dt")) & (pl.col("vp_dt") <= window_end))
        .group_by("_test").agg(pl.len().cast(pl.Int64).alias("ne_changes_during_test"))
    )
    in_effect = (
        pairs.filter(pl.col("vp_dt") <= pl.col("pe_dt"))
        .sort("_test", "vp_dt")
        .group_by("_test").agg(pl.col("vp_rate").last().alias("ne_rate_in_effect_base"))
    )
    out = (
        tests.join(changes, on="_test", how="left").join(in_effect, on="_test", how="left")
        .with_columns(
            pl.col("ne_changes_during_test").fill_null(0),
            pl.col("ne_rate_in_effect_base").fill_null(0.0),
        )
        .with_columns(
            ne_rate_diff=pl.when(pl.col("pe_dt").is_null() | pl.col("pe_ne_rate_base").is_null())
            .then(None)
            .otherwise((pl.col("pe_ne_rate_base") - pl.col("ne_rate_in_effect_base")).abs())
        )
        .with_columns(
            ne_changes_during_test=pl.when(pl.col("pe_dt").is_null()).then(None).otherwise(pl.col("ne_changes_during_test"))
        )
        .sort("_test")
        .drop("_test")
    )
    return out


DERIVED_CHECKS: dict[str, Callable[[dict[str, pl.DataFrame], dict[str, Any]], pl.DataFrame | None]] = {
    "chk_randomised_has_pe_h0": chk_randomised_has_pe_h0,
    "chk_pe_ne_rate_constant": chk_pe_ne_rate_constant,
}
