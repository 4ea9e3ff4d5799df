"""``python -m services.generator``: generate a dataset by hand (the launcher does this on a first start).

    python -m services.generator --data-dir /tmp/shop --scale 0.1 --seed 42 [--overwrite] [--check]

``--check`` runs ``services.store.check_consistency`` afterwards and exits 1 on any violation.
Defaults come from ``SHOP_SERVICES_DATA``, ``SHOP_SCALE`` and ``SHOP_SEED``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from services.common import private
from services.common.settings import services_data_dir
from services.generator import generate
from services.store import check_consistency

log = logging.getLogger("services.generator")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(prog="python -m services.generator", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=services_data_dir())
    parser.add_argument("--scale", type=float, default=float(os.environ.get("SHOP_SCALE", "1")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("SHOP_SEED", "42")))
    parser.add_argument("--overwrite", action="store_true", help="replace existing service files")
    parser.add_argument("--check", action="store_true", help="check the consistency rules afterwards")
    args = parser.parse_args(argv)
    private.owner_only()  # the generated SQLite files hold personal data
    try:
        generate(args.data_dir, args.scale, args.seed, overwrite=args.overwrite)
    except FileExistsError as exc:
        print(f"error: {exc} (use --overwrite)", file=sys.stderr)
        return 2
    if args.check:
        started = time.monotonic()
        violations = check_consistency(args.data_dir)
        for line in violations:
            print(line, file=sys.stderr)
        log.info(
            "consistency check of %s: %d violations in %.1f s",
            args.data_dir,
            len(violations),
            time.monotonic() - started,
        )
        return 1 if violations else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
