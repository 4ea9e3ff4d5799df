"""What the loader says when a source is misconfigured or unreachable (issue 12, "Messages").

Against real loopback servers (``plainapi.Api`` through ``faultserver.fault_server``), no mocks:

* ``localhost``, ``127.0.0.1`` and ``[::1]`` are one host to the same-origin rule for next links,
  while another port or a non-loopback host is still refused before any request;
* a credential still holding a placeholder of ``.dlt/secrets.toml.example`` fails the service before
  any request, naming the service and the key, never the value;
* a service or token endpoint that cannot be reached (refused port, TLS) fails as a connection or TLS
  problem naming service, endpoint and URL, never as "credentials missing" or a credentials problem.
"""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from extract import config
from extract.errors import ConfigMissing, FetchError, UnsafePagination
from tests.pytest.extract.faultserver import fault_server
from tests.pytest.extract.plainapi import SECRET, Api
from tests.pytest.extract.test_source_files import ALL, service_from, source_text, walk_ids
from tests.pytest.support.ports import closed_port


class AbsoluteLinks(Api):
    """An ``Api`` whose next links are absolute, on ``host`` (the name the server builds them from)."""

    host = "127.0.0.1"
    port = 0

    def _send(
        self, h: BaseHTTPRequestHandler, status: int, doc: Any, headers: dict[str, str] | None = None
    ) -> None:
        base = f"http://{self.host}:{self.port}"
        headers = dict(headers or {})
        if "Link" in headers:
            headers["Link"] = headers["Link"].replace("</", f"<{base}/", 1)
        if isinstance(doc, dict) and isinstance(doc.get("next"), str) and doc["next"].startswith("/"):
            doc = {**doc, "next": base + doc["next"]}
        super()._send(h, status, doc, headers)


@pytest.fixture
def absolute() -> Iterator[tuple[AbsoluteLinks, int]]:
    state = AbsoluteLinks()
    with fault_server(state.answer) as srv:
        state.port = srv.server_address[1]
        yield state, state.port


PAGINATORS = {
    "link_header": ({"kind": "link_header", "limit_param": "size"}, "$"),
    "json_link": ({"kind": "json_link", "next_path": "next", "limit_param": "size"}, "data"),
}


# ---- 1. loopback names are one host ---------------------------------------------------------------
@pytest.mark.parametrize("style", sorted(PAGINATORS))
@pytest.mark.parametrize(
    ("configured", "linked"),
    [("localhost", "127.0.0.1"), ("127.0.0.1", "localhost"), ("127.0.0.1", "[::1]"), ("localhost", "[::1]")],
)
def test_next_links_on_another_loopback_name_are_followed(
    absolute: tuple[AbsoluteLinks, int], tmp_path: Path, style: str, configured: str, linked: str
) -> None:
    """Old code: the second page was refused ("not the service's own origin") for every case."""
    state, port = absolute
    paginator, records = PAGINATORS[style]
    state.style, state.records, state.auth, state.host = style, records, "bearer", linked
    service = service_from(tmp_path, source_text(paginator, records=records, auth="bearer"))
    assert walk_ids(service, f"http://{configured}:{port}", {"token": SECRET}) == ALL
    assert state.data_requests() == 3  # 10 + 10 + 3: every page, each once


@pytest.mark.parametrize("foreign", ["other-port", "example.com"])
def test_a_foreign_host_or_port_is_still_refused_and_receives_nothing(
    absolute: tuple[AbsoluteLinks, int], tmp_path: Path, foreign: str
) -> None:
    """Only loopback *names* are unified: another port on loopback, or a real host name, is refused
    before a socket opens (the foreign server sees no request, least of all the token)."""
    state, port = absolute
    other = Api()
    with fault_server(other.answer) as srv:
        state.style, state.records, state.auth = "link_header", "$", "bearer"
        state.host = "example.com" if foreign == "example.com" else "localhost"
        state.port = port if foreign == "example.com" else srv.server_address[1]
        service = service_from(tmp_path, source_text(PAGINATORS["link_header"][0], auth="bearer"))
        with pytest.raises(UnsafePagination, match="not the service's own origin"):
            walk_ids(service, f"http://127.0.0.1:{port}", {"token": SECRET})
    assert other.hits == []
    assert state.data_requests() == 1  # the first page only


