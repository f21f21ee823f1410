"""Issue 18 item 5: XPT v5 labels by rule (units kept, explanations dropped first, known words abbreviated, unique per
dataset), dataset labels whole, character values in ASCII by a documented table; Parquet exports with their labels.
Quick tier: small frames and a tiny warehouse file, no build."""

from __future__ import annotations

import datetime as dt
import math

import duckdb
import polars as pl
import pytest

from warehouse.analyse.labels import (
    ABBREVIATIONS,
    DATASET_LABELS,
    TRANSLITERATION,
    XPT_LABEL_MAX,
    ascii_text,
    dataset_label,
    dataset_labels,
    is_unit,
    short_label,
)

# Column comments of the demo marts that the old word-boundary cut spoiled (units lost, duplicates, mid-phrase)
NEBL = "Baseline norepinephrine dose as base (µg/kg/min, rate in effect at H0)"
DTHHRS = "Time from H0 to death (hours; from the imputed DTHDTM when DTHDTF or DTHTMF is set)"
ADTTE_AVAL = ("Time from H0 to death or censoring (days); for an imputed death, to the imputed date-time (the later "
              "of the earliest instant the partial date allows and the last known alive; the last known alive when "
              "no date is known)")
AVISIT = "Analysis time point (H0, H6, H12, H24, D2 ... D7, or a window such as H0-H24)"
AVISITN = "Analysis time point (hours from H0; a window's end)"
AOCC = {
    "AOCCFL": "First treatment-emergent occurrence in the subject",
    "AOCCSFL": "First treatment-emergent occurrence in the subject within the body system",
    "AOCCPFL": "First treatment-emergent occurrence in the subject of the term",
}


def test_units_stay_at_the_end_in_parentheses():
    assert short_label(NEBL) == "BL NE dose as base (ug/kg/min)"
    assert short_label(DTHHRS) == "Time from H0 to death (hours)"
    assert short_label(ADTTE_AVAL) == "Time from H0 to death/censoring (days)"
    assert short_label(AVISITN) == "Analysis time point (hours from H0)"
    assert short_label("Treatment-emergence window after the last dose (hours)") == (
        "TE window after last dose (hours)")


def test_explanations_go_before_words_are_abbreviated():
    # the clause after ':' or ';' goes first, then asides: no abbreviation is needed
    assert short_label("Analysis start date-time: imputed when partial (earliest instant the entry allows, or "
                       "the first dose when the entry covers it)") == "Analysis start date-time"
    assert short_label("Date-time of death used in analysis; a partial or missing one is imputed") == (
        "Date-time of death used in analysis")
    assert short_label("Start date imputation flag (D day, M month and day, Y whole date: no start entered); "
                       "null when only the time was imputed") == "Start date imputation flag"
    assert short_label(AVISIT) == "Analysis time point"
    # then the clauses after a comma
    assert short_label("Change from baseline (AVAL - BASE), post-baseline records only") == "Change from baseline"
    # then the articles and known words, in the table's order, only as far as needed
    assert short_label("Lower bound of the 95% confidence interval of the adjusted difference") == (
        "Lower bound of 95% CI of adjusted diff")
    assert short_label(AOCC["AOCCFL"]) == "First TE occurrence in subject"


def test_short_labels_are_untouched_and_every_label_fits():
    assert short_label("Date last known alive") == "Date last known alive"
    assert short_label("Age (years)") == "Age (years)"
    assert short_label("Arrêt cardiaque") == "Arret cardiaque"
    texts = [NEBL, DTHHRS, ADTTE_AVAL, AVISIT, AVISITN, *AOCC.values(), "x" * 50, "A" * 10 + " " + "b" * 29 + " c",
             "Some label (" + "y" * 60 + ")", "word " * 30 + "(mmol/L)", "z" * 45 + " (ug/kg/min)",
             "Of the of the of the of the of the of the of the of the"]
    for text in texts:
        for suffix in ("", " (AVISITN)"):
            label = short_label(text, suffix=suffix)
            assert 0 < len(label) <= XPT_LABEL_MAX and label.isascii() and label.endswith(suffix), (text, label)
            assert label.count("(") == label.count(")"), label
    assert short_label("x" * 50) == "x" * 40
    assert short_label("A" * 10 + " " + "b" * 29 + " c") == "A" * 10 + " " + "b" * 29  # word ending at 40 kept


