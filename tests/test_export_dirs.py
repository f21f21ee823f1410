"""Issue 14 item 6, the rule without a build: unblinded exports go under DIR/unblinded/ only; a blinded export never
goes there (warehouse.analyse.exports.check_export_dir, used by `warehouse export`)."""

from __future__ import annotations

import pytest

from warehouse.analyse.exports import check_export_dir, default_export_dir


def test_defaults_keep_the_two_apart(tmp_path):
    assert default_export_dir(tmp_path, unblinded=False) == tmp_path / "exports"
    assert default_export_dir(tmp_path, unblinded=True) == tmp_path / "unblinded" / "exports"
    check_export_dir(default_export_dir(tmp_path, False), tmp_path, unblinded=False)
    check_export_dir(default_export_dir(tmp_path, True), tmp_path, unblinded=True)


@pytest.mark.parametrize("out", ["unblinded", "unblinded/exports", "unblinded/a/b", "exports/../unblinded/x"])
def test_a_blinded_export_may_not_go_under_the_unblinded_root(tmp_path, out):
    with pytest.raises(ValueError, match="may not be written under"):
        check_export_dir(tmp_path / out, tmp_path, unblinded=False)


@pytest.mark.parametrize("out", ["exports", ".", "unblinded-copy", "unblinded/../exports"])
def test_an_unblinded_export_may_not_go_outside_it(tmp_path, out):
    with pytest.raises(ValueError, match="goes under .* only"):
        check_export_dir(tmp_path / out, tmp_path, unblinded=True)


def test_a_symbolic_link_into_the_unblinded_root_is_followed(tmp_path):
    (tmp_path / "unblinded").mkdir()
    (tmp_path / "looks-blinded").symlink_to(tmp_path / "unblinded")
    with pytest.raises(ValueError, match="may not be written under"):
        check_export_dir(tmp_path / "looks-blinded" / "exports", tmp_path, unblinded=False)
    check_export_dir(tmp_path / "looks-blinded" / "exports", tmp_path, unblinded=True)


def test_blinded_paths_beside_the_unblinded_root_are_fine(tmp_path):
    for out in ("exports", "other/exports", "unblinded-not"):
        check_export_dir(tmp_path / out, tmp_path, unblinded=False)
