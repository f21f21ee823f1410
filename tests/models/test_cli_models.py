"""The `warehouse compile | lineage | docs | run` commands on the demo build."""

import shutil

from typer.testing import CliRunner

from warehouse.cli import app

runner = CliRunner()


def test_compile_lineage_docs_run(demo_build, tmp_path):
    data_dir = demo_build.published.parents[1]  # the demo build is unblinded: DIR/unblinded/warehouse.duckdb
    result = runner.invoke(app, ["compile", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "ok  main.adeff" in result.output and "32 models compiled" in result.output

    result = runner.invoke(app, ["lineage", "adeff.AVAL", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert "pe_challenge.pe_map_max" in result.output and result.output.startswith("adeff.AVAL")

    result = runner.invoke(app, ["lineage", "adeff.NOPE", "--data-dir", str(data_dir)])
    assert result.exit_code == 2 and "no column 'NOPE'" in result.output

    out = tmp_path / "catalog.html"
    result = runner.invoke(app, ["docs", "--data-dir", str(data_dir), "--unblinded", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "<svg" in out.read_text(encoding="utf-8")

    dev_root = tmp_path / "dev-data"
    (dev_root / "unblinded" / "builds").mkdir(parents=True)
    shutil.copyfile(demo_build.published, dev_root / "unblinded" / "builds" / "b.duckdb")
    result = runner.invoke(app, ["run", "--data-dir", str(dev_root), "--unblinded", "--select", "int_pe_response+"])
    assert result.exit_code == 0, result.output
    assert "int_pe_response" in result.output and "adeff" in result.output and "not selected" in result.output
    assert (dev_root / "unblinded" / "dev" / "warehouse.duckdb").is_file()

    result = runner.invoke(app, ["compile", "--data-dir", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "warehouse build" in result.output
