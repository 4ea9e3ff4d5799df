"""Leave one service's load package pending (extracted and normalized, never loaded), then poison it.

Run as ``python -m tests.pytest.faults.pending_package <service>`` in a workspace's environment: it
extracts and normalizes exactly as ``python -m extract`` does but stops before load, then truncates every
data file of the pending package, so each later load attempt fails the same way (a poison package).
Prints the number of files it poisoned.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from extract.config import service_config
from extract.pipelines import make_pipeline, pipelines_dir
from extract.progress import RunProgress
from extract.resources import build_source
from extract.shape import DriftTracker
from extract.sources import SERVICES


def main(name: str) -> int:
    service = SERVICES[name]
    cfg = service_config(service.name, service.auth)
    pipeline = make_pipeline(service.name)
    source, _ = build_source(service, cfg, datetime.now(UTC), RunProgress(), DriftTracker())
    pipeline.extract(source, loader_file_format="parquet")
    pipeline.normalize()
    root = Path(pipelines_dir()) / f"extract_{name}" / "load" / "normalized"
    poisoned = 0
    for job in root.glob("*/new_jobs/*.parquet"):
        if not job.name.startswith("_dlt"):
            job.write_bytes(b"PAR1 this is not a parquet file")
            poisoned += 1
    print(poisoned)
    return 0 if poisoned else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
