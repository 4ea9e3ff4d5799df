"""The benchmark's groups: which commands are measured side by side, how each run is prepared and checked.

Why here and not in the runner: the runner only knows "prepare, run, check"; what "correct" means for
the loader, a peer or the publish step lives next to the command that is measured.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from bench.checks import RAW_TABLES, Check, check_duckdb, check_limit_summary, check_parquet_dir
from bench.config import BenchConfig
from bench.fleet import BenchFleet
from bench.measure import Measurement
from bench.peers.api import ENDPOINTS
from bench.peers.singer_peer import COVERED, SERVICES
from bench.singer import SingerEnv, write_meltano_yml
from bench.subjects import Group, Subject, probe
from bench.truth import read_truth

PY = sys.executable
ALL = [e.name for e in ENDPOINTS]


class Context:
    """Paths and environment shared by the groups of one fleet."""

    def __init__(self, cfg: BenchConfig, fleet: BenchFleet, tag: str) -> None:
        self.cfg = cfg
        self.fleet = fleet
        self.tag = tag
        self.base = cfg.work / "runs" / tag
        # warehouses built by an earlier group of this same run against this same fleet data, which
        # later groups may copy instead of rebuilding (never one left over from an earlier run)
        self.reusable: set[str] = set()

    def warehouse(self, name: str) -> Path:
        return self.base / "wh" / f"{name}.duckdb"

    def exports(self, name: str) -> Path:
        return self.base / "exports" / name

    def env(self, name: str, warehouse: Path, exports: Path | None = None) -> dict[str, str]:
        env = dict(self.fleet.env)
        env.update(
            {
                "SHOP_WAREHOUSE": str(warehouse),
                "SHOP_EXPORTS_DIR": str(exports or self.exports(name)),
                # the loaders' dlt working folder (pipeline state), private per subject and warehouse
                "SHOP_DLT_DIR": str(self.base / "dlt" / name),
                "DLT_DATA_DIR": str(self.base / "dlt" / name),
                "BENCH_PAGE_SIZE": str(self.cfg.page_size),
                # publish is compared with a bare COPY of the same files: the HTML report a publish
                # also builds by default (report/) is a product of its own, not part of that race
                "SHOP_REPORT": "off",
            }
        )
        return env

    def run_unmeasured(self, cmd: list[str], env: dict[str, str], what: str) -> None:
        """A set-up step; raises with the tail of its output when it fails."""
        started = time.perf_counter()
        proc = subprocess.run(
            cmd,
            env=env,
            cwd=self.cfg.repo,
            capture_output=True,
            text=True,
            timeout=self.cfg.timeout,
            check=False,
        )
        if proc.returncode:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"{what} failed (rc={proc.returncode}): {' | '.join(tail)}")
        print(f"  set-up: {what} in {time.perf_counter() - started:.1f}s", file=sys.stderr)


def fresh(*paths: Path) -> None:
    """Remove files or folders so the next run starts from nothing."""
    for path in paths:
        for p in (path, path.with_name(path.name + ".wal"), path.with_name(path.name + ".lock")):
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()


def raw_check(ctx: Context, warehouse: Path, endpoints: list[str]) -> Check:
    return check_duckdb(warehouse, RAW_TABLES, read_truth(ctx.fleet.data_dir), endpoints, committed_only=True)


def limit_check(ctx: Context, endpoints: list[str]):
    def check(m: Measurement) -> Check:
        try:
            summary = json.loads(Path(m.stdout_path).read_text())
        except (OSError, ValueError) as exc:
            return Check(False, 0, [f"no summary on stdout: {exc}"])
        return check_limit_summary(summary, read_truth(ctx.fleet.data_dir), endpoints)

    return check


def availability(cfg: BenchConfig) -> dict[str, str | None]:
    """Which project entry points exist yet (None = available, else why not)."""
    return {
        "extract": probe(["-m", "extract", "--help"], cfg.repo),
        "elt run": probe(["-m", "elt", "run", "--help"], cfg.repo),
        "elt export": probe(["-m", "elt", "export", "--help"], cfg.repo),
        "elt dbt": probe(["-m", "elt", "dbt", "--help"], cfg.repo),
        "stream": stream_probe(cfg.repo),
        "simulator": probe(["-c", "from services.simulator import Simulator"], cfg.repo),
    }


def stream_probe(repo: Path) -> str | None:
    """`extract stream` exists only if its help names a stream mode (names are otherwise services)."""
    proc = subprocess.run(
        [PY, "-m", "elt", "stream", "--help"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if proc.returncode == 0 and "stream" in proc.stdout.lower():
        return None
    return "`python -m elt stream` does not exist yet"


# ---------------------------------------------------------------------------------------------- pull
def pull_group(ctx: Context, avail: dict[str, str | None]) -> Group:
    g = Group("pull", f"Full pull of every endpoint at scale {ctx.fleet.scale:g}")
    g.subjects.append(
        Subject(
            "limit client",
            [PY, "-m", "bench.peers.limit_client", "--page-size", str(ctx.cfg.page_size)],
            limit_check(ctx, ALL),
            env=ctx.env("limit", ctx.warehouse("none")),
            label="peer: requests + orjson, every page, stores nothing",
            profile=False,
        )
    )
    wh = ctx.warehouse("extract")
    if avail["extract"]:
        g.unavailable["extract --full-refresh"] = avail["extract"]
    else:
        env = ctx.env("extract", wh)
        g.subjects.append(
            Subject(
                "extract --full-refresh",
                [PY, "-m", "extract", "--full-refresh"],
                lambda m: raw_check(ctx, wh, ALL),
                env=env,
                prepare=lambda: fresh(wh, Path(env["DLT_DATA_DIR"])),
                label="this project: dlt loaders into a fresh warehouse",
            )
        )
        if not ctx.cfg.quick:  # the same loaders with the forked child off: is the fork worth keeping?
            threads_env = {**env, "SOURCES__EXTRACT__PROCESSES": "false"}
            g.subjects.append(
                Subject(
                    "extract --full-refresh (threads)",
                    [PY, "-m", "extract", "--full-refresh"],
                    lambda m: raw_check(ctx, wh, ALL),
                    env=threads_env,
                    prepare=lambda: fresh(wh, Path(threads_env["DLT_DATA_DIR"])),
                    label="this project, [sources.extract] processes = false: every service in threads",
                    profile=False,
                )
            )
    wh_run = ctx.warehouse("elt-run")
    if avail["elt run"]:
        g.unavailable["elt run"] = avail["elt run"]
    else:
        env = ctx.env("elt-run", wh_run)
        exports = Path(env["SHOP_EXPORTS_DIR"])

        def run_check(m: Measurement) -> Check:
            result = raw_check(ctx, wh_run, ALL)
            if not any(exports.rglob("*.parquet")):
                result.ok = False
                result.problems.append(f"no parquet published under {exports}")
            return result

        g.subjects.append(
            Subject(
                "elt run",
                [PY, "-m", "elt", "run"],
                run_check,
                env=env,
                prepare=lambda: fresh(wh_run, exports, Path(env["DLT_DATA_DIR"])),
                label="this project: extract → dbt build → publish, fresh warehouse",
            )
        )
    wh_seed = ctx.warehouse("seed-style-peer")
    g.subjects.append(
        Subject(
            "seed-style peer",
            [
                PY,
                "-m",
                "bench.peers.seed_style",
                "--database",
                str(wh_seed),
                "--page-size",
                str(ctx.cfg.page_size),
            ],
            lambda m: check_duckdb(
                wh_seed, {e: f"seed_style.{e}" for e in ALL}, read_truth(ctx.fleet.data_dir), ALL
            ),
            env=ctx.env("seed", wh_seed),
            prepare=lambda: fresh(wh_seed),
            label="peer: requests + pandas.json_normalize → DuckDB",
            profile=False,
        )
    )
    return g


# -------------------------------------------------------------------------------------------- singer
def singer_group(ctx: Context, avail: dict[str, str | None], singer: SingerEnv, singer_note: str) -> Group:
    covered = list(COVERED)
    g = Group(
        "singer", f"Like for like with Meltano/Singer on {', '.join(covered)} at scale {ctx.fleet.scale:g}"
    )
    g.notes.append(singer_note)
    g.subjects.append(
        Subject(
            "limit client (covered)",
            [PY, "-m", "bench.peers.limit_client", "--page-size", str(ctx.cfg.page_size), *covered],
            limit_check(ctx, covered),
            env=ctx.env("limit", ctx.warehouse("none")),
            label="peer: the ceiling on the same endpoints",
            profile=False,
        )
    )
    wh = ctx.warehouse("extract-covered")
    if avail["extract"]:
        g.unavailable["extract (covered services)"] = avail["extract"]
    else:
        env = ctx.env("extract-covered", wh)
        g.subjects.append(
            Subject(
                "extract (covered services)",
                [PY, "-m", "extract", *SERVICES, "--full-refresh"],
                lambda m: raw_check(ctx, wh, covered),
                env=env,
                prepare=lambda: fresh(wh, Path(env["DLT_DATA_DIR"])),
                label=f"this project: `extract {' '.join(SERVICES)} --full-refresh`",
            )
        )
    db = ctx.warehouse("singer-peer")
    conf = ctx.base / "singer-conf"
    env = ctx.env("singer", db)

    def check(m):
        return check_duckdb(
            db,
            {e: f"singer.{e}" for e in covered},
            read_truth(ctx.fleet.data_dir),
            covered,
        )

    if singer.meltano_ready():

        def prepare_meltano() -> None:
            fresh(db)
            write_meltano_yml(singer.meltano_project, env, db, ctx.cfg.page_size)

        g.subjects.append(
            Subject(
                "meltano run (tap-rest-api-msdk → target-duckdb)",
                [
                    PY,
                    "-m",
                    "bench.peers.singer_peer",
                    "--venv",
                    str(singer.meltano_venv),
                    "--conf-dir",
                    str(conf),
                    "--database",
                    str(db),
                    "--meltano-project",
                    str(singer.meltano_project),
                ],
                check,
                env=env,
                prepare=prepare_meltano,
                label="peer: Meltano 4.4.1 CLI, plugins declared inline",
                profile=False,
            )
        )
    elif singer.ready():
        g.notes.append("meltano CLI not built; the Singer peer runs tap | target piped without it")
        g.subjects.append(
            Subject(
                "singer tap | target",
                [
                    PY,
                    "-m",
                    "bench.peers.singer_peer",
                    "--venv",
                    str(singer.venv),
                    "--conf-dir",
                    str(conf),
                    "--database",
                    str(db),
                    "--page-size",
                    str(ctx.cfg.page_size),
                ],
                check,
                env=env,
                prepare=lambda: fresh(db),
                label="peer: tap-rest-api-msdk | target-duckdb, no meltano CLI",
                profile=False,
            )
        )
    else:
        g.unavailable["Meltano/Singer peer"] = singer_note
    return g


# ------------------------------------------------------------------------------------------- publish
def mart_counts(warehouse: Path) -> dict[str, int]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema LIKE '%marts'"
        ).fetchall()
        return {t: con.execute(f"SELECT count(*) FROM {s}.{t}").fetchone()[0] for s, t in tables}
    finally:
        con.close()


def published_marts(exports: Path) -> list[str]:
    """Mart names in the manifest of the current published version (publish ships only tagged marts)."""
    manifest = exports / "current" / "manifest.json"
    return sorted(json.loads(manifest.read_text())["marts"])


def check_publish(exports: Path, warehouse: Path, expected: dict[str, int] | None = None) -> Check:
    """The current version has a manifest, and every mart in it matches the warehouse row count."""
    try:
        names = published_marts(exports)
    except (OSError, ValueError, KeyError) as exc:
        return Check(False, 0, [f"no readable manifest under {exports}/current: {exc}"])
    counts = expected if expected is not None else mart_counts(warehouse)
    missing = [n for n in counts if n not in names] if expected is not None else []
    result = check_parquet_dir((exports / "current").resolve(), {n: counts.get(n, -1) for n in names})
    if missing:
        result.ok = False
        result.problems.append(f"marts missing from the manifest: {missing}")
    return result


def copy_peer_cmd(warehouse: Path, out: Path, manifest: Path) -> list[str]:
    """The COPY peer on ``warehouse``'s marts, into ``out``, laid out as publish ``manifest`` says."""
    return [
        PY,
        "-m",
        "bench.peers.copy_marts",
        "--database",
        str(warehouse),
        "--out",
        str(out),
        "--manifest",
        str(manifest),
    ]


