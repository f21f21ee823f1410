"""Staging: types from metadata, decoding, identifiers dropped, NE as base, study time. Expected values by hand."""

from datetime import date, datetime

import polars as pl
import pytest

from warehouse.stage.typed import item_kind, stage_forms
from warehouse.study import load_study

ITEMS = pl.DataFrame(
    [
        ("randomisation", "rand_dt", "text", "datetime_ymd", False),
        ("randomisation", "kit_no", "text", None, False),
        ("demographics", "initials", "text", None, True),
        ("demographics", "dob", "text", "date_dmy", True),
        ("demographics", "age", "text", "integer", False),
        ("demographics", "icu_adm_dt", "text", "datetime_dmy", False),
        ("demographics", "comorbidities", "checkbox", None, False),
        ("demographics", "chronic_bb", "yesno", None, False),
        ("vasopressors", "vp_drug", "radio", None, False),
        ("vasopressors", "vp_dt", "text", "datetime_ymd", False),
        ("vasopressors", "vp_rate", "text", "number", False),
        ("vasopressors", "vp_salt", "radio", None, False),
        ("pe_challenge", "pe_ne_rate", "text", "number", False),
        ("eligibility", "scr_ne_dose", "text", "number", False),
        ("eligibility", "scr_ne_salt", "radio", None, False),
    ],
    schema=["form", "item", "field_type", "validation", "identifier"],
    orient="row",
)
CHOICES = pl.DataFrame(
    [
        ("vp_drug", "1", "norepinephrine"),
        ("vp_drug", "2", "epinephrine"),
        ("vp_salt", "1", "base"),
        ("vp_salt", "2", "tartrate"),
        ("vp_salt", "3", "bitartrate monohydrate"),
        ("scr_ne_salt", "1", "base"),
        ("scr_ne_salt", "2", "tartrate"),
        ("scr_ne_salt", "3", "bitartrate monohydrate"),
        ("comorbidities", "1", "hypertension"),
    ],
    schema=["item", "code", "label"],
    orient="row",
)


def raw(rows: list[dict]) -> pl.DataFrame:
    frame = pl.DataFrame(rows)
    return frame.with_columns(pl.col(c).cast(pl.Utf8) for c in frame.columns)


@pytest.fixture(scope="module")
def staged() -> dict[str, pl.DataFrame]:
    forms = {
        "randomisation": raw(
            [
                {"subject_id": "01-001", "site_id": "site_01", "event": "h0_arm_1", "repeat_instance": None,
                 "rand_dt": "2019-06-03 10:00", "kit_no": "K001", "_source_row": "3"},
                {"subject_id": "01-002", "site_id": "site_01", "event": "h0_arm_1", "repeat_instance": None,
                 "rand_dt": "2019-06-04 22:30", "kit_no": "K002", "_source_row": "9"},
            ]
        ),
        "demographics": raw(
            [
                {"subject_id": "01-001", "site_id": "site_01", "event": "screening_arm_1", "repeat_instance": None,
                 "initials": "AB", "dob": "01-02-1950", "age": "69", "icu_adm_dt": "02-06-2019 23:15",
                 "comorbidities___1": "1", "chronic_bb": "0", "_source_row": "2"},
                {"subject_id": "01-002", "site_id": "site_01", "event": "screening_arm_1", "repeat_instance": None,
                 "initials": "CD", "dob": "31-12-1960", "age": "58.0", "icu_adm_dt": "", "comorbidities___1": "0",
                 "chronic_bb": "1", "_source_row": "8"},
            ]
        ),
        "vasopressors": raw(
            [
                {"subject_id": "01-001", "site_id": "site_01", "event": "icu_arm_1", "repeat_instance": "1",
                 "vp_drug": "1", "vp_dt": "2019-06-03 09:30", "vp_rate": "0,50", "vp_salt": "2", "_source_row": "4"},
                {"subject_id": "01-001", "site_id": "site_01", "event": "icu_arm_1", "repeat_instance": "2",
                 "vp_drug": "1", "vp_dt": "2019-06-03 16:00", "vp_rate": "abc", "vp_salt": "2", "_source_row": "5"},
                {"subject_id": "01-001", "site_id": "site_01", "event": "icu_arm_1", "repeat_instance": "3",
                 "vp_drug": "2", "vp_dt": "2019-06-03 17:00", "vp_rate": "0.1", "vp_salt": "1", "_source_row": "6"},
                {"subject_id": "01-002", "site_id": "site_01", "event": "icu_arm_1", "repeat_instance": "1",
                 "vp_drug": "1", "vp_dt": "2019-06-04 20:00", "vp_rate": "1.0", "vp_salt": "3", "_source_row": "10"},
            ]
        ),
        "pe_challenge": raw(
            [
                {"subject_id": "01-001", "site_id": "site_01", "event": "h6_arm_1", "repeat_instance": None,
                 "pe_ne_rate": "0.6", "_source_row": "7"},
                {"subject_id": "01-002", "site_id": "site_01", "event": "h6_arm_1", "repeat_instance": None,
                 "pe_ne_rate": "2", "_source_row": "11"},
            ]
        ),
        "eligibility": raw(
            [
                {"subject_id": "01-001", "site_id": "site_01", "event": "screening_arm_1", "repeat_instance": None,
                 "scr_ne_dose": "1.2", "scr_ne_salt": "2", "_source_row": "1"},
            ]
        ),
    }
    return stage_forms(forms, ITEMS, CHOICES, load_study())


