"""The study's shape: sites, randomisation list, blinding, realistic (varying) trajectories, deaths."""

from collections import Counter, defaultdict

from demo_export_reader import parse_dt


def test_five_sites_and_record_ids(clean):
    screening = clean.event_rows("screening_arm_1")
    assert len(screening) == 32
    dags = Counter(r["redcap_data_access_group"] for r in screening)
    assert set(dags) == {f"site_0{k}" for k in range(1, 6)}
    for r in clean.rows:
        assert r["redcap_data_access_group"] == f"site_{r['record_id'][:2]}"
    assert all(r["eligible"] == "1" for r in screening)


def test_randomisation_permuted_blocks_within_site(clean):
    kits = list(clean.kits.items())
    assert kits[0][0] == "K001"
    assert {a for _, a in kits} == {"DEX", "PBO"}
    with open(clean.res.randomisation_file, encoding="utf-8") as fh:
        assert fh.readline().strip() == "kit_no,arm,arm_label"
        labels = {line.strip().split(",")[1]: line.strip().split(",")[2] for line in fh}
    assert labels == {"DEX": "Dexmedetomidine", "PBO": "Placebo"}
    site_of_kit = {r["kit_no"]: r["record_id"][:2] for r in clean.event_rows("h0_arm_1")}
    assert len(site_of_kit) == 32
    for b in range(0, len(kits), 4):
        block = kits[b:b + 4]
        assert Counter(a for _, a in block) == {"DEX": 2, "PBO": 2}
        assert len({site_of_kit[k] for k, _ in block if k in site_of_kit}) == 1  # a block belongs to one site


def test_ecrf_never_holds_the_arm(clean):
    text = next(clean.res.redcap_dir.glob("*_DATA_*.csv")).read_text(encoding="utf-8")
    for word in ("DEX", "PBO", "Dexmedetomidine", "Placebo"):
        assert word not in text
    assert "Dexmedetomidine" not in clean.res.odm_file.read_text(encoding="utf-8")


def test_trajectories_vary(clean):
    maps, hrs, ne = defaultdict(list), defaultdict(list), defaultdict(list)
    for r in clean.instrument_rows("hemodynamics"):
        maps[r["record_id"]].append(int(r["hd_map"]))
        hrs[r["record_id"]].append(int(r["hd_hr"]))
    for r in clean.instrument_rows("vasopressors"):
        if r["vp_drug"] == "1":
            ne[r["record_id"]].append(float(r["vp_rate"]))
    assert len(maps) == 32
    for s in maps:
        if len(maps[s]) >= 10:
            assert len(set(maps[s])) >= 5 and len(set(hrs[s])) >= 5
        assert len(set(ne[s])) >= 4  # several NE rate changes per subject
    assert len({tuple(v) for v in maps.values()}) == 32
    lactate = [float(r["lactate"]) for r in clean.event_rows("h24_arm_1") if r["lactate"]]
    assert len(set(lactate)) > 10


def test_salts_vary_by_site_and_are_constant_within_site(clean):
    salts = defaultdict(set)
    for r in clean.instrument_rows("vasopressors"):
        if r["vp_drug"] == "1":
            salts[r["record_id"][:2]].add(r["vp_salt"])
    assert all(len(v) == 1 for v in salts.values())
    assert {next(iter(v)) for v in salts.values()} == {"1", "2", "3"}


def test_no_data_after_death_and_hourly_until_24h(clean):
    rand = clean.rand_dt()
    death = {r["record_id"]: parse_dt(r["death_dt"]) for r in clean.event_rows("end_of_study_arm_1") if r["death_dt"]}
    assert death
    n_hd = Counter(r["record_id"] for r in clean.instrument_rows("hemodynamics"))
    for s in rand:
        if s not in death or (death[s] - rand[s]).total_seconds() > 24.5 * 3600:
            assert n_hd[s] == 25
    for r in clean.instrument_rows("hemodynamics"):
        if r["record_id"] in death:
            assert parse_dt(r["hd_dt"]) < death[r["record_id"]]
    h6 = {r["record_id"] for r in clean.event_rows("h6_arm_1") if r["pe_dt"]}
    for s, d in death.items():
        if (d - rand[s]).total_seconds() < 6 * 3600:
            assert s not in h6


def test_pe_ne_rate_is_the_rate_in_force(clean):
    rows = defaultdict(list)
    for r in clean.instrument_rows("vasopressors"):
        if r["vp_drug"] == "1":
            rows[r["record_id"]].append((parse_dt(r["vp_dt"]), r["vp_rate"]))
    n = 0
    for ev in ("h0_arm_1", "h6_arm_1", "h12_arm_1"):
        for r in clean.event_rows(ev):
            if r["pe_dt"]:
                t = parse_dt(r["pe_dt"])
                in_force = [rate for when, rate in sorted(rows[r["record_id"]]) if when <= t][-1]
                assert in_force == r["pe_ne_rate"]
                n += 1
    assert n > 80


def test_adverse_events_coded_some_serious_some_before_first_dose(clean):
    aes = clean.instrument_rows("adverse_events")
    assert all(r["ae_decod"] and r["ae_bodsys"] for r in aes)
    assert any(r["ae_serious"] == "1" for r in aes) and any(r["ae_serious"] == "0" for r in aes)
    first_dose = {}
    for r in clean.instrument_rows("study_drug"):
        t = parse_dt(r["drug_start_dt"])
        first_dose[r["record_id"]] = min(t, first_dose.get(r["record_id"], t))
    assert any(parse_dt(r["ae_start_dt"]) < first_dose[r["record_id"]] for r in aes)
    assert {r["ae_aesi"] for r in aes} >= {"0", "1"}
    deaths = {r["record_id"] for r in clean.event_rows("end_of_study_arm_1") if r["vital_status"] == "2"}
    fatal = {r["record_id"] for r in aes if r["ae_outcome"] == "5"}
    assert fatal == deaths
    vent = Counter(r["record_id"] for r in clean.instrument_rows("ventilation"))
    assert all(n >= 1 for n in vent.values()) and len(vent) == 32
    assert any(n >= 2 for n in vent.values())  # a re-intubation is a new instance
    extub = [r["extub_dt"] for r in clean.instrument_rows("ventilation")]
    assert "" in extub and any(extub)  # some died ventilated, some were extubated