def publish_group(ctx: Context, avail: dict[str, str | None]) -> Group:
    g = Group("publish", f"Publish the marts to Parquet at scale {ctx.fleet.scale:g}")
    why = avail["elt export"] or avail["elt run"]
    if why:
        g.unavailable["elt export"] = why
        g.unavailable["DuckDB COPY of the marts"] = "needs a built warehouse from `elt run`: " + why
        return g
    wh = ctx.warehouse("publish")
    env_setup = ctx.env("publish-setup", wh)
    marts: dict[str, int] = {}

    def setup() -> None:
        exports_setup = Path(env_setup["SHOP_EXPORTS_DIR"])
        fresh(wh, Path(env_setup["DLT_DATA_DIR"]), exports_setup)
        # The pull group's last `elt run` already built and published this fleet's marts: reuse them
        # (a copy, so that group's files stay as they were) instead of paying for another whole flow.
        pulled, pulled_exports = ctx.warehouse("elt-run"), ctx.exports("elt-run")
        if "elt-run" in ctx.reusable and (pulled_exports / "current" / "manifest.json").exists():
            shutil.copyfile(pulled, wh)
            shutil.copytree(pulled_exports, exports_setup, symlinks=True)
            print(f"  set-up: reused the warehouse of the pull group's `elt run` ({pulled})", file=sys.stderr)
        else:
            ctx.run_unmeasured([PY, "-m", "elt", "run"], env_setup, "elt run (builds the marts to publish)")
        counts = mart_counts(wh)
        names = published_marts(Path(env_setup["SHOP_EXPORTS_DIR"]))
        marts.update({n: counts[n] for n in names})
        if not marts:
            raise RuntimeError(f"`elt run` published no marts from {wh}")
        g.notes.append(
            f"{len(marts)} published marts, {sum(marts.values())} rows: " + ", ".join(sorted(marts))
        )

    g.setup = setup
    out_pub = ctx.exports("publish")
    out_copy = ctx.exports("copy")
    g.subjects.append(
        Subject(
            "elt export",
            [PY, "-m", "elt", "export"],
            lambda m: check_publish(out_pub, wh, marts),
            env=ctx.env("publish", wh, out_pub),
            prepare=lambda: fresh(out_pub),
            label="this project: Parquet + manifest, atomic",
        )
    )
    g.subjects.append(
        Subject(
            "DuckDB COPY of the marts",
            copy_peer_cmd(wh, out_copy, Path(env_setup["SHOP_EXPORTS_DIR"]) / "current" / "manifest.json"),
            lambda m: check_parquet_dir(out_copy, marts),
            env=ctx.env("copy", wh, out_copy),
            prepare=lambda: fresh(out_copy),
            label="peer: one COPY … TO (zstd) per published mart, same partitioning",
            profile=False,
        )
    )
    return g


