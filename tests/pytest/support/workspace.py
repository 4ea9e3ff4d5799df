"""One isolated project per flow: its own warehouse, exports, run folder and dbt target, an environment
that points the real commands at a fleet's services, and running those commands with everything they
print kept in the workspace (the secrets audit reads it all back)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.pytest.support.envs import isolated_env
from tests.pytest.support.paths import REPO


@dataclass
class Workspace:
    """One isolated set of project paths (warehouse, exports, run dir, dbt target) for one flow."""

    root: Path
    env: dict[str, str]

    @property
    def warehouse(self) -> Path:
        return Path(self.env["SHOP_WAREHOUSE"])

    @property
    def exports(self) -> Path:
        return Path(self.env["SHOP_EXPORTS_DIR"])

    @property
    def run_dir(self) -> Path:
        return Path(self.env["SHOP_RUN_DIR"])

    def current_version(self) -> str | None:
        link = self.exports / "current"
        return os.readlink(link) if link.is_symlink() else None


def make_workspace(
    root: Path, fleet_env: dict[str, str], pii_key: str, seed_target: Path | None = None
) -> Workspace:
    """Paths under ``root`` and an environment pointing the flow at ``fleet_env``'s services.

    Credentials go in as ``SOURCES__*`` variables (so the per-case run dir needs no fleet.env). When
    ``seed_target`` holds a dbt ``partial_parse.msgpack`` it is copied in, saving dbt's ~10 s full parse.
    """
    root.mkdir(parents=True, exist_ok=True)
    env = isolated_env(root, "SOURCES__", "SHOP_", "DBT_")
    env.update({k: v for k, v in fleet_env.items() if k.startswith("SOURCES__")})
    env.update(
        SHOP_PII_KEY=pii_key,
        SHOP_LOCK_WAIT="20",
        SOURCES__EXTRACT__MAX_ATTEMPTS="3",
        SOURCES__EXTRACT__BACKOFF_MAX="1",
    )
    if seed_target is not None and (seed_target / "partial_parse.msgpack").exists():
        shutil.copy2(seed_target / "partial_parse.msgpack", root / "target" / "partial_parse.msgpack")
    return Workspace(root, env)


@dataclass
class Outcome:
    """A finished (or killed) process: exit code, combined output, and whether we killed it."""

    args: list[str]
    returncode: int
    output: str
    killed_at: str | None = None
    seconds: float = 0.0

    def describe(self) -> str:
        return f"`{' '.join(self.args)}` exited {self.returncode}; output tail:\n{self.output[-4000:]}"


def run(ws: Workspace, args: list[str], timeout: float = 300.0) -> Outcome:
    """Run ``python <args>`` in the repo with the workspace env; capture everything it prints."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *args],
        cwd=REPO,
        env=ws.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    out = Outcome(args, proc.returncode, proc.stdout, seconds=time.monotonic() - t0)
    save_log(ws, out)
    return out


def save_log(ws: Workspace, out: Outcome) -> None:
    """Keep every captured output in the workspace (the secrets test searches them all)."""
    logs = ws.root / "captured"
    logs.mkdir(exist_ok=True)
    n = len(list(logs.iterdir()))
    (logs / f"{n:03d}.log").write_text(out.output)


def flow(ws: Workspace, timeout: float = 300.0) -> Outcome:
    """``python -m elt run --no-services`` against the workspace's services."""
    return run(ws, ["-m", "elt", "run", "--no-services"], timeout=timeout)
