"""Build the Meltano/Singer peer under bench/work/ (pip from PyPI, never the project venv).

Why separate: Meltano, tap-rest-api-msdk and target-duckdb bring their own dependency pins (singer-sdk,
an older setuptools) that must not leak into the project's locked environment. Meltano goes into its own
venv; its project declares the plugins inline (custom `namespace`/`pip_url`, since the Meltano hub is not
reachable) and `meltano install` builds one venv per plugin. A plain venv with both plugins is built too,
so the peer can still run tap | target if Meltano itself fails. Marker files let `--quick` reuse a build.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.peers.singer_peer import SERVICES, tap_config, target_config

TAP = "tap-rest-api-msdk==1.4.2"
TARGET = "target-duckdb==0.8.0"
SETUPTOOLS = "setuptools<81"  # tap-rest-api-msdk still imports pkg_resources
MELTANO = "meltano==4.4.1"


@dataclass
class SingerEnv:
    """Where the peer's environment lives and whether it is ready."""

    root: Path

    @property
    def venv(self) -> Path:
        return self.root / "singer-venv"

    @property
    def marker(self) -> Path:
        return self.venv / ".bench-built"

    def ready(self) -> bool:
        return self.marker.exists() and (self.venv / "bin" / "tap-rest-api-msdk").exists()

    def build(self, log: Path) -> tuple[bool, str]:
        """Create the venv and pip-install the plugins; returns (ok, message)."""
        if self.ready():
            return True, f"reused {self.venv}"
        started = time.perf_counter()
        if self.venv.exists():
            shutil.rmtree(self.venv)
        python = shutil.which("python3.11") or sys.executable
        steps = [
            [python, "-m", "venv", str(self.venv)],
            [
                str(self.venv / "bin" / "pip"),
                "install",
                "--quiet",
                "--disable-pip-version-check",
                SETUPTOOLS,
                TAP,
                TARGET,
            ],
        ]
        with open(log, "ab") as out:
            for cmd in steps:
                rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
                if rc:
                    return False, f"`{' '.join(cmd[:4])} …` failed (rc={rc}), see {log}"
        self.marker.write_text(f"{TAP} {TARGET} {SETUPTOOLS}\n")
        return True, f"built {self.venv} in {time.perf_counter() - started:.0f}s"

    # --- Meltano -----------------------------------------------------------------------------------
    @property
    def meltano_venv(self) -> Path:
        return self.root / "meltano-venv"

    @property
    def meltano_project(self) -> Path:
        return self.root / "meltano-project"

    @property
    def meltano_marker(self) -> Path:
        return self.meltano_project / ".bench-built"

    def meltano_ready(self) -> bool:
        return self.meltano_marker.exists()

    def build_meltano(self, log: Path) -> tuple[bool, str]:
        """Install Meltano, write a project with the inline plugins, `meltano install` them."""
        if self.meltano_ready():
            return True, f"reused {self.meltano_project}"
        started = time.perf_counter()
        for path in (self.meltano_venv, self.meltano_project):
            if path.exists():
                shutil.rmtree(path)
        python = shutil.which("python3.11") or sys.executable
        self.meltano_project.mkdir(parents=True)
        write_meltano_yml(self.meltano_project, None, self.root / "placeholder.duckdb", 1000)
        steps = [
            ([python, "-m", "venv", str(self.meltano_venv)], None),
            (
                [
                    str(self.meltano_venv / "bin" / "pip"),
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    SETUPTOOLS,
                    MELTANO,
                ],
                None,
            ),
            ([str(self.meltano_venv / "bin" / "meltano"), "install"], self.meltano_project),
        ]
        env = dict(os.environ, MELTANO_SEND_ANONYMOUS_USAGE_STATS="false")
        with open(log, "ab") as out:
            for cmd, cwd in steps:
                rc = subprocess.run(
                    cmd, stdout=out, stderr=subprocess.STDOUT, cwd=cwd, env=env, check=False
                ).returncode
                if rc:
                    return False, f"`{' '.join(cmd[:4])} …` failed (rc={rc}), see {log}"
        self.meltano_marker.write_text(f"{MELTANO} {TAP} {TARGET}\n")
        return True, f"built {self.meltano_project} in {time.perf_counter() - started:.0f}s"


def write_meltano_yml(project: Path, env: dict[str, str] | None, database: Path, page_size: int) -> None:
    """Declare the taps (one per covered service) and target-duckdb inline, with their configs.

    With `env` None the configs are left out (enough for `meltano install`); the harness rewrites the
    file with the live fleet's URLs and credentials before each measured group. The file holds secrets,
    so it is written 0600 under the git-ignored bench/work/.
    """
    extractors: list[dict[str, Any]] = []
    for service in SERVICES:
        plugin: dict[str, Any] = {
            "name": f"tap-shop-{service}",
            "namespace": "tap_rest_api_msdk",
            "pip_url": f"{TAP} {SETUPTOOLS}",
            "executable": "tap-rest-api-msdk",
            "capabilities": ["catalog", "discover", "state", "about"],
        }
        if env is not None:
            plugin["config"] = tap_config(service, page_size, env)
        extractors.append(plugin)
    loader = {
        "name": "target-duckdb",
        "namespace": "target_duckdb",
        "pip_url": f"{TARGET} {SETUPTOOLS}",
        "executable": "target-duckdb",
        "config": target_config(database, "singer"),
    }
    doc = {
        "version": 1,
        "default_environment": "bench",
        "project_id": "shop-bench-singer-peer",
        "send_anonymous_usage_stats": False,
        "environments": [{"name": "bench"}],
        "plugins": {"extractors": extractors, "loaders": [loader]},
    }
    path = project / "meltano.yml"
    path.write_text(json.dumps(doc, indent=2))  # JSON is valid YAML
    os.chmod(path, 0o600)
