"""Readers for the demo-study tests: they use only the exported files (csv, xml.etree), not the generator."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from warehouse.demo import DemoExport

ODM = "{http://www.cdisc.org/ns/odm/v1.3}"
KEYS = ("record_id", "redcap_event_name", "redcap_repeat_instrument", "redcap_repeat_instance",
        "redcap_data_access_group")


@dataclass
class Export:
    """An export read back from disk with the csv module only (independent of the generator's code)."""

    res: DemoExport
    header: list[str]
    rows: list[dict[str, str]]
    dictionary: list[dict[str, str]]
    kits: dict[str, str]  # kit_no -> arm
    fields: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def form_columns(self) -> dict[str, list[str]]:
        """form -> its columns in the flat export (checkboxes expanded, `<form>_complete` last)."""
        out: dict[str, list[str]] = defaultdict(list)
        for d in self.dictionary:
            name, form = d["Variable / Field Name"], d["Form Name"]
            if d["Field Type"] == "checkbox":
                codes = [c.split(",", 1)[0].strip() for c in d["Choices, Calculations, OR Slider Labels"].split("|")]
                out[form].extend(f"{name}___{c}" for c in codes)
            else:
                out[form].append(name)
        for form in out:
            out[form].append(f"{form}_complete")
        return dict(out)

    def event_rows(self, event: str) -> list[dict[str, str]]:
        return [r for r in self.rows if r["redcap_event_name"] == event and not r["redcap_repeat_instrument"]]

    def instrument_rows(self, form: str) -> list[dict[str, str]]:
        return [r for r in self.rows if r["redcap_repeat_instrument"] == form]

    def arm_of(self) -> dict[str, str]:
        """record_id -> arm, joining the eCRF kit number with the restricted randomisation list."""
        return {r["record_id"]: self.kits[r["kit_no"]] for r in self.event_rows("h0_arm_1") if r["kit_no"]}

    def rand_dt(self) -> dict[str, datetime]:
        return {r["record_id"]: parse_dt(r["rand_dt"]) for r in self.event_rows("h0_arm_1") if r["rand_dt"]}

    def form_instances(self) -> dict[tuple, list[dict[str, str]]]:
        """(subject, event, form, instance) -> list of non-empty values per occurrence, as in the CSV."""
        cols = self.form_columns
        out: dict[tuple, list[dict[str, str]]] = defaultdict(list)
        for r in self.rows:
            forms = [r["redcap_repeat_instrument"]] if r["redcap_repeat_instrument"] else list(cols)
            for form in forms:
                if not r.get(f"{form}_complete"):
                    continue
                values = {c: r[c] for c in cols[form] if c != "record_id" and r[c] != ""}
                if form == "eligibility":
                    values["record_id"] = r["record_id"]
                inst = r["redcap_repeat_instance"] or None
                out[(r["record_id"], r["redcap_event_name"], form, inst)].append(values)
        return out


def parse_dt(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M")


def read_export(res: DemoExport) -> Export:
    data = next(res.redcap_dir.glob("ADRESS_DATA_*.csv"))
    with open(data, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        rows = [dict(zip(header, line)) for line in reader]
    with open(next(res.redcap_dir.glob("ADRESS_DataDictionary_*.csv")), encoding="utf-8", newline="") as fh:
        dictionary = list(csv.DictReader(fh))
    with open(res.randomisation_file, encoding="utf-8", newline="") as fh:
        kits = {r["kit_no"]: r["arm"] for r in csv.DictReader(fh)}
    ex = Export(res, header, rows, dictionary, kits)
    ex.fields = {d["Variable / Field Name"]: d for d in dictionary}
    return ex


def read_odm(path: Path) -> tuple[ET.Element, dict[tuple, list[dict[str, str]]], dict[str, str]]:
    """The ODM root, (subject, event, form, repeat key) -> list of ItemData dicts, and subject -> site OID."""
    root = ET.parse(path).getroot()
    out: dict[tuple, list[dict[str, str]]] = defaultdict(list)
    sites: dict[str, str] = {}
    for sd in root.iter(f"{ODM}SubjectData"):
        key = sd.get("SubjectKey")
        sites[key] = sd.find(f"{ODM}SiteRef").get("LocationOID")
        for se in sd.findall(f"{ODM}StudyEventData"):
            for fd in se.findall(f"{ODM}FormData"):
                values = {it.get("ItemOID"): it.get("Value") for it in fd.iter(f"{ODM}ItemData")}
                out[(key, se.get("StudyEventOID"), fd.get("FormOID"), fd.get("FormRepeatKey"))].append(values)
    return root, out, sites
