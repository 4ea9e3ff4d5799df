"""Rebuild the ``tag:realtime`` dbt models and publish them to the realtime export root.

Why in-process: a ``dbt`` child process spends seconds starting and parsing the project before it
touches a table, more than the whole latency budget. The project is parsed once at start-up
(``dbt parse``); at start-up, under the lock, ``dbt run -s tag:realtime`` runs once through one
long-lived ``dbtRunner(manifest=...)`` (building the parents once on a fresh warehouse; if that fails,
the first batch tries again), then ``dbt compile`` compiles the models; from then on each batch executes
that compiled SQL directly in one transaction
(``directsql.py`` says why and what it reproduces), and falls back to a dbt run for a batch whose
direct run fails (then compiles again). ``--dbt-command build`` keeps dbt per batch, for its tests.
dbt-duckdb closes its DuckDB handle when the invocation's last connection closes; ``release()``
makes sure of it, because the lock is handed back after each batch and another *process* must then
be able to open the file.

Publishing reuses ``publish.publish.publish`` (staging folder, verification, manifest, atomic
``current`` switch) with only the realtime specs and its own root, so the batch flow's
``exports/current`` and the stream's ``exports/realtime/current`` never prune or race each other; with
``reuse`` (a batch writes only the marts and partitions it changed, the others are the current
version's files, linked) and through the batch's own connection.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from core import settings
from elt.stream import directsql
from elt.stream.session import BatchConnection
from elt.stream.settings import stream_dir
from publish.publish import PublishError, PublishResult, publish
from transform import dbt_artifacts, dbt_runner

log = logging.getLogger("elt.stream.marts")

REALTIME_TAG = "realtime"
SELECTOR = f"tag:{REALTIME_TAG}"
KEEP_VERSIONS = 3


class MartsError(RuntimeError):
    """dbt failed on the real-time models (nothing was published for this batch)."""


@dataclass
class RefreshOutcome:
    invocation_id: str | None
    dbt_seconds: float
    publish: PublishResult
    direct: bool = False  # the compiled SQL ran directly (not a dbt invocation)


def release_dbt_connections() -> None:
    """Close dbt-duckdb's process-wide DuckDB handle, if an invocation left one open."""
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # pragma: no cover - dbt-duckdb is a locked dependency
        return
    env = DuckDBConnectionManager._ENV
    if env is not None and getattr(env, "conn", None) is not None:
        env.close()
    DuckDBConnectionManager.close_all_connections()


