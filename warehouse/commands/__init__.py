"""Groups of `warehouse` sub-commands, one module per area; each module has `register(app)`.

Keeping each area's commands in its own module keeps `cli.py` small and lets each stage own its interface.
"""

AREAS = ("extract", "models", "ops", "analysis", "server")
