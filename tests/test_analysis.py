"""Analysis results: statistics checked against hand computation, and the published figures reproduced end to end."""

from __future__ import annotations

import re

import duckdb
import numpy as np
import polars as pl
import pytest

from warehouse.analyse.results import ancova, kaplan_meier, mortality, primary_endpoint, teae_summary, two_sample_t

ARMS = ["Dexmedetomidine", "Placebo"]


def test_two_sample_t_by_hand():
    # means 2 and 4; variances 1 and 4; pooled SD sqrt((2*1 + 2*4)/4) = 1.5811; SE = 1.5811*sqrt(2/3) = 1.2910;
    # t(0.975, 4) = 2.7764 -> half-width 3.5844; t = -1.5492 -> p = 0.1962
    got = two_sample_t(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 6.0]))
    assert got["diff"] == pytest.approx(-2.0)
    assert got["ci_low"] == pytest.approx(-5.5844, abs=1e-4)
    assert got["ci_high"] == pytest.approx(1.5844, abs=1e-4)
    assert got["p_ttest"] == pytest.approx(0.1962, abs=1e-4)


def test_ancova_by_hand():
    # y = 1 + 0.5*treated + 2*baseline + e, with e orthogonal to the design: coefficients exact, RSS = 0.04 on
    # 1 df, [(X'X)^-1]_treated = 1 -> SE 0.2, t = 2.5, p = 2*(0.5 - atan(2.5)/pi) = 0.2422; t(0.975, 1) = 12.706
    treated = np.array([0.0, 0.0, 1.0, 1.0])
    baseline = np.array([1.0, 2.0, 1.0, 2.0])
    y = 1 + 0.5 * treated + 2 * baseline + np.array([0.1, -0.1, -0.1, 0.1])
    got = ancova(y, treated, baseline)
    assert got["adj_diff"] == pytest.approx(0.5)
    assert got["p_ancova"] == pytest.approx(0.2422, abs=1e-4)
    assert got["adj_ci_low"] == pytest.approx(0.5 - 12.7062 * 0.2, abs=1e-3)


def test_kaplan_meier_by_hand():
    adtte = pl.DataFrame({"TRT01P": ["A"] * 5, "AVAL": [1.0, 2.0, 3.0, 3.0, 5.0], "CNSR": [0, 1, 0, 0, 1]})
    km = kaplan_meier(adtte)
    # t=1: 1 of 5 dies -> 0.8; t=2 censored; t=3: 2 of 3 die -> 0.8 * 1/3; t=5 censored
    assert km.select("time", "at_risk", "events", "survival").rows() == [
        (0.0, 5, 0, 1.0), (1.0, 5, 1, 0.8), (2.0, 4, 0, 0.8), (3.0, 3, 2, pytest.approx(0.8 / 3)), (5.0, 1, 0, pytest.approx(0.8 / 3))
    ]


def test_two_sample_t_unequal_sizes_by_hand():
    # a = [0, 2]: mean 1, variance 2; b = [1, 1, 4]: mean 2, variance 3; pooled variance (1*2 + 2*3)/3 = 8/3;
    # SE = sqrt(8/3 * (1/2 + 1/3)) = sqrt(20/9) = 1.490712; t(0.975, 3) = 3.182446 -> half-width 4.744111
    got = two_sample_t(np.array([0.0, 2.0]), np.array([1.0, 1.0, 4.0]))
    assert got["diff"] == pytest.approx(-1.0)
    assert (got["ci_low"], got["ci_high"]) == (pytest.approx(-5.744111, abs=1e-6), pytest.approx(3.744111, abs=1e-6))
    assert two_sample_t(np.array([1.0]), np.array([1.0, 2.0]))["ci_low"] is None  # one value: no variance


