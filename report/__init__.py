"""The report: one static HTML page of the business and of the pipeline, built from a published version.

Why here, above publish: the report is the first consumer of the exports. It reads only what a
version holds (its Parquet files and manifest) plus the warehouse's ``ops`` tables opened read-only,
computes every figure with DuckDB SQL over them, and writes one self-contained HTML file (plotly.js
inlined) that opens from the file system with no network. The flow hands ``build.into_version`` to
the publisher as an attachment, so every version carries the report of its own data
(``exports/current/report.html``) and a report that fails to build publishes nothing.

Modules: ``build`` (open a version, run the sections, write the page), ``business`` and ``pipeline``
(each section's SQL and figure), ``page`` (the HTML around them).
"""
