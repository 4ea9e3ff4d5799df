"""Credentials as request headers (or, for an API key that must, a query parameter), kept out of every
printable surface.

Each auth object adds its header (or parameter) to a request and nothing else: ``repr`` never shows
the secret, and the secret values are registered with ``extract.redact`` so any log line that would contain
them is masked. ``OAuth2ClientCredentials`` fetches a token lazily, refreshes it ahead of
``expires_in``, and - unlike dlt's built-in class - also refreshes when the service answers 401
mid-run: ``token_expired`` (the caller asks ``refresh_on`` and retries, up to ``max_refreshes``), or any
other 401 once (a token revoked or rotated before its ``expires_in``; a second refusal is final). The
token request is bounded like a page request (``extract.transfer``: deadline, size cap;
``extract.retry``: budget, ``Retry-After``), and a token endpoint that answers something other than a
JSON token (an HTML page) says so, with the content type.
"""

from __future__ import annotations

import base64
import logging
import math
import threading
import time
from typing import Protocol
from urllib.parse import urlsplit

import orjson
import requests

from core import tls
from extract import redact, transfer
from extract.advice import error_code, hint, public_url, transport_failure
from extract.errors import FetchError
from extract.limits import HttpPolicy
from extract.pages import not_json
from extract.retry import Attempt, RetryAfterReader, decide

log = logging.getLogger("extract.auth")


class Auth(Protocol):
    """What the HTTP client needs from an auth scheme."""

    def headers(self) -> dict[str, str]: ...

    def params(self) -> dict[str, str]: ...

    def refresh_on(self, status: int, code: str | None) -> bool: ...

    def use_policy(self, policy: HttpPolicy) -> None: ...


class _Static:
    """A scheme whose credentials never change: no refresh, no request of its own."""

    def headers(self) -> dict[str, str]:
        return {}

    def params(self) -> dict[str, str]:
        return {}

    def refresh_on(self, status: int, code: str | None) -> bool:
        return False

    def use_policy(self, policy: HttpPolicy) -> None:
        """Static credentials make no request of their own."""


class NoAuth(_Static):
    """No credentials at all (``auth: none``): nothing is added, nothing is sent."""

    def __repr__(self) -> str:
        return "NoAuth()"


class ApiKeyAuth(_Static):
    """A static API key in a header (customers, payments: ``X-API-Key``) or in a query parameter.

    In a parameter the key is part of the URL: every URL the loader prints drops its query
    (``extract.advice.public_url``) and the key is masked in every log line (``extract.redact``).
    """

    def __init__(self, key: str, header: str = "X-API-Key", query_param: str | None = None) -> None:
        self._key = redact.register(key)
        self._header = header
        self._param = query_param

    def headers(self) -> dict[str, str]:
        return {} if self._param else {self._header: self._key}

    def params(self) -> dict[str, str]:
        return {self._param: self._key} if self._param else {}

    def __repr__(self) -> str:
        where = f"query_param={self._param!r}" if self._param else f"header={self._header!r}"
        return f"ApiKeyAuth({where}, key=***)"


class BearerAuth(_Static):
    """A static bearer token (catalog, events)."""

    def __init__(self, token: str) -> None:
        self._token = redact.register(token)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"}

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"


class BasicAuth(_Static):
    """HTTP basic (RFC 7617); the user, the password and their encoded pair are all masked in logs."""

    def __init__(self, username: str, password: str) -> None:
        redact.register(username)
        redact.register(password)
        pair = base64.b64encode(f"{username}:{password}".encode()).decode()
        self._value = "Basic " + redact.register(pair)

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._value}

    def __repr__(self) -> str:
        return "BasicAuth(username=***, password=***)"


class OAuth2ClientCredentials:
    """OAuth2 client-credentials grant against ``token_url`` (orders: the service's own ``/oauth/token``)."""

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
        scopes: tuple[str, ...] = (),
    ) -> None:
        self._service = service
        self._url = token_url
        self._scopes = " ".join(scopes)
        self._label = f"POST {urlsplit(token_url).path or '/'}"
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
        advice = hint(self._service, outcome, self._policy, detail)
        if outcome.kind in ("connection", "timeout", "deadline"):
            # the token endpoint was never reached: say so, so it is not read as a credentials problem
            advice = (
                f"the token endpoint did not answer, so the credentials were not tried; {advice}; if "
                f"auth.token_url in sources/{self._service}.yml is a full URL, check that one"
            )
        return FetchError(
            self._service,
            self._label,
            status,
            attempt,
            detail,
            url=public_url(self._url),
            hint=advice,
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
                        **({"scope": self._scopes} if self._scopes else {}),
                    },
                )
            except requests.exceptions.SSLError as exc:  # a wrong certificate does not fix itself
                raise FetchError(
                    self._service,
                    self._label,
                    "TLS error",
                    attempt,
                    tls.describe_ssl_error(self._service, self._label, exc),
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
                        self._read_retry_after(reply.headers, f"{self._service} {self._label[5:]}")
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
                "%s %s: attempt %d/%d failed (%s: %s); retrying in %.1fs",
                self._service,
                self._label[5:],
                attempt,
                policy.max_attempts,
                status,
                detail,
                wait,
            )
            time.sleep(wait)

    def params(self) -> dict[str, str]:
        return {}

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def refresh_on(self, status: int, code: str | None) -> bool:
        """On any 401 drop the token so the next ``headers()`` fetches a new one (how often: the
        caller's rule, ``ServiceClient.fetch_page``)."""
        if status == 401:
            with self._lock:
                self._token = None
            return True
        return False

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials(token_url={self._url!r}, client_id=***, client_secret=***)"
