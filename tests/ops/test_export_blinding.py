"""Issue 14 item 6: `warehouse export --unblinded` never writes into, and a blinded export never reveals or sits
beside, the other's outputs. Unblinded exports go under DIR/unblinded/ only (default DIR/unblinded/exports), blinded
ones default to DIR/exports and may not be written under DIR/unblinded/. Both orders are run (unblinded then
blinded, blinded then unblinded), and every file the blinded export wrote is scanned for the demo's arm labels
(read from its randomisation list, DIR/unblinded/restricted/randomisation.csv)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from ops_support import ARM_VALUES, cli, read_randomisation, scan_parquet, scan_text, text_of, is_text

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def both_builds(tmp_path_factory) -> Path:
    """One data directory holding a blinded and an unblinded build of the demo study."""
    from warehouse.build import BuildRequest, run_build

    data_dir = tmp_path_factory.mktemp("export-blinding")
    run_build(BuildRequest(data_dir=data_dir, blinded=True))
    run_build(BuildRequest(data_dir=data_dir, blinded=False))
    return data_dir


def arm_labels(data_dir: Path) -> tuple[set[str], dict]:
    kit_arms = read_randomisation(data_dir / "unblinded" / "restricted" / "randomisation.csv")
    labels = {a for pair in kit_arms.values() for a in pair}
    assert labels == {"DEX", "PBO", "Dexmedetomidine", "Placebo"} <= set(ARM_VALUES) | labels
    return labels | set(ARM_VALUES), kit_arms


def scan_blinded_export(folder: Path, forbidden: set[str], kit_arms: dict) -> tuple[list[str], int]:
    problems, files = [], sorted(p for p in folder.rglob("*") if p.is_file())
    for path in files:
        if path.suffix == ".parquet":
            problems += scan_parquet(path, forbidden, kit_arms)
        elif is_text(path):
            problems += scan_text(str(path), text_of(path), forbidden)
        else:  # .xpt: fixed-width text in a binary frame
            problems += scan_text(str(path), path.read_bytes().decode("latin-1"), forbidden)
    return problems, len(files)


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def export(data_dir: Path, *args: str):
    result = cli("export", "--data-dir", str(data_dir), *args)
    return result


def clean(data_dir: Path) -> None:
    for folder in (data_dir / "exports", data_dir / "unblinded" / "exports"):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("order", [("unblinded", "blinded"), ("blinded", "unblinded")])
def test_blinded_export_holds_no_arm_in_either_order(both_builds, order):
    data_dir = both_builds
    forbidden, kit_arms = arm_labels(data_dir)
    clean(data_dir)
    blinded_dir, unblinded_dir = data_dir / "exports", data_dir / "unblinded" / "exports"
    seen_blinded = None
    for kind in order:
        result = export(data_dir, *(["--unblinded"] if kind == "unblinded" else []))
        assert result.returncode == 0, result.stderr
        if kind == "blinded":
            assert f"written to {blinded_dir}" in result.stdout
            seen_blinded = digests(blinded_dir)
        else:
            assert f"written to {unblinded_dir}" in result.stdout
    # the unblinded export is where it belongs and does hold the arms (the scan below can find them)
    unblinded_problems, _ = scan_blinded_export(unblinded_dir, forbidden, kit_arms)
    assert unblinded_problems, "the unblinded export should name the arms"
    # every file of the blinded export: no arm label, no kit paired with its arm
    problems, n_files = scan_blinded_export(blinded_dir, forbidden, kit_arms)
    assert n_files == 11 * 3 + 2  # five marts and six ar_* results x parquet, csv, xpt + manifest.json, define.xml
    assert problems == []
    # the unblinded export, run after, wrote nothing into the blinded folder
    assert digests(blinded_dir) == seen_blinded
    assert not (blinded_dir / "unblinded").exists() and not any(unblinded_dir.glob("**/exports"))


def test_refused_destinations_write_nothing(both_builds):
    data_dir = both_builds
    clean(data_dir)
    # a blinded export under DIR/unblinded/
    inside = data_dir / "unblinded" / "exports-blinded"
    result = export(data_dir, "--out", str(inside))
    assert result.returncode == 2 and "may not be written under" in result.stderr and not inside.exists()
    # ... also through `..`
    sneaky = data_dir / "exports" / ".." / "unblinded" / "x"
    result = export(data_dir, "--out", str(sneaky))
    assert result.returncode == 2 and not (data_dir / "unblinded" / "x").exists()
    # an unblinded export outside DIR/unblinded/
    outside = data_dir / "exports-unblinded"
    result = export(data_dir, "--unblinded", "--out", str(outside))
    assert result.returncode == 2 and "goes under" in result.stderr and not outside.exists()
    # a blinded export of the unblinded warehouse file, to a blinded folder
    result = export(data_dir, "--warehouse", str(data_dir / "unblinded" / "warehouse.duckdb"))
    assert result.returncode == 2 and "unblinded" in result.stderr
    assert not (data_dir / "exports").exists()


def test_export_marts_refuses_a_warehouse_built_the_other_way(both_builds, tmp_path):
    from warehouse.analyse.exports import export_marts

    with pytest.raises(ValueError, match="unblinded warehouse: a blinded export may not write it"):
        export_marts(both_builds / "unblinded" / "warehouse.duckdb", tmp_path / "b", blinded=True)
    with pytest.raises(ValueError, match="is a blinded warehouse"):
        export_marts(both_builds / "warehouse.duckdb", tmp_path / "u", blinded=False)
    assert not (tmp_path / "b").exists() and not (tmp_path / "u").exists()
