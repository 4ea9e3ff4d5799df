"""Every fault of the contract table does what it says, set at run time through the admin API (and, for
one case, from SHOP_FAULTS at start). Faults are counted per data request / per page, so each test
predicts exactly which request misbehaves."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest
import requests

from services.launcher import Fleet
from tests.pytest.services.helpers import auth_headers, next_link

pytestmark = pytest.mark.usefixtures("no_faults")


def _session(fleet: Fleet, service: str) -> requests.Session:
    s = requests.Session()
    s.headers.update(auth_headers(fleet, service, s))
    return s


def _customers(fleet: Fleet, n: int, **params: Any) -> list[requests.Response]:
    s = _session(fleet, "customers")
    return [s.get(fleet.url("customers") + "/v1/customers", params={"limit": 3, **params}) for _ in range(n)]


def test_rate_limit_every(fleet: Fleet) -> None:
    fleet.admin("customers").set_faults({"rate_limit_every": 3, "retry_after": 7})
    statuses = [r.status_code for r in _customers(fleet, 7)]
    assert statuses == [200, 200, 429, 200, 200, 429, 200]
    limited = _customers(fleet, 2)[1]  # the 9th data request
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert limited.json()["error"]["code"] == "rate_limited"


def test_error_ratio_is_seeded_and_reproducible(fleet: Fleet) -> None:
    admin = fleet.admin("customers")
    faults = {"error_ratio": 0.3, "error_status": 503, "seed": 7}
    admin.set_faults(faults)
    first = [r.status_code for r in _customers(fleet, 40)]
    rng = random.Random(7)
    assert first == [503 if rng.random() < 0.3 else 200 for _ in range(40)]
    assert 0 < first.count(503) < 40
    admin.set_faults(faults)  # setting again restarts the sequence
    assert [r.status_code for r in _customers(fleet, 40)] == first


def test_error_burst(fleet: Fleet) -> None:
    fleet.admin("catalog").set_faults({"error_burst": 3, "error_status": 502})
    s = _session(fleet, "catalog")
    resps = [s.get(fleet.url("catalog") + "/v1/products", params={"limit": 2}) for _ in range(5)]
    assert [r.status_code for r in resps] == [502, 502, 502, 200, 200]
    assert resps[0].json()["error"]["status"] == 502


def test_latency_ms(fleet: Fleet) -> None:
    """With 3 s of added latency, a client willing to wait 1 s gives up; one willing to wait more gets data.

    (A behavioural check: the delay is a lower bound the server guarantees, no speed is asserted.)"""
    fleet.admin("payments").set_faults({"latency_ms": 3000})
    s = _session(fleet, "payments")
    url = fleet.url("payments") + "/v1/payments"
    with pytest.raises(requests.exceptions.ReadTimeout):
        s.get(url, params={"limit": 1}, timeout=(5, 1.0))
    assert s.get(url, params={"limit": 1}, timeout=30).status_code == 200
    # health is not a data request: never delayed
    assert requests.get(fleet.url("payments") + "/health", timeout=1.0).status_code == 200


def test_drop_every_closes_the_connection_without_a_response(fleet: Fleet) -> None:
    admin = fleet.admin("orders")
    headers = auth_headers(fleet, "orders")  # the token endpoint is not a data request
    admin.set_faults({"drop_every": 2})
    url = fleet.url("orders") + "/v1/orders"
    outcomes = []
    for _ in range(4):
        try:
            outcomes.append(
                requests.get(url, headers=headers, params={"per_page": 2}, timeout=10).status_code
            )
        except requests.exceptions.ConnectionError:
            outcomes.append("dropped")
    assert outcomes == [200, "dropped", 200, "dropped"]
    assert admin.stats()["by_path"]["/v1/orders"] == {"200": 2, "dropped": 2}


def test_truncate_every_cuts_the_page_in_half(fleet: Fleet) -> None:
    fleet.admin("customers").set_faults({"truncate_every": 2})
    first, second, third = _customers(fleet, 3)
    assert first.status_code == second.status_code == third.status_code == 200
    orjson.loads(first.content)
    orjson.loads(third.content)
    assert second.content == first.content[: len(first.content) // 2]
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(second.content)


def test_error_envelope_every(fleet: Fleet) -> None:
    fleet.admin("events").set_faults({"error_envelope_every": 2})
    s = _session(fleet, "events")
    resps = [s.get(fleet.url("events") + "/v1/events", params={"limit": 2}) for _ in range(4)]
    assert [r.status_code for r in resps] == [200, 200, 200, 200]
    bodies = [r.json() for r in resps]
    assert "data" in bodies[0] and "data" in bodies[2]
    assert bodies[1]["error"]["code"] == bodies[3]["error"]["code"] == "maintenance"
    assert "data" not in bodies[1]


def test_only_pages_count_for_page_faults(fleet: Fleet) -> None:
    """Single-record reads are data requests but not pages: they neither trigger nor advance page faults."""
    fleet.admin("customers").set_faults({"error_envelope_every": 1})
    s = _session(fleet, "customers")
    one = s.get(fleet.url("customers") + "/v1/customers", params={"limit": 1}).json()
    assert one["error"]["code"] == "maintenance"
    fleet.admin("customers").clear_faults()
    cid = s.get(fleet.url("customers") + "/v1/customers", params={"limit": 1}).json()["data"][0][
        "customer_id"
    ]
    fleet.admin("customers").set_faults({"error_envelope_every": 1})
    assert s.get(fleet.url("customers") + f"/v1/customers/{cid}").json()["customer_id"] == cid


def test_token_expire_after(fleet: Fleet) -> None:
    fleet.admin("orders").set_faults({"token_expire_after": 2})
    headers = auth_headers(fleet, "orders")
    url = fleet.url("orders") + "/v1/orders"
    statuses = [requests.get(url, headers=headers, params={"per_page": 1}).status_code for _ in range(3)]
    assert statuses == [200, 200, 401]
    expired = requests.get(url, headers=headers, params={"per_page": 1})
    assert expired.json()["error"]["code"] == "token_expired"
    assert requests.get(url, headers=auth_headers(fleet, "orders"), params={"per_page": 1}).status_code == 200


def test_foreign_next_link(fleet: Fleet) -> None:
    foreign = "http://127.0.0.1:9"
    fleet.admin("payments").set_faults({"foreign_next_link": foreign})
    fleet.admin("orders").set_faults({"foreign_next_link": foreign})
    pay = _session(fleet, "payments").get(fleet.url("payments") + "/v1/payments", params={"limit": 2}).json()
    assert pay["links"]["next"].startswith(foreign + "/v1/payments?")
    orders = _session(fleet, "orders").get(fleet.url("orders") + "/v1/orders", params={"per_page": 2})
    assert next_link(orders).startswith(foreign + "/v1/orders?")
    fleet.admin("payments").clear_faults()
    own = _session(fleet, "payments").get(fleet.url("payments") + "/v1/payments", params={"limit": 2}).json()
    assert own["links"]["next"].startswith(fleet.url("payments") + "/v1/payments?")


def test_repeat_cursor(fleet: Fleet) -> None:
    for name in ("customers", "payments", "orders", "events"):
        fleet.admin(name).set_faults({"repeat_cursor": True})
    # customers: the cursor handed back is the one sent
    s = _session(fleet, "customers")
    url = fleet.url("customers") + "/v1/customers"
    cursor = s.get(url, params={"limit": 2}).json()["next_cursor"]
    for _ in range(3):
        body = s.get(url, params={"limit": 2, "cursor": cursor}).json()
        assert body["next_cursor"] == cursor
    # payments: links.next points at the page just served
    s = _session(fleet, "payments")
    nxt = s.get(fleet.url("payments") + "/v1/payments", params={"limit": 2}).json()["links"]["next"]
    for _ in range(3):
        assert s.get(nxt).json()["links"]["next"] == nxt
    # orders: the Link header repeats
    s = _session(fleet, "orders")
    link = next_link(s.get(fleet.url("orders") + "/v1/orders", params={"per_page": 2}))
    for _ in range(3):
        assert next_link(s.get(link)) == link
    # events: next_after_id stays and has_more stays true
    s = _session(fleet, "events")
    body = s.get(fleet.url("events") + "/v1/events", params={"after_id": 5, "limit": 2}).json()
    assert (body["next_after_id"], body["has_more"]) == (5, True)


@pytest.mark.parametrize(
    ("faults", "check"),
    [
        ({"drift_add": "loyalty_tier"}, lambda r: r["loyalty_tier"] == "drifted"),
        ({"drift_remove": "phone"}, lambda r: "phone" not in r and "email" in r),
        (
            {"drift_rename": {"email": "email_address"}},
            lambda r: "email" not in r and "@" in r["email_address"],
        ),
    ],
    ids=["add", "remove", "rename"],
)
def test_drift_changes_record_shape(fleet: Fleet, faults: dict, check: Any) -> None:
    fleet.admin("customers").set_faults(faults)
    s = _session(fleet, "customers")
    page = s.get(fleet.url("customers") + "/v1/customers", params={"limit": 5}).json()
    assert len(page["data"]) == 5
    assert all(check(r) for r in page["data"])
    one = s.get(fleet.url("customers") + f"/v1/customers/{page['data'][0]['customer_id']}").json()
    assert check(one)


def test_faults_apply_to_data_requests_only(fleet: Fleet) -> None:
    fleet.admin("catalog").set_faults({"error_burst": 100})
    assert requests.get(fleet.url("catalog") + "/health", timeout=10).status_code == 200
    assert requests.get(fleet.url("catalog") + "/openapi.json", timeout=10).status_code == 200
    assert fleet.admin("catalog").faults() == {"error_burst": 100}


def test_bad_fault_sets_are_rejected(fleet: Fleet) -> None:
    url = fleet.url("customers") + "/admin/faults"
    headers = {"X-Admin-Token": fleet.env()["SHOP_ADMIN_TOKEN"]}
    for body in ({"no_such_fault": 1}, {"rate_limit_every": 0}, {"error_ratio": 2}, [1, 2]):
        resp = requests.put(url, headers=headers, data=orjson.dumps(body), timeout=10)
        assert resp.status_code == 422, body
        assert resp.json()["error"]["code"] == "invalid_faults"
    assert fleet.admin("customers").faults() == {}


def test_stats_count_by_path_and_status(fleet: Fleet) -> None:
    admin = fleet.admin("customers")
    admin.reset_stats()
    _customers(fleet, 2)
    requests.get(fleet.url("customers") + "/v1/customers", timeout=10)  # no key: 401
    stats = admin.stats()
    assert stats["by_path"]["/v1/customers"] == {"200": 2, "401": 1}
    assert stats["requests"] == 3
    assert admin.reset_stats()["requests"] == 0


def test_faults_from_environment_at_start(fleet: Fleet, make_fleet: Any) -> None:
    """SHOP_FAULTS reaches the service through the launcher; only the named service is affected."""
    faulty = make_fleet(
        data_dir=fleet.data_dir,
        faults={"catalog": {"rate_limit_every": 1, "retry_after": 2}},
        services=("customers", "catalog"),
    )
    resp = _session(faulty, "catalog").get(faulty.url("catalog") + "/v1/products")
    assert resp.status_code == 429
    assert resp.headers["retry-after"] == "2"
    assert faulty.admin("catalog").faults() == {"rate_limit_every": 1, "retry_after": 2}
    assert _session(faulty, "customers").get(faulty.url("customers") + "/v1/customers").status_code == 200
