"""Code lists against the data dictionary (issue 18 follow-up): an eCRF code that a study.toml code list
([parameters] table of strings, linked to its item by [code_lists]) has no term for stops the build at staging,
naming the list, the item and the code, instead of giving a null CDISC term in ADAE."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from warehouse.extract.rawzone import CHOICES_SCHEMA, ITEMS_SCHEMA
from warehouse.request import BuildError, BuildRequest
from warehouse.stage.codelists import code_list_problems, require_code_lists
from warehouse.study import load_study

STUDY = """[study]
id = "CT1"

[parameters]
aeout_terms = { "1" = "RECOVERED/RESOLVED", "2" = "FATAL" }
site_label = "single site"

[code_lists]
aeout_terms = "ae.ae_outcome"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text, encoding="utf-8")
    return path


def meta(codes: list[tuple[str, str]], item: str = "ae_outcome", form: str = "ae") -> tuple[pl.DataFrame, ...]:
    """The raw zone's items and choices (their schemas) for one coded item with these (code, label) choices."""
    items = pl.DataFrame([{"form": form, "item": item, "field_type": "radio"}], schema=ITEMS_SCHEMA)
    choices = pl.DataFrame([{"item": item, "code": c, "label": lab, "order": k} for k, (c, lab) in
                            enumerate(codes, 1)], schema=CHOICES_SCHEMA)
    return items, choices


def test_every_code_mapped_is_no_problem(tmp_path):
    study = load_study(write(tmp_path, STUDY))
    assert code_list_problems(study, *meta([("1", "recovered"), ("2", "fatal")])) == []
    require_code_lists(study, *meta([("1", "recovered"), ("2", "fatal")]))  # does not raise


def test_a_code_without_a_term_is_named_with_its_list_and_item(tmp_path):
    study = load_study(write(tmp_path, STUDY))
    problems = code_list_problems(study, *meta([("1", "recovered"), ("2", "fatal"), ("3", "unknown"),
                                                ("4", "recovering")]))
    assert problems == [  # the study file by its path
        (f"{study.source}: [parameters] aeout_terms has no term for code '3' (unknown) of eCRF item ae.ae_outcome, "
         "which the export's data dictionary allows"),
        (f"{study.source}: [parameters] aeout_terms has no term for code '4' (recovering) of eCRF item "
         "ae.ae_outcome, which the export's data dictionary allows"),
    ]
    with pytest.raises(BuildError, match=r"code '3' \(unknown\) .* \(and 1 more\)$"):
        require_code_lists(study, *meta([("1", "a"), ("2", "b"), ("3", "unknown"), ("4", "recovering")]))


def test_an_item_missing_or_not_coded_is_a_problem(tmp_path):
    study = load_study(write(tmp_path, STUDY))
    assert code_list_problems(study, *meta([("1", "x")], item="ae_outcome_v2")) == [
        f"{study.source}: [code_lists] aeout_terms: the export has no item ae.ae_outcome"]
    # an export without the form at all (another study's) is not checked: nothing there uses the list
    assert code_list_problems(study, *meta([("9", "x")], form="other_form")) == []
    items, _ = meta([])
    assert code_list_problems(study, items, pl.DataFrame(schema=CHOICES_SCHEMA)) == [
        (f"{study.source}: [code_lists] aeout_terms: the export's data dictionary gives item ae.ae_outcome no "
         "choices (not a coded item)")]


@pytest.mark.parametrize("entry, reason", [
    ('site_label = "ae.ae_outcome"', "site_label: not a code list of [parameters]"),
    ('missing_terms = "ae.ae_outcome"', "missing_terms: not a code list of [parameters]"),
    ('aeout_terms = "ae_outcome"', "aeout_terms: 'ae_outcome' is not an eCRF item as \"form.item\""),
])
def test_a_bad_code_lists_entry_names_file_and_key(tmp_path, entry, reason):
    text = STUDY.replace('aeout_terms = "ae.ae_outcome"', entry)
    path = write(tmp_path, text)
    with pytest.raises(ValueError) as err:
        load_study(path)
    assert str(err.value).startswith(f"{path}: [code_lists] {reason}")
    assert "\n" not in str(err.value)


def test_the_demo_study_links_its_three_ae_code_lists():
    assert load_study().code_lists == {"aeacn_terms": "adverse_events.ae_action",
                                       "aeout_terms": "adverse_events.ae_outcome",
                                       "aerel_terms": "adverse_events.ae_rel"}


@pytest.mark.slow
def test_a_demo_build_whose_list_lacks_a_code_stops_at_staging(tmp_path):
    """The real demo export and its data dictionary (ae_outcome allows 1-5); the study's aeout_terms without "5"
    (fatal): the build stops with that one line, and no warehouse is published."""
    from warehouse.build import run_build

    demo = load_study()
    value, kind = demo.parameters["aeout_terms"]
    lacking = {k: v for k, v in value.items() if k != "5"}
    study = replace(demo, parameters={**demo.parameters, "aeout_terms": (lacking, kind)})
    with pytest.raises(BuildError) as err:
        run_build(BuildRequest(data_dir=tmp_path, blinded=False, study=study))
    assert str(err.value) == (f"{demo.source}: [parameters] aeout_terms has no term for code '5' (fatal) of eCRF item "
                              "adverse_events.ae_outcome, which the export's data dictionary allows")
    assert not list(tmp_path.rglob("warehouse.duckdb"))
