"""Rule families on the datasets' values: identifiers (and ADSL), parameters and timing (BDS), flags and time to
event. The fixed-column checks are tables of ``Predicate``/``OneToOne`` rows that ``run_checks`` interprets."""

from __future__ import annotations

import re
from collections.abc import Iterator

from warehouse.validate.adam.engine import (
    Dataset,
    OneToOne,
    Outcome,
    Predicate,
    lit,
    q,
    row_rule,
    run_checks,
    table_rule,
)
from warehouse.validate.adam.rules import (
    CHARACTER_TYPES,
    POPULATION_FLAG,
    RECORD_FLAG,
    SEX_TERMS,
)

IDENTIFIERS = (
    Predicate("ADAM-030", ("STUDYID",), "STUDYID", "STUDYID is null", "STUDYID", "STUDYID is null"),
    Predicate("ADAM-031", ("USUBJID",), "USUBJID", "USUBJID is null", "USUBJID", "USUBJID is null"),
)
ADSL_VALUES = (
    Predicate("ADAM-034", ("SUBJID",), "SUBJID", '"SUBJID" is null', '"SUBJID"', "SUBJID is null"),
    Predicate("ADAM-034", ("SITEID",), "SITEID", '"SITEID" is null', '"SITEID"', "SITEID is null"),
    Predicate("ADAM-036", ("AGE", "AGEU"), "AGEU", "AGE is not null and AGEU is null", "AGE",
              "AGE {value} without AGEU"),
    Predicate("ADAM-037", ("SEX",), "SEX",
              f"SEX is not null and cast(SEX as varchar) not in ({', '.join(lit(t) for t in SEX_TERMS)})", "SEX",
              "SEX {value} is not in the SEX codelist"),
)
PARAMETERS = (
    Predicate("ADAM-040", ("PARAMCD",), "PARAMCD", "PARAMCD is null", "PARAMCD", "PARAMCD is null"),
    Predicate("ADAM-041", ("PARAMCD",), "PARAMCD", "length(PARAMCD) > 8", "PARAMCD",
              "PARAMCD {value} is longer than 8 characters"),
    Predicate("ADAM-042", ("PARAMCD",), "PARAMCD", "not regexp_full_match(PARAMCD, '[A-Za-z][A-Za-z0-9_]*')",
              "PARAMCD", "PARAMCD {value} does not start with a letter or has a character other than "
              "letters, digits and underscore", where="PARAMCD is not null"),
    Predicate("ADAM-043", ("PARAM",), "PARAM", "PARAM is null", "PARAM", "PARAM is null"),
    OneToOne("ADAM-044", "PARAMCD", "PARAM", "PARAM {value}: its PARAMCD has more than one PARAM"),
    OneToOne("ADAM-045", "PARAM", "PARAMCD", "PARAMCD {value}: its PARAM has more than one PARAMCD"),
    OneToOne("ADAM-046", "PARAMCD", "PARAMN", "PARAMN {value} is not one-to-one with PARAMCD"),
    OneToOne("ADAM-046", "PARAMN", "PARAMCD", "PARAMCD {value} is not one-to-one with PARAMN"),
)
CHANGE = (
    Predicate("ADAM-049", ("AVAL", "BASE", "CHG"), "CHG",
              "abs(CHG - (AVAL - BASE)) > 1e-9 * greatest(1, abs(AVAL), abs(BASE))", "CHG",
              "CHG {value} is not AVAL - BASE", where="AVAL is not null and BASE is not null and CHG is not null"),
)
TIMING = (
    OneToOne("ADAM-050", "AVISIT", "AVISITN", "AVISITN {value}: AVISIT {event} has more than one AVISITN"),
    OneToOne("ADAM-051", "AVISITN", "AVISIT", "AVISIT {value}: its AVISITN has more than one AVISIT"),
    Predicate("ADAM-052", ("AVISIT", "AVISITN"), "AVISIT", "AVISIT is null", "AVISITN",
              "AVISITN {value} without AVISIT", where="AVISITN is not null"),
    OneToOne("ADAM-053", "ATPT", "ATPTN", "ATPTN {value}: its ATPT has more than one ATPTN"),
    # a visit name the mart's AVISIT -> AVISITN rule does not know gives a null AVISITN: flagged here, not
    # silently left out of every by-visit analysis
    Predicate("ADAM-054", ("AVISIT", "AVISITN"), "AVISITN", "AVISITN is null", "AVISIT",
              "AVISIT {value} has no AVISITN", where="AVISIT is not null"),
)
# TRTxxP/TRTxxA (TRTP/TRTA) and their numeric codes: the variable and its N variable pair one-to-one
TREATMENT_VARIABLE = re.compile(r"^TRT(\d\d)?[PA]$")
TIME_TO_EVENT = (
    Predicate("ADAM-070", ("CNSR",), "CNSR", "CNSR is null or CNSR not in (0, 1)", "CNSR",
              "CNSR = {value} is not 0 or 1"),
    Predicate("ADAM-071", ("AVAL",), "AVAL", "AVAL is null or AVAL < 0", "AVAL",
              "time-to-event AVAL {value} is missing or negative"),
    Predicate("ADAM-072", ("STARTDT", "ADT"), "ADT", "ADT < STARTDT", "ADT", "ADT {value} is before STARTDT",
              where="ADT is not null and STARTDT is not null"),
)


