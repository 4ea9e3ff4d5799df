"""One bounded HTTP exchange: a total deadline per request, and a cap on the decompressed body.

Why this exists: ``requests``' timeout bounds each socket read, not the request, so a server that sends
a byte every few seconds keeps one request alive for ever; and ``Response.content`` holds whatever the
server sends, a gzip body inflated included. urllib3's ``Timeout(total=...)`` does not help either: it
only shortens the per-read timeout once, when the request starts.

* **Deadline.** Each exchange arms a timer. The session's connections come from ``BoundedAdapter``,
  whose connection class hands every socket it opens (and the pool every socket it reuses) to the
  exchange running in that thread; when the timer fires it shuts that socket down, so a read blocked
  anywhere - TLS handshake, headers, body - returns at once and the exchange raises
  ``DeadlineExceeded``. A socket shut down after its exchange ended is never touched.
* **Size cap.** The body is read with ``stream=True`` in chunks of decoded bytes (urllib3 inflates at
  most a chunk at a time) into one buffer, checked against the cap as it grows; past it the transfer
  stops and ``BodyTooLarge`` is raised before anything is parsed. A ``Content-Length`` over the cap
  fails before the body is read. The buffer is the only copy of the body: the parser reads it in place.
* Error answers (not 200) keep at most ``ERROR_BODY_BYTES`` - enough for the service's error envelope.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from extract.limits import HttpPolicy

CHUNK_BYTES = 1 << 20
ERROR_BODY_BYTES = 64 << 10

_current = threading.local()  # .watch: the _Watch of the exchange running in this thread


class DeadlineExceeded(Exception):
    """The whole request (connect, headers, body) took longer than its deadline."""


class BodyTooLarge(Exception):
    """The response body (after decompression) is larger than the cap."""

    def __init__(self, cap: int, seen: str) -> None:
        self.cap = cap
        super().__init__(f"body larger than {cap} bytes ({seen})")


class _Watch:
    """The deadline of one exchange: the sockets it used, and a timer that shuts them down."""

    def __init__(self, seconds: float) -> None:
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._ended = False
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def start(self) -> None:
        self._timer.start()

    def end(self) -> None:
        """The exchange is over: a late timer must not touch a socket now back in the pool."""
        self._timer.cancel()
        with self._lock:
            self._ended = True
            self._sockets.clear()

    def track(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if self._ended:
                return
            self._sockets.append(sock)
            if self.fired:
                _shut(sock)

    def _fire(self) -> None:
        with self._lock:
            if self._ended:
                return
            self.fired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _track(sock: socket.socket | None) -> None:
    watch: _Watch | None = getattr(_current, "watch", None)
    if watch is not None:
        watch.track(sock)


class _TrackedConnection(HTTPConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _track(sock)  # before TLS and before the request is sent: the deadline covers both
        return sock


class _TrackedHTTPSConnection(HTTPSConnection):
    def _new_conn(self) -> socket.socket:
        sock = super()._new_conn()
        _track(sock)
        return sock


class _TrackedPool(HTTPConnectionPool):
    ConnectionCls = _TrackedConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        _track(getattr(conn, "sock", None))  # a kept-alive connection: its socket is already open
        return conn


class _TrackedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _TrackedHTTPSConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        conn = super()._get_conn(timeout)
        _track(getattr(conn, "sock", None))
        return conn


class BoundedAdapter(HTTPAdapter):
    """requests' adapter with connections whose sockets an exchange's deadline can shut down."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _TrackedPool, "https": _TrackedHTTPSPool}


def bound_session(session: requests.Session) -> requests.Session:
    """Mount ``BoundedAdapter`` for both schemes (the exchanges below need its connections)."""
    for prefix in ("http://", "https://"):
        if not isinstance(session.get_adapter(prefix), BoundedAdapter):
            session.mount(prefix, BoundedAdapter())
    return session


@dataclass
class Reply:
    """A complete answer: status, headers and the whole (decoded) body, in one buffer."""

    status: int
    reason: str
    headers: CaseInsensitiveDict
    body: bytearray


def _content_length(resp: requests.Response) -> int | None:
    """The body's length on the wire when that is also its decoded length (no content coding)."""
    if resp.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        return None
    try:
        length = int(resp.headers.get("Content-Length", ""))
    except ValueError:
        return None
    return length if length >= 0 else None


def _read_body(resp: requests.Response, cap: int, truncate: bool) -> tuple[bytearray, bool]:
    """The decoded body, up to ``cap`` bytes; (body, complete). Past the cap: ``BodyTooLarge``, or with
    ``truncate`` the first ``cap`` bytes and complete = False."""
    raw = resp.raw
    length = _content_length(resp)
    if length is not None and length > cap and not truncate:
        raise BodyTooLarge(cap, f"Content-Length {length}")
    if length is not None and length <= cap:
        body = bytearray(length)  # one buffer of the final size, filled in place
        view = memoryview(body)
        pos = 0
        try:
            while pos < length:
                got = raw.readinto(view[pos : min(length, pos + CHUNK_BYTES)])
                if not got:
                    break  # urllib3 raises IncompleteRead first: the length is enforced
                pos += got
        finally:
            view.release()
        if pos < length:
            del body[pos:]
        return body, True
    body = bytearray()
    while chunk := raw.read(CHUNK_BYTES, decode_content=True):
        body += chunk
        if len(body) > cap:
            if truncate:
                del body[cap:]
                return body, False
            raise BodyTooLarge(cap, f"more than {cap} bytes after decompression")
    return body, True


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    policy: HttpPolicy,
    **kwargs: Any,
) -> Reply:
    """Send one request and read its whole answer within ``policy.deadline`` and ``policy.max_bytes``.

    Raises ``DeadlineExceeded``, ``BodyTooLarge``, or what ``requests`` raises (timeouts, connection
    errors, TLS errors); urllib3 errors while reading the body surface as ``requests.ConnectionError``.
    Redirects are never followed.
    """
    watch = _Watch(policy.deadline)
    _current.watch = watch
    watch.start()
    try:
        resp = session.request(
            method,
            url,
            stream=True,
            allow_redirects=False,
            timeout=(policy.connect_timeout, policy.read_timeout),
            **kwargs,
        )
        complete = False
        try:
            ok = resp.status_code == 200
            body, complete = _read_body(resp, policy.max_bytes if ok else ERROR_BODY_BYTES, truncate=not ok)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.exceptions.ReadTimeout(str(exc)) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise requests.exceptions.ConnectionError(exc) from exc
        finally:
            if complete:
                resp.raw.release_conn()  # read to the end: the connection can be kept alive
            else:
                resp.close()
        if watch.fired:  # a cut during the headers can look like an answer that simply ended there
            raise requests.exceptions.ConnectionError("cut at the deadline")
        return Reply(resp.status_code, resp.reason or "", resp.headers, body)
    except (requests.RequestException, OSError):
        if watch.fired:
            raise DeadlineExceeded(f"the whole request took longer than {policy.deadline:g}s") from None
        raise
    finally:
        watch.end()
        _current.watch = None
