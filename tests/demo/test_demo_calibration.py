"""Published figures, computed independently from the exported CSV joined with randomisation.csv."""

import statistics
from datetime import timedelta

import pytest
from demo_export_reader import parse_dt, read_export

from warehouse.demo import generate_demo


def pe_response(ex, event: str) -> dict[str, list[float]]:
    arm = ex.arm_of()
    out: dict[str, list[float]] = {"DEX": [], "PBO": []}
    for r in ex.event_rows(event):
        if r["pe_map_before"] and r["pe_map_max"]:
            out[arm[r["record_id"]]].append(int(r["pe_map_max"]) / int(r["pe_map_before"]))
    return out


def mortality(ex, days: int) -> dict[str, float]:
    arm, rand = ex.arm_of(), ex.rand_dt()
    deaths = {r["record_id"]: r["death_dt"] for r in ex.event_rows("end_of_study_arm_1")}
    out = {}
    for a in ("DEX", "PBO"):
        ids = [s for s, x in arm.items() if x == a]
        dead = [s for s in ids if deaths[s] and
                (parse_dt(deaths[s]) - rand[s]) <= timedelta(days=days)]
        out[a] = len(dead) / len(ids)
    return out


def test_h6_pe_response_default_study(clean):
    resp = pe_response(clean, "h6_arm_1")
    assert (round(statistics.mean(resp["DEX"]), 2), round(statistics.stdev(resp["DEX"]), 2)) == (1.26, 0.23)
    assert (round(statistics.mean(resp["PBO"]), 2), round(statistics.stdev(resp["PBO"]), 2)) == (1.45, 0.26)
    assert len(resp["DEX"]) + len(resp["PBO"]) >= 28  # a few early deaths may miss H6, not more


def test_h0_response_lower_with_dex(clean):
    resp = pe_response(clean, "h0_arm_1")
    assert len(resp["DEX"]) + len(resp["PBO"]) == 32  # everyone has the H0 challenge
    assert statistics.mean(resp["DEX"]) < statistics.mean(resp["PBO"]) - 0.1


def test_mortality_default_study(clean):
    d3 = mortality(clean, 3)
    assert 0.40 <= d3["DEX"] <= 0.60
    assert 0.05 <= d3["PBO"] <= 0.20
    for days in (30, 90):
        m = mortality(clean, days)
        assert m["DEX"] > m["PBO"]
        assert m["DEX"] >= d3["DEX"] and m["PBO"] >= d3["PBO"]


@pytest.mark.parametrize(("subjects", "seed"), [(20, 1), (24, 7), (40, 2024), (64, 99)])
def test_calibration_holds_for_other_seeds(tmp_path, subjects, seed):
    ex = read_export(generate_demo(tmp_path, subjects=subjects, seed=seed, formats=("redcap",)))
    resp = pe_response(ex, "h6_arm_1")
    for arm, (mu, sd) in {"DEX": (1.26, 0.23), "PBO": (1.45, 0.26)}.items():
        assert (round(statistics.mean(resp[arm]), 2), round(statistics.stdev(resp[arm]), 2)) == (mu, sd)
    d3 = mortality(ex, 3)
    assert d3["DEX"] > d3["PBO"]


def test_injection_never_breaks_the_primary_endpoint(dirty):
    resp = pe_response(dirty, "h6_arm_1")
    assert round(statistics.mean(resp["DEX"]), 2) == 1.26 and round(statistics.stdev(resp["DEX"]), 2) == 0.23