# ---- 1b. the same for the fleet's credentials (run/fleet.env) -------------------------------------
@pytest.mark.parametrize(("configured", "same"), [("localhost", True), ("localhost:1", False)])
def test_a_base_url_on_another_loopback_name_takes_the_fleets_credentials(
    loader_at: tuple[Api, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, configured: str, same: bool
) -> None:
    """``run/fleet.env`` says ``http://127.0.0.1:PORT``, the user set ``http://localhost:PORT/``: the
    same service, so its credentials are used and the run loads. Old code: "credentials missing" for a
    service that was up. Another port is another service and never gets the fleet's credentials."""
    from extract.runner import run

    state, folder = loader_at
    state.auth = "bearer"
    (folder / "plain.yml").write_text(
        source_text({"kind": "page_number", "page_param": "p", "limit_param": "size"}, auth="bearer")
    )
    port = int(config.os.environ["SOURCES__PLAIN__BASE_URL"].rsplit(":", 1)[1])
    fleet = f"SOURCES__PLAIN__BASE_URL=http://127.0.0.1:{port}\nSOURCES__PLAIN__TOKEN={SECRET}\n"
    (tmp_path / "run" / "fleet.env").write_text(fleet)
    host = f"localhost:{port}/" if same else f"localhost:{closed_port()}"
    monkeypatch.setenv("SOURCES__PLAIN__BASE_URL", f"http://{host}")
    result = run(["plain"])
    if same:
        assert result.failures == {} and result.rows == len(ALL)
    else:
        assert "plain: credentials missing (SOURCES__PLAIN__TOKEN)" in result.failures["plain"]
        assert state.hits == []
    assert SECRET not in str(result.failures)


# ---- 2. placeholder secrets are refused -----------------------------------------------------------
@pytest.fixture
def loader_at(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Api, Path]]:
    """The loader (in this process) with a sources folder of its own, pointed at a fresh ``Api``."""
    import os

    state = Api()
    with fault_server(state.answer) as srv:
        for name in list(os.environ):
            if name.startswith("SOURCES__"):
                monkeypatch.delenv(name)
        folder = tmp_path / "sources"
        folder.mkdir()
        (tmp_path / "run").mkdir()
        monkeypatch.setenv("SHOP_SOURCES_DIR", str(folder))
        monkeypatch.setenv("SHOP_WAREHOUSE", str(tmp_path / "shop.duckdb"))
        monkeypatch.setenv("SHOP_RUN_DIR", str(tmp_path / "run"))
        monkeypatch.setenv("SOURCES__PLAIN__BASE_URL", srv.url)  # type: ignore[attr-defined]
        monkeypatch.setenv("SOURCES__EXTRACT__MAX_ATTEMPTS", "2")
        monkeypatch.setenv("SOURCES__EXTRACT__BACKOFF_BASE", "0.01")
        yield state, folder


def test_the_example_file_holds_the_placeholders_refused() -> None:
    """The refused set is read from the file users copy, so a new placeholder there is refused too."""
    text = (config.settings.repo_root() / ".dlt" / "secrets.toml.example").read_text()
    assert config.example_placeholders()
    for value in config.example_placeholders():
        assert f'"{value}"' in text


