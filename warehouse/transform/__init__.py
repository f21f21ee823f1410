"""Transform: the SQL models of a study project run in DuckDB. `runner` discovers and runs the models (dependencies
read by sqlglot), `compile` checks them against the staged schema before anything is written, `lineage` traces
every column back to its raw eCRF item, `catalog` describes every table and column, `testing` runs the models'
unit cases, and `steps` is the stage as the build calls it."""