def test_two_sample_t_ci_is_scipys_and_the_written_out_interval():
    """The CI is SciPy's (TtestResult.confidence_interval), and equal, to the last bits, to the pooled-variance
    interval written out: diff -/+ t(0.975, n1 + n2 - 2) * sqrt(pooled variance) * sqrt(1/n1 + 1/n2)."""
    import math

    from scipy import stats

    rng = np.random.default_rng(16)
    for n1, n2 in [(2, 2), (3, 7), (15, 17), (40, 25)]:
        a, b = rng.normal(1.3, 0.25, n1), rng.normal(1.4, 0.3, n2)
        got = two_sample_t(a, b)
        ci = stats.ttest_ind(a, b, equal_var=True).confidence_interval(0.95)
        assert (got["ci_low"], got["ci_high"]) == (float(ci.low), float(ci.high))
        dof = n1 + n2 - 2
        pooled = math.sqrt(((n1 - 1) * a.var(ddof=1) + (n2 - 1) * b.var(ddof=1)) / dof)
        half = float(stats.t.ppf(0.975, dof)) * pooled * math.sqrt(1 / n1 + 1 / n2)
        diff = float(a.mean() - b.mean())
        assert got["ci_low"] == pytest.approx(diff - half, rel=1e-12, abs=1e-14)
        assert got["ci_high"] == pytest.approx(diff + half, rel=1e-12, abs=1e-14)


def test_importing_the_build_does_not_import_scipy():
    """SciPy (~0.8 s) is imported by the analysis functions that use it, not by `import warehouse.build`."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, warehouse.build; print('scipy' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def km_rows(times: list[float], cnsr: list[int]) -> list[tuple]:
    adtte = pl.DataFrame({"TRT01P": ["A"] * len(times), "AVAL": times, "CNSR": cnsr})
    return kaplan_meier(adtte).select("time", "at_risk", "events", "censored", "survival").rows()


def test_kaplan_meier_event_and_censoring_at_the_same_time():
    # t=1: 1 of 4 dies -> 0.75; t=2: one death and one censoring, both at risk (death first): 3 at risk,
    # 1 dies -> 0.75 * 2/3 = 0.5; t=3: the last subject dies -> 0
    assert km_rows([1.0, 2.0, 2.0, 3.0], [0, 0, 1, 0]) == [
        (0.0, 4, 0, 0, 1.0), (1.0, 4, 1, 0, 0.75), (2.0, 3, 1, 1, pytest.approx(0.5)), (3.0, 1, 1, 0, 0.0)]


def test_kaplan_meier_all_censored_and_one_subject():
    assert km_rows([1.0, 2.0, 2.0], [1, 1, 1]) == [(0.0, 3, 0, 0, 1.0), (1.0, 3, 0, 1, 1.0), (2.0, 2, 0, 2, 1.0)]
    assert km_rows([4.0], [0]) == [(0.0, 1, 0, 0, 1.0), (4.0, 1, 1, 0, 0.0)]
    assert km_rows([4.0], [1]) == [(0.0, 1, 0, 0, 1.0), (4.0, 1, 0, 1, 1.0)]


def test_kaplan_meier_agrees_with_scipy_ecdf():
    """SciPy's estimator on right-censored data (stats.ecdf) gives the same times and survival, ties included."""
    from scipy import stats

    rng = np.random.default_rng(6)
    for n in (1, 5, 30, 200):
        times = rng.integers(1, 12, n).astype(float)  # few distinct days: many ties, deaths with censorings
        cnsr = (rng.random(n) < 0.4).astype(int)
        got = pl.DataFrame({"TRT01P": ["A"] * n, "AVAL": times, "CNSR": cnsr})
        km = kaplan_meier(got).slice(1)  # without the row at time 0
        sf = stats.ecdf(stats.CensoredData.right_censored(times, cnsr == 1)).sf
        assert km.get_column("time").to_list() == sf.quantiles.tolist()
        assert km.get_column("survival").to_numpy() == pytest.approx(sf.probabilities, rel=1e-13, abs=1e-15)
        assert km.get_column("at_risk").to_list() == [int((times >= t).sum()) for t in sf.quantiles]


def test_mortality_counts_known_status_only():
    adtte = pl.DataFrame({
        "TRT01P": ["Dexmedetomidine"] * 3 + ["Placebo"] * 3,
        "DTHD3FL": ["Y", "Y", "N", "N", "N", None],
        "DTHD28FL": ["Y", "Y", None, "Y", "N", None],
        "DTHD90FL": ["Y", "Y", None, "Y", None, None],
    })
    d3 = mortality(adtte, ARMS).filter(pl.col("landmark") == "D3").select("arm", "deaths", "n").rows()
    assert d3 == [("Dexmedetomidine", 2, 3), ("Placebo", 0, 2)]


