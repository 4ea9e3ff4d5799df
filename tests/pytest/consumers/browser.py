"""A headless Debian Chromium driven over the DevTools protocol (CDP), for pages that must work from files.

Why CDP and not ``--dump-dom``: the checks need what only a live page says: console errors and uncaught
exceptions, every request the page sends (``Network.requestWillBeSent``, so "nothing leaves the machine"
is counted, not assumed), the DOM once the charts have rendered (polled with a JavaScript condition),
and a screenshot. The protocol goes over the ``websockets`` package to Chromium's debugging port, which
Chromium picks itself (``--remote-debugging-port=0``) on 127.0.0.1 and writes to ``DevToolsActivePort``
in its fresh profile folder: no port to choose, no race.

Each ``Chromium`` is one browser process with a fresh ``--user-data-dir`` (no state between tests) and
the flags that keep it quiet: no background networking, no component updates, no first-run pages.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--mute-audio",
)
# Schemes that never leave the machine: the page itself, inlined data, in-page objects.
LOCAL_SCHEMES = {"file", "data", "blob", "about"}
START_TIMEOUT = 60.0  # seconds for Chromium to write DevToolsActivePort (a loaded 2-core machine)


class BrowserError(RuntimeError):
    """Chromium could not be started or a page did not become ready."""


@dataclass
class Action:
    """After the page is ready: run ``script``, wait until ``until`` is true, optionally screenshot."""

    script: str
    until: str = "true"
    screenshot: Path | None = None


@dataclass
class PageVisit:
    """What one page load showed: console and network activity, values read from the DOM, a screenshot."""

    url: str
    ready: bool
    values: Any = None
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    screenshots: list[Path] = field(default_factory=list)

    @property
    def external_requests(self) -> list[str]:
        """Requests to anything but local schemes (``http(s)`` to any host counts, loopback included)."""
        return [u for u in self.requests if urlsplit(u).scheme.lower() not in LOCAL_SCHEMES]


def require_chromium() -> Path:
    """The browser binary, or a one-line error saying how to install it (``make browser``)."""
    if not CHROMIUM.exists():
        raise BrowserError(
            f"{CHROMIUM} not found: run `make browser` (apt-get install chromium), which `make test` runs"
        )
    return CHROMIUM


class Chromium:
    """One headless Chromium process; use as a context manager, then ``visit`` pages."""

    def __init__(self, workdir: Path, width: int = 1280, height: int = 900) -> None:
        self.workdir = workdir
        self.profile = workdir / "profile"
        self.width, self.height = width, height
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws_url = ""

    def __enter__(self) -> Chromium:
        binary = require_chromium()
        shutil.rmtree(self.profile, ignore_errors=True)
        self.profile.mkdir(parents=True)
        log = open(self.workdir / "chromium.log", "wb")  # the child keeps its own handle
        self.proc = subprocess.Popen(
            [
                str(binary),
                *FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                f"--window-size={self.width},{self.height}",
                "about:blank",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        active = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BrowserError(
                    f"chromium exited {self.proc.returncode}; see {self.workdir / 'chromium.log'}"
                )
            lines = active.read_text().split("\n") if active.exists() else []
            if len(lines) >= 2 and lines[0].strip().isdigit() and lines[1].strip():
                self.ws_url = f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
                return self
            time.sleep(0.05)
        self.__exit__(None, None, None)
        raise BrowserError(f"chromium wrote no DevToolsActivePort in {START_TIMEOUT:.0f}s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def visit(
        self,
        url: str,
        *,
        ready: str,
        read: str,
        screenshot: Path | None = None,
        actions: list[Action] | None = None,
        timeout: float = 90.0,
    ) -> PageVisit:
        """Open ``url`` in a new tab; wait until it has loaded and the JavaScript expression ``ready`` is
        true; return what the expression ``read`` evaluates to (JSON), the console errors and every
        request of the tab.

        ``screenshot`` is taken once the page is ready; then each of ``actions`` runs in turn (e.g. a
        click, then what must appear after it, then a screenshot of that); ``read`` is evaluated last.
        """
        return asyncio.run(self._visit(url, ready, read, screenshot, actions or [], timeout))

    async def _visit(
        self,
        url: str,
        ready: str,
        read: str,
        screenshot: Path | None,
        actions: list[Action],
        timeout: float,
    ) -> PageVisit:
        visit = PageVisit(url=url, ready=False)
        async with connect(self.ws_url, max_size=None, proxy=None, open_timeout=30) as ws:
            cdp = _Session(ws, visit)
            reader = asyncio.create_task(cdp.pump())
            try:
                target = await cdp.call("Target.createTarget", {"url": "about:blank"})
                attached = await cdp.call(
                    "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
                )
                cdp.session = attached["sessionId"]
                for method in ("Runtime.enable", "Log.enable", "Network.enable", "Page.enable"):
                    await cdp.call(method)
                await cdp.call(
                    "Emulation.setDeviceMetricsOverride",
                    {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
                )
                await cdp.call("Page.navigate", {"url": url})
                deadline = time.monotonic() + timeout
                # complete first: a big page's inline scripts (charts) run while the rest is still parsing
                visit.ready = await cdp.wait_for(f"document.readyState === 'complete' && ({ready})", deadline)
                if visit.ready and screenshot is not None:
                    visit.screenshots.append(await cdp.screenshot(screenshot))
                for action in actions:
                    if not visit.ready:
                        break
                    await cdp.evaluate(action.script)
                    visit.ready = await cdp.wait_for(action.until, deadline)
                    if visit.ready and action.screenshot is not None:
                        visit.screenshots.append(await cdp.screenshot(action.screenshot))
                visit.values = await cdp.evaluate(f"JSON.stringify({read})")
                visit.values = json.loads(visit.values) if isinstance(visit.values, str) else None
                await cdp.call("Target.closeTarget", {"targetId": target["targetId"]}, session=False)
            finally:
                reader.cancel()
        return visit


class _Session:
    """Request/response matching and event collection on one CDP websocket (flattened sessions)."""

    def __init__(self, ws: ClientConnection, visit: PageVisit) -> None:
        self.ws = ws
        self.visit = visit
        self.session: str | None = None
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}

    async def call(
        self, method: str, params: dict[str, Any] | None = None, session: bool = True
    ) -> dict[str, Any]:
        msg_id = next(self.ids)
        message: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[msg_id] = future
        await self.ws.send(json.dumps(message))
        reply = await asyncio.wait_for(future, timeout=60)
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True}
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"script failed: {_exception_text(result['exceptionDetails'])}")
        return result.get("result", {}).get("value")

    async def screenshot(self, path: Path) -> Path:
        shot = await self.call("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def wait_for(self, condition: str, deadline: float) -> bool:
        """Poll ``condition`` until it is true or the deadline passes (a sync aid, not a speed check)."""
        while time.monotonic() < deadline:
            try:
                if await self.evaluate(f"Boolean({condition})"):
                    return True
            except BrowserError:
                pass  # the document may be between navigations
            await asyncio.sleep(0.2)
        return False

    async def pump(self) -> None:
        async for raw in self.ws:
            message = json.loads(raw)
            if "id" in message:
                future = self.pending.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
                continue
            self._event(message.get("method", ""), message.get("params", {}))

    def _event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Network.requestWillBeSent":
            self.visit.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            self.visit.console_errors.append("exception: " + _exception_text(params["exceptionDetails"]))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
            self.visit.console_errors.append(f"console.{params['type']}: {text}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.visit.console_errors.append(
                f"log ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}"
            )


def _exception_text(details: dict[str, Any]) -> str:
    exception = details.get("exception") or {}
    return str(exception.get("description") or details.get("text") or details)
