"""A clean study passes range, code and date-order checks; every injected problem is in the manifest and the data."""

import json
from collections import Counter
from datetime import datetime

from demo_export_reader import parse_dt

KINDS = {"out_of_range", "missing_required", "duplicate_record", "ae_end_before_start", "unknown_code",
         "visit_out_of_window"}


def _codes(d):
    if d["Field Type"] == "yesno":
        return {"0", "1"}
    return {c.split(",", 1)[0].strip() for c in d["Choices, Calculations, OR Slider Labels"].split("|")}


def cell_problems(ex) -> list[tuple[str, str, str]]:
    """Every cell that breaks the dictionary: (record_id, column, reason)."""
    out = []
    for r in ex.rows:
        for col, v in r.items():
            if v == "" or col in ("record_id", "redcap_event_name", "redcap_repeat_instrument",
                                  "redcap_repeat_instance", "redcap_data_access_group"):
                continue
            if col.endswith("_complete"):
                if v not in {"0", "1", "2"}:
                    out.append((r["record_id"], col, "complete"))
                continue
            if "___" in col:
                if v not in {"0", "1"}:
                    out.append((r["record_id"], col, "checkbox"))
                continue
            d = ex.fields[col]
            vt = d["Text Validation Type OR Show Slider Number"]
            if d["Field Type"] in ("radio", "yesno") and v not in _codes(d):
                out.append((r["record_id"], col, "code"))
            if vt in ("integer", "number"):
                x = int(v) if vt == "integer" else float(v)
                lo, hi = d["Text Validation Min"], d["Text Validation Max"]
                if (lo and x < float(lo)) or (hi and x > float(hi)):
                    out.append((r["record_id"], col, "range"))
            if vt == "datetime_ymd":
                parse_dt(v)
            if vt == "date_ymd":
                datetime.strptime(v, "%Y-%m-%d")
    return out


def order_problems(ex) -> list[tuple[str, str]]:
    out = []
    rand = ex.rand_dt()
    pairs = {"adverse_events": ("ae_start_dt", "ae_end_dt"), "study_drug": ("drug_start_dt", "drug_stop_dt"),
             "ventilation": ("intub_dt", "extub_dt")}
    for form, (a, b) in pairs.items():
        for r in ex.instrument_rows(form):
            if r[a] and r[b] and parse_dt(r[b]) < parse_dt(r[a]):
                out.append((r["record_id"], form))
    for r in ex.event_rows("end_of_study_arm_1"):
        s = r["record_id"]
        if r["death_dt"] and parse_dt(r["death_dt"]) < rand[s]:
            out.append((s, "death before H0"))
        if datetime.strptime(r["last_contact_dt"], "%Y-%m-%d").date() < rand[s].date():
            out.append((s, "last contact before H0"))
    for r in ex.event_rows("screening_arm_1"):
        s = r["record_id"]
        if s in rand and not (datetime.strptime(r["dob"], "%Y-%m-%d") < parse_dt(r["icu_adm_dt"]) <= rand[s]):
            out.append((s, "dob / icu admission / H0"))
    return out


def test_clean_study_passes_all_checks(clean):
    assert cell_problems(clean) == []
    assert order_problems(clean) == []
    # required fields are filled wherever their form holds data
    for (subject, event, form, inst), occ in clean.form_instances().items():
        for values in occ:
            for col in clean.form_columns[form]:
                d = clean.fields.get(col)
                if d is not None and d["Required Field?"] == "y":
                    assert values.get(col), (subject, event, form, inst, col)
    assert json.loads(clean.res.manifest_file.read_text(encoding="utf-8"))["problems"] == []
    # no duplicated keys
    keys = Counter((r["record_id"], r["redcap_event_name"], r["redcap_repeat_instrument"], r["redcap_repeat_instance"])
                   for r in clean.rows)
    assert max(keys.values()) == 1


def _row(ex, p):
    if p["instance"] is None:
        return [r for r in ex.event_rows(p["event"]) if r["record_id"] == p["subject"]]
    return [r for r in ex.instrument_rows(p["form"])
            if r["record_id"] == p["subject"] and r["redcap_event_name"] == p["event"]
            and r["redcap_repeat_instance"] == str(p["instance"])]


