"""Transport security: the services over HTTPS with a certificate from a local CA made by the test, and
the loaders verifying it against the configured CA bundle. A wrong CA fails clearly (and is not retried
as if it were a network blip); a "switch verification off" value is refused; the default stays plain HTTP.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from services.common import tls
from services.launcher import Fleet
from tests.pytest.support.ports import free_port_base
from tests.pytest.support.workspace import make_workspace, run
from tests.pytest.support.world import PII_KEY, SCALE


@pytest.fixture(scope="module")
def tls_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Fleet, tls.LocalCA, Path]]:
    """catalog and orders over HTTPS (API key / bearer and OAuth2 paths both covered)."""
    root = tmp_path_factory.mktemp("tls")
    ca = tls.make_local_ca(root / "ca")
    saved = {k: os.environ.get(k) for k in ca.env()}
    os.environ.update(ca.env())
    try:
        fl = Fleet(
            run_dir=root / "run",
            data_dir=root / "data",
            port_base=free_port_base(),
            scale=SCALE,
            seed=42,
            services=("catalog", "orders"),
        )
        fl.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        yield fl, ca, root
    finally:
        fl.stop()


def _ws(root: Path, fl: Fleet, name: str, ca_bundle: str | None):
    ws = make_workspace(root / name, fl.env(), PII_KEY)
    ws.env.pop(tls.CA_VAR, None)
    if ca_bundle is not None:
        ws.env[tls.CA_VAR] = ca_bundle
    return ws


def test_services_serve_https_from_the_local_ca(tls_fleet) -> None:
    fl, ca, _ = tls_fleet
    url = fl.url("catalog")
    assert url.startswith("https://127.0.0.1:")
    assert fl.env()["SOURCES__CATALOG__BASE_URL"] == url  # loaders are told to use https
    with pytest.raises(requests.exceptions.SSLError):  # not trusted by the system store
        requests.get(f"{url}/health", timeout=5)
    resp = requests.get(f"{url}/health", timeout=5, verify=str(ca.ca_bundle))
    assert resp.json() == {"status": "ok", "service": "catalog"}
    with pytest.raises(requests.exceptions.ConnectionError):  # no plain-HTTP fallback on that port
        requests.get(url.replace("https://", "http://") + "/health", timeout=5)


def test_loader_verifies_against_the_configured_ca(tls_fleet) -> None:
    fl, ca, root = tls_fleet
    ws = _ws(root, fl, "good-ca", str(ca.ca_bundle))
    out = run(ws, ["-m", "extract", "catalog", "orders"])
    assert out.returncode == 0, out.describe()
    assert "catalog: loaded" in out.output and "orders: loaded" in out.output, out.describe()


def test_wrong_ca_fails_clearly_without_retrying(tls_fleet) -> None:
    fl, _, root = tls_fleet
    other = tls.make_local_ca(root / "other-ca")
    ws = _ws(root, fl, "wrong-ca", str(other.ca_bundle))
    out = run(ws, ["-m", "extract", "catalog"])
    assert out.returncode == 1, out.describe()
    assert "TLS certificate verification failed" in out.output, out.describe()
    assert str(other.ca_bundle) in out.output, out.describe()
    assert "retrying" not in out.output, "a certificate failure was retried like a network error"


def test_system_store_does_not_trust_the_local_ca(tls_fleet) -> None:
    fl, _, root = tls_fleet
    ws = _ws(root, fl, "no-ca", None)
    out = run(ws, ["-m", "extract", "catalog"])
    assert out.returncode == 1, out.describe()
    assert "TLS certificate verification failed against the system trust store" in out.output, out.describe()


@pytest.mark.parametrize("value", ["false", ""])
def test_verification_cannot_be_switched_off(tls_fleet, value: str) -> None:
    fl, _, root = tls_fleet
    ws = _ws(root, fl, f"off-{value or 'empty'}", value)
    out = run(ws, ["-m", "extract", "catalog"])
    assert out.returncode != 0, out.describe()
    assert "certificate verification cannot be turned off" in out.output, out.describe()
    assert "catalog: loaded" not in out.output


def test_plain_http_stays_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (tls.CERT_VAR, tls.KEY_VAR, tls.CA_VAR):
        monkeypatch.delenv(var, raising=False)
    fl = Fleet(run_dir=tmp_path / "run", data_dir=tmp_path / "data", port_base=free_port_base(), scale=SCALE)
    assert fl.tls is None and fl.url("orders").startswith("http://127.0.0.1:")
    assert tls.client_verify() is True
    monkeypatch.setenv(tls.CERT_VAR, str(tmp_path / "missing.pem"))
    with pytest.raises(tls.TLSConfigError, match="set both"):
        tls.ServerTLS.from_env()
