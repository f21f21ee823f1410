"""A clinical-trial data warehouse: eCRF exports to validated, ADaM-style marts in DuckDB.

The package knows nothing of Prefect: every stage is a plain function, and `flows/` wires them into a flow.
"""

__version__ = "0.1.0"
