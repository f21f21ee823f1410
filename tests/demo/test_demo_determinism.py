"""Same seed and parameters => byte-identical files; another seed => other data."""

from pathlib import Path

from warehouse.demo import generate_demo


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path):
    a = _files(generate_demo(tmp_path / "a", inject_rate=0.05).manifest_file.parent)
    b = _files(generate_demo(tmp_path / "b", inject_rate=0.05).manifest_file.parent)
    assert set(a) == {
        "manifest.json", "randomisation.csv", "odm/ADRESS_ODM_2021-10-15.xml",
        "redcap/ADRESS_DATA_2021-10-15.csv", "redcap/ADRESS_DataDictionary_2021-10-15.csv",
        "redcap/ADRESS_Events_2021-10-15.csv", "redcap/ADRESS_Arms_2021-10-15.csv",
        "redcap/ADRESS_InstrumentDesignations_2021-10-15.csv", "redcap/ADRESS_RepeatingInstruments_2021-10-15.csv",
    }
    assert a == b


def test_other_seed_gives_other_data(tmp_path):
    a = _files(generate_demo(tmp_path / "a", seed=1).manifest_file.parent)
    b = _files(generate_demo(tmp_path / "b", seed=2).manifest_file.parent)
    assert a["redcap/ADRESS_DATA_2021-10-15.csv"] != b["redcap/ADRESS_DATA_2021-10-15.csv"]
    assert a["odm/ADRESS_ODM_2021-10-15.xml"] != b["odm/ADRESS_ODM_2021-10-15.xml"]
    # the metadata does not depend on the seed
    assert a["redcap/ADRESS_DataDictionary_2021-10-15.csv"] == b["redcap/ADRESS_DataDictionary_2021-10-15.csv"]


def test_manifest_hashes_match_files(tmp_path):
    import hashlib
    import json

    res = generate_demo(tmp_path, subjects=20, formats=("redcap",))
    assert res.odm_file is None and not (tmp_path / "odm").exists()
    manifest = json.loads(res.manifest_file.read_text(encoding="utf-8"))
    assert manifest["seed"] == 20190515 and manifest["subjects"] == 20
    assert manifest["files"]
    for rel, sha in manifest["files"].items():
        assert hashlib.sha256((tmp_path / rel).read_bytes()).hexdigest() == sha


def test_clean_rate_zero_equals_default(tmp_path):
    a = _files(generate_demo(tmp_path / "a", inject_rate=0.0).manifest_file.parent)
    b = _files(generate_demo(tmp_path / "b").manifest_file.parent)
    assert a == b
