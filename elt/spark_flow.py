"""``make spark-elt`` (``python -m elt.spark_flow``): the flow with Spark as the transformation engine.

services → extract (into the DuckDB warehouse, as ``make elt``; ``--reuse-raw`` skips it) → raw lake
(transform/spark/lake.py) → ``dbt build --target spark`` (transform/spark/runner.py) → publish of
Spark's marts through the same publish step and manifest (transform/spark/mirror.py, publish/publish.py).

The loaders and their guarantees stay as they are: raw is loaded into DuckDB and copied out, so the
models read on Spark exactly what they read on DuckDB. Nothing is published unless the Spark build
exited 0. The manifest's ``dbt`` entry says ``target: spark``; the report is not built (it reads the
DuckDB warehouse's run log, which a Spark build does not write). README "Scaling out".
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from core import lock, pii_key, settings, signals
from elt import fleet, flow
from publish import versions
from publish.publish import PublishError, publish
from transform import dbt_artifacts
from transform.spark import lake, mirror, runner

log = logging.getLogger("elt.spark")
COMMAND = "elt spark"


def run(
    *,
    reuse_raw: bool,
    exports: Path,
    keep: int = versions.DEFAULT_KEEP,
    select: str | None = None,
    publish_marts: bool = True,
) -> int:
    """The whole Spark flow; logs each step with its time, returns the exit code (0, or 1 naming the step).

    ``select`` builds only that dbt selection, and then nothing is published (a selection is not a
    version); ``publish_marts=False`` stops after the mirror of Spark's marts (what the tests compare)."""
    wait = flow.lock_wait()
    started = time.monotonic()
    handle = None
    step = "pii key"
    try:
        with lock.warehouse_lock(f"{COMMAND}: pii key", wait=wait):
            pii_key.prepare(exports)
        if not reuse_raw:
            step = "services"
            handle = fleet.ensure_up()
            step = "extract"
            seconds, loaded, _ = flow.run_extract(COMMAND, False, wait)
            log.info("extract: %d new/changed rows in %.1fs", sum(r for *_, r in loaded), seconds)
        elif not settings.warehouse_path().exists():
            raise RuntimeError(
                f"--reuse-raw: no warehouse at {settings.warehouse_path()}: run make elt first"
            )

        step = "raw lake"
        with lock.warehouse_lock(f"{COMMAND}: raw lake", wait=wait):
            export = lake.export(settings.warehouse_path(), runner.spark_dir())

        step = "dbt build (spark)"
        # a selection builds the tests of its nodes alone (cautious: not a test that also reads a node
        # outside it, which this build would not have built on Spark)
        selection = ["--select", select, "--indirect-selection", "cautious"] if select else []
        build = runner.run_dbt(["build", *selection], raw_lake=export.dbt_var(), wait=wait)
        if not build.ok:
            failures = build.summary.failures[:10] if build.summary else []
            raise RuntimeError(
                f"dbt exited {build.exit_code}; nothing published" + "".join(f"\n  {f}" for f in failures)
            )

        step = "mirror"
        manifest = runner.target_dir() / "manifest.json"
        specs = dbt_artifacts.publish_specs(manifest)
        if select:
            built = {r.split(".")[-1] for r in build.built}
            specs = [s for s in specs if s.name in built]
        source = mirror.build(
            specs,
            manifest=manifest,
            warehouse=runner.warehouse_dir(),
            lake=export.root,
            out_dir=runner.spark_dir(),
        )
        if select or not publish_marts:
            log.info("spark flow: built %s in %.1fs; not published", select or "everything", build.seconds)
            return 0

        step = "publish"
        with lock.warehouse_lock(f"{COMMAND}: publish", wait=wait):
            invocation: dict[str, object] = {
                "invocation_id": build.summary.invocation_id if build.summary else None,
                "command": "build",
                "target": runner.TARGET,
                "pii_key_fingerprint": build.pii_key_fingerprint,
            }
            result = publish(specs, warehouse=source, exports=exports, dbt_invocation=invocation, keep=keep)
        log.info(
            "spark flow: %d marts, %d rows published as version %s in %.1fs (build %.1fs) -> %s",
            len(result.marts),
            result.rows,
            result.version_id,
            time.monotonic() - started,
            build.seconds,
            result.version_dir,
        )
        return 0
    except signals.Interrupted as exc:  # SIGTERM / Ctrl-C: the children got SIGTERM; one line, 128+N
        print(f"error: spark flow: {exc} during step '{step}'", file=sys.stderr, flush=True)
        return exc.exit_code
    except (RuntimeError, OSError, PublishError, lock.WarehouseBusy, fleet.FleetError) as exc:
        print(f"error: spark flow: step '{step}' failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        if handle is not None:
            fleet.stop(handle)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m elt.spark_flow", description=__doc__.splitlines()[0])
    parser.add_argument("--reuse-raw", action="store_true", help="skip the services and the loaders")
    parser.add_argument("--exports", type=Path, help="publish here (default SHOP_EXPORTS_DIR or exports/)")
    parser.add_argument("--keep", type=int, default=versions.DEFAULT_KEEP, help="published versions kept")
    parser.add_argument("--select", help="build only this dbt selection (nothing is published)")
    parser.add_argument("--no-publish", action="store_true", help="stop after the build and the mirror")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    signals.install()  # SIGTERM / SIGINT stop the children (dbt, the loader) and end with one line
    return run(
        reuse_raw=args.reuse_raw,
        exports=args.exports or settings.exports_dir(),
        keep=args.keep,
        select=args.select,
        publish_marts=not args.no_publish,
    )


if __name__ == "__main__":
    sys.exit(main())
