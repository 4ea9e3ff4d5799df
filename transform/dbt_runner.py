"""Run dbt the way this project needs it: from the repo root, under the warehouse lock, with the PII
key in ``DBT_ENV_SECRET_PII_KEY``, the warehouse path made absolute, and the outcome recorded.

dbt runs as a child process (not in-process) so its global state, logging and the DuckDB write
connection end with it; the parent only holds the lock and hands it down.

Successful or not, every ``build``/``run`` leaves ``run/dbt_last_build.json`` so that a later
``python -m elt export`` can refuse to publish marts from a build that failed (dbt replaces a model
before its tests run, so a failed build can leave half-checked data in the warehouse).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import lock, pii_key, settings, signals
from core.atomic_files import write_atomic
from transform import dbt_artifacts, dbt_progress

log = logging.getLogger("elt.dbt")

# Subcommands that never open the warehouse, so they need no lock.
SOURCE_NAMES_ENV = (
    "SHOP_SOURCE_NAMES"  # read by the generated models' `enabled` (extract/scaffold/dbtfiles.py)
)
NO_WAREHOUSE = {"parse", "ls", "list", "deps", "clean", "init", "--help", "-h", "--version", "help"}
BUILD_COMMANDS = {"build", "run"}


@dataclass
class DbtOutcome:
    args: list[str]
    exit_code: int
    seconds: float
    invocation_id: str | None
    summary: dbt_artifacts.RunSummary | None
    pii_key_fingerprint: str | None = None  # of the key dbt hashed with (checked again at publish)
    # a selection that leaves the warehouse whole: the flow's changed-only build (elt/build_plan.py), whose
    # unselected nodes are what a full build would write again; an export may follow it like a full build
    changed_only: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def dbt_env(base: dict[str, str] | None = None, *, need_key: bool = True) -> dict[str, str]:
    """The environment dbt runs with (the PII key set, paths absolute, no usage stats).

    ``need_key``: the key is resolved (and on a first run created) by ``pii_key.pii_key()``, which
    raises when it is missing after a publish. Commands that never query the warehouse pass False and
    get the key only if one is configured: a lost key must not block ``dbt parse``.
    """
    env = dict(os.environ if base is None else base)
    if need_key:
        env[pii_key.DBT_ENV_VAR] = pii_key.pii_key()
    elif (found := pii_key.configured()) is not None:
        env[pii_key.DBT_ENV_VAR] = found[0]
    env["SHOP_WAREHOUSE"] = str(settings.warehouse_path())
    if (names := source_names()) is not None:
        env[SOURCE_NAMES_ENV] = ",".join(names)
    env.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    env.setdefault("DBT_PROFILES_DIR", str(settings.repo_root()))
    env.setdefault("DBT_PROJECT_DIR", str(settings.repo_root()))
    return env


def source_names() -> list[str] | None:
    """The sources the loaders know (the files of ``sources/`` or ``SHOP_SOURCES_DIR``), or None when
    the files are invalid (the loader itself reports that).

    dbt gets them as ``SHOP_SOURCE_NAMES``: the models ``python -m extract init`` generates are enabled
    only while their source is one of these (extract/scaffold/dbtfiles.py), so a run over another set
    of sources - the test suites load only the shop's embedded files - builds without them."""
    # the loaders' registry of sources, their public list of names (tests/pytest/test_layers.py allows
    # transform this one surface of extract); imported here: most dbt commands never need it
    from extract.errors import SourceFileError
    from extract.sources import SERVICES

    try:
        return list(SERVICES)
    except SourceFileError:
        return None


def dbt_command(args: list[str]) -> list[str]:
    """The dbt executable next to this interpreter (the project's venv)."""
    exe = Path(sys.executable).with_name("dbt")
    return [str(exe), *args] if exe.exists() else [sys.executable, "-m", "dbt.cli.main", *args]