def test_every_injected_problem_is_in_the_data(dirty, clean):
    manifest = json.loads(dirty.res.manifest_file.read_text(encoding="utf-8"))
    problems = manifest["problems"]
    assert problems == dirty.res.problems
    assert {p["kind"] for p in problems} == KINDS
    assert set(problems[0]) == {"subject", "form", "event", "instance", "field", "kind", "value"}
    rand = clean.rand_dt()
    for p in problems:
        rows = _row(dirty, p)
        assert rows, p
        r = rows[0]
        kind, f = p["kind"], p["field"]
        if kind == "duplicate_record":
            assert len(rows) == 2 and rows[0] == rows[1]
            continue
        assert all(x == r for x in rows), p  # a duplicated instance may also carry a cell problem
        assert r[f] == p["value"], p
        d = dirty.fields[f]
        if kind == "out_of_range":
            x = float(r[f])
            assert x < float(d["Text Validation Min"]) or x > float(d["Text Validation Max"])
        elif kind == "missing_required":
            assert r[f] == "" and d["Required Field?"] == "y"
        elif kind == "unknown_code":
            assert r[f] not in _codes(d)
        elif kind == "ae_end_before_start":
            assert parse_dt(r["ae_end_dt"]) < parse_dt(r["ae_start_dt"])
        elif kind == "visit_out_of_window":
            hours = (parse_dt(r["pe_dt"]) - rand[p["subject"]]).total_seconds() / 3600
            nominal = {"h6_arm_1": 6, "h12_arm_1": 12}[p["event"]]
            assert abs(hours - nominal) > 1


def test_manifest_lists_every_difference_from_the_clean_study(dirty, clean):
    """Injection changes only the cells it reports (same seed => same underlying study)."""
    key = ("record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance")
    clean_rows = {tuple(r[k] for k in key): r for r in clean.rows}
    dirty_rows: dict = {}
    for r in dirty.rows:
        dirty_rows.setdefault(tuple(r[k] for k in key), []).append(r)
    assert set(clean_rows) == set(dirty_rows)
    reported = {(p["subject"], p["event"], p["form"], p["instance"], p["field"]) for p in dirty.res.problems
                if p["field"]}
    dups = {(p["subject"], p["event"], p["form"], p["instance"]) for p in dirty.res.problems
            if p["kind"] == "duplicate_record"}
    changed = set()
    for k, rows in dirty_rows.items():
        inst = int(k[3]) if k[3] else None
        assert (len(rows) == 2) == ((k[0], k[1], k[2], inst) in dups)
        for col, v in rows[0].items():
            if v != clean_rows[k][col]:
                form = k[2] or dirty.fields[col]["Form Name"]
                changed.add((k[0], k[1], form, inst, col))
    assert changed == reported
    assert len(reported) > 20


def test_sofa_total_and_subscores_follow_the_labs(clean):
    """Site total = sum of sub-scores; coagulation, liver and renal scores follow the same event's labs."""
    n = 0
    for r in clean.rows:
        if not r["sofa_complete"]:
            continue
        subs = [int(r[c]) for c in ("sofa_resp", "sofa_coag", "sofa_liver", "sofa_cardio", "sofa_cns", "sofa_renal")]
        assert sum(subs) == int(r["sofa_total"])
        plt, bili, crea = float(r["platelets"]), float(r["bilirubin"]), float(r["creatinine"])
        assert subs[1] == (4 if plt < 20 else 3 if plt < 50 else 2 if plt < 100 else 1 if plt < 150 else 0)
        assert subs[2] == (0 if bili < 20 else 1 if bili < 33 else 2 if bili < 102 else 3 if bili <= 204 else 4)
        assert subs[5] == (0 if crea < 110 else 1 if crea < 171 else 2 if crea < 300 else 3 if crea <= 440 else 4)
        pf = float(r["pao2"]) / float(r["fio2"])
        assert subs[0] == (4 if pf < 100 else 3 if pf < 200 else 2 if pf < 300 else 1 if pf < 400 else 0)
        n += 1
    assert n > 100
