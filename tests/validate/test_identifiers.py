"""Identifier values never leave the raw zone through validation: findings on an identifier field carry neither the
value nor text made from it (both engines), and every text a validation produces is scrubbed of the values."""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pytest
from validate_frames import choices_frame, items_frame, raw_form

from warehouse.validate import validate_stage, validate_stage_duckdb
from warehouse.validate.identifiers import (
    IDENTIFIER_WITHHELD,
    SCRUBBED,
    IdentifierValues,
    _scrub_all,
    scrub_identifier_values,
    scrub_strings,
    withhold_identifiers,
)

ITEMS = items_frame([
    ("enrol", "record_id", "text", None, None, None, None, False),
    ("enrol", "initials", "text", None, None, None, None, False),
    ("enrol", "dob", "text", "date_ymd", None, None, None, False),
    ("enrol", "age", "text", "integer", "18", "105", None, True),
    ("enrol", "sex", "radio", None, None, None, "1, Male | 2, Female", False),
]).with_columns(identifier=pl.col("item").is_in(["initials", "dob"]))
META = {"items": ITEMS, "choices": choices_frame(ITEMS)}
COLS = ["initials", "dob", "age", "sex"]
ROWS = [
    {"subject_id": "01-001", "event": "e1", "site_id": "s1", "initials": "INIA0030", "dob": "DOBBAD0060",
     "age": "200", "sex": "1"},
    {"subject_id": "01-002", "event": "e1", "site_id": "s1", "initials": "QX", "dob": "1961-07-04", "age": "44",
     "sex": "7"},
    {"subject_id": "01-003", "event": "e1", "site_id": "s1", "initials": "ZZT", "dob": "19x1-02-03", "age": "44",
     "sex": "1"},
]
SECRETS = ["INIA0030", "DOBBAD0060", "1961-07-04", "19x1-02-03"]
# a suite whose message template reads the identifier columns of the failing row (a careless suite author), and
# an expectation on the identifier column itself with a template showing it
LEAKY_SUITE = {
    "name": "leaky",
    "meta": {"table": "enrol"},
    "expectations": [
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "sex", "value_set": ["1", "2"]},
         "meta": {"severity": "warning", "rule": "sex is coded",
                  "message": "sex {sex} for {initials} born {dob} ({where})"}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "dob", "regex": r"^\d{4}-\d\d-\d\d$"},
         "meta": {"severity": "error", "rule": "dob is a date", "message": "dob {dob} of {initials} is no date"}},
        {"type": "expect_column_pair_values_a_to_be_greater_than_b",
         "kwargs": {"column_A": "age", "column_B": "initials", "or_equal": True},
         "meta": {"severity": "warning", "rule": "age above initials (nonsense, for the pair path)"}},
    ],
}


def everything(v) -> str:
    """Every text a validation hands on: findings, results, GX results (Data Docs)."""
    parts = [json.dumps(v.findings.to_dicts(), default=str), json.dumps(v.results.to_dicts(), default=str)]
    parts += [json.dumps(r.to_json_dict(), default=str) for _, r in v.gx_results]
    return "\n".join(parts)


@pytest.fixture(scope="module")
def validations(gx_loaded):
    frame = raw_form(ROWS, COLS)
    polars_run = validate_stage("raw", {"enrol": frame}, metadata=META, extra_suites=[LEAKY_SUITE])
    con = duckdb.connect()
    con.register("enrol", frame.to_arrow())
    duck_run = validate_stage_duckdb("raw", con, ["enrol"], metadata=META, extra_suites=[LEAKY_SUITE])
    return {"polars": polars_run, "duckdb": duck_run}


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_no_identifier_value_in_anything_validation_produces(validations, engine):
    v = validations[engine]
    text = everything(v)
    assert [s for s in SECRETS if s in text] == []
    # the checks did fail on those rows (the test would pass vacuously otherwise)
    assert v.findings.filter(pl.col("field") == "dob").height >= 2
    assert v.findings.filter(pl.col("rule") == "sex is coded").height == 1
    assert v.findings.filter(pl.col("rule") == "dob is a date").height == 2


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_finding_on_identifier_field_names_subject_and_field_only(validations, engine):
    dob = validations[engine].findings.filter(pl.col("field") == "dob")
    assert set(dob.get_column("value").to_list()) == {IDENTIFIER_WITHHELD}
    assert set(dob.get_column("subject_id").to_list()) == {"01-001", "01-003"}
    for message in dob.get_column("message").to_list():
        assert message.startswith(f"enrol.dob: {IDENTIFIER_WITHHELD} (subject 01-00"), message
        assert "{" not in message and "of" not in message.split(":")[1]  # the leaky template was not used


@pytest.mark.parametrize("engine", ["polars", "duckdb"])
def test_template_reading_an_identifier_column_gets_the_withheld_text(validations, engine):
    sex = validations[engine].findings.filter(pl.col("rule") == "sex is coded").row(0, named=True)
    assert sex["value"] == "7"  # not an identifier: shown as found
    assert sex["message"] == (f"sex 7 for {IDENTIFIER_WITHHELD} born {IDENTIFIER_WITHHELD} "
                              "(subject 01-002, site s1, event e1)")


