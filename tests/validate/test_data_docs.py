"""Issue 14 item 12: GX Data Docs with a relative data directory (the default `data`, and prefect.yaml's), and what
the report page says about them offline."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cdp import HeadlessChromium, find_chromium

from warehouse.validate.datadocs import CDN_HOSTS, DATA_DOCS_OFFLINE_NOTE


@pytest.fixture(scope="module")
def relative_build(tmp_path_factory):
    """A whole demo build (blinded, the default) run from inside a folder with `data_dir=Path("data")`."""
    from warehouse.build import BuildRequest, run_build

    root = tmp_path_factory.mktemp("relative")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        result = run_build(BuildRequest(data_dir=Path("data")))
    return root, result


@pytest.mark.slow
def test_data_docs_written_with_a_relative_data_dir(relative_build):
    root, result = relative_build
    assert not Path(result.report).is_absolute()  # the build really ran on a relative path
    report = root / result.report
    page = report.read_text(encoding="utf-8")
    assert "not written" not in page and "base_directory" not in page
    index = report.parent / "data_docs" / "index.html"
    assert index.is_file()
    assert "href='data_docs/index.html'" in page  # the link, relative to the page, finds the index
    # GX's site holds a page per validation run and per suite, under the build's reports
    assert len(list((index.parent / "validations").rglob("*.html"))) >= 3
    assert len(list((index.parent / "expectations").rglob("*.html"))) >= 3
    assert result.build_id in index.read_text(encoding="utf-8")
    # nothing was written beside the data dir (GX's site sits only inside the build's reports)
    assert sorted(p.name for p in root.iterdir()) == ["data"]


@pytest.mark.slow
def test_gx_pages_load_their_assets_from_cdns(relative_build):
    """What the report's note rests on, for the pinned GX: the site's scripts and styles are on public CDNs and
    GX's own package ships none of them, so offline the pages are unstyled and the index (a bootstrap-table
    filled in by script) is empty. If GX starts shipping them, this fails and the note can go."""
    import great_expectations

    root, result = relative_build
    index = (root / result.report).parent / "data_docs" / "index.html"
    html = index.read_text(encoding="utf-8")
    assets = re.findall(r"<(?:script|link)\b[^>]*(?:src|href)=\"([^\"]+)\"", html)
    external = [a for a in assets if a.startswith("http")]
    assert any("jquery" in a for a in external) and any("bootstrap" in a for a in external)
    assert {re.sub(r"^https?://([^/]+)/.*", r"\1", a) for a in external} <= set(CDN_HOSTS)
    static = Path(great_expectations.__file__).parent / "render" / "view" / "static"
    shipped = [p.name for p in static.rglob("*") if p.suffix in (".js", ".css")]
    assert not [n for n in shipped if re.search(r"jquery|bootstrap", n, re.I)]


@pytest.mark.slow
def test_report_page_says_data_docs_need_internet(relative_build):
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary (CI installs it: apt-get install chromium chromium-driver); set $CHROMIUM")
    root, result = relative_build
    report = root / result.report
    with HeadlessChromium(binary) as browser:
        page = browser.open(report)
        assert page.requests == [report.resolve().as_uri()] and page.errors == []
        note = page.evaluate("document.querySelector('#data-docs-offline').textContent")
        shown = page.evaluate("document.querySelector('#data-docs-offline').getBoundingClientRect().height > 0")
        href = page.evaluate("document.querySelector('#data-docs').getAttribute('href')")
    assert note.startswith("Data Docs need internet access for their styles and scripts") and shown
    assert "the findings above are complete without them" in note and note.rstrip(".") == DATA_DOCS_OFFLINE_NOTE
    assert (report.parent / href).is_file()
