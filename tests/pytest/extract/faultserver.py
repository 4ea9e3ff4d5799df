"""A small misbehaving HTTP server on 127.0.0.1 for the loader's edge cases (tests/pytest/extract/).

The services' own fault injection (services/common/faults.py) covers faults a real API has; the cases
here are what a broken proxy, a hostile or a dying server sends: a body dripped a byte at a time,
headers that never end, a 200 MiB page, a gzip bomb, an HTML page, a garbage ``Retry-After``. Each
server is a real ``http.server`` on loopback; ``answer`` decides every response, and ``hits`` records
when each request arrived (so a test can time the loader from its first request, not its start-up).
"""

from __future__ import annotations

import gzip
import http.client
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Answer = Callable[[BaseHTTPRequestHandler], None]
MIB = 1 << 20


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet: pytest captures stderr
        pass

    def _answer(self) -> None:
        self.server.hits.append((self.command, self.path, time.monotonic()))
        try:
            self.server.answer(self)
        except OSError:  # the loader hung up (deadline, size cap): expected here
            self.close_connection = True

    do_GET = _answer
    do_POST = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, answer: Answer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = answer
        self.hits: list[tuple[str, str, float]] = []


@contextmanager
def fault_server(answer: Answer) -> Iterator[_Server]:
    """Serve ``answer`` on a free loopback port for the block; ``server.url`` is its base URL."""
    srv = _Server(answer)
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=srv.serve_forever, name="fault-server", daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


def _headers(h: BaseHTTPRequestHandler, status: int, headers: dict[str, str]) -> None:
    h.send_response(status)
    for name, value in headers.items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.flush()


def drip_body(every: float, length: int = 1_000_000) -> Answer:
    """Headers at once, then the body one byte every ``every`` seconds (never a silent gap)."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.rfile.read(int(h.headers.get("Content-Length") or 0))
        _headers(h, 200, {"Content-Type": "application/json", "Content-Length": str(length)})
        for _ in range(length):
            h.wfile.write(b" ")
            h.wfile.flush()
            time.sleep(every)

    return answer


def drip_headers(every: float) -> Answer:
    """A status line, then one more header line every ``every`` seconds, for ever."""

    def answer(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        h.wfile.flush()
        for i in range(1_000_000):
            h.wfile.write(f"X-Pad-{i}: x\r\n".encode())
            h.wfile.flush()
            time.sleep(every)

    return answer


def _pad_page_parts(size: int) -> tuple[bytes, bytes, int]:
    """A valid JSON page of about ``size`` bytes: an empty data list and one long padding string."""
    head, tail = b'{"data":[],"total":0,"pad":"', b'"}'
    return head, tail, max(0, size - len(head) - len(tail))


def huge_page(size: int, announce: bool = True) -> Answer:
    """A valid JSON page of ``size`` bytes sent in 1 MiB writes, with a matching Content-Length, or
    (``announce=False``) without one: the body then ends when the server closes the connection."""
    head, tail, pad = _pad_page_parts(size)
    chunk = b"a" * MIB

    def answer(h: BaseHTTPRequestHandler) -> None:
        if announce:
            length = {"Content-Length": str(len(head) + pad + len(tail))}
        else:
            length, h.close_connection = {"Connection": "close"}, True
        _headers(h, 200, {"Content-Type": "application/json", **length})
        h.wfile.write(head)
        left = pad
        while left:
            n = min(left, MIB)
            h.wfile.write(chunk[:n])
            left -= n
        h.wfile.write(tail)

    return answer


def gzip_bomb(inflated: int) -> tuple[Answer, int]:
    """A gzip body (a few hundred KB: one small member repeated) that inflates to ``inflated`` bytes of
    a valid JSON page; returns the answer and the compressed size."""
    head, tail, pad = _pad_page_parts(inflated)
    member = gzip.compress(b"a" * MIB, 6)
    body = gzip.compress(head) + member * (pad // MIB) + gzip.compress(b"a" * (pad % MIB) + tail)

    def answer(h: BaseHTTPRequestHandler) -> None:
        _headers(
            h,
            200,
            {
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "Content-Length": str(len(body)),
            },
        )
        h.wfile.write(body)

    return answer, len(body)


HTML = b"<!doctype html><html><body><h1>Sign in</h1></body></html>"


def html_page(h: BaseHTTPRequestHandler) -> None:
    """What a login wall or a misrouted proxy answers: 200, text/html."""
    h.rfile.read(int(h.headers.get("Content-Length") or 0))
    _headers(h, 200, {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(HTML))})
    h.wfile.write(HTML)


def proxy(upstream: str, first: Callable[[str], tuple[int, dict[str, str], bytes] | None]) -> Answer:
    """Forward every request to ``upstream`` (a base URL), except that ``first(path)`` may answer the
    first request of each path itself."""
    host, port = upstream.removeprefix("http://").split(":")
    seen: set[str] = set()
    lock = threading.Lock()

    def answer(h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?", 1)[0]
        with lock:
            fresh = path not in seen
            seen.add(path)
        own = first(path) if fresh else None
        if own is not None:
            status, headers, body = own
            _headers(h, status, {**headers, "Content-Length": str(len(body))})
            h.wfile.write(body)
            return
        length = int(h.headers.get("Content-Length") or 0)
        sent = h.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            skip = {"connection", "keep-alive", "transfer-encoding", "content-length"}
            conn.request(
                h.command,
                h.path,
                body=sent,
                headers={k: v for k, v in h.headers.items() if k.lower() not in skip},
            )
            resp = conn.getresponse()
            body = resp.read()
            _headers(
                h,
                resp.status,
                {
                    **{k: v for k, v in resp.getheaders() if k.lower() not in skip},
                    "Content-Length": str(len(body)),
                },
            )
            h.wfile.write(body)
        finally:
            conn.close()

    return answer