@pytest.mark.parametrize(
    "value",
    ["<orders oauth client secret>", "<payments api key>", "<plain api key>"],
    ids=["orders-placeholder", "another-service's", "placeholder-form"],
)
def test_a_placeholder_secret_fails_the_service_before_any_request(
    loader_at: tuple[Api, Path], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """Old code sent the placeholder and failed on the service's 401 ("check the credentials"), after
    the value had reached the service."""
    from extract.runner import run

    state, folder = loader_at
    state.auth = "oauth2"
    auth = {"kind": "oauth2", "token_url": "/token"}
    (folder / "plain.yml").write_text(
        source_text({"kind": "page_number", "page_param": "p", "limit_param": "size"}, auth=auth)
    )
    monkeypatch.setenv("SOURCES__PLAIN__CLIENT_ID", "reader")
    monkeypatch.setenv("SOURCES__PLAIN__CLIENT_SECRET", value)
    result = run(["plain"])
    message = result.failures["plain"]
    key = "SOURCES__PLAIN__CLIENT_SECRET ([sources.plain] client_secret)"
    assert f"plain: {key} still holds the placeholder" in message
    assert ".dlt/secrets.toml.example; set the real value" in message
    assert value not in message and "CLIENT_ID" not in message
    assert state.hits == []  # nothing was sent, not even the token request
    with pytest.raises(ConfigMissing):
        config.service_config("plain", "oauth2")
    monkeypatch.setenv("SOURCES__PLAIN__CLIENT_SECRET", SECRET)  # the real value: the same run loads
    assert run(["plain"]).failures == {}


# ---- 3. an unreachable service is not a credentials problem ---------------------------------------
def _no_credentials_advice(message: str) -> None:
    assert "credentials missing" not in message
    assert "check the plain credentials" not in message
    assert SECRET not in message


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__EXTRACT__MAX_ATTEMPTS", "2")
    monkeypatch.setenv("SOURCES__EXTRACT__BACKOFF_BASE", "0.01")


@pytest.mark.usefixtures("fast_retries")
def test_a_refused_port_is_a_connection_error_naming_service_endpoint_and_url(tmp_path: Path) -> None:
    """Already right before this change (kept as the proof): a refused data request says connection
    refused and what to check, not credentials."""
    port = closed_port()
    service = service_from(
        tmp_path,
        source_text(
            {"kind": "page_number", "page_param": "p", "limit_param": "size"}, auth={"kind": "api_key"}
        ),
    )
    with pytest.raises(FetchError) as err:
        walk_ids(service, f"http://127.0.0.1:{port}", {"api_key": SECRET})
    message = str(err.value)
    assert message.startswith("plain items: failed after")
    assert "connection error: ConnectionError (connection refused)" in message
    assert f"[http://127.0.0.1:{port}/items]" in message
    assert "check that the plain service is running at that address" in message
    _no_credentials_advice(message)


@pytest.mark.usefixtures("fast_retries")
@pytest.mark.parametrize("fault", ["refused", "tls"])
def test_an_unreachable_token_endpoint_says_the_credentials_were_not_tried(
    tmp_path: Path, fault: str
) -> None:
    """Old code (``refused``): a token endpoint that could not be reached said only "check that the
    plain service is running"; it now also says the credentials were never tried and which key
    (``auth.token_url``) to check. ``tls`` was already right (a TLS error, not retried, no credentials
    advice) and is kept as the proof. The data server is up and receives nothing without a token."""
    state = Api()
    state.auth = "oauth2"
    with fault_server(state.answer) as srv:
        data_url = srv.url  # type: ignore[attr-defined]
        if fault == "refused":
            token_url = f"http://127.0.0.1:{closed_port()}/token"
        else:  # a plain-HTTP server asked for TLS: the handshake fails
            token_url = data_url.replace("http://", "https://") + "/token"
        auth = {"kind": "oauth2", "token_url": token_url}
        service = service_from(
            tmp_path,
            source_text({"kind": "page_number", "page_param": "p", "limit_param": "size"}, auth=auth),
        )
        with pytest.raises(FetchError) as err:
            walk_ids(service, data_url, {"client_id": "reader", "client_secret": SECRET})
    message = str(err.value)
    assert message.startswith("plain POST /token: failed after")
    assert f"[{token_url}]" in message
    if fault == "refused":
        assert "connection refused" in message
        assert "the token endpoint did not answer, so the credentials were not tried" in message
        assert "auth.token_url in sources/plain.yml" in message
    else:  # old code: "TLS certificate verification failed ... set SHOP_TLS_CA_BUNDLE", the wrong advice
        assert "last status TLS error" in message
        assert "the server does not speak TLS" in message
        assert "check http:// versus https://" in message
        assert "certificate verification failed" not in message
    assert state.data_requests() == 0
    _no_credentials_advice(message)
