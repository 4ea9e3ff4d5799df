"""Responses match each service's OpenAPI document (schemathesis, a bounded number of examples).

Schemathesis reads each live spec, generates requests from it (valid credentials added), and checks
status codes, content types, headers and bodies against the documented responses, plus that auth is
actually enforced (its `ignored_auth` check replays requests without credentials).
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from services.launcher import SERVICES, Fleet
from tests.pytest.services.helpers import auth_headers


@pytest.mark.parametrize("service", SERVICES)
def test_responses_match_the_spec(fleet: Fleet, service: str) -> None:
    """Every documented operation, a few generated requests each, validated by schemathesis' checks.

    (Driven through hypothesis directly: schemathesis' lazy pytest loader does not run under pytest 9.)
    `positive_data_acceptance` is excluded on purpose: a cursor/`after` token is opaque and only valid when
    a previous page issued it, which a schema cannot express, so a made-up token is rightly a 422.
    """
    schema = schemathesis.openapi.from_url(f"{fleet.url(service)}/openapi.json")
    headers = auth_headers(fleet, service)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 2
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            if case.query and "wait" in case.query:  # long-polls past the newest event would wait up to 30 s
                case.query["wait"] = min(float(case.query["wait"]), 0.1)
            case.call_and_validate(headers=headers, excluded_checks=[positive_data_acceptance])

        check()


@pytest.mark.parametrize("service", SERVICES)
def test_spec_documents_the_conventions(fleet: Fleet, service: str) -> None:
    spec = requests.get(f"{fleet.url(service)}/openapi.json", timeout=10).json()
    schemes = spec["components"]["securitySchemes"]
    expected = {
        "customers": {"ApiKey": "apiKey"},
        "payments": {"ApiKey": "apiKey"},
        "catalog": {"BearerToken": "http"},
        "events": {"BearerToken": "http"},
        "orders": {"OAuth2ClientCredentials": "oauth2"},
    }[service]
    assert {k: v["type"] for k, v in schemes.items()} == expected
    if service == "orders":
        assert schemes["OAuth2ClientCredentials"]["flows"]["clientCredentials"]["tokenUrl"] == "/oauth/token"
    for path, ops in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        get = ops["get"]
        assert get.get("security"), f"{path} documents no security"
        codes = set(get["responses"])
        assert {"200", "401", "403", "422", "429", "503"} <= codes, path
        assert "ErrorEnvelope" in str(get["responses"]["401"]), path
    assert "/admin/faults" not in spec["paths"]
