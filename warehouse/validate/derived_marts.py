"""Derived check tables of the marts stage (``chk_*``, see ``derived.py``): reconciliations of the ADaM datasets
with ADSL and the forms they come from. Each table has one row per key expected (n_expected = 1) or found
(n_rows >= 1), so that a suite compares n_rows with n_expected row by row and names the subject of every
difference; the keys are ADaM's (USUBJID, SITEID, ...), which the suite's ``meta.keys`` names."""

from __future__ import annotations

from typing import Any

import polars as pl


def _first_table(tables, names, columns: tuple[str, ...] = ("subject_id",)) -> pl.DataFrame | None:
    """The first of ``names`` (a name or a list, first present wins) that ``tables`` holds with ``columns``."""
    for name in [names] if isinstance(names, str) else list(names):
        frame = tables.get(name)
        if frame is not None and set(columns) <= set(frame.columns):
            return frame
    return None


def _utf8(frame: pl.DataFrame, column: str) -> pl.Expr:
    return (pl.col(column).cast(pl.Utf8) if column in frame.columns else pl.lit(None, dtype=pl.Utf8)).alias(column)


def _itt_subjects(adsl: pl.DataFrame) -> pl.DataFrame:
    return (
        adsl.filter(pl.col("ITTFL") == "Y")
        .select(pl.col("USUBJID").cast(pl.Utf8), _utf8(adsl, "SITEID"))
        .filter(pl.col("USUBJID").is_not_null())
        .unique(subset=["USUBJID"], keep="first", maintain_order=True)
    )


def chk_adsl_randomised(tables: dict[str, pl.DataFrame], params: dict[str, Any]) -> pl.DataFrame | None:
    """One row per subject of the randomisation form or of ADSL: ``randomised`` = 1 when the subject has a record
    of the randomisation form (any record, also one without rand_dt), ``n_itt_rows`` = ADSL rows of the subject
    with ITTFL = 'Y'. ADSL's randomised subjects are the form's subjects when the two are equal on every row.

    params: ``randomisation_tables`` (the raw randomisation form first: ["randomisation", "src.randomisation"];
    stg_randomisation drops records without rand_dt, so it is the last resort), ``adsl_table`` (adsl)."""
    adsl = _first_table(tables, params.get("adsl_table", "adsl"), ("USUBJID", "SUBJID", "ITTFL"))
    form = _first_table(tables, params.get("randomisation_tables",
                                           ["randomisation", "src.randomisation", "stg_randomisation"]))
    if adsl is None or form is None:
        return None
    studies = adsl["STUDYID"].drop_nulls().cast(pl.Utf8).unique().to_list() if "STUDYID" in adsl.columns else []
    prefix = f"{studies[0]}-" if len(studies) == 1 else ""
    randomised = (
        form.select(pl.col("subject_id").cast(pl.Utf8).alias("SUBJID"), _utf8(form, "site_id"))
        .filter(pl.col("SUBJID").is_not_null())
        .group_by("SUBJID", maintain_order=True).agg(pl.col("site_id").drop_nulls().first())
        .with_columns(randomised=pl.lit(1, dtype=pl.Int64))
    )
    in_adsl = (
        adsl.select(pl.col("SUBJID").cast(pl.Utf8), pl.col("USUBJID").cast(pl.Utf8), _utf8(adsl, "SITEID"),
                    pl.col("ITTFL").cast(pl.Utf8))
        .filter(pl.col("SUBJID").is_not_null())
        .group_by("SUBJID", maintain_order=True)
        .agg(pl.col("USUBJID").first(), pl.col("SITEID").first(), pl.col("ITTFL").first(),
             (pl.col("ITTFL") == "Y").sum().cast(pl.Int64).alias("n_itt_rows"))
    )
    return (
        randomised.join(in_adsl, on="SUBJID", how="full", coalesce=True)
        .select(
            pl.coalesce("USUBJID", pl.lit(prefix) + pl.col("SUBJID")).alias("USUBJID"),
            "SUBJID",
            pl.coalesce("SITEID", pl.col("site_id").str.replace(r"^site_", "")).alias("SITEID"),
            "ITTFL",
            pl.col("randomised").fill_null(0),
            pl.col("n_itt_rows").fill_null(0),
        )
        .sort("USUBJID")
    )


