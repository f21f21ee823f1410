"""Stage: raw text to typed forms. `typed` types each form with Polars from the export's metadata (types, decoded
codes, units, study time); `load` writes the typed forms and the build's own facts into the build file as `src`."""
