"""REDCap layout and metadata, and the ODM export holding exactly the same values."""

import csv

import pytest
from demo_export_reader import KEYS, ODM, read_odm

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "redcap"


def _read_csv(path):
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))


def test_flat_export_layout(clean):
    assert tuple(clean.header[:5]) == KEYS
    # every dictionary field (checkboxes expanded) in dictionary order, each form closed by `<form>_complete`
    expected = []
    for form, cols in clean.form_columns.items():
        expected.extend(c for c in cols if c != "record_id")
    assert clean.header[5:] == expected
    assert [f"comorbidities___{k}" for k in range(1, 8)] == [c for c in clean.header if c.startswith("comorb")]
    # repeating rows fill only their own instrument
    for r in clean.instrument_rows("hemodynamics")[:30]:
        assert r["redcap_event_name"] == "icu_arm_1" and int(r["redcap_repeat_instance"]) >= 1
        assert r["hd_map"] and not r["lab_dt"] and not r["labs_complete"] and not r["comorbidities___1"]
    # rows are ordered by record id
    ids = [r["record_id"] for r in clean.rows]
    assert ids == sorted(ids)


def test_dictionary_matches_redcap_and_flags_identifiers(clean):
    header = _read_csv(next(clean.res.redcap_dir.glob("*_DataDictionary_*.csv")))[0]
    assert len(header) == 18
    fixture = FIXTURES / "longitudinal" / "dictionary.csv"
    if fixture.exists():
        assert header == _read_csv(fixture)[0]
    assert {n for n, d in clean.fields.items() if d["Identifier?"] == "y"} == {"initials", "dob"}
    assert clean.fields["rand_dt"]["Required Field?"] == "y"
    assert clean.fields["hd_map"]["Text Validation Type OR Show Slider Number"] == "integer"
    hd_map = clean.fields["hd_map"]
    assert (hd_map["Text Validation Min"], hd_map["Text Validation Max"]) == ("20", "160")
    assert clean.fields["rand_dt"]["Text Validation Type OR Show Slider Number"] == "datetime_ymd"
    assert clean.fields["comorbidities"]["Field Type"] == "checkbox"
    assert clean.fields["chronic_bb"]["Field Type"] == "yesno"
    assert {d["Field Type"] for d in clean.dictionary} <= {"text", "radio", "yesno", "checkbox", "notes"}


def test_project_metadata_files(clean):
    d = clean.res.redcap_dir
    events = list(csv.DictReader(open(next(d.glob("*_Events_*.csv")), encoding="utf-8")))
    assert [e["unique_event_name"] for e in events] == [
        "screening_arm_1", "h0_arm_1", "h6_arm_1", "h12_arm_1", "h24_arm_1", *[f"day_{k}_arm_1" for k in range(2, 8)],
        "icu_arm_1", "end_of_study_arm_1"]
    assert {e["arm_num"] for e in events} == {"1"}
    arms = list(csv.DictReader(open(next(d.glob("*_Arms_*.csv")), encoding="utf-8")))
    assert [a["arm_num"] for a in arms] == ["1"]
    des = list(csv.DictReader(open(next(d.glob("*_InstrumentDesignations_*.csv")), encoding="utf-8")))
    assert {"arm_num", "unique_event_name", "form"} == set(des[0])
    designated = {(x["unique_event_name"], x["form"]) for x in des}
    assert designated >= {("h6_arm_1", "pe_challenge"), ("icu_arm_1", "hemodynamics")}
    rep = list(csv.DictReader(open(next(d.glob("*_RepeatingInstruments_*.csv")), encoding="utf-8")))
    assert {x["form_name"] for x in rep} == {"study_drug", "hemodynamics", "vasopressors", "ventilation",
                                             "adverse_events"}
    assert {x["event_name"] for x in rep} == {"icu_arm_1"}
    # every (event, form) holding data is designated
    for (_, event, form, _) in clean.form_instances():
        assert (event, form) in designated


@pytest.mark.parametrize("which", ["clean", "dirty"])
def test_odm_holds_the_same_values_as_redcap(which, request):
    ex = request.getfixturevalue(which)
    root, odm, sites = read_odm(ex.res.odm_file)
    assert root.get("ODMVersion") == "1.3.2" and root.get("FileType") == "Snapshot"
    assert root.tag == f"{ODM}ODM"
    csv_forms = ex.form_instances()
    assert len(odm) == len(csv_forms) > 1000
    for key, occurrences in csv_forms.items():
        assert odm[key] == occurrences, key
    # sites
    dag = {r["record_id"]: r["redcap_data_access_group"] for r in ex.rows}
    assert sites == dag


def test_odm_metadata(clean):
    root, _, _ = read_odm(clean.res.odm_file)
    mdv = root.find(f"{ODM}Study/{ODM}MetaDataVersion")
    items = {i.get("OID"): i for i in mdv.findall(f"{ODM}ItemDef")}
    all_cols = [c for cols in clean.form_columns.values() for c in cols]
    assert set(items) == set(all_cols)
    for name, d in clean.fields.items():
        if d["Field Type"] == "checkbox":
            continue
        item = items[name]
        checks = {rc.get("Comparator"): rc.find(f"{ODM}CheckValue").text for rc in item.findall(f"{ODM}RangeCheck")}
        assert checks.get("GE", "") == d["Text Validation Min"] and checks.get("LE", "") == d["Text Validation Max"]
        vt = d["Text Validation Type OR Show Slider Number"]
        expected = {"integer": "integer", "number": "float", "date_ymd": "date", "datetime_ymd": "datetime"}.get(vt)
        if d["Field Type"] in ("radio", "yesno"):
            expected = "integer" if d["Field Type"] == "radio" else "boolean"  # yes/no: boolean, as REDCap writes
            assert item.find(f"{ODM}CodeListRef") is not None
        assert item.get("DataType") == (expected or "text"), name
    assert items["hd_map"].find(f"{ODM}MeasurementUnitRef") is not None
    groups = {g.get("OID"): g for g in mdv.findall(f"{ODM}ItemGroupDef")}
    assert set(groups) == set(clean.form_columns)
    mand = {r.get("ItemOID"): r.get("Mandatory") for g in groups.values() for r in g.findall(f"{ODM}ItemRef")}
    assert mand["rand_dt"] == "Yes" and mand["hd_hr"] == "Yes" and mand["hd_sbp"] == "No"
    cl = {c.get("OID"): c for c in mdv.findall(f"{ODM}CodeList")}
    sex_ref = items["sex"].find(f"{ODM}CodeListRef").get("CodeListOID")
    decodes = {i.get("CodedValue"): i.find(f"{ODM}Decode/{ODM}TranslatedText").text for i in cl[sex_ref]}
    assert decodes == {"1": "Male", "2": "Female"}
    events = [e.get("OID") for e in mdv.findall(f"{ODM}StudyEventDef")]
    assert events[0] == "screening_arm_1" and "icu_arm_1" in events
