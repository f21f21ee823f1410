"""Moved to the package warehouse.validate.adam (rules, engine, structure, values, dates, suite); this name stays
for the importers outside it (warehouse/validate/steps.py)."""

from warehouse.validate.adam import (
    RULE_BY_ID,
    RULES,
    SUITE,
    Rule,
    check_adam,
    merge,
    run_rules,
)

__all__ = ["RULES", "RULE_BY_ID", "SUITE", "Rule", "check_adam", "merge", "run_rules"]