def test_blinded_build_compares_nothing():
    adeff = pl.DataFrame({"TRT01P": ["Blinded"] * 4, "PARAMCD": ["PERESP"] * 4, "AVISIT": ["H6"] * 4,
                          "AVAL": [1.1, 1.2, 1.3, 1.4], "BASE": [1.0] * 4})
    result = primary_endpoint(adeff, ARMS)
    assert set(result.get_column("arm").to_list()) == {"Blinded"}
    assert "p_ttest" not in result.columns
    assert result.filter(pl.col("avisit") == "H6").select("n", "mean").rows() == [(4, pytest.approx(1.25))]


def test_teae_summary_counts_subjects_not_events():
    adsl = pl.DataFrame({"USUBJID": ["1", "2", "3"], "SAFFL": ["Y", "Y", "Y"], "TRT01A": ["A", "A", "B"]})
    adae = pl.DataFrame({
        "USUBJID": ["1", "1", "2", "3"], "SAFFL": ["Y"] * 4, "TRT01A": ["A", "A", "A", "B"],
        "TRTEMFL": ["Y", "Y", None, "Y"], "AESER": ["N", "Y", "Y", "N"], "AESIFL": ["N"] * 4, "AESDTH": [None] * 4,
        "AEBODSYS": ["Cardiac", "Cardiac", "Cardiac", "Vascular"], "AEDECOD": ["Brady", "AF", "Brady", "Hypotension"],
    })
    got = teae_summary(adae, adsl)
    any_teae = got.filter(pl.col("category") == "Any TEAE").select("arm", "subjects", "n_safety").rows()
    assert any_teae == [("A", 1, 2), ("B", 1, 1)]  # subject 2's AE is not treatment-emergent
    cardiac_a = got.filter((pl.col("category") == "By body system") & (pl.col("aebodsys") == "Cardiac")
                           & (pl.col("arm") == "A")).get_column("subjects").to_list()
    assert cardiac_a == [1]  # two cardiac TEAEs, one subject


def test_published_primary_endpoint_is_reproduced(demo_build):
    """The calibrated demo study's analysis reproduces ADRESS's PE response at H6: 1.26 ± 0.23 vs 1.45 ± 0.26."""
    with duckdb.connect(str(demo_build.published), read_only=True) as con:
        got = con.execute("select arm, round(mean, 2), round(sd, 2) from ar_primary where avisit = 'H6' order by arm").fetchall()
        p = con.execute("select distinct p_ttest from ar_primary where is_primary").fetchall()
        d3 = con.execute("select arm, deaths, n from ar_mortality where landmark = 'D3' order by arm").fetchall()
    assert got == [("Dexmedetomidine", 1.26, 0.23), ("Placebo", 1.45, 0.26)]
    assert p[0][0] < 0.05  # published p = 0.048
    (dex_deaths, dex_n), (pbo_deaths, pbo_n) = [(d, n) for _, d, n in d3]
    assert dex_deaths / dex_n >= 0.45 and pbo_deaths / pbo_n <= 0.2  # about 50% vs about 13%


