"""Transform: the SQL models of a study project run in DuckDB. `models` discovers the model files and reads their
headers and the tables they read (sqlglot), `order` puts them in dependency order and selects them, `runner` runs
them (sessions, failures contained to their descendants), `compile` checks them against the staged schema before
anything is written (`problems` names where a model goes wrong), `lineage` traces every column back to its raw
eCRF item, `catalog` describes every table and column, `testing` runs the models' unit cases, and `steps` is the
stage as the build calls it."""
