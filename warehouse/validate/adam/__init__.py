"""ADaM conformance at the marts stage: rules of the ADaM Implementation Guide (ADaMIG v1.3, OCCDS v1.1, ADaM
structure for TTE) and of the CDISC ADaM conformance checks, run as plain SQL over the ADaM datasets of a build.

- ``rules``: the rule table (``RULES``: id, family, severity, source, what) and shared constants;
- ``engine``: the datasets (class, columns, grain), ``row_rule``/``table_rule`` and ``run_checks``, the
  interpreter of the families' ``Predicate``/``OneToOne`` tables;
- ``structure`` (metadata, required, keys), ``values`` (identifiers, parameter, timing, flags, tte), ``dates``:
  the rule families;
- ``suite``: ``check_adam`` runs them and turns outcomes into results and findings; ``merge``.

Which datasets: the tables of ``main`` that ``main.catalog`` tags ``adam`` (else adsl/adeff/adae/adtte). Their
class: ADSL (the table ``adsl``), BDS (has PARAMCD; BDS-TTE when it also has CNSR), else OCCDS. What the study
does not collect and its known deviations: ``expectations/marts/adam_conformance.toml`` (docs/adam-conformance.md).
"""

from warehouse.validate.adam.rules import RULE_BY_ID, RULES, SUITE, Rule
from warehouse.validate.adam.suite import FAMILIES, check_adam, merge, run_rules

__all__ = ["FAMILIES", "RULES", "RULE_BY_ID", "SUITE", "Rule", "check_adam", "merge", "run_rules"]
