"""Each auth scheme: missing, wrong, malformed and expired credentials get the contract's status and a
JSON error envelope; valid ones get 200."""

from __future__ import annotations

import base64
import time

import pytest
import requests

from services.launcher import Fleet
from tests.pytest.services.helpers import auth_headers, orders_token

DATA_PATHS = {
    "customers": "/v1/customers",
    "catalog": "/v1/products",
    "orders": "/v1/orders",
    "payments": "/v1/payments",
    "events": "/v1/events",
}


def _assert_error(resp: requests.Response, status: int, code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert err["status"] == status
    assert err["message"]
    if code:
        assert err["code"] == code


@pytest.mark.parametrize("service", sorted(DATA_PATHS))
def test_missing_credentials_are_401(fleet: Fleet, service: str) -> None:
    resp = requests.get(fleet.url(service) + DATA_PATHS[service], timeout=10)
    _assert_error(resp, 401, "unauthorized")


@pytest.mark.parametrize(
    ("service", "headers"),
    [
        ("customers", {"X-API-Key": "not-the-key"}),
        ("payments", {"X-API-Key": "not-the-key"}),
        ("catalog", {"Authorization": "Bearer not-the-token"}),
        ("catalog", {"Authorization": "Basic dXNlcjpwdw=="}),
        ("events", {"Authorization": "Bearer not-the-token"}),
        ("orders", {"Authorization": "Bearer not-a-token-we-issued"}),
    ],
)
def test_wrong_credentials_are_403(fleet: Fleet, service: str, headers: dict[str, str]) -> None:
    resp = requests.get(fleet.url(service) + DATA_PATHS[service], headers=headers, timeout=10)
    _assert_error(resp, 403, "forbidden")


def test_other_services_key_is_rejected(fleet: Fleet) -> None:
    """Credentials are per service: the payments key does not open customers."""
    resp = requests.get(
        fleet.url("customers") + "/v1/customers", headers=auth_headers(fleet, "payments"), timeout=10
    )
    _assert_error(resp, 403)


@pytest.mark.parametrize("service", sorted(DATA_PATHS))
def test_valid_credentials_are_200(fleet: Fleet, service: str) -> None:
    resp = requests.get(
        fleet.url(service) + DATA_PATHS[service],
        headers=auth_headers(fleet, service),
        params={"limit": 5} if service != "orders" else {"per_page": 5},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    assert 0 < len(resp.json()["data"]) <= 5


@pytest.mark.parametrize("service", sorted(DATA_PATHS))
def test_health_needs_no_credentials(fleet: Fleet, service: str) -> None:
    resp = requests.get(fleet.url(service) + "/health", timeout=10)
    assert resp.json() == {"status": "ok", "service": service}


def test_token_endpoint(fleet: Fleet) -> None:
    env = fleet.env()
    url = fleet.url("orders") + "/oauth/token"
    cid, secret = env["SOURCES__ORDERS__CLIENT_ID"], env["SOURCES__ORDERS__CLIENT_SECRET"]
    form = {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}

    ok = requests.post(url, data=form, timeout=10)
    assert ok.status_code == 200
    body = ok.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert len(body["access_token"]) >= 32

    basic = base64.b64encode(f"{cid}:{secret}".encode()).decode()
    via_basic = requests.post(
        url,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    assert via_basic.status_code == 200
    assert via_basic.json()["access_token"] != body["access_token"]

    _assert_error(requests.post(url, data={"grant_type": "client_credentials"}, timeout=10), 401)
    _assert_error(requests.post(url, data={**form, "client_secret": "wrong"}, timeout=10), 403)
    _assert_error(requests.post(url, data={**form, "client_id": "someone"}, timeout=10), 403)
    _assert_error(
        requests.post(url, data={**form, "grant_type": "password"}, timeout=10), 422, "unsupported_grant_type"
    )


def test_expired_token_is_401_token_expired(fleet: Fleet, make_fleet) -> None:
    """A fleet whose tokens live one second, on the shared fleet's (read-only) data."""
    short = make_fleet(data_dir=fleet.data_dir, token_ttl=1, services=("orders",))
    token = orders_token(short)
    headers = {"Authorization": f"Bearer {token}"}
    url = short.url("orders") + "/v1/orders"
    assert requests.get(url, headers=headers, params={"per_page": 1}, timeout=10).status_code == 200
    time.sleep(1.3)
    resp = requests.get(url, headers=headers, params={"per_page": 1}, timeout=10)
    _assert_error(resp, 401, "token_expired")
    assert resp.headers["www-authenticate"] == "Bearer"
    fresh = {"Authorization": f"Bearer {orders_token(short)}"}
    assert requests.get(url, headers=fresh, params={"per_page": 1}, timeout=10).status_code == 200


@pytest.mark.parametrize("service", ["customers", "orders"])
def test_admin_endpoints_need_the_admin_token(fleet: Fleet, service: str) -> None:
    url = fleet.url(service) + "/admin/stats"
    _assert_error(requests.get(url, timeout=10), 401)
    _assert_error(requests.get(url, headers={"X-Admin-Token": "nope"}, timeout=10), 403)
    # a data credential is not an admin credential
    _assert_error(
        requests.get(url, headers={"X-Admin-Token": "x", **auth_headers(fleet, service)}, timeout=10), 403
    )
    ok = requests.get(url, headers={"X-Admin-Token": fleet.env()["SHOP_ADMIN_TOKEN"]}, timeout=10)
    assert ok.status_code == 200
    assert "by_path" in ok.json()
