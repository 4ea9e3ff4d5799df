"""Credentials as request headers, kept out of every printable surface.

Each auth object adds its header to a request and nothing else: ``repr`` never shows the secret,
and the secret values are registered with ``extract.redact`` so any log line that would contain
them is masked. ``OAuth2ClientCredentials`` fetches a token lazily, refreshes it ahead of
``expires_in``, and - unlike dlt's built-in class - also refreshes when the service answers
401 ``token_expired`` mid-run (the caller asks ``refresh_on`` and retries).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Protocol

import requests

from extract import redact
from extract.errors import FetchError

log = logging.getLogger("extract.auth")


class Auth(Protocol):
    """What the HTTP client needs from an auth scheme."""

    def headers(self) -> dict[str, str]: ...

    def refresh_on(self, status: int, code: str | None) -> bool: ...


class ApiKeyAuth:
    """A static API key in a header (customers, payments: ``X-API-Key``)."""

    def __init__(self, key: str, header: str = "X-API-Key") -> None:
        self._key = redact.register(key)
        self._header = header

    def headers(self) -> dict[str, str]:
        return {self._header: self._key}

    def refresh_on(self, status: int, code: str | None) -> bool:
        return False

    def __repr__(self) -> str:
        return f"ApiKeyAuth(header={self._header!r}, key=***)"


class BearerAuth:
    """A static bearer token (catalog, events)."""

    def __init__(self, token: str) -> None:
        self._token = redact.register(token)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def refresh_on(self, status: int, code: str | None) -> bool:
        return False

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"


class OAuth2ClientCredentials:
    """OAuth2 client-credentials grant against the service's own ``/oauth/token`` (orders)."""

    def __init__(
        self,
        service: str,
        token_url: str,
        client_id: str,
        client_secret: str,
        session: requests.Session,
        timeout: tuple[float, float],
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        max_retry_after: float = 30.0,
    ) -> None:
        self._service = service
        self._url = token_url
        self._client_id = redact.register(client_id)
        self._secret = redact.register(client_secret)
        self._session = session
        self._timeout = timeout
        self._max_attempts = max(1, max_attempts)
        self._backoff = (backoff_base, backoff_max)
        self._max_retry_after = max_retry_after
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.refreshes = 0

    def _fetch(self) -> None:
        """Get a token, riding over the same transient failures as page requests (connection errors,
        timeouts, 429 with ``Retry-After``, 5xx) within the same bounded budget: a token endpoint that
        blips when the run starts must not fail the run when a data endpoint's blip would not."""
        last: int | str = "none"
        for attempt in range(1, self._max_attempts + 1):
            wait = min(self._backoff[1], self._backoff[0] * 2 ** (attempt - 1))
            try:
                resp = self._session.post(
                    self._url,
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self._client_id,
                        "client_secret": self._secret,
                    },
                    timeout=self._timeout,
                    allow_redirects=False,
                )
            except requests.exceptions.SSLError:
                raise FetchError(
                    self._service, "POST /oauth/token", "TLS error", attempt, "token request failed"
                ) from None
            except requests.RequestException as exc:
                last = type(exc).__name__
            else:
                if resp.status_code == 200:
                    doc = resp.json()
                    self._token = redact.register(doc["access_token"])
                    ttl = float(doc.get("expires_in") or 300)
                    self._expires_at = time.monotonic() + max(1.0, ttl * 0.9)
                    self.refreshes += 1
                    return
                last = resp.status_code
                if resp.status_code == 429:
                    with contextlib.suppress(ValueError):
                        retry_after = float(resp.headers.get("Retry-After", wait))
                        wait = min(max(retry_after, 0.0), self._max_retry_after)
                elif resp.status_code < 500:
                    raise FetchError(
                        self._service, "POST /oauth/token", resp.status_code, attempt, "token request refused"
                    )
            if attempt < self._max_attempts:
                log.warning(
                    "%s /oauth/token: attempt %d/%d failed (%s); retrying in %.1fs",
                    self._service,
                    attempt,
                    self._max_attempts,
                    last,
                    wait,
                )
                time.sleep(wait)
        raise FetchError(self._service, "POST /oauth/token", last, self._max_attempts, "token request failed")

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def refresh_on(self, status: int, code: str | None) -> bool:
        """On 401 ``token_expired`` drop the token so the next ``headers()`` fetches a new one."""
        if status == 401 and code == "token_expired":
            with self._lock:
                self._token = None
            return True
        return False

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials(token_url={self._url!r}, client_id=***, client_secret=***)"
