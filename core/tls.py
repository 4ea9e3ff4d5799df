"""Certificate verification for the loaders' HTTPS connections.

The loaders verify every service certificate: against ``SHOP_TLS_CA_BUNDLE`` (or
``[sources.extract] ca_bundle`` in dlt config) when set, else against the system trust store. No
setting turns verification off; "false"-like values are refused with an error, so a misconfiguration
fails loudly instead of silently trusting anyone. A verification failure is reported as such (not as a
generic connection error) and is not retried: a wrong certificate does not fix itself.

The embedded services read the same variable for their own health checks (services/common/tls.py);
the loaders keep this reading of their own, because the pipeline imports nothing of the services: a
team pointing the loaders at its own services does not run the shop's code.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import dlt
import requests

__all__ = ["CA_VAR", "TLSConfigError", "configure_session", "describe_ssl_error", "verify_setting"]

CA_VAR = "SHOP_TLS_CA_BUNDLE"
# OpenSSL's words for a handshake answered by something that is not TLS (plain HTTP, mostly).
_NOT_TLS = re.compile(r"WRONG_VERSION_NUMBER|wrong version number|record layer failure", re.I)
# Spellings of "turn verification off": refused, never interpreted.
_DISABLING = {"", "0", "false", "no", "off", "none", "disable", "disabled"}


class TLSConfigError(ValueError):
    """The CA bundle setting points at a missing file or tries to switch verification off."""


def _bundle(value: str, where: str) -> str:
    path = value.strip()
    if path.lower() in _DISABLING:
        raise TLSConfigError(
            f"{where}={value!r}: certificate verification cannot be turned off; "
            "point it at the CA bundle (PEM) that signed the services' certificates, or unset it"
        )
    if not Path(path).is_file():
        raise TLSConfigError(f"{where}: CA bundle not found: {path}")
    return path


def verify_setting() -> str | bool:
    """The ``verify`` value for the loaders' session (CA bundle path, or True for the system store)."""
    if CA_VAR in os.environ:
        return _bundle(os.environ[CA_VAR], CA_VAR)
    configured = dlt.config.get("sources.extract.ca_bundle")
    if configured is not None:
        return _bundle(str(configured), "[sources.extract] ca_bundle")
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
    if _NOT_TLS.search(reason):  # the handshake met plain HTTP: a scheme mistake, not a certificate one
        return (
            f"{service} {endpoint}: the server does not speak TLS (it answered the handshake with plain "
            "HTTP): check http:// versus https:// in its base_url (or auth.token_url)"
        )
    return (
        f"{service} {endpoint}: TLS certificate verification failed against {anchor} ({reason[:200]}); "
        f"set {CA_VAR} to the CA that signed the service's certificate"
    )
