"""Fixtures of the validation tests; the frame builders live in validate_frames.py."""

from validate_frames import gx_loaded  # noqa: F401  (pytest fixture)
