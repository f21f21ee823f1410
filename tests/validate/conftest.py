"""Fixtures of the validation tests; the frame builders and fixtures live in validate_frames.py."""

from validate_frames import clean_build, gx_loaded, injected_build  # noqa: F401  (pytest fixtures)