class RealtimeMarts:
    """A parsed dbt project that rebuilds and publishes the real-time marts on demand."""

    def __init__(self, command: str = "run", exports: Path | None = None, *, direct: bool = True) -> None:
        from dbt.cli.main import dbtRunner  # heavy import: only when marts are wanted

        self.command = command
        self.exports = exports
        self.target = stream_dir() / "dbt-target"
        self.logs = stream_dir() / "dbt-logs"
        self.target.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        # dbt reads the PII key and the absolute warehouse path from the environment (as the batch
        # flow's child dbt does); in-process that means this process's environment.
        os.environ.update(dbt_runner.dbt_env())
        root = str(settings.repo_root())
        self.common = [
            "--project-dir",
            root,
            "--profiles-dir",
            os.environ.get("DBT_PROFILES_DIR", root),
            "--target-path",
            str(self.target),
            "--log-path",
            str(self.logs),
            "--log-level-file",
            "warn",
            "--quiet",
            "--no-use-colors",  # console and dbt-logs/dbt.log: no terminal colour codes in a log
        ]
        started = time.monotonic()
        parsed = dbtRunner().invoke(["parse", *self.common])
        if not parsed.success or parsed.result is None:
            raise MartsError(f"dbt parse failed: {parsed.exception}")
        self.manifest = parsed.result
        self.runner = dbtRunner(manifest=self.manifest)
        realtime = {uid for uid, node in self.manifest.nodes.items() if REALTIME_TAG in (node.tags or [])}
        self.specs = [
            s for s in dbt_artifacts.publish_specs(self.target / "manifest.json") if s.unique_id in realtime
        ]
        if not self.specs:
            raise MartsError("no model is tagged both 'realtime' and 'publish': nothing to keep fresh")
        self.bootstrapped = False
        self.plan: directsql.DirectPlan | None = None
        self.direct_settings: dict[str, str] = {}
        self.compiled_invocation: str | None = None
        self.direct_wanted = direct and command == "run"
        log.info(
            "dbt project parsed once in %.1fs; real-time marts: %s",
            time.monotonic() - started,
            ", ".join(s.name for s in self.specs),
        )

    def _invoke(self, args: list[str]) -> Any:
        try:
            # No artifacts written per batch. (--no-populate-cache would save a little, but with two
            # threads dbt's lazily filled relation cache raced a table swap: "Cache inconsistency".)
            return self.runner.invoke([*args, *self.common, "--no-write-json"])
        finally:
            release_dbt_connections()

    def _dbt(self) -> str | None:
        """Run the selector; on a first failure build the models' parents once (a fresh warehouse has
        no staging views yet) and retry. Returns the invocation id."""
        from dbt_common.invocation import get_invocation_id

        result = self._invoke([self.command, "--select", SELECTOR])
        if not result.success and not self.bootstrapped:
            self.bootstrapped = True
            log.warning(
                "dbt %s -s %s failed; building its parents once (+%s)", self.command, SELECTOR, SELECTOR
            )
            self._invoke(["build", "--select", f"+{SELECTOR}"])
            result = self._invoke([self.command, "--select", SELECTOR])
        self.bootstrapped = True
        if not result.success:
            failures = []
            for r in getattr(result.result, "results", None) or []:
                if str(r.status) in ("error", "fail", "runtime error"):
                    failures.append(f"{r.node.unique_id}: {r.status}: {(r.message or '')[:200]}")
            raise MartsError(
                f"dbt {self.command} -s {SELECTOR} failed: "
                + ("; ".join(failures) if failures else str(result.exception))
            )
        return get_invocation_id()

    def prepare(self) -> None:
        """At start-up, under the lock: refresh the models through dbt once and compile them, so the
        first batch already runs directly. A failure (e.g. no raw events loaded yet) is left to the
        first batch, which tries the same again."""
        if not self.direct_wanted or self.plan is not None:
            return
        try:
            self._dbt()
        except MartsError as exc:
            log.warning("real-time models not built at start-up (the first batch tries again): %s", exc)
            return
        self.compile_direct()

    def publish_current(self, exports: Path) -> None:
        """At start-up, under the lock, after ``prepare``: publish the marts as they are (``reuse``: nothing
        new when the current version already holds them). Why: the first publish into an empty or stale
        root writes every file; done here it is not the first batch's latency. A failure is left to the
        first batch, which publishes anyway."""
        if self.plan is None:
            return
        try:
            result = publish(
                self.specs,
                warehouse=settings.warehouse_path(),
                exports=exports,
                dbt_invocation={"invocation_id": self.compiled_invocation, "command": f"run -s {SELECTOR}"},
                keep=KEEP_VERSIONS,
                reuse=True,
            )
        except (PublishError, duckdb.Error, OSError) as exc:
            log.warning("real-time marts not published at start-up (the first batch does): %s", exc)
            return
        log.info(
            "real-time marts published at start-up: version %s%s",
            result.version_id,
            " (unchanged)" if result.unchanged else "",
        )

    def compile_direct(self) -> None:
        """``dbt compile`` the real-time models against the warehouse as it is now (their targets exist:
        ``is_incremental()`` is true) and plan their direct runs; no plan when one cannot run directly."""
        from dbt.adapters.factory import FACTORY
        from dbt_common.invocation import get_invocation_id

        result = self._invoke(["compile", "--select", SELECTOR])
        results = getattr(result.result, "results", None) or []
        nodes = [r.node for r in results if r.node.resource_type == "model"]  # not their tests
        if not result.success or not nodes:
            log.warning("dbt compile -s %s failed: the real-time models run through dbt", SELECTOR)
            self.direct_wanted = False
            return
        self.compiled_invocation = get_invocation_id()
        credentials = next(iter(FACTORY.adapters.values())).config.credentials
        self.direct_settings = {str(k): str(v) for k, v in (credentials.settings or {}).items()}
        with self._connect() as con:
            self.plan = directsql.compile_plan(con, nodes, self.manifest)
        if self.plan is None:
            self.direct_wanted = False
        else:
            log.info("real-time models compiled once; each batch runs their SQL directly")

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """A connection set up as dbt-duckdb sets up its own (the profile's ``settings``)."""
        con = duckdb.connect(str(settings.warehouse_path()))
        for key, value in self.direct_settings.items():
            con.execute(f"set {key} = ?", [value])
        return con

    def build_models(
        self, shared: BatchConnection | None = None, *, keep_open: bool = False
    ) -> tuple[str | None, bool]:
        """Refresh the models: directly when compiled (on ``shared``, the batch's connection, when given),
        else through dbt (then compile for the next batch). Returns the invocation id that compiled (or
        ran) them, and whether they ran directly. ``keep_open``: after a direct run ``shared`` stays open
        (the publish reads through it); otherwise it is closed before anything opens the file with
        another configuration."""
        shared = shared or BatchConnection(self._connect)
        if self.plan is not None:
            try:
                con = shared.get()
                for key, value in self.direct_settings.items():  # dbt's session settings (profile)
                    con.execute(f"set {key} = ?", [value])
                self.plan.run(con)
                if not keep_open:
                    shared.close()
                return self.compiled_invocation, True
            except duckdb.Error as exc:
                log.warning(
                    "the compiled real-time models failed (%s): running dbt for this batch, compiling again",
                    str(exc).splitlines()[0][:300],
                )
                self.plan = None
            except BaseException:
                shared.close()
                raise
        shared.close()  # dbt opens the file with its own configuration
        invocation_id = self._dbt()
        if self.direct_wanted:
            self.compile_direct()
        return invocation_id, False

    def refresh(self, exports: Path, shared: BatchConnection | None = None) -> RefreshOutcome:
        """Rebuild the real-time models, then publish them under ``exports``: a new version with only
        what changed written (``reuse``: unchanged marts and partitions are the current version's files,
        linked), or none when nothing changed.

        The caller holds the warehouse lock and no DuckDB handle in this process other than ``shared``.
        After a direct run the publish reads through ``shared`` (left open for the caller); after a dbt
        run it opens the file read-only itself.
        """
        own = shared is None
        shared = shared or BatchConnection(self._connect)
        try:
            started = time.monotonic()
            invocation_id, direct = self.build_models(shared, keep_open=True)
            dbt_seconds = time.monotonic() - started
            command = f"compile -s {SELECTOR}, run directly" if direct else f"{self.command} -s {SELECTOR}"
            result = publish(
                self.specs,
                warehouse=settings.warehouse_path(),
                exports=exports,
                dbt_invocation={"invocation_id": invocation_id, "command": command},
                keep=KEEP_VERSIONS,
                reuse=True,
                connection=shared.con,
            )
        finally:
            if own:
                shared.close()
        return RefreshOutcome(invocation_id, dbt_seconds, result, direct)
