"""Bedside-monitor resolution: minute readings between the hourly values, which stay exactly as in the eCRF."""

import csv
from pathlib import Path

from warehouse.demo import DemoParameters, generate_demo


def records(folder: Path) -> list[dict]:
    data = next(folder.glob("*_DATA_*.csv"))
    with data.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_minute_readings_keep_the_hourly_values_and_the_other_forms(tmp_path):
    hourly = records(generate_demo(tmp_path / "h", subjects=8, seed=3, formats=("redcap",)).redcap_dir)
    minute = records(generate_demo(tmp_path / "m", subjects=8, seed=3, formats=("redcap",),
                                   params=DemoParameters(hemo_interval_minutes=1)).redcap_dir)
    hemo = lambda rows: [r for r in rows if r["redcap_repeat_instrument"] == "hemodynamics"]  # noqa: E731
    key = lambda r: (r["record_id"], r["hd_dt"])  # noqa: E731
    by_time = {key(r): (r["hd_map"], r["hd_sbp"], r["hd_dbp"], r["hd_hr"]) for r in hemo(minute)}
    for row in hemo(hourly):
        assert by_time[key(row)] == (row["hd_map"], row["hd_sbp"], row["hd_dbp"], row["hd_hr"])
    # 24 h at one reading a minute, plus the reading at H24, for a subject alive throughout
    per_subject = {}
    for row in hemo(minute):
        per_subject[row["record_id"]] = per_subject.get(row["record_id"], 0) + 1
    assert max(per_subject.values()) == 24 * 60 + 1
    # every other form is untouched by the resolution
    others = lambda rows: [r for r in rows if r["redcap_repeat_instrument"] != "hemodynamics"]  # noqa: E731
    strip = lambda r: {k: v for k, v in r.items() if not k.startswith("hd_") and k != "hemodynamics_complete"}  # noqa: E731
    assert [strip(r) for r in others(minute)] == [strip(r) for r in others(hourly)]