def test_analysis_report_is_self_contained(demo_build):
    page = demo_build.analysis_report.read_text(encoding="utf-8")
    assert "Kaplan-Meier" in page and page.count("<svg") >= 4
    # nothing to fetch: no external script, stylesheet, image or font
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)""", page)
    assert "@import" not in page and "url(http" not in page


def test_marts_export_to_parquet_csv_and_xpt_with_labels(demo_build, tmp_path):
    import pyreadstat

    from warehouse.analyse.exports import export_marts

    exported = {m.table: m for m in export_marts(demo_build.published, tmp_path)}
    # the five marts and the analysis results (ar_*): docs/deliverables.md
    assert {t for t in exported if not t.startswith("ar_")} == {"adsl", "adeff", "adae", "adtte", "hemodynamics"}
    assert {"ar_primary", "ar_teae"} <= set(exported)
    with duckdb.connect(str(demo_build.published), read_only=True) as con:
        adeff_rows = con.execute("select count(*) from adeff").fetchall()[0][0]
    assert pl.read_parquet(tmp_path / "adeff.parquet").height == adeff_rows
    assert pl.read_csv(tmp_path / "adeff.csv", infer_schema=False).height == adeff_rows
    frame, meta = pyreadstat.read_xport(str(tmp_path / "adsl.xpt"))
    assert meta.table_name == "ADSL" and frame.shape[0] == 32
    labels = dict(zip(meta.column_names, meta.column_labels))
    assert labels["USUBJID"].startswith("Unique subject identifier")
    assert all(len(name) <= 8 for name in meta.column_names)
    # the long-named mart fits SAS v5: member HEMODYNA, every variable name within 8 characters
    _, hemo = pyreadstat.read_xport(str(tmp_path / "hemodyna.xpt"))
    assert hemo.table_name == "HEMODYNA" and "MAPNE" in hemo.column_names


def test_xpt_labels_are_cut_at_a_word_boundary():
    from warehouse.analyse.exports import xpt_label

    # 70 characters: the unit stays at the end, the rest of the aside goes, known words are abbreviated
    # (warehouse/analyse/labels.py; tests/analyse/test_xpt_labels.py has the rule's cases)
    assert xpt_label("Baseline norepinephrine dose as base (µg/kg/min, rate in effect at H0)") == (
        "BL NE dose as base (ug/kg/min)")
    # a word ending exactly at character 40 is kept whole (10 + 1 + 29 = 40), the next word is dropped
    assert xpt_label("A" * 10 + " " + "b" * 29 + " c") == "A" * 10 + " " + "b" * 29
    # "Start time imputation flag (H when the time was imputed: ..." -> last space within 41 characters at 38
    # ("... flag (H when the"), the bracket is left open: cut before it
    assert xpt_label("Start time imputation flag (H when the time was imputed: a date without time)") == (
        "Start time imputation flag")
    assert xpt_label("Date last known alive") == "Date last known alive"  # short labels are untouched
    assert xpt_label("x" * 50) == "x" * 40  # one word longer than the limit: cut at the limit
    assert xpt_label("Arrêt cardiaque") == "Arret cardiaque"  # ASCII, as the transport format expects


def test_xpt_writes_dates_as_sas_dates_and_labels_within_40_bytes(tmp_path):
    import datetime as dt

    import pyreadstat

    from warehouse.analyse.exports import write_xpt

    frame = pl.DataFrame({
        "LSTALVDT": [dt.date(2019, 6, 3), None, dt.date(1960, 1, 1)],
        "TRTSDTM": [dt.datetime(2019, 6, 3, 10, 30), None, None],
    })
    path = tmp_path / "x.xpt"
    write_xpt(frame, {"LSTALVDT": "Date last known alive", "TRTSDTM": "Date-time of first study-drug exposure (µg)"},
              "A dataset", path, "X")
    raw, meta = pyreadstat.read_xport(str(path), disable_datetime_conversion=True)
    # 1960-01-01 to 2019-01-01: 59 x 365 + 15 leap days (1960 ... 2016) = 21550; + 151 (Jan-May) + 2 = 21703
    assert raw["LSTALVDT"].tolist()[0] == 21703.0 and raw["LSTALVDT"].tolist()[2] == 0.0
    assert raw["LSTALVDT"].isna().tolist() == [False, True, False]
    assert meta.original_variable_types["LSTALVDT"] == "DATE9"
    # the date-time stays a SAS datetime: seconds since 1960, 21703 x 86400 + 10.5 x 3600 = 1875177000
    assert raw["TRTSDTM"].tolist()[0] == 21703 * 86400 + 37800
    assert meta.original_variable_types["TRTSDTM"].startswith("DATETIME")
    read, _ = pyreadstat.read_xport(str(path))
    assert read["LSTALVDT"].tolist()[0] == dt.date(2019, 6, 3)
    labels = dict(zip(meta.column_names, meta.column_labels))
    # 43 characters once µ is spelled u: the unit stays, "Date-time" is abbreviated
    assert labels["TRTSDTM"] == "DTM of first study-drug exposure (ug)"


def test_exported_adsl_dates_read_back_as_dates(demo_build, tmp_path):
    import pyreadstat

    from warehouse.analyse.exports import export_marts

    export_marts(demo_build.published, tmp_path, formats=("xpt",), tables=("adsl",))
    frame, meta = pyreadstat.read_xport(str(tmp_path / "adsl.xpt"))
    with duckdb.connect(str(demo_build.published), read_only=True) as con:
        expected = dict(con.execute("select USUBJID, LSTALVDT from adsl").fetchall())
    assert meta.original_variable_types["LSTALVDT"] == "DATE9"
    assert meta.original_variable_types["DTHDT"] == "DATE9"
    assert dict(zip(frame["USUBJID"], frame["LSTALVDT"])) == expected
    assert all(len(label.encode("ascii")) <= 40 for label in meta.column_labels)


@pytest.fixture(scope="module")
def blinded_build(tmp_path_factory):
    """The demo study built blinded (the default), as tests/test_build.py's test_blinded_build_masks_treatment does."""
    from warehouse.build import BuildRequest, run_build

    return run_build(BuildRequest(data_dir=tmp_path_factory.mktemp("blinded-build")))