def test_scrub_long_values_anywhere_short_ones_as_tokens_of_their_subject():
    values = IdentifierValues.from_pairs(pl.DataFrame({
        "subject_id": ["1", "1", "2", "3"], "value": ["AB", "1956-03-12", "NE", " DOBBAD0060 "]}))
    assert values.long[0] == " DOBBAD0060 " and "DOBBAD0060" in values.long and "AB" not in values.long
    frame = pl.DataFrame({
        "subject_id": ["1", "1", "2", "4", None],
        "field": ["x", "x", "x", "x", "x"],
        "value": ["AB", "ABSENT", "NE base", "NE", "dobbad0060"],
        "message": ["x = 'AB' (born 1956-03-12T00:00)", "AB-1", "NE is NE", "AB and NE", "ok"],
    })
    out = scrub_identifier_values(frame, values)
    assert out.get_column("value").to_list() == [SCRUBBED, "ABSENT", f"{SCRUBBED} base", "NE", SCRUBBED]
    assert out.get_column("message").to_list() == [
        f"x = '{SCRUBBED}' (born {SCRUBBED}T00:00)", f"{SCRUBBED}-1", f"{SCRUBBED} is {SCRUBBED}",
        "AB and NE",  # subject 4's text: another subject's initials are ordinary words here
        "ok"]
    assert out.get_column("subject_id").to_list() == frame.get_column("subject_id").to_list()  # keys untouched


def test_scrub_is_vectorised_at_ten_thousand_subjects():
    """10,000 subjects (two identifiers each) against 50,000 findings: one pass, every planted value gone."""
    n = 10_000

    def dob(j: int) -> str:
        return f"19{j % 100:02d}-0{1 + j % 9}-{10 + j % 18}x{j}"

    def initials(j: int) -> str:
        return chr(65 + j % 26) + chr(65 + (j // 26) % 26)

    subjects = [f"{j:05d}" for j in range(n)]
    values = IdentifierValues.from_pairs(pl.DataFrame({
        "subject_id": subjects * 2, "value": [dob(j) for j in range(n)] + [initials(j) for j in range(n)]}))
    rows = 50_000
    frame = pl.DataFrame({
        "subject_id": [subjects[k % n] for k in range(rows)],
        "value": [dob(k % n) if k % 7 == 0 else "12" for k in range(rows)],
        # every 5th row names its own subject's initials, every 5th + 1 another subject's
        "message": [f"field of {initials(k % n)} ok" if k % 5 == 0 else f"field of {initials(k % n + 1)} ok"
                    for k in range(rows)],
    })
    out = scrub_identifier_values(frame, values)
    assert out.filter(pl.col("value").str.contains(r"\d{4}-\d\d-\d\dx")).height == 0
    assert out.filter(pl.col("value") == SCRUBBED).height == len(range(0, rows, 7))
    messages = out.get_column("message").to_list()
    assert all(messages[k] == f"field of {SCRUBBED} ok" for k in range(0, rows, 5))
    assert sum(m == f"field of {SCRUBBED} ok" for m in messages) == rows // 5


def test_gx_result_structures_are_scrubbed_in_one_pass_as_each_string_alone():
    """The GX results' strings of a whole build are scrubbed together (one automaton of ~8,000 values, not one per
    result: ~12 s of the 10,000-subject validate stage): every string ends up as scrubbing it alone makes it,
    nested anywhere (keys, lists, tuples), and a structure with nothing to scrub stays the very same object."""
    n = 8_000
    dobs = [f"19{j % 100:02d}-{1 + j % 12:02d}-{1 + j % 28:02d}/{j}" for j in range(n)]
    values = IdentifierValues.from_pairs(pl.DataFrame({"subject_id": [f"{j:05d}" for j in range(n)], "value": dobs}))
    structures = []
    for k in range(1_500):
        if k % 3 == 0:  # a result listing values, some of them identifiers
            structures.append({"element_count": 10, "partial_unexpected_list": [dobs[k], "7", f"x {dobs[k + 1]} y"],
                               "partial_unexpected_counts": [{"value": dobs[k], "count": 2}],
                               "details": {dobs[k + 2]: (dobs[k + 3], 4)}})
        else:  # nothing to scrub
            structures.append({"element_count": 10, "unexpected_count": 0, "partial_unexpected_list": ["7", "8"]})

    def alone(node):
        if isinstance(node, str):
            return scrub_strings(pl.Series([node], dtype=pl.Utf8), values).to_list()[0]
        if isinstance(node, dict):
            return {alone(k): alone(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            items = [alone(v) for v in node]
            return items if isinstance(node, list) else type(node)(items)
        return node

    out = _scrub_all(structures, values)
    assert len(out) == len(structures)
    for before, after in zip(structures, out):
        assert after == alone(before)
        if "details" in before:
            assert after is not before and dobs[0] not in json.dumps(after)
            assert after["partial_unexpected_list"][0] == SCRUBBED and after["partial_unexpected_list"][1] == "7"
            assert isinstance(next(iter(after["details"].values())), tuple)
        else:
            assert after is before
    assert not any(d in json.dumps(out) for d in dobs[:1_503])


def test_withhold_identifiers_on_a_validation_made_elsewhere(validations):
    """The pipeline's entry (withhold_identifier_values) on a validation whose findings did not go through
    run_stage: the value of an identifier field and every value found in texts are withheld."""
    v = validations["polars"]
    v.findings = pl.concat([v.findings, v.findings.head(1).with_columns(
        field=pl.lit("dob"), value=pl.lit("1961-07-04"), message=pl.lit("born 1961-07-04, initials QX"),
        subject_id=pl.lit("01-002"))], how="vertical")
    values = IdentifierValues.from_pairs(pl.DataFrame({"subject_id": ["01-002", "01-002"],
                                                       "value": ["1961-07-04", "QX"]}))
    withhold_identifiers([v], {"dob", "initials"}, values)
    last = v.findings.row(-1, named=True)
    assert last["value"] == IDENTIFIER_WITHHELD
    assert last["message"] == f"born {SCRUBBED}, initials {SCRUBBED}"
