"""The state of `OdmReader`'s streaming parse (``odm.py``): the open elements, the subjects seen, and the position
within ClinicalData (subject, event, form, item group) with each element's XPath and the values gathered so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree.ElementTree import Element


def xpath_literal(v: str) -> str:
    """A string as an XPath literal."""
    return f'"{v}"' if "'" in v else f"'{v}'"


@dataclass
class Position:
    """Where the parse is within one ClinicalData: its study, and the subject, event, form and item group being
    read (None outside one), with the XPath of each and the values gathered so far."""

    study: str = ""
    study_site: str | None = None  # a site-level study's OID (multi-study files): the subjects' site
    # SubjectData
    subject: str | None = None
    site: str | None = None
    subject_path: str | None = None
    pending: list[tuple[str, dict]] = field(default_factory=list)  # (table, row) waiting for the subject's end
    seen: dict[tuple, tuple[str, dict]] = field(default_factory=dict)  # record key -> (path, values) first given
    path_counts: dict[str, int] = field(default_factory=dict)
    # StudyEventData
    event_oid: str | None = None
    event: str | None = None
    event_key: str | None = None
    event_path: str | None = None
    # FormData
    form: str | None = None
    form_key: str | None = None
    form_values: dict[str, str | None] = field(default_factory=dict)  # the form's non-repeating groups, merged
    form_value_paths: dict[str, str] = field(default_factory=dict)
    form_path: str | None = None
    # ItemGroupData
    ig: str | None = None
    ig_key: str | None = None
    ig_values: dict[str, str | None] = field(default_factory=dict)
    ig_path: str | None = None

    def path(self) -> str:
        """The innermost element's path, for an error's location."""
        return self.ig_path or self.form_path or self.event_path or self.subject_path or "/ODM"

    def unique_path(self, path: str) -> str:
        """An element's path, with XPath's position ``[n]`` when an identical path came before in the
        subject (a FormData given twice with the same keys): every row keeps a location of its own."""
        counts = self.path_counts
        n = counts[path] = counts.get(path, 0) + 1
        return path if n == 1 else f"{path}[{n}]"

    def end_event(self) -> None:
        self.event_oid = self.event = self.event_key = self.event_path = None

    def end_subject(self) -> None:
        self.subject = self.site = self.subject_path = None
        self.pending, self.seen, self.path_counts = [], {}, {}


@dataclass
class ParseState:
    """The streaming parse of one file: open elements, subjects seen, and the position in ClinicalData."""

    stack: list[Element] = field(default_factory=list)
    subjects_meta: dict[str, dict] = field(default_factory=dict)  # SubjectKey -> its subjects metadata row
    n_subjects: int = 0
    clinical: bool = False  # a ClinicalData has started
    root_checked: bool = False
    pos: Position = field(default_factory=Position)