def chk_adeff_peresp(tables: dict[str, pl.DataFrame], params: dict[str, Any]) -> pl.DataFrame | None:
    """One row per ITT subject of ADSL and time point of the PE response (H0, H6, H12), plus any other (subject,
    time point) with a PERESP row in ADEFF: ``n_expected`` (1 for an ITT subject's time point, else 0), ``n_rows``
    (PERESP rows in ADEFF), the first row's AVAL and MISSRSN, and ``aval_expected`` = 'Y' when the row exists and
    its MISSRSN does not exempt it (the subject died before the time point), else 'N'.

    params: ``paramcd`` (PERESP), ``time_points`` (["H0", "H6", "H12"]), ``exempt_reasons`` (["DIED BEFORE TIME
    POINT"]), ``adsl_table``, ``adeff_table``."""
    adsl = _first_table(tables, params.get("adsl_table", "adsl"), ("USUBJID", "ITTFL"))
    adeff = _first_table(tables, params.get("adeff_table", "adeff"), ("USUBJID", "PARAMCD", "AVISIT", "AVAL"))
    if adsl is None or adeff is None:
        return None
    paramcd = str(params.get("paramcd", "PERESP"))
    points = [str(t) for t in params.get("time_points", ["H0", "H6", "H12"])]
    exempt = [str(r) for r in params.get("exempt_reasons", ["DIED BEFORE TIME POINT"])]
    grid = _itt_subjects(adsl).join(pl.DataFrame({"AVISIT": points}, schema={"AVISIT": pl.Utf8}), how="cross") \
        .with_columns(n_expected=pl.lit(1, dtype=pl.Int64))
    rows = (
        adeff.filter(pl.col("PARAMCD") == paramcd)
        .select(pl.col("USUBJID").cast(pl.Utf8), pl.col("AVISIT").cast(pl.Utf8),
                _utf8(adeff, "SITEID").alias("_site"), pl.col("AVAL").cast(pl.Float64), _utf8(adeff, "MISSRSN"))
        .group_by("USUBJID", "AVISIT", maintain_order=True)
        .agg(pl.len().cast(pl.Int64).alias("n_rows"), pl.col("_site").first(), pl.col("AVAL").first(),
             pl.col("MISSRSN").first())
    )
    order = {p: i for i, p in enumerate(points)}
    return (
        grid.join(rows, on=["USUBJID", "AVISIT"], how="full", coalesce=True, nulls_equal=True)
        .with_columns(
            pl.coalesce("SITEID", "_site").alias("SITEID"),
            pl.lit(paramcd, dtype=pl.Utf8).alias("PARAMCD"),
            pl.col("n_expected").fill_null(0),
            pl.col("n_rows").fill_null(0),
        )
        .with_columns(
            aval_expected=pl.when((pl.col("n_rows") > 0) & ~pl.col("MISSRSN").fill_null("").is_in(exempt))
            .then(pl.lit("Y")).otherwise(pl.lit("N")),
            _order=pl.col("AVISIT").replace_strict(order, default=len(points), return_dtype=pl.Int64),
        )
        .sort("USUBJID", "_order", "AVISIT")
        .select("USUBJID", "SITEID", "PARAMCD", "AVISIT", "n_expected", "n_rows", "AVAL", "MISSRSN", "aval_expected")
    )