def test_identifiers_are_dropped(staged):
    assert "initials" not in staged["demographics"].columns
    assert "dob" not in staged["demographics"].columns
    assert "age" in staged["demographics"].columns


def test_datetimes_type_in_the_exports_order(staged):
    demo = staged["demographics"].sort("subject_id")
    assert demo.get_column("icu_adm_dt").to_list() == [datetime(2019, 6, 2, 23, 15), None]


def test_integer_that_is_not_an_integer_fails_typing_and_is_kept(staged):
    demo = staged["demographics"].sort("subject_id")
    assert demo.get_column("age").to_list() == [69, None]
    failures = staged["typing_failures"]
    age = failures.filter(pl.col("item") == "age")
    assert age.select("subject_id", "raw_value", "expected_type", "_source_row").rows() == [
        ("01-002", "58.0", "integer", 8)
    ]


def test_decimal_comma_and_bad_number(staged):
    vaso = staged["vasopressors"].sort("subject_id", "repeat_instance")
    assert vaso.get_column("vp_rate").to_list() == [0.5, None, 0.1, 1.0]
    bad = staged["typing_failures"].filter(pl.col("item") == "vp_rate")
    assert bad.select("subject_id", "repeat_instance", "raw_value").rows() == [("01-001", 2, "abc")]


def test_booleans_and_checkboxes(staged):
    demo = staged["demographics"].sort("subject_id")
    assert demo.get_column("chronic_bb").to_list() == [False, True]
    assert demo.get_column("comorbidities___1").to_list() == [True, False]


def test_codes_are_decoded_with_the_code_kept(staged):
    vaso = staged["vasopressors"].sort("subject_id", "repeat_instance")
    assert vaso.get_column("vp_salt").to_list() == ["2", "2", "1", "3"]
    assert vaso.get_column("vp_salt_decod").to_list() == ["tartrate", "tartrate", "base", "bitartrate monohydrate"]


def test_ne_as_base_by_salt(staged):
    vaso = staged["vasopressors"].sort("subject_id", "repeat_instance")
    base = vaso.get_column("vp_rate_base").to_list()
    # 0.50 tartrate x 0.5 = 0.25; untypeable rate -> null; epinephrine is not NE -> null;
    # 1.0 bitartrate monohydrate x 169.18/337.28 = 0.50160...
    assert base[0] == pytest.approx(0.25)
    assert base[1] is None
    assert base[2] is None
    assert base[3] == pytest.approx(169.18 / 337.28)


def test_ne_base_with_salt_from_another_form(staged):
    pe = staged["pe_challenge"].sort("subject_id")
    # The PE form has no salt: the subject's NE salt from the vasopressors form applies.
    assert pe.get_column("pe_ne_rate_base").to_list() == pytest.approx([0.3, 2 * 169.18 / 337.28])
    elig = staged["eligibility"]
    assert elig.get_column("scr_ne_dose_base").to_list() == pytest.approx([0.6])


def test_study_time_in_hours_from_randomisation(staged):
    vaso = staged["vasopressors"].sort("subject_id", "repeat_instance")
    # 01-001 randomised 2019-06-03 10:00: 09:30 -> -0.5 h, 16:00 -> 6 h, 17:00 -> 7 h.
    # 01-002 randomised 2019-06-04 22:30: 20:00 -> -2.5 h.
    assert vaso.get_column("vp_dt_hrs").to_list() == pytest.approx([-0.5, 6.0, 7.0, -2.5])
    demo = staged["demographics"].sort("subject_id")
    # ICU admission 2019-06-02 23:15 is 10 h 45 min before H0.
    assert demo.get_column("icu_adm_dt_hrs").to_list()[0] == pytest.approx(-10.75)


