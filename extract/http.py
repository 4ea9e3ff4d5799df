"""One HTTP client per service: bounded requests, bounded retries, and the same-origin rule.

Why not dlt's ``RESTClient``: it follows next-page links to any host with the credential attached,
turns a 200 error envelope into an empty page, has no 401-refresh, and decodes each page twice in
Python. Here every request goes through ``fetch_page``:

* the URL must have the service's own scheme, host and port - checked *before* any socket is opened,
  so a foreign origin receives nothing, least of all the credential;
* each attempt is one ``extract.transfer.exchange``: at most ``request_deadline`` seconds in all
  (connect, headers, body) on top of ``read_timeout`` per read, and at most ``max_response_mib`` of
  decompressed body, read into one buffer that the page parser reads in place;
* what happens next is ``extract.retry.decide``: 429 (and 503) wait a valid ``Retry-After`` (capped),
  5xx / connection errors / timeouts / deadlines / truncated, non-JSON or error-envelope bodies back
  off exponentially, all within ``max_attempts``; other 4xx, TLS errors and oversized bodies fail at
  once. An invalid ``Retry-After`` counts as absent, with one warning per service and run;
* 401 ``token_expired`` refreshes the OAuth token and retries (not counted against the budget, but
  bounded by ``max_refreshes``); any other 401 refreshes it once and retries once (a token revoked or
  rotated server-side); refused again, the request fails;
* redirects are not followed (they could leave the origin).

Failures raise ``FetchError`` naming service, endpoint, status, attempts, the URL without its query,
and what to check (``extract.advice``); the message never includes headers or credentials.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import requests

from core import signals, tls
from extract import transfer
from extract.advice import error_code, hint, public_url, transport_failure
from extract.auth import Auth
from extract.errors import BadPage, FetchError, PageShape, UnsafePagination
from extract.limits import HttpPolicy
from extract.pages import DATA_KEY, ERROR_KEY, Page, parse_page
from extract.retry import Attempt, RetryAfterReader, decide

__all__ = ["HttpPolicy", "ServiceClient", "origin"]  # HttpPolicy: built by extract.config

log = logging.getLogger("extract.http")


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


class ServiceClient:
    """Fetches and parses pages of one service, never leaving its origin."""

    def __init__(
        self,
        service: str,
        base_url: str,
        auth: Auth,
        policy: HttpPolicy,
        session: requests.Session,
        source_file: str | None = None,
    ):
        self.service = service
        self.source_file = source_file or f"sources/{service}.yml"
        self.base_url = base_url.rstrip("/")
        self.origin = origin(self.base_url)
        self.auth = auth
        self.policy = policy
        # verify against SHOP_TLS_CA_BUNDLE / system store; connections a request deadline can cut
        self.session = transfer.bound_session(tls.configure_session(session))
        auth.use_policy(policy)  # the token request (same session) is bounded like the pages
        self.requests_sent = 0
        self.retries = 0
        self._retry_after = RetryAfterReader(log)

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

    def retry_after(self, reply: transfer.Reply, endpoint: str) -> float | None:
        """The answer's ``Retry-After`` in seconds; an invalid one is None, with one warning per run."""
        return self._retry_after(reply.headers, f"{self.service} {endpoint}")

    def _fail(
        self, endpoint: str, url: str, outcome: Attempt, status: int | str, attempts: int, detail: str
    ) -> FetchError:
        return FetchError(
            self.service,
            endpoint,
            status,
            attempts,
            detail,
            url=public_url(url),
            hint=hint(self.service, outcome, self.policy, detail),
        )

    def fetch_page(
        self,
        endpoint: str,
        url: str,
        params: dict | None = None,
        records: str = DATA_KEY,
        error_path: str | None = ERROR_KEY,
    ) -> Page:
        """GET one page and parse it (records at ``records``, an error envelope at ``error_path``),
        retrying within the budget; raise ``FetchError`` when spent, or at once for a body of the wrong
        shape (``PageShape``)."""
        self.check_origin(url, endpoint)
        policy = self.policy
        if extra := self.auth.params():  # an API key in the query (never shown: public_url drops it)
            params = {**(params or {}), **extra}
        attempts = 0
        refreshes = 0
        refreshed_on_401 = False  # a plain 401 (not ``token_expired``) gets one fresh token, not more
        while True:
            attempts += 1
            self.requests_sent += 1
            headers = self.auth.headers()
            try:
                reply = transfer.exchange(self.session, "GET", url, policy, params=params, headers=headers)
            except requests.exceptions.SSLError as exc:  # a wrong certificate does not fix itself: no retry
                raise FetchError(
                    self.service,
                    endpoint,
                    "TLS error",
                    attempts,
                    tls.describe_ssl_error(self.service, endpoint, exc),
                    url=public_url(url),
                ) from None
            except (transfer.DeadlineExceeded, transfer.BodyTooLarge, requests.RequestException) as exc:
                outcome, status, detail = transport_failure(exc, policy)
            else:
                status = reply.status
                if status == 200:
                    try:
                        return parse_page(reply.body, reply.headers, records, error_path)
                    except PageShape as exc:  # the same URL sends the same shape: no retry
                        raise FetchError(
                            self.service,
                            endpoint,
                            status,
                            attempts,
                            str(exc),
                            url=public_url(url),
                            hint=f"check the endpoint's records in {self.source_file}",
                        ) from None
                    except BadPage as exc:
                        outcome, detail = Attempt("bad_page", 200), str(exc)
                else:
                    code, detail = error_code(reply)
                    if status == 429:
                        detail = "rate limited"
                    expired = code == "token_expired"
                    if (
                        (expired or not refreshed_on_401)
                        and refreshes < policy.max_refreshes
                        and self.auth.refresh_on(status, code)
                    ):
                        refreshes += 1
                        attempts -= 1
                        refreshed_on_401 = refreshed_on_401 or not expired
                        why = "token expired mid-run" if expired else f"401 ({detail})"
                        log.info("%s %s: %s; new token fetched, retrying", self.service, endpoint, why)
                        continue
                    if status == 401 and refreshed_on_401:
                        detail += "; refused again with a freshly issued token"
                    retry_after = self.retry_after(reply, endpoint) if status in (429, 503) else None
                    outcome = Attempt("status", status, retry_after)
                reply = None  # not held through the backoff and the next download (bounded memory)
            wait = decide(policy, attempts, outcome)
            if wait is None:
                raise self._fail(endpoint, url, outcome, status, attempts, detail)
            self.retries += 1
            log.warning(
                "%s %s: attempt %d/%d failed (%s: %s); retrying in %.1fs",
                self.service,
                endpoint,
                attempts,
                policy.max_attempts,
                status,
                detail,
                wait,
            )
            signals.sleep(wait)  # a stop (SIGTERM) cuts the backoff short
