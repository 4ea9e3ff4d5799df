"""One HTTP client per service: bounded retries, timeouts, and the same-origin rule.

Why not dlt's ``RESTClient``: it follows next-page links to any host with the credential attached,
turns a 200 error envelope into an empty page, has no 401-refresh, and decodes each page twice in
Python. Here every request goes through ``fetch_page``:

* the URL must have the service's own scheme, host and port - checked *before* any socket is opened,
  so a foreign origin receives nothing, least of all the credential;
* 429 waits ``Retry-After`` (capped), 5xx / connection errors / timeouts / truncated or error-envelope
  bodies back off exponentially, all within ``max_attempts``; other 4xx fail at once;
* 401 ``token_expired`` refreshes the OAuth token and retries (not counted against the budget, but
  bounded by ``max_refreshes``);
* redirects are not followed (they could leave the origin).

Failures raise ``FetchError`` naming service, endpoint, status and attempts; the message never
includes headers or credentials.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
import requests

from extract import tls
from extract.auth import Auth
from extract.errors import BadPage, FetchError, UnsafePagination
from extract.pages import Page, parse_page

log = logging.getLogger("extract.http")


@dataclass(frozen=True)
class HttpPolicy:
    """Timeouts and the retry budget (config keys under ``[sources.extract]``)."""

    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_attempts: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 30.0
    max_refreshes: int = 10


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def _error_code(resp: requests.Response) -> tuple[str | None, str]:
    """The envelope's code and a short message (never headers) for an error response."""
    try:
        doc = orjson.loads(resp.content)
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict):
            return err.get("code"), f"{err.get('code')}: {str(err.get('message'))[:200]}"
    except (orjson.JSONDecodeError, AttributeError):
        pass
    return None, f"HTTP {resp.status_code} {resp.reason}"


class ServiceClient:
    """Fetches and parses pages of one service, never leaving its origin."""

    def __init__(
        self, service: str, base_url: str, auth: Auth, policy: HttpPolicy, session: requests.Session
    ):
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.origin = origin(self.base_url)
        self.auth = auth
        self.policy = policy
        self.session = tls.configure_session(session)  # verify against SHOP_TLS_CA_BUNDLE / system store
        self.requests_sent = 0
        self.retries = 0

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def check_origin(self, url: str, endpoint: str) -> None:
        """Refuse any URL outside the service's scheme, host and port."""
        got = origin(url)
        if got != self.origin:
            raise UnsafePagination(
                f"{self.service} {endpoint}: next-page link points at {got[0]}://{got[1]}:{got[2]}, not the "
                f"service's own origin {self.origin[0]}://{self.origin[1]}:{self.origin[2]}; "
                "refusing to follow it"
            )

    def _backoff(self, attempt: int) -> float:
        delay = min(self.policy.backoff_max, self.policy.backoff_base * (2 ** (attempt - 1)))
        return delay * (0.5 + random.random() / 2)

    def fetch_page(self, endpoint: str, url: str, params: dict | None = None) -> Page:
        """GET one page and parse it, retrying within the budget; raise ``FetchError`` when spent."""
        self.check_origin(url, endpoint)
        attempts = 0
        refreshes = 0
        last_status: int | str = "none"
        detail = ""
        timeout = (self.policy.connect_timeout, self.policy.read_timeout)
        while attempts < self.policy.max_attempts:
            attempts += 1
            wait = 0.0
            try:
                self.requests_sent += 1
                resp = self.session.get(
                    url, params=params, headers=self.auth.headers(), timeout=timeout, allow_redirects=False
                )
            except requests.exceptions.SSLError as exc:  # a wrong certificate does not fix itself: no retry
                raise FetchError(
                    self.service,
                    endpoint,
                    "TLS error",
                    attempts,
                    tls.describe_ssl_error(self.service, endpoint, exc),
                ) from None
            except requests.Timeout as exc:
                last_status, detail = (
                    "timeout",
                    f"{type(exc).__name__} (connect {timeout[0]}s / read {timeout[1]}s)",
                )
                wait = self._backoff(attempts)
            except requests.RequestException as exc:
                last_status, detail = "connection error", type(exc).__name__
                wait = self._backoff(attempts)
            else:
                status = resp.status_code
                last_status = status
                if status == 200:
                    try:
                        return parse_page(resp.content, resp.headers)
                    except BadPage as exc:
                        detail = str(exc)
                        wait = self._backoff(attempts)
                elif status == 429:
                    detail = "rate limited"
                    try:
                        wait = float(resp.headers.get("Retry-After", "1"))
                    except ValueError:
                        wait = self._backoff(attempts)
                    wait = min(max(wait, 0.0), self.policy.max_retry_after)
                elif status >= 500:
                    _, detail = _error_code(resp)
                    wait = self._backoff(attempts)
                else:
                    code, detail = _error_code(resp)
                    if self.auth.refresh_on(status, code) and refreshes < self.policy.max_refreshes:
                        refreshes += 1
                        attempts -= 1
                        log.info(
                            "%s %s: token expired mid-run; refreshed and retrying", self.service, endpoint
                        )
                        continue
                    raise FetchError(self.service, endpoint, status, attempts, detail)
            if attempts < self.policy.max_attempts:
                self.retries += 1
                log.warning(
                    "%s %s: attempt %d/%d failed (%s: %s); retrying in %.1fs",
                    self.service,
                    endpoint,
                    attempts,
                    self.policy.max_attempts,
                    last_status,
                    detail,
                    wait,
                )
                time.sleep(wait)
        raise FetchError(self.service, endpoint, last_status, attempts, detail or "retry budget exhausted")
