"""Prefect wiring only: the stages themselves live in `warehouse/`."""
