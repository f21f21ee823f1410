"""The data manager's review of findings: decisions (accept, query, answer, reopen) stored outside any build, the
review status they give each finding, and the command line and local page that record them.

- ``store``: the decisions, append-only, in ``DIR/review/decisions.sqlite`` (SQLite, WAL, one ``BEGIN IMMEDIATE``
  transaction per batch), so the command line, the page and a build read and write it at once, and no rebuild, new
  export or killed build loses one;
- ``status``: each finding's review status from its decisions (open, queried, answered, accepted; an acceptance
  holds only while the finding's value is the one accepted), and whether a build's error findings block;
- ``source``: the build the review reads (the published one, else the latest blocked one) and its findings;
- ``actions``: deciding on findings by id (what the command line and the page call);
- ``sheets``: the per-site query sheets (CSV, XLSX, a query id per row);
- ``web``: the page (FastAPI on 127.0.0.1).
"""