# --------------------------------------------------------------------------------------------- scale
def scale_chain(
    ctx: Context, avail: dict[str, str | None], notes: list[str] | None = None
) -> tuple[list[Subject], dict[str, str]]:
    """extract → dbt build → publish → incremental extract on one fleet; each step measured, in that order.

    The last step changes `change_fraction` of the records first (a note says how many), so the
    incremental ÷ full ratio is seen at both scales: at scale 1 an incremental run is mostly fixed
    start-up cost, at scale 10 it shows what grows with the data.
    """
    s = f"{ctx.fleet.scale:g}"
    missing: dict[str, str] = {}
    chain: list[Subject] = []
    wh = ctx.warehouse("scale")
    env = ctx.env("scale", wh)
    if avail["extract"]:
        missing[f"extract @ scale {s}"] = avail["extract"]
        return chain, missing
    chain.append(
        Subject(
            f"extract @ scale {s}",
            [PY, "-m", "extract", "--full-refresh"],
            lambda m: raw_check(ctx, wh, ALL),
            env=env,
            prepare=lambda: fresh(wh, Path(env["DLT_DATA_DIR"])),
        )
    )
    if avail["elt dbt"]:
        missing[f"dbt build @ scale {s}"] = avail["elt dbt"]
    else:

        def dbt_check(m: Measurement) -> Check:
            marts = mart_counts(wh) if wh.exists() else {}
            ok = m.returncode == 0 and bool(marts)
            return Check(ok, sum(marts.values()), [] if ok else ["dbt build failed or built no marts"])

        chain.append(Subject(f"dbt build @ scale {s}", [PY, "-m", "elt", "dbt", "build"], dbt_check, env=env))
    if avail["elt export"]:
        missing[f"publish @ scale {s}"] = avail["elt export"]
    elif not avail["elt dbt"]:
        out = Path(env["SHOP_EXPORTS_DIR"])
        chain.append(
            Subject(
                f"publish @ scale {s}",
                [PY, "-m", "elt", "export"],
                lambda m: check_publish(out, wh),
                env=env,
                prepare=lambda: fresh(out),
            )
        )
        # the same peer as the publish group, on this scale's marts: shows how publish's fixed costs
        # (process start, lock, ops log, manifest, read-back) weigh as the data grows
        out_copy = ctx.exports("scale-copy")
        marts: dict[str, int] = {}

        def copy_prepare() -> None:
            fresh(out_copy)
            counts = mart_counts(wh)
            marts.clear()
            marts.update({n: counts[n] for n in published_marts(out)})

        chain.append(
            Subject(
                f"COPY @ scale {s}",
                copy_peer_cmd(wh, out_copy, out / "current" / "manifest.json"),
                lambda m: check_parquet_dir(out_copy, marts),
                env=env,
                prepare=copy_prepare,
                label="peer: DuckDB COPY of the same published marts",
                profile=False,
            )
        )
    if not avail["simulator"]:

        def change() -> None:
            note = change_records(ctx, ctx.cfg.change_fraction)
            if notes is not None:
                notes.append(f"scale {s}: {note}")

        chain.append(
            Subject(
                f"incremental extract @ scale {s}",
                [PY, "-m", "extract"],
                lambda m: raw_check(ctx, wh, ALL),
                env=env,
                prepare=change,
                label=f"`extract` after {ctx.cfg.change_fraction:.0%} of the records changed",
            )
        )
    return chain, missing


