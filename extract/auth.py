"""Credentials as request headers, kept out of every printable surface.

Each auth object adds its header to a request and nothing else: ``repr`` never shows the secret,
and the secret values are registered with ``extract.redact`` so any log line that would contain
them is masked. ``OAuth2ClientCredentials`` fetches a token lazily, refreshes it ahead of
``expires_in``, and - unlike dlt's built-in class - also refreshes when the service answers
401 ``token_expired`` mid-run (the caller asks ``refresh_on`` and retries). The token request is
bounded like a page request (``extract.transfer``: deadline, size cap; ``extract.retry``: budget,
``Retry-After``), and a token endpoint that answers something other than a JSON token (an HTML page)
says so, with the content type.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Protocol

import orjson
import requests

from extract import redact, tls, transfer
from extract.advice import error_code, hint, public_url, transport_failure
from extract.errors import FetchError
from extract.limits import HttpPolicy
from extract.pages import not_json
from extract.retry import Attempt, RetryAfterReader, decide

log = logging.getLogger("extract.auth")

TOKEN_ENDPOINT = "POST /oauth/token"


class Auth(Protocol):
    """What the HTTP client needs from an auth scheme."""

    def headers(self) -> dict[str, str]: ...

    def refresh_on(self, status: int, code: str | None) -> bool: ...

    def use_policy(self, policy: HttpPolicy) -> None: ...


class ApiKeyAuth:
    """A static API key in a header (customers, payments: ``X-API-Key``)."""

    def __init__(self, key: str, header: str = "X-API-Key") -> None:
        self._key = redact.register(key)
        self._header = header

    def headers(self) -> dict[str, str]:
        return {self._header: self._key}

    def refresh_on(self, status: int, code: str | None) -> bool:
        return False

    def use_policy(self, policy: HttpPolicy) -> None:
        """Static headers make no request of their own."""

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

    def use_policy(self, policy: HttpPolicy) -> None:
        """Static headers make no request of their own."""

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
        self._session = transfer.bound_session(session)
        self._policy = HttpPolicy(
            connect_timeout=timeout[0],
            read_timeout=timeout[1],
            max_attempts=max(1, max_attempts),
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            max_retry_after=max_retry_after,
        )
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self._read_retry_after = RetryAfterReader(log)
        self.refreshes = 0

    def use_policy(self, policy: HttpPolicy) -> None:
        """Take the service client's whole policy (deadline and size cap included)."""
        self._policy = policy

    def _fail(self, outcome: Attempt, status: int | str, attempt: int, detail: str) -> FetchError:
        return FetchError(
            self._service,
            TOKEN_ENDPOINT,
            status,
            attempt,
            detail,
            url=public_url(self._url),
            hint=hint(self._service, outcome, self._policy, detail),
        )

    def _take(self, reply: transfer.Reply) -> str | None:
        """Store the token of a 200 answer; the reason it is unusable otherwise."""
        try:
            doc = orjson.loads(reply.body)
        except orjson.JSONDecodeError:
            return not_json(reply.body, reply.headers) or (
                f"token response is not valid JSON ({len(reply.body)} bytes; truncated?)"
            )
        token = doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            return "token response has no access_token"
        try:
            ttl = float(doc.get("expires_in") or 300)
        except (TypeError, ValueError):
            ttl = 300.0
        if not (math.isfinite(ttl) and ttl > 0):  # nan, inf, negative: refresh soon rather than trust it
            ttl = 1.0
        self._token = redact.register(token)
        self._expires_at = time.monotonic() + max(1.0, ttl * 0.9)
        self.refreshes += 1
        return None

    def _fetch(self) -> None:
        """Get a token, riding over the same transient failures as page requests (connection errors,
        timeouts, deadlines, 429 with ``Retry-After``, 5xx, a body that is not a token) within the same
        bounded budget: a token endpoint that blips when the run starts must not fail the run when a
        data endpoint's blip would not."""
        policy = self._policy
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = transfer.exchange(
                    self._session,
                    "POST",
                    self._url,
                    policy,
                    data={
                        "grant_type": "client_credentials",
                        "client_id": self._client_id,
                        "client_secret": self._secret,
                    },
                )
            except requests.exceptions.SSLError as exc:  # a wrong certificate does not fix itself
                raise FetchError(
                    self._service,
                    TOKEN_ENDPOINT,
                    "TLS error",
                    attempt,
                    tls.describe_ssl_error(self._service, TOKEN_ENDPOINT, exc),
                    url=public_url(self._url),
                ) from None
            except (transfer.DeadlineExceeded, transfer.BodyTooLarge, requests.RequestException) as exc:
                outcome, status, detail = transport_failure(exc, policy)
            else:
                status = reply.status
                if status == 200:
                    problem = self._take(reply)
                    if problem is None:
                        return
                    outcome, detail = Attempt("bad_page", 200), problem
                else:
                    retry_after = (
                        self._read_retry_after(reply.headers, f"{self._service} /oauth/token")
                        if status in (429, 503)
                        else None
                    )
                    outcome = Attempt("status", status, retry_after)
                    _, said = error_code(reply)
                    refused = status < 500 and status != 429
                    detail = f"token request {'refused' if refused else 'failed'} ({said})"
            wait = decide(policy, attempt, outcome)
            if wait is None:
                raise self._fail(outcome, status, attempt, detail)
            log.warning(
                "%s /oauth/token: attempt %d/%d failed (%s: %s); retrying in %.1fs",
                self._service,
                attempt,
                policy.max_attempts,
                status,
                detail,
                wait,
            )
            time.sleep(wait)

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
