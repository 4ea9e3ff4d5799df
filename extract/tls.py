"""Certificate verification for the loaders' HTTPS connections.

The loaders verify every service certificate: against ``SHOP_TLS_CA_BUNDLE`` (or
``[sources.extract] ca_bundle`` in dlt config) when set, else against the system trust store. No
setting turns verification off; "false"-like values are refused with an error, so a misconfiguration
fails loudly instead of silently trusting anyone. A verification failure is reported as such (not as a
generic connection error) and is not retried: a wrong certificate does not fix itself.
"""

from __future__ import annotations

import os

import dlt
import requests

from services.common.tls import CA_VAR, TLSConfigError, client_verify

__all__ = ["TLSConfigError", "configure_session", "describe_ssl_error", "verify_setting"]


def verify_setting() -> str | bool:
    """The ``verify`` value for the loaders' session (CA bundle path, or True for the system store)."""
    if CA_VAR in os.environ:
        return client_verify(os.environ)
    configured = dlt.config.get("sources.extract.ca_bundle")
    if configured is not None:
        return client_verify({CA_VAR: str(configured)})
    return True


def configure_session(session: requests.Session) -> requests.Session:
    """Set the session's certificate verification; raises ``TLSConfigError`` on a bad setting."""
    session.verify = verify_setting()
    return session


def describe_ssl_error(service: str, endpoint: str, exc: requests.exceptions.SSLError) -> str:
    """A one-line reason for a failed TLS handshake that names the trust anchor in use."""
    verify = verify_setting()
    anchor = f"the CA bundle {verify}" if isinstance(verify, str) else "the system trust store"
    reason = str(exc.args[0] if exc.args else exc)
    reason = reason.split("(Caused by ")[-1].rstrip(")") if "Caused by" in reason else reason
    return (
        f"{service} {endpoint}: TLS certificate verification failed against {anchor} ({reason[:200]}); "
        f"set {CA_VAR} to the CA that signed the service's certificate"
    )
