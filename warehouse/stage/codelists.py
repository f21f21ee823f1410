"""Code lists against the export's data dictionary: every code the eCRF allows for an item that a study code list
maps (study.toml `[code_lists]`: `<parameter> = "form.item"`) must have a term in that list.

Why here, at staging, and not as a rule on the marts: SQL looks a code up in the list
(`map_from_entries(p.<name>)[code]`), and a code the list lacks gives a null term, silently. Checked against the
data dictionary (the raw zone's `_meta` items and choices), the gap stops the build before any data is wrong, and
even before any record uses the code. Which item a list serves is study metadata; the engine knows no study.
"""

from __future__ import annotations

import polars as pl

from warehouse.study import StudyConfig


def code_list_problems(study: StudyConfig, items: pl.DataFrame, choices: pl.DataFrame) -> list[str]:
    """One line per problem: a code list's item missing from its form, the item not coded, or a code of the item's
    choices with no entry in the list (naming the study file, the list, the item, the code and its eCRF label). An
    export without the item's form at all (another study's export staged with this configuration) is not checked:
    no model of this study can use the list on it."""
    problems: list[str] = []
    where = str(study.source) if study.source.name else "study.toml"  # the file to fix, by its path
    for name, ref in study.code_lists.items():
        form, item = ref.split(".", 1)
        terms = study.parameters[name][0]
        if items.filter(pl.col("form") == form).is_empty():
            continue  # an export without the form (another study's, a partial one): nothing uses the list
        if items.filter((pl.col("form") == form) & (pl.col("item") == item)).is_empty():
            problems.append(f"{where}: [code_lists] {name}: the export has no item {ref}")
            continue
        allowed = choices.filter(pl.col("item") == item).sort("order")
        if allowed.is_empty():
            problems.append(f"{where}: [code_lists] {name}: the export's data dictionary gives item {ref} no "
                            "choices (not a coded item)")
            continue
        for code, label in allowed.select("code", "label").iter_rows():
            if code not in terms:
                problems.append(f"{where}: [parameters] {name} has no term for code {code!r} ({label}) of eCRF "
                                f"item {ref}, which the export's data dictionary allows")
    return problems


def require_code_lists(study: StudyConfig, items: pl.DataFrame, choices: pl.DataFrame) -> None:
    """Raise BuildError (exit 2: bad input) with the first problem, and how many more, when there is one."""
    problems = code_list_problems(study, items, choices)
    if problems:
        from warehouse.request import BuildError

        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BuildError(problems[0] + more)
