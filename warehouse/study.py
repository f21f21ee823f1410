"""The study configuration (a project's `study.toml`): the one place where a study's parameters live.

Only `[study]` (id, title) is required. Everything else is optional and empty when absent: `[time]` (the anchor of
study time H0: without it no `_hrs` columns), `[norepinephrine]` (salt factors and the items whose doses are
converted to base), `[bradycardia]`, `[adverse_events]`, `[windows]`, `[schedule]`, `[treatment]` (arms and the
blinded label), `[export]` (the CSV dialect, when detection gets it wrong), `[parameters]` (the project's own
derivation parameters: each key a typed column of `src.study_parameters`), `[code_lists]` (which eCRF item's codes
each code-list parameter maps, `name = "form.item"`: staging checks the export's data dictionary against it).
Sections `warehouse init` writes for people to read (`[forms]`, `[sites]`, `[identifiers]`, `[datetimes]`) are not
read by the engine."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

EXPORT_KEYS = ("encoding", "delimiter", "decimal_comma", "format")
# [parameters]: a key is a column name of src.study_parameters; its TOML value gives the column's type
PARAMETER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
RESERVED_PREFIXES = ("window_", "ne_salt_factor_", "export_")  # the columns of [windows], salts and [export]
INT32 = (-(2 ** 31), 2 ** 31 - 1)
# a [parameters] table of strings (`name = { "1" = "DOSE NOT CHANGED", ... }`): a mapping such as eCRF code ->
# CDISC term, kept as study metadata rather than as literals in SQL; one list of (key, value) entries
MAPPING_TYPE = 'STRUCT("key" VARCHAR, "value" VARCHAR)[]'


@dataclass(frozen=True)
class StudyConfig:
    study_id: str
    title: str
    anchor_form: str | None = None
    anchor_item: str | None = None
    ne_salt_factors: dict[str, float] = field(default_factory=dict)
    ne_salt_labels: dict[str, str] = field(default_factory=dict)
    ne_drug_code: str | None = None
    ne_base_doses: dict[str, dict[str, str]] = field(default_factory=dict)
    bradycardia_hr_threshold: float | None = None
    bradycardia_min_readings: int | None = None
    bradycardia_window_hours: float | None = None
    teae_window_hours: float | None = None
    windows: dict[str, tuple[float, float]] = field(default_factory=dict)
    arms: dict[str, str] = field(default_factory=dict)
    blinded_label: str = "Blinded"
    # the study's schedule: hourly hemodynamics H0..H<hemo_hourly_last_hour>; the hours MAP/NE is analysed at
    hemo_hourly_last_hour: int | None = None
    map_ne_hours: tuple[int, ...] = ()
    source: Path = field(default=Path())
    # CSV dialect of the study's exports ([export] table); None = detected from each file
    export_encoding: str | None = None
    export_delimiter: str | None = None
    export_decimal_comma: bool | None = None
    # the project's own parameters ([parameters]): name -> (value, DuckDB type)
    parameters: dict[str, tuple[object, str]] = field(default_factory=dict)
    # [code_lists]: a code-list parameter (a [parameters] table of strings) -> the eCRF item it maps ("form.item")
    code_lists: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str):
        """A [parameters] key read as an attribute (`{"study": "<parameter>"}` in a suite reads it so); only
        called for names that are not fields (keys that would shadow one are refused when loading)."""
        extra = self.__dict__.get("parameters") or {}
        if not name.startswith("_") and name in extra:
            return extra[name][0]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def export_options(self) -> dict[str, str | bool | None]:
        """The CSV dialect overrides as ``land_export`` keyword arguments (None = detect)."""
        return {"encoding": self.export_encoding, "delimiter": self.export_delimiter,
                "decimal_comma": self.export_decimal_comma}

    @property
    def bradycardia_period(self) -> str | None:
        """The label of the bradycardia window from H0 (`H0-H24`), made from its length."""
        return None if self.bradycardia_window_hours is None else f"H0-H{self.bradycardia_window_hours:g}"

    @property
    def anchor(self) -> str | None:
        """`form.item` of study time zero (H0), None when the study has no [time] anchor."""
        return f"{self.anchor_form}.{self.anchor_item}" if self.anchor_form and self.anchor_item else None

    def parameter_columns(self) -> dict[str, tuple[object, str]]:
        """The parameters as `src.study_parameters` holds them: one row, a typed column per parameter
        (name -> (value, DuckDB type)), so SQL reads `study_parameters.teae_window_hours` and a misspelt name is
        an unknown column at compile time. Windows give `window_<name>_lo` / `_hi`; salt factors
        `ne_salt_factor_<code>`; export options are null when detected."""
        columns: dict[str, tuple[object, str]] = {
            "study_id": (self.study_id, "VARCHAR"),
            "anchor": (self.anchor, "VARCHAR"),
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
        columns.update(self.parameters)  # the project's own, [parameters] (names checked against these on load)
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
    """Load a study configuration (TOML); with no path, the active project's `study.toml` (see
    warehouse.resources). A missing required key is a ValueError naming the file and the key."""
    from warehouse.resources import study_file

    source = Path(path) if path else study_file()
    raw = tomllib.loads(source.read_text(encoding="utf-8"))
    try:
        return study_from_toml(raw, source)
    except KeyError as err:
        raise ValueError(f"{source}: missing key {err.args[0]!r} (see the study configuration in docs/new-study.md)") \
            from None


def study_from_toml(raw: dict, source: Path) -> StudyConfig:
    """The sections of a study.toml as a StudyConfig: `[study]` required, the rest optional (see the module)."""
    ne = raw.get("norepinephrine", {})
    time, brady, schedule, treatment = (raw.get(k, {}) for k in ("time", "bradycardia", "schedule", "treatment"))
    encoding, delimiter, decimal_comma = _export_dialect(raw.get("export", {}), source)
    optional = lambda table, key, kind: kind(table[key]) if key in table else None  # noqa: E731
    config = StudyConfig(
        study_id=raw["study"]["id"],
        title=raw["study"].get("title", raw["study"]["id"]),
        anchor_form=time.get("anchor_form"),
        anchor_item=time.get("anchor_item"),
        ne_salt_factors={str(k): float(v) for k, v in ne.get("salt_factors", {}).items()},
        ne_salt_labels={str(k): str(v) for k, v in ne.get("salt_labels", {}).items()},
        ne_drug_code=optional(ne, "drug_code", str),
        ne_base_doses={form: dict(spec) for form, spec in ne.get("base_doses", {}).items()},
        bradycardia_hr_threshold=optional(brady, "hr_threshold", float),
        bradycardia_min_readings=optional(brady, "min_consecutive_readings", int),
        bradycardia_window_hours=optional(brady, "window_hours", float),
        teae_window_hours=optional(raw.get("adverse_events", {}), "teae_window_hours", float),
        windows={k: (float(v[0]), float(v[1])) for k, v in raw.get("windows", {}).items()},
        arms={str(k): str(v) for k, v in treatment.get("arms", {}).items()},
        blinded_label=treatment.get("blinded_label", "Blinded"),
        hemo_hourly_last_hour=optional(schedule, "hemo_hourly_last_hour", int),
        map_ne_hours=tuple(int(h) for h in schedule.get("map_ne_hours", ())),
        source=source,
        export_encoding=encoding,
        export_delimiter=delimiter,
        export_decimal_comma=decimal_comma,
    )
    if "parameters" in raw:
        config = replace(config, parameters=_own_parameters(raw["parameters"], source, config))
    if "code_lists" in raw:
        config = replace(config, code_lists=_code_lists(raw["code_lists"], source, config))
    return config


def _code_lists(table: object, source: Path, config: StudyConfig) -> dict[str, str]:
    """The [code_lists] table: `<parameter> = "form.item"`, the parameter a [parameters] table of strings (a code
    list) and the item the eCRF item whose codes it maps. Which item a code list serves is study metadata: the
    engine only checks, at staging, that the data dictionary allows no code the list lacks (warehouse.stage.
    codelists). Anything else is a ValueError naming the file and the key."""
    if not isinstance(table, dict):
        raise ValueError(f"{source}: [code_lists] must be a table of `parameter = \"form.item\"`")
    out: dict[str, str] = {}
    for name, ref in table.items():
        where = f"{source}: [code_lists] {name}"
        if name not in config.parameters or config.parameters[name][1] != MAPPING_TYPE:
            raise ValueError(f"{where}: not a code list of [parameters] (a table of strings, code -> term)")
        if not isinstance(ref, str) or not re.fullmatch(r"[^.\s]+\.[^.\s]+", ref):
            raise ValueError(f"{where}: {ref!r} is not an eCRF item as \"form.item\"")
        out[name] = ref
    return out


def _own_parameters(table: object, source: Path, config: StudyConfig) -> dict[str, tuple[object, str]]:
    """The [parameters] table: `name = value`, each a column of `src.study_parameters` typed from its TOML value
    (string VARCHAR, integer INTEGER, float DOUBLE, true/false BOOLEAN, a list of integers INTEGER[], a table of
    strings a list of (key, value) entries: MAPPING_TYPE). A name must
    be a lower-case SQL name that no built-in parameter or field of the configuration has; anything else is a
    ValueError naming the file and the key."""
    if not isinstance(table, dict):
        raise ValueError(f"{source}: [parameters] must be a table of `name = value`")
    taken = set(config.parameter_columns())
    own: dict[str, tuple[object, str]] = {}
    for name, value in table.items():
        where = f"{source}: [parameters] {name}"
        if not PARAMETER_NAME.match(name):
            raise ValueError(f"{where}: a parameter name is lower-case letters, digits and _, starting with a "
                             "letter (it is a column name of src.study_parameters)")
        if name in taken or name.startswith(RESERVED_PREFIXES) or name in StudyConfig.__dataclass_fields__ \
                or hasattr(StudyConfig, name):
            raise ValueError(f"{where}: the name of a built-in study parameter or setting; choose another")
        own[name] = (value, _parameter_type(value, where))
    return own


def _parameter_type(value: object, where: str) -> str:
    """The DuckDB type of a [parameters] value (the types `src.study_parameters` is written with)."""
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        if not INT32[0] <= value <= INT32[1]:
            raise ValueError(f"{where}: {value} does not fit an INTEGER (32 bits); write it as a float or a string")
        return "INTEGER"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, str):
        return "VARCHAR"
    if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value) \
            and all(INT32[0] <= v <= INT32[1] for v in value):
        return "INTEGER[]"
    if isinstance(value, dict) and value and all(isinstance(v, str) for v in value.values()):
        return MAPPING_TYPE  # a code list (eCRF code -> term): SQL reads map_from_entries(p.<name>)[code]
    raise ValueError(f"{where}: {value!r} is not a string, integer, float, true/false, list of integers or table of "
                     "strings (a date: write it as a string and cast it in SQL)")


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
    """A study that is neither a study TOML file nor `adress` (the demo study)."""


def resolve_study(study: str | None) -> StudyConfig:
    """A study configuration: None / '' for the active project's study.toml, `adress` for the demo study, or a
    path to a study TOML file."""
    from warehouse.resources import STUDY_FILE, demo_project

    if not study:
        return load_study()
    path = Path(study)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UnknownStudy(f"study file not found: {path}")
        return load_study(path)
    if study.lower() == "adress":
        return load_study(demo_project() / STUDY_FILE)
    raise UnknownStudy(f"unknown study {study!r}: give a study TOML file, a project (--project DIR), or adress "
                       "(the demo study)")
