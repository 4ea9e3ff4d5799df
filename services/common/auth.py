"""The three authentication schemes of the fleet, as FastAPI dependencies that also document themselves.

Each dependency wraps a FastAPI security class (so the OpenAPI spec names the scheme) but checks the raw
header itself: missing credentials are a 401, present-but-wrong ones a 403, per the contract. Secrets are
compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.openapi.models import OAuthFlowClientCredentials, OAuthFlows
from fastapi.security import APIKeyHeader, HTTPBearer, OAuth2

from services.common.errors import ApiError
from services.common.faults import FaultState

_WWW_BEARER = {"WWW-Authenticate": "Bearer"}


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def api_key_auth(expected: str) -> Callable:
    """`X-API-Key` header auth (customers, payments)."""
    scheme = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="ApiKey")

    def check(key: str | None = Depends(scheme)) -> None:
        if not key:
            raise ApiError(401, "unauthorized", "missing X-API-Key header")
        if not same_secret(key, expected):
            raise ApiError(403, "forbidden", "wrong API key")

    return check


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer …` header; '' when the header is there but malformed."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def static_bearer_auth(expected: str) -> Callable:
    """Static bearer token auth (catalog, events)."""
    scheme = HTTPBearer(auto_error=False, scheme_name="BearerToken")

    def check(request: Request, _: object = Depends(scheme)) -> None:
        token = bearer_token(request)
        if token is None:
            raise ApiError(401, "unauthorized", "missing bearer token", _WWW_BEARER)
        if not token or not same_secret(token, expected):
            raise ApiError(403, "forbidden", "wrong bearer token", _WWW_BEARER)

    return check


@dataclass
class _Token:
    expires_at: float
    uses: int = 0


class TokenStore:
    """Short-lived OAuth2 access tokens issued by the orders service's `/oauth/token`.

    Expired tokens are remembered for an hour so they answer 401 `token_expired` (which tells a client
    to fetch a new one) rather than 403 (which tells it its credentials are wrong).
    """

    KEEP_EXPIRED = 3600.0

    def __init__(self, ttl: float, faults: FaultState):
        self.ttl = ttl
        self.faults = faults
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, float]:
        now = time.monotonic()
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._tokens = {t: v for t, v in self._tokens.items() if v.expires_at + self.KEEP_EXPIRED > now}
            self._tokens[token] = _Token(expires_at=now + self.ttl)
        return token, self.ttl

    def check(self, token: str) -> None:
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None:
                raise ApiError(403, "forbidden", "unknown access token", _WWW_BEARER)
            entry.uses += 1
            limit = self.faults.token_expire_after
            if time.monotonic() >= entry.expires_at or (limit is not None and entry.uses > limit):
                raise ApiError(401, "token_expired", "access token expired", _WWW_BEARER)


def oauth2_auth(store: TokenStore, token_url: str = "/oauth/token") -> Callable:
    """Bearer auth with tokens from the client-credentials flow (orders)."""
    flows = OAuthFlows(clientCredentials=OAuthFlowClientCredentials(tokenUrl=token_url, scopes={}))
    scheme = OAuth2(flows=flows, auto_error=False, scheme_name="OAuth2ClientCredentials")

    def check(request: Request, _: object = Depends(scheme)) -> None:
        token = bearer_token(request)
        if token is None:
            raise ApiError(401, "unauthorized", "missing bearer token", _WWW_BEARER)
        if not token:
            raise ApiError(403, "forbidden", "malformed Authorization header", _WWW_BEARER)
        store.check(token)

    return check


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """Client id and secret from an `Authorization: Basic …` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(403, "forbidden", "malformed basic credentials") from None
    return user, password


def admin_auth(expected: str) -> Callable:
    """`X-Admin-Token` header for the fault and stats endpoints."""

    def check(request: Request) -> None:
        token = request.headers.get("x-admin-token")
        if not token:
            raise ApiError(401, "unauthorized", "missing X-Admin-Token header")
        if not same_secret(token, expected):
            raise ApiError(403, "forbidden", "wrong admin token")

    return check
