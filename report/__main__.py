"""``python -m report``: write the report of a published version to a file of your choice.

    python -m report [--version DIR] [--out FILE] [--warehouse FILE]

Every publish already puts ``report.html`` into its version (``make elt``, ``make export``,
``make report``); this command rebuilds one from any kept version without publishing anything, e.g.
after changing the report's code, or for an older version (its pipeline page is cut at that
version's time). It reads the version's files and opens the warehouse read-only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from core import settings
from publish import versions
from report import build


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", type=Path, help="a version folder (default: exports/current, resolved)")
    parser.add_argument("--out", type=Path, help="where to write the HTML (default: report-<version>.html)")
    parser.add_argument("--warehouse", type=Path, help="for the ops tables (default: SHOP_WAREHOUSE)")
    args = parser.parse_args(argv)
    version_dir = args.version or versions.resolve_current(settings.exports_dir())
    if version_dir is None:
        print(f"error: nothing published under {settings.exports_dir()}: run make elt first", file=sys.stderr)
        return 1
    version_dir = version_dir.resolve()
    try:
        manifest = json.loads((version_dir / versions.MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        print(f"error: {version_dir} is not a published version ({exc})", file=sys.stderr)
        return 1
    out = args.out or Path(f"report-{version_dir.name}.html")
    text, _ = build.render(version_dir, manifest, args.warehouse or settings.warehouse_path())
    out.write_text(text, encoding="utf-8")
    print(
        f"report of version {version_dir.name} -> {out.resolve()} (open it in a browser: file://{out.resolve()})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