@pytest.mark.parametrize(
    ("field_type", "validation", "has_choices", "expected"),
    [
        ("text", "date_dmy", False, ("date", "dmy")),
        ("text", "datetime_seconds_ymd", False, ("datetime", "ymd")),
        ("text", "number_2dp_comma_decimal", False, ("number", "ymd")),
        ("integer", None, False, ("integer", "ymd")),  # ODM DataType
        ("float", None, False, ("number", "ymd")),
        ("text", None, True, ("coded", "ymd")),  # ODM item with a CodeList
        ("yesno", None, True, ("boolean", "ymd")),
        ("notes", None, False, ("text", "ymd")),
    ],
)
def test_item_kind(field_type, validation, has_choices, expected):
    assert item_kind(field_type, validation, has_choices) == expected


def test_dates_type():
    from warehouse.stage.typed import ItemSpec, typed_expression

    frame = pl.DataFrame({"d": ["2019-02-28", "2019-02-30", "", None, "2019-6"]})
    out = frame.select(typed_expression("d", ItemSpec("d", "date", "ymd")).alias("d")).get_column("d").to_list()
    # an impossible date and a partial date do not type
    assert out == [date(2019, 2, 28), None, None, None, None]


def test_a_value_that_fails_typing_keeps_its_raw_text_beside_it(staged):
    vaso = staged["vasopressors"].sort("subject_id", "repeat_instance")
    untyped = vaso.get_column("_untyped").to_list()
    assert untyped[1] == [{"item": "vp_rate", "raw": "abc"}]
    assert untyped[0] is None and untyped[3] is None
    assert vaso.get_column("_source_row").dtype == pl.Int64


@pytest.mark.parametrize(
    "kind, order, raws, expected",
    [
        # REDCap date_dmy / date_mdy as exported (dash), and the slash some sites type; 31-12 is not a month
        ("date", "dmy", ["31-12-2019", "31/12/2019", "12-31-2019", "2019-12-31"],
         [date(2019, 12, 31), date(2019, 12, 31), None, None]),
        ("date", "mdy", ["12-31-2019", "12/31/2019", "31-12-2019"], [date(2019, 12, 31), date(2019, 12, 31), None]),
        # datetime_seconds_* and ODM's ISO "T" separator; a date alone is not a datetime
        ("datetime", "ymd", ["2019-06-03 10:00:30", "2019-06-03T10:00:30", "2019-06-03T10:00", "2019-06-03"],
         [datetime(2019, 6, 3, 10, 0, 30), datetime(2019, 6, 3, 10, 0, 30), datetime(2019, 6, 3, 10, 0), None]),
        ("datetime", "dmy", ["03-06-2019 10:00:30", "03/06/2019 10:00", "2019-06-03 10:00"],
         [datetime(2019, 6, 3, 10, 0, 30), datetime(2019, 6, 3, 10, 0), None]),
        ("datetime", "mdy", ["06-03-2019 10:00:30", "06/03/2019 10:00", "13-03-2019 10:00"],
         [datetime(2019, 6, 3, 10, 0, 30), datetime(2019, 6, 3, 10, 0), None]),
    ],
)
def test_dates_and_datetimes_in_every_export_order(kind, order, raws, expected):
    from warehouse.stage.typed import ItemSpec, typed_expression

    frame = pl.DataFrame({"v": raws})
    out = frame.select(typed_expression("v", ItemSpec("v", kind, order)).alias("v")).get_column("v").to_list()
    assert out == expected


def forms_with_typing_failures() -> dict[str, pl.DataFrame]:
    """Raw forms with values that fail typing, across dates, numbers, booleans and codes."""
    return {
        "demographics": raw([
            {"subject_id": "S1", "site_id": "A", "event": "e", "repeat_instance": None, "age": "58.0",
             "icu_adm_dt": "2-6-2019", "chronic_bb": "maybe", "_source_row": "2"},
            {"subject_id": "S2", "site_id": "A", "event": "e", "repeat_instance": None, "age": "x",
             "icu_adm_dt": "02-06-2019 23:15", "chronic_bb": "1", "_source_row": "3"},
            {"subject_id": "S3", "site_id": None, "event": "e", "repeat_instance": None, "age": "1",
             "icu_adm_dt": "yesterday", "chronic_bb": "Y", "_source_row": "4"},
        ]),
        "vasopressors": raw([
            {"subject_id": "S1", "site_id": "A", "event": "icu", "repeat_instance": "1", "vp_rate": "abc",
             "vp_dt": "2019-06-03T09:30", "vp_drug": "1", "vp_salt": "1", "_source_row": "5"},
            {"subject_id": "S1", "site_id": "A", "event": "icu", "repeat_instance": "2", "vp_rate": "1,5",
             "vp_dt": "2019-06-03 9:30:00x", "vp_drug": "1", "vp_salt": "1", "_source_row": "6"},
        ]),
        "randomisation": raw([{"subject_id": "S1", "site_id": "A", "event": "h0", "repeat_instance": None,
                               "rand_dt": "2019-06-03 10:00", "kit_no": "K1", "_source_row": "1"}]),
    }