def test_units_are_recognised_by_table_and_shape():
    for unit in ("days", "hours", "kg", "cm", "mmHg", "%", "mmol/L", "ug/kg/min", "beats/min", "hours from H0",
                 "mmHg per ug/kg/min"):
        assert is_unit(unit), unit
    for aside in ("randomised", "H0", "Y, N", "masked in blinded builds", "ICH E2A", "1-5", "D day"):
        assert not is_unit(aside), aside


def test_labels_are_unique_within_a_dataset():
    labels = dataset_labels({"AVISIT": AVISIT, "AVISITN": AVISITN, **AOCC})
    assert labels["AVISIT"] == "Analysis time point"
    assert labels["AVISITN"] == "Analysis time point (hours from H0)"
    assert len({v.lower() for v in labels.values()}) == len(labels)
    # a collision left after shortening: the later variable gets its name as the distinguishing suffix
    same = dataset_labels({"ATPTN": "Analysis time point (hours from H0), where ATPT is set", "AVISITN": AVISITN,
                           "X1": "Same words", "X2": "same words", "X3": "Same words"})
    assert same["ATPTN"] == "Analysis time point (hours from H0)"
    assert same["AVISITN"] == "Anl time point (hours from H0) (AVISITN)"
    assert (same["X1"], same["X2"], same["X3"]) == ("Same words", "same words (X2)", "Same words (X3)")
    assert all(len(v) <= XPT_LABEL_MAX for v in same.values())
    # an empty comment labels by the name
    assert dataset_labels({"FOO": ""}) == {"FOO": "FOO"}


def test_dataset_labels_are_whole_phrases():
    assert dataset_label("adsl", "ADSL, subject-level analysis dataset: one row per subject") == (
        "Subject-Level Analysis Dataset")
    assert dataset_label("adae", "ADAE, adverse events: one row per reported event. ...") == (
        "Adverse Events Analysis Dataset")
    assert all(len(v) <= XPT_LABEL_MAX and v.isascii() for v in DATASET_LABELS.values())
    # a table without a short form: the first sentence of its comment, shortened by the rule, never mid-phrase
    assert dataset_label("adxx", "ADXX, exposure by day: one row per subject and day. Doses as base.") == (
        "Exposure by day")
    assert dataset_label("ar_new", "Secondary endpoints by arm: descriptive statistics and a two-arm test.") == (
        "Secondary endpoints by arm")


def test_abbreviation_table_is_small_and_shortens():
    assert ABBREVIATIONS["analysis"] == "Anl" and ABBREVIATIONS["baseline"] == "BL"
    assert ABBREVIATIONS["treatment"] == "Trt" and ABBREVIATIONS["date-time"] == "DTM"
    assert all(len(short) < len(word) for word, short in ABBREVIATIONS.items() if word.strip() == word)


def test_character_values_are_transliterated_to_ascii():
    assert ascii_text("Hypotension sévère") == "Hypotension severe"
    assert ascii_text("BAV 2e degré, Mobitz 1") == "BAV 2e degre, Mobitz 1"
    assert ascii_text("MAP / NE dose ratio (mmHg per µg/kg/min)") == "MAP / NE dose ratio (mmHg per ug/kg/min)"
    assert ascii_text("37.5 °C") == "37.5  degC"  # '°' -> ' deg' (the table), spacing kept as in the value
    assert ascii_text("≥ 65 ans, ≤ 2") == ">= 65 ans, <= 2"
    assert ascii_text("Straße, Œdème, Ærø, naïve, façade") == "Strasse, OEdeme, AEro, naive, facade"
    assert ascii_text("m²") == "m2" and ascii_text("½") == "1/2"  # NFKD, then the table's fraction slash
    assert ascii_text("肺炎") == "??"  # no ASCII spelling: visible, not dropped
    assert all(ascii_text(k).isascii() for k in TRANSLITERATION)


