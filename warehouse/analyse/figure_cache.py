"""The analysis report's figures, drawn only when their data changed: each SVG is kept in the data directory's cache
keyed by a hash of what it is drawn from (the frames, the arms, the drawing code, matplotlib's version).

Why: drawing the four figures costs ~0.5 s and importing matplotlib ~0.8 s, a tenth of the 32-subject demo's build
(bench/profile_build.py), and a data manager's rebuild after an export that changed no mart value draws the same
pixels again. The figures are deterministic (fixed jitter seed and SVG hash salt), so a cached SVG is the SVG the
build would draw, byte for byte; a cache entry that cannot be read is drawn again. An unblinded build's cache lives
under DIR/unblinded/ like everything else of an unblinded build (the caller passes it).
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import polars as pl

# figure -> (function in warehouse.analyse.figures, the inputs it is drawn from, by name)
FIGURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "pe_response": ("pe_response_figure", ("adeff",)),
    "kaplan_meier": ("kaplan_meier_figure", ("ar_km",)),
    "hemodynamics": ("hemodynamics_figure", ("hemodynamics",)),
    "ne_trajectories": ("ne_trajectories_figure", ("hemodynamics",)),
}
KEEP_PER_FIGURE = 3  # cache entries kept per figure (the newest): a few builds back and forth


def figure_key(name: str, frames: list[pl.DataFrame], arms: list[str]) -> str:
    """What a figure depends on: its name, the drawing code, matplotlib's version, the arms and every frame's
    content (Arrow IPC bytes: a changed value, column or type changes the key; a changed row order only misses)."""
    code = Path(__file__).with_name("figures.py").read_bytes()
    digest = hashlib.sha256(f"figure-v1 {name} matplotlib {version('matplotlib')}\n".encode())
    digest.update(hashlib.sha256(code).digest())
    digest.update(json.dumps(arms).encode())
    for frame in frames:
        buffer = io.BytesIO()
        frame.write_ipc(buffer, compression="uncompressed")
        digest.update(hashlib.sha256(buffer.getvalue()).digest())
    return digest.hexdigest()[:32]


def draw(function: str) -> Callable[..., str]:
    """A drawing function of figures.py, imported (with matplotlib) only when a figure must be drawn."""
    from warehouse.analyse import figures

    return getattr(figures, function)


def read_cached(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8") if path.is_file() else None
    except (OSError, UnicodeDecodeError):  # a damaged entry is drawn again
        return None


def store(path: Path, svg: str) -> None:
    """Write atomically, then keep the newest KEEP_PER_FIGURE entries of this figure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{id(svg)}.tmp")
    tmp.write_text(svg, encoding="utf-8")
    tmp.replace(path)
    name = path.name.rsplit("-", 1)[0]
    entries = sorted(path.parent.glob(f"{name}-*.svg"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP_PER_FIGURE:]:
        old.unlink(missing_ok=True)


def report_figures(inputs: dict[str, pl.DataFrame], arms: list[str], cache_dir: Path | None = None) -> dict[str, str]:
    """The SVG of every figure in FIGURES, drawn from ``inputs`` (frames by name), or read from ``cache_dir`` when
    an earlier build drew it from the same data; without ``cache_dir`` every figure is drawn."""
    out: dict[str, str] = {}
    for name, (function, needs) in FIGURES.items():
        frames = [inputs[n] for n in needs]
        path = None if cache_dir is None else Path(cache_dir) / f"{name}-{figure_key(name, frames, arms)}.svg"
        svg = read_cached(path) if path is not None else None
        if svg is None:
            svg = draw(function)(*frames, arms)
            if path is not None:
                store(path, svg)
        else:
            path.touch()  # the newest use, for pruning
        out[name] = svg
    return out