def test_typing_failures_read_in_duckdb_are_those_of_polars(tmp_path):
    """The build loads the forms and reads `typing_failures` from their `_untyped` columns in DuckDB
    (pipeline.typing_failures_query): the same rows, types and order as staging's own in Polars."""
    import duckdb

    from warehouse.stage.load import load_frame, typing_failures_query
    from warehouse.stage.typed import form_checks, stage_lazy

    forms = forms_with_typing_failures()
    expected = stage_forms(forms, ITEMS, CHOICES, load_study())["typing_failures"]
    assert expected.select("form", "subject_id", "item", "raw_value", "expected_type").rows() == [
        ("demographics", "S1", "age", "58.0", "integer"),
        ("demographics", "S2", "age", "x", "integer"),
        ("demographics", "S1", "icu_adm_dt", "2-6-2019", "datetime"),
        ("demographics", "S3", "icu_adm_dt", "yesterday", "datetime"),
        ("demographics", "S1", "chronic_bb", "maybe", "boolean"),
        ("vasopressors", "S1", "vp_rate", "abc", "number"),
        ("vasopressors", "S1", "vp_dt", "2019-06-03 9:30:00x", "datetime"),
    ]
    staged, _ = stage_lazy(forms, ITEMS, CHOICES, load_study())
    con = duckdb.connect()
    con.execute("create schema src")
    for name, frame in staged.items():
        load_frame(con, name, frame, tmp_path)
    checks = {form: form_checks(frame, form, ITEMS, CHOICES) for form, frame in forms.items()}
    load_frame(con, "typing_failures", typing_failures_query(checks), tmp_path)
    got = pl.from_arrow(con.sql("select * from src.typing_failures").to_arrow_table())
    assert got.schema == expected.schema
    assert got.rows() == expected.rows()


def test_a_small_form_loaded_from_memory_is_the_form_loaded_through_the_spill(tmp_path):
    """Small forms skip the Parquet spill (stage.load.collect_small_forms): DuckDB gets the same column types and
    rows from the Arrow frame as from the spill, typing failures (the `_untyped` lists) included."""
    import duckdb

    from warehouse.stage.load import collect_small_forms, load_frame
    from warehouse.stage.typed import stage_lazy

    staged, _ = stage_lazy(forms_with_typing_failures(), ITEMS, CHOICES, load_study())
    files = {}
    for name in staged:
        files[name] = tmp_path / f"{name}.raw"
        files[name].write_bytes(b"x" * (10 if name != "demographics" else 10 << 20))
    chosen = collect_small_forms(staged, files)
    assert isinstance(chosen["demographics"], pl.LazyFrame)  # its raw file is over the limit: streamed
    assert isinstance(chosen["vasopressors"], pl.DataFrame)
    spilled, in_memory = duckdb.connect(), duckdb.connect()
    for con in (spilled, in_memory):
        con.execute("create schema src")
    for name, frame in staged.items():
        assert load_frame(spilled, name, frame, tmp_path) == load_frame(in_memory, name, frame.collect(), tmp_path)
        described = [con.sql(f"describe src.{name}").fetchall() for con in (spilled, in_memory)]
        assert described[0] == described[1], name
        rows = [con.sql(f"select * from src.{name} order by all").fetchall() for con in (spilled, in_memory)]
        assert rows[0] == rows[1] and rows[0], name


@pytest.mark.parametrize("values", [
    ["2019-06-03 10:00", "2019-06-03 10:00:05", "2019-06-03T10:00:05", "2019-06-03T10:00", " 2019-06-03 10:00 ",
     "2019-06-03", "10:00", "2019-02-30 10:00", "", None, "x"],
])
def test_datetime_formats_are_those_of_coalescing_every_format(values):
    from warehouse.stage.typed import _DATETIME_FORMATS, ItemSpec, typed_expression

    frame = pl.DataFrame({"v": values}, schema={"v": pl.Utf8})
    for order, formats in _DATETIME_FORMATS.items():
        text = pl.col("v").str.strip_chars()
        text = pl.when(text == "").then(None).otherwise(text)
        every = pl.coalesce([text.str.strptime(pl.Datetime("us"), f, strict=False, exact=True) for f in formats])
        got = frame.select(typed_expression("v", ItemSpec("v", "datetime", order)).alias("v")).get_column("v")
        assert got.to_list() == frame.select(every.alias("v")).get_column("v").to_list()