# --------------------------------------------------------------------------------------- incremental
def incremental_group(ctx: Context, avail: dict[str, str | None]) -> Group:
    g = Group(
        "incremental",
        f"Incremental run after {ctx.cfg.change_fraction:.0%} of records changed "
        f"vs a full re-pull, scale {ctx.fleet.scale:g}",
    )
    why = avail["extract"] or avail["simulator"]
    if why:
        g.unavailable["extract (incremental)"] = why
        g.unavailable["extract --full-refresh (re-pull)"] = why
        return g
    wh = ctx.warehouse("incremental")
    env = ctx.env("incremental", wh)

    def setup() -> None:
        fresh(wh, Path(env["DLT_DATA_DIR"]))
        ctx.run_unmeasured([PY, "-m", "extract", "--full-refresh"], env, "initial full extract")

    def change() -> None:
        g.notes.append(change_records(ctx, ctx.cfg.change_fraction))

    g.setup = setup
    g.subjects.append(
        Subject(
            "extract (incremental)",
            [PY, "-m", "extract"],
            lambda m: raw_check(ctx, wh, ALL),
            env=env,
            prepare=change,
            label="this project: `extract` after the change",
        )
    )
    g.subjects.append(
        Subject(
            "extract --full-refresh (re-pull)",
            [PY, "-m", "extract", "--full-refresh"],
            lambda m: raw_check(ctx, wh, ALL),
            env=env,
            label="this project: the same warehouse re-pulled in full",
        )
    )
    return g


