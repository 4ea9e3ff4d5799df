"""dlt loaders: pull the services' REST APIs into the DuckDB warehouse (``raw_<service>``).

Run with ``python -m extract [names...] [--full-refresh] [--recover]``; see extract/README.md.

dlt reads its environment when it first resolves configuration, so the two settings below are made
here, before any module of this package imports dlt: no telemetry, and the repository's ``.dlt/``
folder (config and secrets) whatever the working directory.
"""

import os

from core import settings

os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
if (settings.repo_root() / ".dlt").is_dir():
    os.environ.setdefault("DLT_PROJECT_DIR", str(settings.repo_root()))
