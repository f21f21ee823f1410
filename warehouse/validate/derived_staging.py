"""Derived check tables of the staging stage (``chk_*``, see ``derived.py``): per subject, PE challenge, nominal
hour, ventilation period or end-of-study form, the columns a cross-form or temporal rule compares, with the finding
keys subject_id, site_id, event, repeat_instance."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

_KEYS = ["subject_id", "site_id", "event", "repeat_instance"]


def _keys(frame: pl.DataFrame) -> list[pl.Expr]:
    return [
        (pl.col(k).cast(pl.Utf8) if k in frame.columns else pl.lit(None, dtype=pl.Utf8)).alias(k) for k in _KEYS
    ]


# --------------------------------------------------------------------------------------------- cross-form


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


# --------------------------------------------------------------------------------------------- windows


def chk_hemo_hourly(tables: dict[str, pl.DataFrame], params: dict[str, Any]) -> pl.DataFrame | None:
    """One row per subject and nominal hour (``first_hour`` .. ``last_hour``, H0-H24) of the hourly hemodynamics:
    the reading nearest that hour (readings more often than hourly are allowed), and ``offset_hrs`` = its time
    minus the hour. An hour is expected while the subject was monitored: up to the subject's last reading (a
    subject whose readings stop at 9.7 h, e.g. who died then, is not expected at H10). The keys (event,
    repeat_instance) are the nearest reading's.

    params: ``table`` (hemodynamics), ``hours_column`` (hd_dt_hrs), ``first_hour`` (0), ``last_hour`` (24)."""
    hd = tables.get(params.get("table", "hemodynamics"))
    col = params.get("hours_column", "hd_dt_hrs")
    if hd is None or col not in hd.columns or "subject_id" not in hd.columns:
        return None
    first, last = int(params.get("first_hour", 0)), int(params.get("last_hour", 24))
    readings = (
        hd.select(*_keys(hd), pl.col(col).cast(pl.Float64).alias(col))
        .filter(pl.col("subject_id").is_not_null() & pl.col(col).is_not_null())
    )
    out_schema = {**{k: pl.Utf8 for k in _KEYS}, "nominal_hour": pl.Int64, col: pl.Float64, "offset_hrs": pl.Float64}
    if readings.height == 0:
        return pl.DataFrame(schema=out_schema)
    hours = pl.DataFrame({"nominal_hour": list(range(first, last + 1))}, schema={"nominal_hour": pl.Int64})
    grid = (
        readings.group_by("subject_id").agg(pl.col(col).max().alias("_last"))
        .join(hours, how="cross")
        .filter(pl.col("nominal_hour") <= pl.col("_last"))
        .select("subject_id", "nominal_hour", pl.col("nominal_hour").cast(pl.Float64).alias("_h"))
        .sort("_h")
    )
    nearest = grid.join_asof(readings.sort(col), left_on="_h", right_on=col, by="subject_id", strategy="nearest",
                             check_sortedness=False)
    return (
        nearest.with_columns(offset_hrs=pl.col(col) - pl.col("_h"))
        .select(*_KEYS, "nominal_hour", col, "offset_hrs")
        .sort("subject_id", "nominal_hour")
    )


def chk_hemo_hourly_sql(relations: Mapping[str, str], columns: Callable[[str], list[str]],
                        params: dict[str, Any]) -> str | None:
    """``chk_hemo_hourly`` as one DuckDB query, for the pushdown path: the monitor readings (14 million at 10,000
    subjects) never leave DuckDB. ``relations``: table name -> a relation with the row position ``__pos``.

    Same rule and result as the Polars builder, ties included: the nearest reading is the last one at or before the
    hour or the first one at or after it, the later one when both are as near, and among readings at the same time
    the last in table order (what Polars' ``join_asof(strategy="nearest")`` keeps)."""
    name = params.get("table", "hemodynamics")
    col = params.get("hours_column", "hd_dt_hrs")
    if name not in relations or col not in columns(name) or "subject_id" not in columns(name):
        return None
    first, last = int(params.get("first_hour", 0)), int(params.get("last_hour", 24))
    have = set(columns(name))
    keys = ", ".join(f'"{k}"' if k in have else f'cast(null as varchar) as "{k}"' for k in _KEYS)
    hrs = '"' + col.replace('"', '""') + '"'
    # Readings are first reduced to one row per subject and clock hour bucket (floor of the time) with its first and
    # last reading (ties: the last in table order). The last reading at or before hour h is the last of the latest
    # bucket below h, or a reading exactly at h (then the first of bucket h); the first at or after h is the first of
    # the earliest bucket from h on. The ASOF joins then run on ~25 buckets per subject, not on every reading, and
    # only the readings at a bucket's ends carry their keys through a join (two scans, no sort of the readings).
    return f"""
        with readings as not materialized (
            select {keys}, cast({hrs} as double) as t, cast(floor({hrs}) as bigint) as b, __pos
            from {relations[name]}
            where subject_id is not null and {hrs} is not null
        ),
        bounds as (
            select subject_id, b, min(t) as t_first, max(t) as t_last from readings group by subject_id, b
        ),
        ends as (
            select r.subject_id, r.b, r.t,
                   arg_max(struct_pack(site_id := r.site_id, event := r.event, repeat_instance := r.repeat_instance),
                           r.__pos) as k
            from readings as r
            join bounds as x on r.subject_id = x.subject_id and r.b = x.b and (r.t = x.t_first or r.t = x.t_last)
            group by r.subject_id, r.b, r.t
        ),
        buckets as (
            select x.subject_id, x.b, x.t_first, f.k as k_first, x.t_last, l.k as k_last
            from bounds as x
            join ends as f on f.subject_id = x.subject_id and f.b = x.b and f.t = x.t_first
            join ends as l on l.subject_id = x.subject_id and l.b = x.b and l.t = x.t_last
        ),
        monitored as (
            select subject_id, max(t_last) as last_t from buckets group by subject_id
        ),
        grid as (
            select m.subject_id, h.range as nominal_hour
            from monitored as m cross join range({first}, {last + 1}) as h
            where h.range <= m.last_t
        ),
        before as (
            select g.subject_id, g.nominal_hour, k.t_last as t_before, k.k_last as k_before
            from grid as g asof left join buckets as k on g.subject_id = k.subject_id and g.nominal_hour - 1 >= k.b
        ),
        after as (
            select g.subject_id, g.nominal_hour, k.t_first as t_after, k.k_first as k_after
            from grid as g asof left join buckets as k on g.subject_id = k.subject_id and g.nominal_hour <= k.b
        ),
        nearest as (
            select b.subject_id, b.nominal_hour,
                   t_after is not null
                   and (t_before is null or t_after - b.nominal_hour <= b.nominal_hour - t_before) as take_after,
                   case when take_after then t_after else t_before end as t,
                   case when take_after then k_after else k_before end as k
            from before as b join after as a using (subject_id, nominal_hour)
        )
        select cast(subject_id as varchar) as subject_id, cast(k.site_id as varchar) as site_id,
               cast(k.event as varchar) as event, cast(k.repeat_instance as varchar) as repeat_instance,
               nominal_hour, t as {hrs}, t - cast(nominal_hour as double) as offset_hrs
        from nearest
        order by subject_id, nominal_hour
    """


# --------------------------------------------------------------------------------------------- consistency


def chk_ventilation_overlap(tables: dict[str, pl.DataFrame], params: dict[str, Any]) -> pl.DataFrame | None:
    """One row per ventilation period (a row with an intubation date-time), in order of intubation per subject:
    ``overlaps_earlier`` = the intubation lies strictly before the latest end of the subject's earlier periods (an
    earlier period with no extubation never ends), i.e. two rows claim the same time on the ventilator (counted
    once: int_vfd merges them). A re-intubation at the very minute of the previous extubation (touching) is no
    overlap. ``earlier_instance`` / ``earlier_end``: the earlier period that reaches furthest and its end (text:
    the date-time, or "not extubated"). Rows ordered by intubation, then extubation (open last), then instance.

    params: ``table`` (ventilation), ``intub_column`` (intub_dt), ``extub_column`` (extub_dt)."""
    vent = tables.get(params.get("table", "ventilation"))
    intub, extub = params.get("intub_column", "intub_dt"), params.get("extub_column", "extub_dt")
    if vent is None or not {"subject_id", intub, extub} <= set(vent.columns):
        return None
    rows = (
        vent.select(*_keys(vent), pl.col(intub).alias("intub_dt"), pl.col(extub).alias("extub_dt"))
        .filter(pl.col("subject_id").is_not_null() & pl.col("intub_dt").is_not_null())
        .sort("subject_id", "intub_dt", "extub_dt", "repeat_instance", nulls_last=True)
    )
    # an open period ends never: rank ends with null (open) above every date-time
    end_rank = pl.when(pl.col("extub_dt").is_null()).then(pl.lit(1)).otherwise(pl.lit(0))
    rows = rows.with_columns(_open=end_rank, _row=pl.int_range(pl.len()).over("subject_id"))
    # the earlier period reaching furthest: running arg-max of (open, extub_dt) over the rows before this one
    furthest = (
        rows.join(rows.select("subject_id", pl.col("_row").alias("_later")), on="subject_id")
        .filter(pl.col("_row") < pl.col("_later"))
        .sort("subject_id", "_later", "_open", "extub_dt", "_row", descending=[False, False, True, True, False],
              nulls_last=True)
        .group_by("subject_id", "_later", maintain_order=True)
        .agg(pl.col("repeat_instance").first().alias("earlier_instance"),
             pl.col("_open").first().alias("_earlier_open"), pl.col("extub_dt").first().alias("_earlier_end"))
        .rename({"_later": "_row"})
    )
    out = rows.join(furthest, on=["subject_id", "_row"], how="left")
    overlaps = (
        pl.when(pl.col("_earlier_open").is_null()).then(False)  # the subject's first period
        .when(pl.col("_earlier_open") == 1).then(True)
        .when(pl.col("_earlier_end").is_null()).then(False)
        .otherwise(pl.col("intub_dt") < pl.col("_earlier_end"))
    )
    earlier_end = (
        pl.when(pl.col("_earlier_open") == 1).then(pl.lit("not extubated"))
        .otherwise(pl.col("_earlier_end").dt.strftime("%Y-%m-%d %H:%M"))
    )
    return out.select(
        *_KEYS,
        "intub_dt",
        "extub_dt",
        pl.col("earlier_instance").cast(pl.Utf8),
        earlier_end.alias("earlier_end"),
        overlaps.alias("overlaps_earlier"),
    )


def chk_death_status(tables: dict[str, pl.DataFrame], params: dict[str, Any]) -> pl.DataFrame | None:
    """One row per end-of-study form (the first per subject, as stg_end_of_study takes): the vital status as
    entered (``vital_status``: DEAD, ALIVE, null when blank) and whether a death date was entered
    (``death_date_entered``: typed in full, or any non-blank text of death_dt that did not type, from
    typing_failures), as sql/intermediate/int_death.sql decides death (dead = status dead or a death date entered).
    ``alive_with_death_date`` and ``death_date_without_status`` flag the form contradicting itself (the status dead
    without a date is the end_of_study suite's rule). ``death_dt_text``: the date as entered, for the message.

    params: ``table`` (end_of_study), ``status_column`` (vital_status), ``dead_code`` ("2"), ``date_column``
    (death_dt), ``typing_failures_table`` (typing_failures)."""
    eos = tables.get(params.get("table", "end_of_study"))
    status, date = params.get("status_column", "vital_status"), params.get("date_column", "death_dt")
    if eos is None or not {"subject_id", status, date} <= set(eos.columns):
        return None
    dead_code = str(params.get("dead_code", "2"))
    order = ["_source_row"] if "_source_row" in eos.columns else []
    forms = (
        eos.with_row_index("_pos")
        .sort([*order, "_pos"], nulls_last=True)
        .filter(pl.col("subject_id").is_not_null())
        .unique(subset=["subject_id"], keep="first", maintain_order=True)
        .select(*_keys(eos), pl.col(status).cast(pl.Utf8).alias("_status"), pl.col(date).alias("_date"))
    )
    untyped_name = params.get("typing_failures_table", "typing_failures")
    tf = tables.get(untyped_name)
    form_name = params.get("table", "end_of_study")
    if tf is not None and {"form", "item", "subject_id", "raw_value"} <= set(tf.columns):
        untyped = (
            tf.filter((pl.col("form") == form_name) & (pl.col("item") == date))
            .select(pl.col("subject_id").cast(pl.Utf8), pl.col("raw_value").cast(pl.Utf8).str.strip_chars()
                    .alias("_untyped"))
            .filter(pl.col("_untyped").is_not_null() & (pl.col("_untyped") != ""))
            .unique(subset=["subject_id"], keep="first", maintain_order=True)
        )
    else:
        untyped = pl.DataFrame(schema={"subject_id": pl.Utf8, "_untyped": pl.Utf8})
    vital = (
        pl.when(pl.col("_status").is_null()).then(None)
        .when(pl.col("_status") == dead_code).then(pl.lit("DEAD"))
        .otherwise(pl.lit("ALIVE"))
    )
    entered = pl.col("_date").is_not_null() | pl.col("_untyped").is_not_null()
    return (
        forms.join(untyped, on="subject_id", how="left")
        .select(
            *_KEYS,
            vital.alias("vital_status"),
            pl.coalesce(pl.col("_date").cast(pl.Utf8), pl.col("_untyped")).alias("death_dt_text"),
            entered.alias("death_date_entered"),
        )
        .with_columns(
            alive_with_death_date=(pl.col("vital_status") == "ALIVE").fill_null(False) & pl.col("death_date_entered"),
            death_date_without_status=pl.col("vital_status").is_null() & pl.col("death_date_entered"),
        )
        .sort("subject_id")
    )