def test_xpt_round_trip_with_pyreadstat_and_pandas(tmp_path):
    import pandas as pd
    import pyreadstat

    from warehouse.analyse.exports import write_xpt

    frame = pl.DataFrame({
        "AETERM": ["Hypotension sévère", None, "Délire / agitation"],
        "AVISIT": ["H0", "H6", None],
        "AVISITN": [0.0, 6.0, None],
        "SAFE": [True, False, None],
        "LSTALVDT": [dt.date(2019, 6, 3), None, dt.date(1960, 1, 1)],
    })
    labels = {"AETERM": "Reported term", "AVISIT": AVISIT, "AVISITN": AVISITN, "SAFE": "Safety flag",
              "LSTALVDT": "Date last known alive"}
    path = tmp_path / "x.xpt"
    write_xpt(frame, labels, "ADXX, a test dataset: one row per thing, and a long explanation", path, "ADXX")
    raw, meta = pyreadstat.read_xport(str(path), disable_datetime_conversion=True)
    assert meta.file_label == "ADXX, a test dataset"
    assert dict(zip(meta.column_names, meta.column_labels))["AVISITN"] == "Analysis time point (hours from H0)"
    assert raw["AETERM"].tolist() == ["Hypotension severe", "", "Delire / agitation"]
    assert raw["SAFE"].tolist() == ["Y", "N", ""]
    via_pandas = pd.read_sas(path, format="xport", encoding="ascii")
    assert via_pandas["AETERM"].tolist() == raw["AETERM"].tolist()
    # pandas reads an exact 0 as ~5.4e-79 (open pandas bug); pyreadstat reads it right
    zero = via_pandas["AVISITN"].tolist()[0]
    assert raw["AVISITN"].tolist()[0] == 0.0 and abs(zero) < 1e-70
    assert math.isnan(raw["AVISITN"].tolist()[2]) and raw["LSTALVDT"].tolist()[0] == 21703.0


def test_parquet_carries_column_and_dataset_labels(tmp_path):
    import pyarrow.parquet as pq

    from warehouse.analyse.exports import export_marts

    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table adsl as select 'S-1' as USUBJID, 62 as AGE, 'Hémorragie' as NOTE")
        con.execute("comment on table adsl is 'ADSL, subject-level analysis dataset: one row per subject'")
        con.execute("comment on column adsl.USUBJID is 'Unique subject identifier'")
        con.execute("comment on column adsl.AGE is 'Age (years)'")
        con.execute("create table ar_km as select 'A' as arm, 1.5 as time")
        con.execute("comment on column ar_km.time is 'Days from H0'")
        con.execute("create table findings as select 1 as x")
        con.execute("create table catalog (schema_name varchar, table_name varchar, grain varchar)")
        con.execute("insert into catalog values ('main', 'adsl', 'USUBJID'), ('main', 'ar_km', 'arm, time')")
    exported = export_marts(warehouse, tmp_path / "out")
    assert [m.table for m in exported] == ["adsl", "ar_km"]  # marts, then ar_*; findings only when asked for
    schema = pq.read_schema(tmp_path / "out" / "adsl.parquet")
    assert schema.metadata[b"label"].decode() == "ADSL, subject-level analysis dataset: one row per subject"
    assert schema.metadata[b"grain"] == b"USUBJID"
    assert schema.field("AGE").metadata == {b"label": b"Age (years)"}
    assert schema.field("NOTE").metadata is None  # no comment, no label
    assert pq.read_table(tmp_path / "out" / "adsl.parquet").column("NOTE").to_pylist() == ["Hémorragie"]  # UTF-8
    assert pq.read_schema(tmp_path / "out" / "ar_km.parquet").metadata[b"grain"] == b"arm, time"
    assert [m.table for m in export_marts(warehouse, tmp_path / "f", ("csv",), ("findings",))] == ["findings"]
    with pytest.raises(ValueError, match="no table nope"):
        export_marts(warehouse, tmp_path / "g", ("csv",), ("nope",))
