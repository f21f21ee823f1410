"""The relations the build's marts stage validates (``warehouse.validate.steps.validate_marts``), captured as it passes
them to the validation rather than copied, so that tests follow the build."""

from __future__ import annotations


def marts_relations(build_file) -> list[str]:
    import warehouse.validate as validate_pkg
    from warehouse.validate import steps

    captured: list[str] = []
    real = validate_pkg.validate_stage_auto

    def capture(stage, con, tables, *args, **kwargs):
        captured.extend(tables)
        return real(stage, con, tables, *args, **kwargs)

    validate_pkg.validate_stage_auto = capture
    try:
        steps.validate_marts(build_file)
    finally:
        validate_pkg.validate_stage_auto = real
    return captured
