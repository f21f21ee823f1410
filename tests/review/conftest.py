"""Fixtures of the review tests: one build of the injected demo (blocked), copied for each test that changes it
(review_helpers.py). The Chrome DevTools helper lives with the validation report's tests (tests/validate/cdp.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "validate"))

from review_helpers import injected_review  # noqa: E402,F401  (a pytest fixture)
