"""The study configuration: the one place where a study's parameters live (thresholds, windows, salt factors)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

_STUDIES = Path(__file__).resolve().parent / "studies"
EXPORT_KEYS = ("encoding", "delimiter", "decimal_comma")


@dataclass(frozen=True)
class StudyConfig:
    study_id: str
    title: str
    anchor_form: str
    anchor_item: str
    ne_salt_factors: dict[str, float]
    ne_salt_labels: dict[str, str]
    ne_drug_code: str
    ne_base_doses: dict[str, dict[str, str]]
    bradycardia_hr_threshold: float
    bradycardia_min_readings: int
    bradycardia_window_hours: float
    teae_window_hours: float
    windows: dict[str, tuple[float, float]]
    arms: dict[str, str]
    blinded_label: str
    # the study's schedule: hourly hemodynamics H0..H<hemo_hourly_last_hour>; the hours MAP/NE is analysed at
    hemo_hourly_last_hour: int = 24
    map_ne_hours: tuple[int, ...] = (0, 6, 12, 24)
    source: Path = field(default=Path())
    # CSV dialect of the study's exports ([export] table); None = detected from each file
    export_encoding: str | None = None
    export_delimiter: str | None = None
    export_decimal_comma: bool | None = None

    def export_options(self) -> dict[str, str | bool | None]:
        """The CSV dialect overrides as ``land_export`` keyword arguments (None = detect)."""
        return {"encoding": self.export_encoding, "delimiter": self.export_delimiter,
                "decimal_comma": self.export_decimal_comma}

    def as_parameters(self) -> dict[str, str]:
        """Flat name -> value pairs, stored in the warehouse so every build says which parameters it used."""
        params = {
            "study_id": self.study_id,
            "anchor": f"{self.anchor_form}.{self.anchor_item}",
            "bradycardia_hr_threshold": str(self.bradycardia_hr_threshold),
            "bradycardia_min_readings": str(self.bradycardia_min_readings),
            "bradycardia_window_hours": str(self.bradycardia_window_hours),
            "teae_window_hours": str(self.teae_window_hours),
        }
        params.update({f"ne_salt_factor_{k}": str(v) for k, v in self.ne_salt_factors.items()})
        params.update({f"window_{k}": f"{lo},{hi}" for k, (lo, hi) in self.windows.items()})
        params.update({f"export_{k}": str(v) for k, v in self.export_options().items() if v is not None})
        return params


    @property
    def bradycardia_period(self) -> str:
        """The label of the bradycardia window from H0 (`H0-H24`), made from its length."""
        return f"H0-H{self.bradycardia_window_hours:g}"

    def parameter_columns(self) -> dict[str, tuple[object, str]]:
        """The parameters as `src.study_parameters` holds them: one row, a typed column per parameter
        (name -> (value, DuckDB type)), so SQL reads `study_parameters.teae_window_hours` and a misspelt name is
        an unknown column at compile time. Windows give `window_<name>_lo` / `_hi`; salt factors
        `ne_salt_factor_<code>`; export options are null when detected."""
        columns: dict[str, tuple[object, str]] = {
            "study_id": (self.study_id, "VARCHAR"),
            "anchor": (f"{self.anchor_form}.{self.anchor_item}", "VARCHAR"),
            "ne_drug_code": (self.ne_drug_code, "VARCHAR"),
            "bradycardia_hr_threshold": (self.bradycardia_hr_threshold, "DOUBLE"),
            "bradycardia_min_readings": (self.bradycardia_min_readings, "INTEGER"),
            "bradycardia_window_hours": (self.bradycardia_window_hours, "DOUBLE"),
            "bradycardia_period": (self.bradycardia_period, "VARCHAR"),
            "teae_window_hours": (self.teae_window_hours, "DOUBLE"),
            "hemo_hourly_last_hour": (self.hemo_hourly_last_hour, "INTEGER"),
            "map_ne_hours": (list(self.map_ne_hours), "INTEGER[]"),
        }
        columns.update({f"ne_salt_factor_{k}": (v, "DOUBLE") for k, v in self.ne_salt_factors.items()})
        for k, (lo, hi) in self.windows.items():
            columns[f"window_{k}_lo"] = (lo, "DOUBLE")
            columns[f"window_{k}_hi"] = (hi, "DOUBLE")
        columns.update({"export_encoding": (self.export_encoding, "VARCHAR"),
                        "export_delimiter": (self.export_delimiter, "VARCHAR"),
                        "export_decimal_comma": (self.export_decimal_comma, "BOOLEAN")})
        return columns

    def window(self, name: str) -> tuple[float, float]:
        """A visit window by name (`pe_h6`); KeyError names the known ones."""
        if name not in self.windows:
            raise KeyError(f"study {self.study_id} ({self.source}): no window {name!r} in [windows] "
                           f"(known: {', '.join(self.windows)})")
        return self.windows[name]


def load_study(path: Path | str | None = None) -> StudyConfig:
    """Load a study configuration (TOML); with no path, the built-in demo study."""
    source = Path(path) if path else _STUDIES / "adress.toml"
    raw = tomllib.loads(source.read_text(encoding="utf-8"))
    ne = raw["norepinephrine"]
    encoding, delimiter, decimal_comma = _export_dialect(raw.get("export", {}), source)
    return StudyConfig(
        study_id=raw["study"]["id"],
        title=raw["study"].get("title", raw["study"]["id"]),
        anchor_form=raw["time"]["anchor_form"],
        anchor_item=raw["time"]["anchor_item"],
        ne_salt_factors={str(k): float(v) for k, v in ne["salt_factors"].items()},
        ne_salt_labels={str(k): str(v) for k, v in ne["salt_labels"].items()},
        ne_drug_code=str(ne["drug_code"]),
        ne_base_doses={form: dict(spec) for form, spec in ne.get("base_doses", {}).items()},
        bradycardia_hr_threshold=float(raw["bradycardia"]["hr_threshold"]),
        bradycardia_min_readings=int(raw["bradycardia"]["min_consecutive_readings"]),
        bradycardia_window_hours=float(raw["bradycardia"]["window_hours"]),
        teae_window_hours=float(raw["adverse_events"]["teae_window_hours"]),
        windows={k: (float(v[0]), float(v[1])) for k, v in raw["windows"].items()},
        arms={str(k): str(v) for k, v in raw["treatment"]["arms"].items()},
        blinded_label=raw["treatment"]["blinded_label"],
        hemo_hourly_last_hour=int(raw.get("schedule", {}).get("hemo_hourly_last_hour", 24)),
        map_ne_hours=tuple(int(h) for h in raw.get("schedule", {}).get("map_ne_hours", (0, 6, 12, 24))),
        source=source,
        export_encoding=encoding,
        export_delimiter=delimiter,
        export_decimal_comma=decimal_comma,
    )


def _export_dialect(table: dict, source: Path) -> tuple[str | None, str | None, bool | None]:
    """The [export] table: encoding, delimiter (one character, or "tab"), decimal_comma (bool); absent or
    empty = detect. ValueError names the file and the key."""
    if not isinstance(table, dict):
        raise ValueError(f"{source}: [export] must be a table")
    unknown = sorted(set(table) - set(EXPORT_KEYS))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) in [export]: {', '.join(unknown)} "
                         f"(known: {', '.join(EXPORT_KEYS)})")
    for key in ("encoding", "delimiter"):
        if not isinstance(table.get(key, ""), str):
            raise ValueError(f"{source}: [export] {key} must be a string, not {table[key]!r}")
    decimal_comma = table.get("decimal_comma")
    if decimal_comma is not None and not isinstance(decimal_comma, bool):
        raise ValueError(f"{source}: [export] decimal_comma must be true or false, not {decimal_comma!r}")
    if not table:
        return None, None, None
    from warehouse.extract.sniff import check_dialect  # (imports the extract package: only when needed)

    try:
        encoding, delimiter = check_dialect(table.get("encoding"), table.get("delimiter"))
    except ValueError as exc:
        raise ValueError(f"{source}: [export] {exc}") from None
    return encoding, delimiter, decimal_comma


class UnknownStudy(ValueError):
    """A study name that is neither a TOML file nor a study under warehouse/studies."""


def resolve_study(study: str | None) -> StudyConfig:
    """A study configuration: None / '' for the built-in demo study, a study name under warehouse/studies, or a
    path to a study TOML file."""
    if not study:
        return load_study()
    path = Path(study)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UnknownStudy(f"study file not found: {path}")
        return load_study(path)
    named = _STUDIES / f"{study.lower()}.toml"
    if not named.is_file():
        known = ", ".join(sorted(p.stem for p in _STUDIES.glob("*.toml")))
        raise UnknownStudy(f"unknown study {study!r}: give a study TOML file or one of {known}")
    return load_study(named)
