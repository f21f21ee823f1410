"""The dates family: types of *DT, *DTM and *DY, imputation flags, *DT against *DTM, start before end, and study
days against TRTSDT."""

from __future__ import annotations

from collections.abc import Iterator

from warehouse.validate.adam.engine import (
    Dataset,
    Outcome,
    lit,
    q,
    row_rule,
    table_rule,
)
from warehouse.validate.adam.rules import DTF_TERMS, INTEGER_TYPES, TMF_TERMS

# (rule, variable suffix, whether the DuckDB type is right, what the finding says)
TYPES = (
    ("ADAM-081", "DT", lambda t: t == "DATE", "{column} has type {value}, not a date"),
    ("ADAM-082", "DTM", lambda t: t.startswith("TIMESTAMP"), "{column} has type {value}, not a date-time"),
    ("ADAM-083", "DY", lambda t: t in INTEGER_TYPES, "{column} has type {value}, not an integer"),
)
# (rule, variable suffix, the codelist, how the finding names it)
IMPUTATION_FLAGS = (
    ("ADAM-085", "DTF", DTF_TERMS, "Y, M or D"),
    ("ADAM-086", "TMF", TMF_TERMS, "H, M or S"),
)


def _date_expr(ds: Dataset, stem: str, alias: str = "t") -> str | None:
    """The date of ``<stem>DT`` (or the date part of ``<stem>DTM``) as SQL, None when neither exists."""
    if f"{stem}DT" in ds.columns:
        return f"cast({alias}.{stem}DT as date)"
    if f"{stem}DTM" in ds.columns:
        return f"cast({alias}.{stem}DTM as date)"
    return None


def _variables(con, ds: Dataset) -> Iterator[Outcome]:
    """Each date, date-time, study-day and imputation-flag variable on its own."""
    for c, t in ds.columns.items():
        for rule_id, suffix, right, message in TYPES:
            if c.endswith(suffix) and not right(t):
                yield table_rule(rule_id, ds, c, [(c, t)], 1, message)
        for rule_id, suffix, terms, named in IMPUTATION_FLAGS:
            if c.endswith(suffix):
                yield row_rule(con, rule_id, ds, c, f"{q(c)} not in ({', '.join(lit(x) for x in terms)})", q(c),
                               f"{c} = {{value}} is not {named}", where=f"{q(c)} is not null")


def _pairs(con, ds: Dataset) -> Iterator[Outcome]:
    """*DT against the date of *DTM; start on or before end."""
    for c in ds.columns:
        if c.endswith("DTM") and c[:-1] in ds.columns and ds.columns[c].startswith("TIMESTAMP") \
                and ds.columns[c[:-1]] == "DATE":
            dt = c[:-1]
            yield row_rule(con, "ADAM-084", ds, dt, f"{q(dt)} <> cast({q(c)} as date)", q(dt),
                           f"{dt} {{value}} is not the date of {c}",
                           where=f"{q(dt)} is not null and {q(c)} is not null")
    for start, end in (("TRTS", "TRTE"), ("AST", "AEN")):
        a, b = f"{start}DTM", f"{end}DTM"
        if ds.has(a, b):
            yield row_rule(con, "ADAM-087", ds, b, f"{q(b)} < {q(a)}", q(b), f"{b} {{value}} is before {a}",
                           where=f"{q(a)} is not null and {q(b)} is not null")


def _study_days(con, ds: Dataset, adsl: Dataset | None) -> Iterator[Outcome]:
    """Study days against TRTSDT: the dataset's own TRTSDT(M), else ADSL's."""
    for day, stem in (("ADY", "A"), ("ASTDY", "AST"), ("AENDY", "AEN")):
        date = _date_expr(ds, stem)
        if day not in ds.columns or date is None or ds.columns[day] not in INTEGER_TYPES:
            continue
        own = _date_expr(ds, "TRTS")
        if own is not None:
            source, ref = f"select * from main.{q(ds.name)}", own
        elif adsl is not None and ds is not adsl and "USUBJID" in ds.columns and _date_expr(adsl, "TRTS"):
            adsl_date = _date_expr(adsl, "TRTS", "a")
            source = (f"select d.*, {adsl_date} as _trtsdt from main.{q(ds.name)} d "
                      f"left join main.{q(adsl.name)} a using (USUBJID)")
            ref = "t._trtsdt"
        else:
            continue
        expected = f"(({date}) - ({ref})) + case when ({date}) >= ({ref}) then 1 else 0 end"
        yield row_rule(con, "ADAM-080", ds, day, f"t.{day} <> {expected}", f"t.{day}",
                       f"{day} = {{value}} is not the study day of its date from TRTSDT", source=source,
                       where=f"t.{day} is not null and ({date}) is not null and ({ref}) is not null")


def check_dates(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    adsl = next((d for d in datasets if d.cls == "ADSL"), None)
    for ds in datasets:
        yield from _variables(con, ds)
        yield from _pairs(con, ds)
        yield from _study_days(con, ds, adsl)