def change_records(ctx: Context, fraction: float) -> str:
    """Simulator steps until `fraction` of the non-event records were created or changed; says how many.

    A simulator step is one business change (a new order touches an order, payments and events), so the
    number of steps is found by counting the records the steps report, not assumed.
    """
    from services.simulator import Simulator

    truth = read_truth(ctx.fleet.data_dir)
    base = truth.total_rows - truth.rows["events"]
    target = max(1, round(fraction * base))
    changed: dict[str, set] = {}
    steps = 0
    with Simulator(ctx.fleet.data_dir, ctx.cfg.seed) as sim:
        while sum(len(v) for v in changed.values()) < target:
            n = max(1, (target - sum(len(v) for v in changed.values())) // 3)
            summary = sim.step(n)
            steps += n
            for kind in ("created", "touched"):
                for table, ids in summary[kind].items():
                    if table != "events":
                        changed.setdefault(table, set()).update(ids)
    total = sum(len(v) for v in changed.values())
    return (
        f"before an incremental run: {steps} simulator steps changed {total} of {base} non-event records "
        f"({total / base:.1%})"
    )


def stream_group(ctx: Context, avail: dict[str, str | None], latency: dict[str, list[float]]) -> Group:
    """`extract stream` following steady simulated traffic: its own p50/p95 end-to-end latency, and the
    cores its process used between traffic start and catching up with the last event (the probe)."""
    rate, duration = (20.0, 20.0) if ctx.cfg.quick else (50.0, 60.0)
    g = Group(
        "stream",
        f"Stream latency: event occurred_at → visible in the published real-time marts, "
        f"{rate:g} events/s for {duration:g} s, scale {ctx.fleet.scale:g}",
    )
    why = avail["stream"] or avail["elt run"] or avail["simulator"]
    if why:
        g.unavailable["extract stream"] = why
        return g
    wh = ctx.warehouse("stream")
    env = ctx.env("stream", wh)
    stats_file = ctx.base / "stream-stats.json"

    def setup() -> None:
        fresh(wh, Path(env["DLT_DATA_DIR"]), Path(env["SHOP_EXPORTS_DIR"]))
        pulled = ctx.warehouse("elt-run")
        if "elt-run" in ctx.reusable:
            shutil.copyfile(pulled, wh)  # marts built by the pull group's `elt run`
        else:
            ctx.run_unmeasured([PY, "-m", "elt", "run"], env, "elt run (raw events and marts to follow)")

    def check(m: Measurement) -> Check:
        try:
            stats = json.loads(Path(m.stdout_path).read_text().strip().splitlines()[-1])
        except (OSError, ValueError, IndexError) as exc:
            return Check(False, 0, [f"no stream statistics on stdout: {exc}"])
        result = raw_check(ctx, wh, ["events"])
        if int(stats.get("committed_event_id") or 0) < int(stats.get("driver_last_event_id") or 0):
            result.ok = False
            result.problems.append(
                f"stream committed up to {stats.get('committed_event_id')}, "
                f"newest event {stats.get('driver_last_event_id')}"
            )
        if stats.get("latency_p95_s") is None:
            result.ok = False
            result.problems.append("the stream reported no latency samples")
        if result.ok:
            latency.setdefault("p50", []).append(float(stats["latency_p50_s"]))
            latency.setdefault("p95", []).append(float(stats["latency_p95_s"]))
            if stats.get("stream_cores") is not None:
                latency.setdefault("cores", []).append(float(stats["stream_cores"]))
                latency.setdefault("cpu_s", []).append(float(stats["stream_cpu_s"]))
        result.rows = int(stats.get("driver_emitted") or 0)
        return result

    g.setup = setup
    g.subjects.append(
        Subject(
            "extract stream",
            [
                PY,
                "-m",
                "bench.stream_probe",
                "--data-dir",
                str(ctx.fleet.data_dir),
                "--stats-file",
                str(stats_file),
                "--rate",
                f"{rate:g}",
                "--duration",
                f"{duration:g}",
                "--seed",
                str(ctx.cfg.seed),
            ],
            check,
            env=env,
            label="this project: `extract stream` under steady traffic (driver: bench/stream_probe.py)",
            profile=True,
        )
    )
    return g