def test_blinded_build_results_pool_the_arms_and_test_nothing(blinded_build):
    from warehouse.study import load_study

    arms = load_study().arms  # {'DEX': 'Dexmedetomidine', 'PBO': 'Placebo'}
    with duckdb.connect(str(blinded_build.published), read_only=True) as con:
        tables = [r[0] for r in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'main' and table_name like 'ar\\_%' escape '\\'"
        ).fetchall()]
        assert {"ar_primary", "ar_mortality", "ar_secondary", "ar_teae", "ar_km", "ar_baseline"} <= set(tables)
        for table in tables:
            columns = [r[0] for r in con.execute(f"describe {table}").fetchall()]
            assert not [c for c in columns if c.startswith("p_") or c in {"p", "pvalue", "p_value"}], table
            assert not [c for c in columns if c.startswith(("diff", "adj_", "ci_"))], table  # no comparison
            if "arm" in columns:
                assert con.execute(f"select distinct arm from {table}").fetchall() == [("Blinded",)], table
    page = blinded_build.analysis_report.read_text(encoding="utf-8")
    for label in arms.values():
        assert label.lower() not in page.lower(), label
    for code in arms:
        assert not re.search(rf"\b{code}\b", page), code
    assert "Blinded" in page


def test_subject_lines_split_by_subject_in_time_order():
    from warehouse.analyse.figures import subject_lines

    frame = pl.DataFrame({"USUBJID": ["B", "A", "B", "A", "C"], "HOUR": [2, 1, 0, 0, 5],
                          "NE_BASE": [0.2, None, 0.4, 0.1, 0.3]})
    lines = subject_lines(frame, "HOUR", "NE_BASE")
    assert lines[0][0].tolist() == [0.0, 0.1] and lines[0][1][0] == 1.0
    assert np.isnan(lines[0][1][1])  # a missing dose stays a gap in the line
    assert [line.tolist() for line in lines[1:]] == [[[0.0, 0.4], [2.0, 0.2]], [[5.0, 0.3]]]
    assert subject_lines(frame.head(0), "HOUR", "NE_BASE") == []


def test_many_subject_lines_are_drawn_as_an_image_few_as_paths():
    from warehouse.analyse.figures import RASTER_ABOVE, ne_trajectories_figure

    def hemo(subjects: int) -> pl.DataFrame:
        return pl.DataFrame({"USUBJID": [f"S{i}" for i in range(subjects) for _ in range(3)],
                             "TRT01P": ["A"] * (3 * subjects), "HOUR": [0, 1, 2] * subjects,
                             "NE_BASE": [0.1, 0.2, 0.3] * subjects})

    small, large = ne_trajectories_figure(hemo(10), ["A"]), ne_trajectories_figure(hemo(RASTER_ABOVE + 1), ["A"])
    assert "<image" not in small and "<image" in large
    assert "data:image/png;base64," in large  # inside the SVG: nothing to fetch
    assert len(large) < 1_000_000
