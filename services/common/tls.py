"""Optional HTTPS for the services, with certificates from a local CA.

Plain HTTP on loopback stays the default. When ``SHOP_TLS_CERTFILE`` and ``SHOP_TLS_KEYFILE`` are set
(both, or neither), the launcher starts every service with uvicorn's TLS options and advertises
``https://`` base URLs in ``fleet.env``; its own health checks and admin calls then verify the services
against ``SHOP_TLS_CA_BUNDLE``. Why a local CA instead of self-signed certificates with verification
off: the client side keeps verifying exactly as it would against a real service, so the test proves the
loaders verify, rather than that they can be told not to.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CERT_VAR = "SHOP_TLS_CERTFILE"
KEY_VAR = "SHOP_TLS_KEYFILE"
CA_VAR = "SHOP_TLS_CA_BUNDLE"
# Spellings of "turn verification off" that must be refused, not interpreted.
_DISABLING = {"", "0", "false", "no", "off", "none", "disable", "disabled"}


class TLSConfigError(ValueError):
    """A TLS setting is incomplete, points at a missing file, or tries to switch verification off."""


@dataclass(frozen=True)
class ServerTLS:
    """The certificate chain and key a service serves."""

    certfile: Path
    keyfile: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServerTLS | None:
        """TLS from ``SHOP_TLS_CERTFILE``/``SHOP_TLS_KEYFILE``, or None for plain HTTP (the default)."""
        env = os.environ if env is None else env
        cert, key = env.get(CERT_VAR, "").strip(), env.get(KEY_VAR, "").strip()
        if not cert and not key:
            return None
        if not (cert and key):
            raise TLSConfigError(f"set both {CERT_VAR} and {KEY_VAR} (or neither, for plain HTTP)")
        tls = cls(Path(cert), Path(key))
        for path in (tls.certfile, tls.keyfile):
            if not path.is_file():
                raise TLSConfigError(f"TLS file not found: {path}")
        return tls

    def uvicorn_args(self) -> list[str]:
        return ["--ssl-certfile", str(self.certfile), "--ssl-keyfile", str(self.keyfile)]


def scheme(tls: ServerTLS | None) -> str:
    return "https" if tls is not None else "http"


def client_verify(env: Mapping[str, str] | None = None) -> str | bool:
    """What a ``requests`` client passes as ``verify``: the configured CA bundle, else the system store.

    There is deliberately no value that disables verification: "false", "0", "" and the like are refused.
    """
    env = os.environ if env is None else env
    if CA_VAR not in env:
        return True
    value = env[CA_VAR].strip()
    if value.lower() in _DISABLING:
        raise TLSConfigError(
            f"{CA_VAR}={env[CA_VAR]!r}: certificate verification cannot be turned off; "
            "point it at the CA bundle (PEM) that signed the services' certificates, or unset it"
        )
    if not Path(value).is_file():
        raise TLSConfigError(f"{CA_VAR}: CA bundle not found: {value}")
    return value


@dataclass(frozen=True)
class LocalCA:
    """Files of a throwaway CA and one server certificate for loopback (tests, local demos)."""

    ca_bundle: Path
    certfile: Path
    keyfile: Path

    def env(self) -> dict[str, str]:
        return {CERT_VAR: str(self.certfile), KEY_VAR: str(self.keyfile), CA_VAR: str(self.ca_bundle)}


def make_local_ca(directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost", "::1")) -> LocalCA:
    """Create a CA and a server certificate for ``hosts`` under ``directory`` (key mode 600).

    Uses trustme (a dev dependency), imported here so that serving plain HTTP never needs it.
    """
    import trustme

    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    cert = ca.issue_cert(*hosts)
    files = LocalCA(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca_bundle))
    cert.private_key_pem.write_to_path(str(files.keyfile))
    os.chmod(files.keyfile, 0o600)
    with open(files.certfile, "wb") as fh:
        for blob in cert.cert_chain_pems:
            fh.write(blob.bytes())
    return files
