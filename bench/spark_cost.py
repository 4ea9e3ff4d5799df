"""``python -m bench.spark_cost``: what the transformation costs on Spark (local[2]) beside DuckDB, on the
same raw data, at one scale per run; results merged into ``bench/results/spark.json`` and ``spark.md``.

Why apart from ``make bench``: the spark group is optional (``make spark-setup``) and a Spark build takes
many times DuckDB's on two cores; the point measured is what the same models cost on an engine that
scales out, not a race. Steps, each a separate process under bench/wrap.py (wall, CPU, peak memory):

1. a private fleet at ``--scale`` (seed 42) and one load into a fresh warehouse (``python -m extract``);
2. ``dbt build`` on DuckDB (``python -m elt dbt build``) and its publish (``python -m elt export``);
3. the Spark flow on the same raw (``python -m elt.spark_flow --reuse-raw``: raw lake, ``dbt build
   --target spark``, mirror and publish), with its steps' times from its log;
4. the check: both published versions hold the same marts with the same row counts (the full
   equivalence is tests/pytest/spark); a run that fails it is reported as invalid.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import machine_info
from bench.measure import Measurement, run_measured
from services.launcher import Fleet

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
PII_KEY = "bench-spark-cost-key-0b9e4d"
BUILD_LINE = re.compile(r"dbt build \(spark\) exited (\d+) after ([0-9.]+)s")
LAKE_LINE = re.compile(r"raw lake: (\d+) tables, (\d+) rows in ([0-9.]+)s")


def _env(root: Path, fleet: Fleet) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "SHOP_", "DBT_"))}
    env.update({k: v for k, v in fleet.env().items() if k.startswith("SOURCES__")})
    env.update(
        SHOP_WAREHOUSE=str(root / "warehouse" / "shop.duckdb"),
        SHOP_EXPORTS_DIR=str(root / "exports-duckdb"),
        SHOP_RUN_DIR=str(root / "run"),
        SHOP_SPARK_DIR=str(root / "spark"),
        SHOP_PII_KEY=PII_KEY,
        SHOP_REPORT="off",
        DBT_TARGET_PATH=str(root / "target"),
        DBT_LOG_PATH=str(root / "logs"),
        DBT_SEND_ANONYMOUS_USAGE_STATS="false",
        RUNTIME__DLTHUB_TELEMETRY="false",
    )
    (root / "warehouse").mkdir(parents=True, exist_ok=True)
    return env


def _published_rows(exports: Path) -> dict[str, int]:
    manifest = json.loads(((exports / "current").resolve() / "manifest.json").read_text())
    return {name: mart["rows"] for name, mart in manifest["marts"].items()}


def _m(m: Measurement) -> dict[str, object]:
    return {
        k: m.as_dict()[k]
        for k in ("wall_s", "cpu_s", "tree_rss_peak_mb", "load1_before", "noisy", "returncode")
    }


def measure(scale: float, work: Path, port_base: int, timeout: float) -> dict[str, object]:
    """One scale: load, DuckDB build + publish, Spark flow; the figures and the check."""
    root = work / f"scale-{scale:g}"
    fleet = Fleet(
        run_dir=root / "fleet-run", data_dir=root / "fleet-data", port_base=port_base, scale=scale, seed=42
    )
    fleet.start()
    try:
        env = _env(root, fleet)
        out = root / "measure"
        py = sys.executable
        load = run_measured("load", 0, [py, "-m", "extract"], env, out, REPO, timeout)
        if load.returncode != 0:
            raise RuntimeError(f"the load failed: {load.stderr_tail}")
        duck_build = run_measured(
            "duckdb build", 0, [py, "-m", "elt", "dbt", "build"], env, out, REPO, timeout
        )
        duck_publish = run_measured("duckdb publish", 0, [py, "-m", "elt", "export"], env, out, REPO, timeout)
        spark_exports = root / "exports-spark"
        spark = run_measured(
            "spark flow",
            0,
            [py, "-m", "elt.spark_flow", "--reuse-raw", "--exports", str(spark_exports)],
            env,
            out,
            REPO,
            timeout,
        )
    finally:
        fleet.stop()
    log = Path(spark.stdout_path).read_text(errors="replace")
    log += (out / "spark_flow.r0.stderr").read_text(errors="replace")
    build = BUILD_LINE.search(log)
    lake = LAKE_LINE.search(log)
    ok = all(m.returncode == 0 for m in (duck_build, duck_publish, spark))
    check = "failed: a step exited non-zero"
    if ok:
        duck_rows, spark_rows = _published_rows(Path(env["SHOP_EXPORTS_DIR"])), _published_rows(spark_exports)
        ok = duck_rows == spark_rows
        check = (
            f"{len(duck_rows)} marts, {sum(duck_rows.values()):,} rows, equal" if ok else "row counts differ"
        )
    return {
        "scale": scale,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "ok": ok,
        "check": check,
        "raw_rows": lake and int(lake.group(2)),
        "duckdb_build": _m(duck_build),
        "duckdb_publish": _m(duck_publish),
        "spark_flow": _m(spark),
        "spark_lake_s": lake and float(lake.group(3)),
        "spark_build_s": build and float(build.group(2)),
    }


def write(results: list[dict[str, object]]) -> None:
    """Merge ``results`` (by scale) into spark.json and rewrite spark.md. A run's ``notes`` (what the
    figures alone do not say, e.g. a step re-run apart) are listed under the table."""
    path = RESULTS / "spark.json"
    data = json.loads(path.read_text()) if path.exists() else {"runs": {}}
    for r in results:
        data["runs"][f"{r['scale']:g}"] = r
    data["machine"] = machine_info()
    path.write_text(json.dumps(data, indent=2) + "\n")
    lines = [
        "# Spark (local[2]) beside DuckDB: the same dbt project on the same raw data",
        "",
        "`python -m bench.spark_cost --scale N` (bench/spark_cost.py); one run per scale, each step a",
        "separate process under bench/wrap.py. DuckDB = `dbt build` + publish; Spark = the whole",
        "`make spark-elt ARGS=--reuse-raw` (raw lake export, `dbt build --target spark`, mirror, the same",
        "publish). Load average before each step is shown: this 2-core machine was shared. CPU is what",
        "bench/wrap.py sees (processes reaped in the command's tree): Spark's JVM, which outlives the",
        "dbt process that started it, is probably not in it; wall time and peak memory (the sampled",
        "process tree) are.",
        "",
        "| scale | raw rows | DuckDB build | DuckDB publish | Spark flow | of it: lake | of it: build "
        "| Spark ÷ DuckDB | load1 before | check |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(data["runs"], key=float):
        r = data["runs"][key]
        db, dp, sf = r["duckdb_build"], r["duckdb_publish"], r["spark_flow"]
        duck = db["wall_s"] + dp["wall_s"]
        cells = [
            key,
            f"{r['raw_rows']:,}" if r["raw_rows"] else "?",
            f"{db['wall_s']:.0f} s ({db['cpu_s']:.0f} s CPU, {db['tree_rss_peak_mb']:.0f} MB)",
            f"{dp['wall_s']:.0f} s",
            f"{sf['wall_s']:.0f} s ({sf['cpu_s']:.0f} s CPU, {sf['tree_rss_peak_mb']:.0f} MB)",
            f"{r['spark_lake_s'] or 0:.1f} s",
            f"{r['spark_build_s'] or 0:.0f} s",
            f"{sf['wall_s'] / duck:.1f}x" if duck else "?",
            f"{db['load1_before']} / {sf['load1_before']}",
            str(r["check"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    notes = [
        f"- scale {key}: {n}"
        for key in sorted(data["runs"], key=float)
        for n in data["runs"][key].get("notes", [])
    ]
    lines += ["", *notes] if notes else []
    m = data["machine"]
    versions = m["versions"]
    lines += [
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB; Python {m['python']}, "
        f"duckdb {versions.get('duckdb')}, dbt-core {versions.get('dbt-core')}, "
        f"pyspark {versions.get('pyspark')}; "
        f"written {m['date_utc']} at {m['git_rev']}.",
    ]
    (RESULTS / "spark.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.spark_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, action="append", help="scale(s) to measure (default 1)")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "spark")
    parser.add_argument("--port-base", type=int, default=int(os.environ.get("SHOP_PORT_BASE") or 25000))
    parser.add_argument("--timeout", type=float, default=7200.0)
    args = parser.parse_args(argv)
    results = [measure(s, args.work, args.port_base, args.timeout) for s in (args.scale or [1.0])]
    write(results)
    for r in results:
        print(json.dumps(r))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
