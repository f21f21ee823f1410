"""Fixtures of the extract tests; the sample exports they use live in extract_samples.py."""

from extract_samples import fixtures, redcap_export  # noqa: F401  (pytest fixtures)