def check_identifiers(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    adsl = next((d for d in datasets if d.cls == "ADSL"), None)
    studies = [f"select distinct cast(STUDYID as varchar) as s, {lit(ds.name)} as t "
               f"from main.{q(ds.name)} where STUDYID is not null" for ds in datasets if "STUDYID" in ds.columns]
    for ds in datasets:
        yield from run_checks(con, ds, IDENTIFIERS + treatment_pairs(ds))  # one scan for both
    if studies:
        rows = con.execute(" union ".join(studies) + " order by t, s").fetchall()
        first = rows[0][0] if rows else None
        for ds in datasets:
            if "STUDYID" in ds.columns:
                yield row_rule(con, "ADAM-032", ds, "STUDYID", f"cast(STUDYID as varchar) <> {lit(first)}",
                               "STUDYID", f"STUDYID {{value}} differs from {first} (the first dataset's)")
    if adsl is None:
        return
    for ds in datasets:
        if ds is adsl or "USUBJID" not in ds.columns or "USUBJID" not in adsl.columns:
            continue
        yield row_rule(con, "ADAM-033", ds, "USUBJID",
                       f"USUBJID is not null and USUBJID not in (select USUBJID from main.{q(adsl.name)} "
                       "where USUBJID is not null)", "USUBJID", "{value} is not in ADSL")
        copied = [c for c in ds.columns if c in adsl.columns and c != "USUBJID"]
        if not copied:
            continue
        # every copied variable's counts in one join of the dataset with ADSL (not one join per variable)
        row = con.execute(f"select count(*), {', '.join(f'count(*) filter (where d.{q(c)} is distinct from a.{q(c)})' for c in copied)} "
                          f"from main.{q(ds.name)} d join main.{q(adsl.name)} a using (USUBJID)").fetchone()
        for k, c in enumerate(copied):
            source = (f"select d.*, a.{q(c)} as _adsl from main.{q(ds.name)} d "
                      f"join main.{q(adsl.name)} a using (USUBJID)")
            yield row_rule(con, "ADAM-035", ds, c, f"t.{q(c)} is distinct from t._adsl",
                           f"t.{q(c)}", f"{c} = {{value}} differs from the subject's ADSL value", source=source,
                           counts=(int(row[0]), int(row[k + 1])))
    yield from run_checks(con, adsl, ADSL_VALUES)


def treatment_pairs(ds: Dataset) -> tuple[OneToOne, ...]:
    """ADAM-038's checks for the dataset's TRTxxP/TRTxxA (TRTP/TRTA) that have an N variable: each text has one
    number and each number one text (a blinded build's label with null numbers passes: one value, null)."""
    checks: list[OneToOne] = []
    for text in (c for c in ds.columns if TREATMENT_VARIABLE.match(c) and f"{c}N" in ds.columns):
        number = f"{text}N"
        checks.append(OneToOne("ADAM-038", text, number,
                               f"{number} {{value}}: its {text} has more than one {number}"))
        checks.append(OneToOne("ADAM-038", number, text,
                               f"{text} {{value}}: its {number} has more than one {text}"))
    return tuple(checks)


def check_parameter(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    for ds in datasets:
        if not ds.cls.startswith("BDS"):
            continue
        yield from run_checks(con, ds, PARAMETERS)
        by = ["USUBJID", "PARAMCD"] + (["BASETYPE"] if "BASETYPE" in ds.columns else [])
        keys = ", ".join(by)
        if ds.has("ABLFL", *by):
            yield row_rule(con, "ADAM-047", ds, "ABLFL",
                           f"t.ABLFL = 'Y' and ({keys}) in (select ({keys}) from main.{q(ds.name)} "
                           f"where ABLFL = 'Y' group by all having count(*) > 1)",
                           "t.ABLFL", "more than one baseline record for the subject and parameter",
                           where="t.ABLFL = 'Y'")
        if ds.has("BASE", *by):
            yield row_rule(con, "ADAM-048", ds, "BASE",
                           f"({keys}) in (select ({keys}) from main.{q(ds.name)} group by all "
                           "having count(distinct BASE) > 1)", "t.BASE",
                           "BASE {value}: more than one BASE for the subject and parameter")
        yield from run_checks(con, ds, CHANGE)


def check_timing(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    for ds in datasets:
        if ds.cls.startswith("BDS"):
            yield from run_checks(con, ds, TIMING)


def check_flags(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    for ds in datasets:
        flags = [c for c in ds.columns if c.endswith("FL")]
        for c in flags:
            if ds.columns[c] not in CHARACTER_TYPES:
                yield table_rule("ADAM-063", ds, c, [(c, ds.columns[c])], 1, "flag {column} has type {value}")
                continue
            yield table_rule("ADAM-063", ds, c, [], 1, "")
            yield row_rule(con, "ADAM-060", ds, c, f"{q(c)} not in ('Y', 'N')", q(c),
                           f"{c} = {{value}} is not Y, N or null", where=f"{q(c)} is not null")
            if POPULATION_FLAG.match(c):
                yield row_rule(con, "ADAM-061", ds, c, f"{q(c)} is null", q(c), f"population flag {c} is null")
            elif ds.cls != "ADSL" and RECORD_FLAG.match(c):
                yield row_rule(con, "ADAM-062", ds, c, f"{q(c)} = 'N'", q(c),
                               f"record-level flag {c} is N (ADaM: Y or null)")
        for c in (c for c in ds.columns if c.endswith("FN")):
            yield row_rule(con, "ADAM-064", ds, c, f"{q(c)} not in (0, 1)", q(c), f"{c} = {{value}} is not 0 or 1",
                           where=f"{q(c)} is not null")


def check_tte(con, datasets: list[Dataset], ctx: dict) -> Iterator[Outcome]:
    for ds in datasets:
        if "CNSR" in ds.columns:
            yield from run_checks(con, ds, TIME_TO_EVENT)
