"""Third-party API servers nobody here wrote, for the sources-as-configuration tests.

Installed from the registries on first use, at pinned versions, into ``.cache/third-party/`` of the
repo (git-ignored; never the project's venv or uv.lock): npm's ``json-server`` (bare JSON arrays,
``_page``/``_limit`` page numbers, an RFC 8288 ``Link`` header, ``X-Total-Count``, ``<field>_gte``
filters, no auth) and PyPI's ``datasette`` in a venv of its own with ``datasette-auth-tokens`` (an
envelope ``rows``, ``next``/``next_url`` in the body, ``filtered_table_rows_count``, ``_size`` at most
1000, ``<column>__gte`` filters, bearer tokens). An install is shared by every test and worker (a file
lock; a marker file says it finished). A server runs on a free port of 127.0.0.1 until ``stop``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.pytest.support.paths import REPO
from tests.pytest.support.ports import free_port

CACHE = REPO / ".cache" / "third-party"
JSON_SERVER = ("json-server", "0.17.4")
DATASETTE = ("datasette==0.65.5", "datasette-auth-tokens==0.3")
INSTALL_TIMEOUT = 600


@contextmanager
def _locked(name: str) -> Iterator[None]:
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"installing {what} failed ({' '.join(cmd[:3])} ...): {done.stderr[-1500:]}")


def json_server() -> Path:
    """The ``json-server`` executable (npm, pinned), installed on first use."""
    name, version = JSON_SERVER
    folder = CACHE / f"{name}-{version}"
    exe = folder / "node_modules" / ".bin" / name
    with _locked(name):
        if not (folder / ".installed").exists():
            npm = shutil.which("npm")
            if npm is None:
                raise RuntimeError(
                    "npm is needed to install json-server for these tests (apt-get install npm)"
                )
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            cmd = [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--loglevel=error"]
            _run([*cmd, f"{name}@{version}"], f"{name}@{version}")
            (folder / ".installed").write_text(f"{name}@{version}\n")
    return exe


def _uv() -> str | None:
    return shutil.which("uv") or next(
        (str(p) for p in [Path.home() / ".local" / "bin" / "uv"] if p.exists()), None
    )


def datasette() -> Path:
    """The ``datasette`` executable (PyPI, pinned, with datasette-auth-tokens) in a venv of its own."""
    folder = CACHE / ("-".join(p.replace("==", "-") for p in DATASETTE))
    exe = folder / "bin" / "datasette"
    with _locked("datasette"):
        if not (folder / ".installed").exists():
            shutil.rmtree(folder, ignore_errors=True)
            base = getattr(sys, "_base_executable", sys.executable)
            env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "VIRTUAL_ENV": str(folder)}
            env.pop("UV_PROJECT_ENVIRONMENT", None)
            if uv := _uv():
                _run([uv, "venv", "--quiet", "--python", base, str(folder)], "a venv for datasette", env)
                _run(
                    [uv, "pip", "install", "--quiet", "--python", str(folder / "bin" / "python"), *DATASETTE],
                    "datasette",
                    env,
                )
            else:
                _run([base, "-m", "venv", str(folder)], "a venv for datasette")
                _run([str(folder / "bin" / "pip"), "install", "--quiet", *DATASETTE], "datasette")
            (folder / ".installed").write_text("\n".join(DATASETTE) + "\n")
    return exe


@dataclass
class Server:
    """A started server: its base URL and process (stopped by ``stop``)."""

    url: str
    proc: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def start(cmd: list[str], cwd: Path, port: int, probe: str, env: dict[str, str] | None = None) -> Server:
    """Start ``cmd`` and wait until ``probe`` (a path) answers below 500."""
    log = cwd / f"server-{port}.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env or dict(os.environ)
        )
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {log.read_text()[-1500:]}")
        try:
            if requests.get(server.url + probe, timeout=2).status_code < 500:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"{cmd[0]} did not answer {probe} within 120 s: {log.read_text()[-1500:]}")


def start_json_server(db: Path) -> Server:
    """json-server over ``db`` (a JSON file of collections; POST/PATCH change it)."""
    port = free_port()
    cmd = [str(json_server()), "--host", "127.0.0.1", "--port", str(port), "--quiet", db.name]
    return start(cmd, db.parent, port, "/db")


def start_datasette(db: Path, metadata: Path, env: dict[str, str]) -> Server:
    """datasette over the SQLite file ``db`` with ``metadata`` (permissions, token plugin config)."""
    port = free_port()
    cmd = [
        str(datasette()),
        "serve",
        db.name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--metadata",
        str(metadata),
        "--setting",
        "suggest_facets",
        "off",
        "--setting",
        "default_facet_size",
        "0",
    ]
    return start(cmd, db.parent, port, "/-/versions.json", env={**os.environ, **env})