def subcommand(args: list[str]) -> str | None:
    """The dbt subcommand in ``args`` (the first word that is not an option)."""
    return next((a for a in args if not a.startswith("-")), args[0] if args else None)


def last_build_file() -> Path:
    return settings.run_dir() / "dbt_last_build.json"


def record_build(outcome: DbtOutcome) -> None:
    """Remember how the last build/run ended, for ``export``'s publish-only-after-success check."""
    data: dict[str, Any] = {
        "args": outcome.args,
        "exit_code": outcome.exit_code,
        "invocation_id": outcome.invocation_id,
        "finished_at": datetime.now(UTC).isoformat(),
        "target_dir": str(dbt_artifacts.target_dir()),
        "warehouse": str(settings.warehouse_path()),
        "summary": asdict(outcome.summary) if outcome.summary else None,
        "pii_key_fingerprint": outcome.pii_key_fingerprint,
        "changed_only": outcome.changed_only,
    }
    path = last_build_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def last_build() -> dict[str, Any] | None:
    """The record written by the last build/run through this wrapper, if any."""
    try:
        return json.loads(last_build_file().read_text())
    except (OSError, ValueError):
        return None


def run_dbt(
    args: list[str], *, wait: float | None = None, owner: str | None = None, changed_only: bool = False
) -> DbtOutcome:
    """Run ``dbt <args>`` from the repo root, under the warehouse lock unless it never touches it.

    Output goes to this process's stdout: for node-running commands (build, run, test, ...) as
    progress lines, failures and dbt's end summary (``transform.dbt_progress``), otherwise as dbt prints it;
    uncoloured unless stdout is a terminal. Returns the exit code, timing and (when dbt wrote one)
    the run results summary. ``changed_only``: the selection is the flow's changed-only build (recorded
    so, see ``DbtOutcome.changed_only``).
    """
    sub = subcommand(args)
    cmd = dbt_command(args)
    run_results = dbt_artifacts.target_dir() / "run_results.json"
    before = run_results.stat().st_mtime_ns if run_results.exists() else None
    started = time.monotonic()
    log.info("dbt %s", " ".join(args))
    progress = dbt_progress.structured(sub)
    fingerprint = None
    if sub in NO_WAREHOUSE:
        env = dbt_env(need_key=False)
        code = dbt_progress.run(cmd, cwd=settings.repo_root(), env=env, progress=progress)
    else:
        with lock.warehouse_lock(owner or f"dbt {' '.join(args)}", wait=wait):
            fd = lock.held_fd()
            env = dbt_env(lock.child_env())  # raises before dbt starts when the key is lost
            fingerprint = pii_key.check_build_key(env[pii_key.DBT_ENV_VAR])
            try:
                code = dbt_progress.run(
                    cmd,
                    cwd=settings.repo_root(),
                    env=env,
                    pass_fds=(fd,) if fd is not None else (),
                    progress=progress,
                )
            except signals.Interrupted as exc:
                # dbt may have replaced some models already: a stopped build counts as a failed one, so
                # `elt export` will not publish from it
                if sub in BUILD_COMMANDS:
                    seconds = time.monotonic() - started
                    record_build(
                        DbtOutcome(list(args), exc.exit_code, seconds, None, None, fingerprint, changed_only)
                    )
                raise
    seconds = time.monotonic() - started
    summary = None
    if run_results.exists() and run_results.stat().st_mtime_ns != before:
        try:
            summary = dbt_artifacts.run_summary(run_results)
        except dbt_artifacts.ArtifactError as exc:
            log.warning("could not read %s: %s", run_results, exc)
    invocation_id = summary.invocation_id if summary else None
    outcome = DbtOutcome(list(args), code, seconds, invocation_id, summary, fingerprint, changed_only)
    if sub in BUILD_COMMANDS:
        record_build(outcome)
    log.info("dbt %s exited %d after %.1fs", sub, code, seconds)
    return outcome