def chk_adtte_subjects(tables: dict[str, pl.DataFrame], params: dict[str, Any]) -> pl.DataFrame | None:
    """One row per ITT subject of ADSL, plus any other subject with a ``paramcd`` (TTDEATH) row in ADTTE:
    ``n_expected`` (1 for an ITT subject, else 0) and ``n_rows`` (its TTDEATH rows in ADTTE).

    params: ``paramcd`` (TTDEATH), ``adsl_table``, ``adtte_table``."""
    adsl = _first_table(tables, params.get("adsl_table", "adsl"), ("USUBJID", "ITTFL"))
    adtte = _first_table(tables, params.get("adtte_table", "adtte"), ("USUBJID", "PARAMCD"))
    if adsl is None or adtte is None:
        return None
    paramcd = str(params.get("paramcd", "TTDEATH"))
    rows = (
        adtte.filter(pl.col("PARAMCD") == paramcd)
        .select(pl.col("USUBJID").cast(pl.Utf8), _utf8(adtte, "SITEID").alias("_site"))
        .group_by("USUBJID", maintain_order=True).agg(pl.len().cast(pl.Int64).alias("n_rows"), pl.col("_site").first())
    )
    return (
        _itt_subjects(adsl).with_columns(n_expected=pl.lit(1, dtype=pl.Int64))
        .join(rows, on="USUBJID", how="full", coalesce=True, nulls_equal=True)
        .select("USUBJID", pl.coalesce("SITEID", "_site").alias("SITEID"), pl.lit(paramcd).alias("PARAMCD"),
                pl.col("n_expected").fill_null(0), pl.col("n_rows").fill_null(0))
        .sort("USUBJID")
    )


def chk_adae_events(tables: dict[str, pl.DataFrame], params: dict[str, Any]) -> pl.DataFrame | None:
    """One row per adverse event (subject, repeat instance = AESEQ) of the staging table of a subject known to
    ADSL, plus any other (USUBJID, AESEQ) of ADAE: ``n_expected`` (records of the event in staging) and ``n_rows``
    (its rows in ADAE).

    params: ``ae_tables`` (["stg_adverse_events", "adverse_events", "src.adverse_events"], first present),
    ``adsl_table``, ``adae_table``."""
    adsl = _first_table(tables, params.get("adsl_table", "adsl"), ("USUBJID", "SUBJID"))
    adae = _first_table(tables, params.get("adae_table", "adae"), ("USUBJID", "AESEQ"))
    ae = _first_table(tables, params.get("ae_tables", ["stg_adverse_events", "adverse_events", "src.adverse_events"]),
                      ("subject_id", "repeat_instance"))
    if adsl is None or adae is None or ae is None:
        return None
    known = (
        adsl.select(pl.col("SUBJID").cast(pl.Utf8).alias("subject_id"), pl.col("USUBJID").cast(pl.Utf8),
                    _utf8(adsl, "SITEID"))
        .filter(pl.col("subject_id").is_not_null())
        .unique(subset=["subject_id"], keep="first", maintain_order=True)
    )
    expected = (
        ae.select(pl.col("subject_id").cast(pl.Utf8), pl.col("repeat_instance").cast(pl.Int64).alias("AESEQ"))
        .join(known, on="subject_id", how="inner")
        .group_by("USUBJID", "AESEQ", maintain_order=True)
        .agg(pl.len().cast(pl.Int64).alias("n_expected"), pl.col("SITEID").first())
    )
    rows = (
        adae.select(pl.col("USUBJID").cast(pl.Utf8), pl.col("AESEQ").cast(pl.Int64), _utf8(adae, "SITEID").alias("_site"))
        .group_by("USUBJID", "AESEQ", maintain_order=True)
        .agg(pl.len().cast(pl.Int64).alias("n_rows"), pl.col("_site").first())
    )
    return (
        expected.join(rows, on=["USUBJID", "AESEQ"], how="full", coalesce=True, nulls_equal=True)
        .select("USUBJID", pl.coalesce("SITEID", "_site").alias("SITEID"), "AESEQ",
                pl.col("n_expected").fill_null(0), pl.col("n_rows").fill_null(0))
        .sort("USUBJID", "AESEQ", nulls_last=True)
    )
