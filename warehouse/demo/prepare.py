"""The demo study's export for a build: generated once per data directory, its randomisation list kept
only under the unblinded root.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from warehouse.publish import (
    crash_point,
)
from warehouse.request import BuildRequest


def prepare_demo_export(request: BuildRequest) -> tuple[Path, Path | None]:
    """Generate the demo study's export under DIR/demo; its randomisation list goes only to an unblinded root.

    A blinded data directory must hold nothing that maps kits to arms, even after a kill: the demo is generated
    in a temporary folder under DIR/unblinded/ (where the restricted list is written), its export files are moved
    into DIR/demo/ by an atomic rename, and an unblinded build keeps the list as DIR/unblinded/restricted/
    randomisation.csv (also by rename). What a killed generation leaves stays under DIR/unblinded/ and is removed
    by the next one.
    """
    from warehouse.demo import generate_demo

    target = request.data_dir / "demo" / f"seed-{request.demo_seed}-n{request.demo_subjects}"
    restricted = request.data_dir / "unblinded"
    randomisation_target = restricted / "restricted" / "randomisation.csv"
    need_list = not request.blinded and request.randomisation is None
    if (target / "redcap").is_dir() and (not need_list or randomisation_target.is_file()):
        return target / "redcap", randomisation_target if need_list else None
    restricted.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(restricted, ".demo-")
    for old in request.data_dir.glob("demo-*"):  # earlier versions generated here: a killed one left its list
        if old.is_dir() and (old / "randomisation.csv").exists():
            shutil.rmtree(old, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".demo-{os.getpid()}-", dir=restricted))
    try:
        result = generate_demo(tmp, subjects=request.demo_subjects, seed=request.demo_seed,
                               inject_rate=request.demo_inject_rate)
        crash_point("demo")
        copy_demo_manifest(result.manifest_file, tmp / "manifest.blinded.json")
        target.mkdir(parents=True, exist_ok=True)
        for name in ("redcap", "odm"):
            if (tmp / name).is_dir() and not (target / name).exists():
                os.rename(tmp / name, target / name)  # same file system: whole or absent
        os.replace(tmp / "manifest.blinded.json", target / "manifest.json")
        if need_list:
            randomisation_target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(result.randomisation_file, randomisation_target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not any(restricted.iterdir()):  # a blinded build leaves no unblinded root behind
            restricted.rmdir()
    return target / "redcap", randomisation_target if need_list else None


def remove_stale_temporaries(folder: Path, prefix: str) -> list[Path]:
    """Remove `<prefix><pid>-...` folders whose process is gone (a killed generation or landing)."""
    from warehouse.publish import pid_alive

    removed = []
    for path in folder.glob(f"{prefix}*"):
        pid = path.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def copy_demo_manifest(source: Path, target: Path) -> None:
    """The demo generator's manifest (seed, files, injected problems) without its `parameters`: they hold the
    simulation's per-arm targets (arm codes and labels, effect sizes and event rates by arm), which a blinded data
    directory must not keep."""
    import json

    manifest = json.loads(source.read_text(encoding="utf-8"))
    manifest.pop("parameters", None)
    target.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
