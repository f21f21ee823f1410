"""The analysis report's figures drawn only when their data changed (warehouse/analyse/figure_cache.py): a cached
SVG is byte for byte the one drawn, a change of any value draws again, a damaged entry is drawn again, old entries
are pruned."""

from __future__ import annotations

import polars as pl

from warehouse.analyse.figure_cache import (
    FIGURES,
    KEEP_PER_FIGURE,
    figure_key,
    report_figures,
)

ARMS = ["Placebo", "Dexmedetomidine"]


def inputs(map_first: float = 70.0) -> dict[str, pl.DataFrame]:
    """Two subjects per arm, three hours of hemodynamics, PE responses at three time points, a KM curve."""
    subjects = [("S1", "Placebo"), ("S2", "Placebo"), ("S3", "Dexmedetomidine"), ("S4", "Dexmedetomidine")]
    hemo = pl.DataFrame(
        [(s, arm, hour, map_first + i + hour if (i, hour) == (0, 0) else 70.0 + i + hour, 0.5 - 0.1 * hour,
          (70.0 + i) / (0.5 - 0.1 * hour), 90.0 - i)
         for i, (s, arm) in enumerate(subjects) for hour in range(3)],
        schema=["USUBJID", "TRT01P", "HOUR", "MAP", "NE_BASE", "MAPNE", "HR"], orient="row")
    adeff = pl.DataFrame(
        [("PERESP", visit, arm, 1.0 + 0.1 * i + 0.05 * j) for i, (_, arm) in enumerate(subjects)
         for j, visit in enumerate(["H0", "H6", "H12"])],
        schema=["PARAMCD", "AVISIT", "TRT01P", "AVAL"], orient="row")
    km = pl.DataFrame([(arm, t, s, c) for arm in ARMS for t, s, c in [(0.0, 1.0, 0), (5.0, 0.5, 0), (28.0, 0.5, 1)]],
                      schema=["arm", "time", "survival", "censored"], orient="row")
    return {"adeff": adeff, "hemodynamics": hemo, "ar_km": km}


def test_a_cached_figure_is_the_drawn_one_and_is_read_not_drawn(tmp_path):
    drawn = report_figures(inputs(), ARMS)  # no cache: every figure drawn
    first = report_figures(inputs(), ARMS, tmp_path)
    assert first == drawn and set(first) == set(FIGURES)
    assert all(svg.startswith("<svg") for svg in first.values())
    files = sorted(tmp_path.glob("*.svg"))
    assert len(files) == 4
    # the second build reads the entries: a marked entry comes back as it is in the cache
    entry = tmp_path / f"kaplan_meier-{figure_key('kaplan_meier', [inputs()['ar_km']], ARMS)}.svg"
    entry.write_text("<svg>from the cache</svg>", encoding="utf-8")
    again = report_figures(inputs(), ARMS, tmp_path)
    assert again["kaplan_meier"] == "<svg>from the cache</svg>"
    assert {k: v for k, v in again.items() if k != "kaplan_meier"} == {k: v for k, v in drawn.items()
                                                                        if k != "kaplan_meier"}


def test_one_changed_value_draws_the_figures_that_read_it_again(tmp_path):
    report_figures(inputs(), ARMS, tmp_path)
    changed = report_figures(inputs(map_first=71.0), ARMS, tmp_path)  # one MAP value of one subject
    assert changed == report_figures(inputs(map_first=71.0), ARMS)  # drawn from the new data
    names = sorted(p.name.rsplit("-", 1)[0] for p in tmp_path.glob("*.svg"))
    # hemodynamics and ne_trajectories both read the hemodynamics frame: both have a second entry
    assert names == ["hemodynamics", "hemodynamics", "kaplan_meier", "ne_trajectories", "ne_trajectories",
                     "pe_response"]
    # other arms (labels) are another key too
    assert figure_key("pe_response", [inputs()["adeff"]], ARMS) != figure_key("pe_response", [inputs()["adeff"]],
                                                                               ["Placebo", "DEX"])


def test_a_damaged_entry_is_drawn_again_and_old_entries_are_pruned(tmp_path):
    drawn = report_figures(inputs(), ARMS)
    report_figures(inputs(), ARMS, tmp_path)
    entry = tmp_path / f"pe_response-{figure_key('pe_response', [inputs()['adeff']], ARMS)}.svg"
    entry.write_bytes(b"\xff\xfe not utf-8")
    assert report_figures(inputs(), ARMS, tmp_path)["pe_response"] == drawn["pe_response"]
    for k in range(KEEP_PER_FIGURE + 2):  # five more versions of the data
        report_figures(inputs(map_first=80.0 + k), ARMS, tmp_path)
    assert len(list(tmp_path.glob("hemodynamics-*.svg"))) == KEEP_PER_FIGURE
    assert len(list(tmp_path.glob("pe_response-*.svg"))) == 1  # its data never changed
