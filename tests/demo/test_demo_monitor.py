"""Bedside-monitor resolution: minute readings between the hourly values, which stay exactly as in the eCRF."""

import csv
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_minute_readings_stay_within_the_plausible_ranges_of_the_dictionary(tmp_path):
    """A clean study must pass the physiological range checks at any resolution (the ranges are the eCRF's)."""
    out = generate_demo(tmp_path / "m", subjects=300, seed=11, formats=("redcap",),
                        params=DemoParameters(hemo_interval_minutes=1)).redcap_dir
    with next(out.glob("*_DataDictionary_*.csv")).open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    name, lo, hi = header.index("Variable / Field Name"), header.index("Text Validation Min"), \
        header.index("Text Validation Max")
    ranges = {r[name]: (float(r[lo]), float(r[hi])) for r in rows[1:]
              if r[name] in ("hd_map", "hd_sbp", "hd_dbp", "hd_hr")}
    assert set(ranges) == {"hd_map", "hd_sbp", "hd_dbp", "hd_hr"}
    seen = {f: [float("inf"), float("-inf")] for f in ranges}
    n = 0
    for row in records(out):
        if row["redcap_repeat_instrument"] != "hemodynamics":
            continue
        n += 1
        for f in ranges:
            v = float(row[f])
            seen[f] = [min(seen[f][0], v), max(seen[f][1], v)]
    assert n > 300 * 60
    for f, (low, high) in ranges.items():
        assert low <= seen[f][0] and seen[f][1] <= high, (f, seen[f], (low, high))
