"""Drift before load: a service that publishes an OpenAPI document is checked against its source file
before any data request of a run.

Why before: the page-by-page checks (``extract.shape``) catch a removed or retyped field only once a
page carrying it arrives - after earlier endpoints may have loaded, and only for the fields the pages
happen to show. The document says what the service answers now, for every endpoint at once, so a run
can refuse at the start: a declared field the document no longer has (removed or renamed), or has
with a type the declared one cannot hold (retyped), fails the service with one line naming endpoint
and field and what to do; nothing is requested, loaded or advanced. A documented field the file does
not declare is reported (it loads as an extra column, ``extract.shape``). The page checks stay as the
second line, for services whose document is missing or wrong.

What counts as retyped is what the loader could not load into the declared type: an ``int`` where the
document now says ``str`` or ``float``, an object that became a scalar, and so on. ``str`` and ``ts``
are one family (many documents leave out ``format: date-time``), an ``int`` fits a ``float``, a
nullable field fits any declared field, and a field the document leaves free-form (no properties, or
a union of types) is not compared. Inside ``loose`` objects, keys may come and go.

The document is fetched on the service's own origin (a path of the source file's ``openapi`` key, or a
URL) within the run's HTTP bounds and retry budget, without credentials first and with the service's
when it answers 401/403; a URL on another origin never receives them. A service that answers without a
document (404: a wrong ``openapi`` path) fails; one that cannot be reached at all (down, 5xx) only gets
a warning here, because its data requests then fail with the loader's usual message and advice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import requests

from core import signals, tls
from extract import openapi, transfer
from extract.advice import public_url, transport_failure
from extract.config import ServiceConfig
from extract.errors import ExtractError, SchemaDrift
from extract.http import origin
from extract.openapi import DocField
from extract.pages import media_type, not_json
from extract.retry import Attempt, decide
from extract.spec import Endpoint, FieldSpec, Service

log = logging.getLogger("extract.docdrift")

# declared type -> documented kinds it can load (extract/shape.py casts within these families)
FITS: dict[str, set[str]] = {
    "int": {"int"},
    "float": {"int", "float"},
    "bool": {"bool"},
    "str": {"str", "ts"},
    "ts": {"str", "ts"},
}
SHOWN = 5  # problems named in the one-line message


class DocumentDrift(SchemaDrift):
    """The service's OpenAPI document no longer matches its source file (checked before any data request)."""


class DocumentUnavailable(ExtractError):
    """The source file names an OpenAPI document that could not be fetched or read."""


@dataclass
class Report:
    """What a comparison found: problems fail the service, additions are reported."""

    problems: list[str] = field(default_factory=list)
    added: list[str] = field(default_factory=list)


def _declared_kind(spec: FieldSpec) -> str:
    if isinstance(spec, str):
        return spec
    return "object" if isinstance(spec, dict) else "list"


def _doc_type(f: DocField) -> str:
    return {"list": "list of objects", "scalars": "list of scalars", "object": "object"}.get(f.kind, f.kind)


def compare_fields(
    declared: dict[str, FieldSpec],
    doc: DocField,
    where: str,
    report: Report,
    loose: bool = False,
    loose_fields: tuple[str, ...] = (),
) -> None:
    """Compare declared ``fields`` with the documented object ``doc`` (``where``: ``endpoint`` or a
    dotted path in it). In a ``loose`` object a declared key may be absent; ``loose_fields`` names the
    object fields of this level that are loose."""
    documented = doc.fields
    removed = [n for n in declared if n not in documented]
    extra = [n for n in documented if n not in declared]
    for name in removed:
        if loose:
            continue
        spec = declared[name]
        twins = [n for n in extra if documented[n].kind not in ("any", "null") and _fits(spec, documented[n])]
        hint = ""
        if len(twins) == 1:
            hint = f" (renamed to {twins[0]}?)"
        elif 1 < len(twins) <= 3:
            hint = f" (renamed to one of {', '.join(twins)}?)"
        report.problems.append(f"{where} field {name} is gone from the document{hint}")
    for name in extra:
        report.added.append(f"{where}.{name} ({_doc_type(documented[name])})")
    for name, spec in declared.items():
        if name not in documented:
            continue
        got = documented[name]
        if got.kind in ("any", "null"):
            continue
        if not _fits(spec, got):
            report.problems.append(
                f"{where} field {name} is declared {_declared_kind(spec)} but the document says"
                f" {_doc_type(got)}"
            )
        elif isinstance(spec, dict):
            compare_fields(spec, got, f"{where}.{name}", report, loose or name in loose_fields)
        elif isinstance(spec, list):
            compare_fields(spec[0], DocField("object", got.fields), f"{where}.{name}[]", report, loose)


def _fits(spec: FieldSpec, got: DocField) -> bool:
    kind = _declared_kind(spec)
    if got.kind in ("any", "null"):
        return True
    if kind == "object":
        return got.kind == "object"
    if kind == "list":
        return got.kind == "list"
    return got.kind in FITS.get(kind, {kind})


def compare_endpoint(doc: dict[str, Any], ep: Endpoint, report: Report) -> None:
    described = openapi.describe(doc, ep.path, ep.name)
    if described is None:
        report.problems.append(f"{ep.name}: GET {ep.path} is not in the document (removed or moved?)")
        return
    record = openapi.records_at(described.body, ep.records)
    if record is None:
        found = openapi.find_records(described.body, ep.name)
        where = f"; it has lists of objects at {', '.join(found)}" if found else ""
        report.problems.append(
            f"{ep.name}: the document's 200 answer of GET {ep.path} has no list of records at"
            f" records: {ep.records}{where}"
        )
        return
    compare_fields(ep.fields, record, ep.name, report, loose_fields=ep.loose)


def compare(service: Service, doc: dict[str, Any]) -> Report:
    """Every endpoint of ``service`` against the document."""
    report = Report()
    for ep in service.endpoints:
        compare_endpoint(doc, ep, report)
    return report


def document_url(service: Service, base_url: str) -> str:
    return urljoin(base_url.rstrip("/") + "/", str(service.openapi).lstrip("/")) if service.openapi else ""


def fetch(
    service: Service, cfg: ServiceConfig, session: requests.Session, auth: Any
) -> dict[str, Any] | None:
    """The service's document, within the run's bounds.

    ``DocumentUnavailable`` (naming URL and what to do) when the service answers but not with a document
    (a wrong path: 404; JSON that is no OpenAPI document). None, with a warning, when the service cannot
    be reached (refused, timed out, a TLS error), keeps answering 5xx, or answers something that is not
    JSON or YAML (an HTML page from a proxy): its data requests will then fail the same way with the
    loader's own message and advice, or, if they do get through, the page checks still stand."""
    url = (
        service.openapi
        if str(service.openapi).startswith(("http://", "https://"))
        else document_url(service, cfg.base_url)
    )
    assert url is not None
    policy = cfg.tuning.http
    own = origin(url) == origin(cfg.base_url)
    shown = public_url(url)
    advice = f"check `openapi` in {service.where} (or remove it to load without the check)"
    attempts, with_creds = 0, False
    while True:
        attempts += 1
        headers = auth.headers() if with_creds else {}
        params = auth.params() if with_creds else None
        try:
            reply = transfer.exchange(session, "GET", url, policy, headers=headers, params=params)
        except (transfer.DeadlineExceeded, transfer.BodyTooLarge, requests.RequestException) as exc:
            _, status, detail = transport_failure(exc, policy)
            return _unreached(service, shown, f"{status}: {detail}")
        status = reply.status
        media = media_type(dict(reply.headers))
        if (
            status == 200
            and "yaml" not in media
            and (what := not_json(bytes(reply.body), dict(reply.headers)))
        ):
            # an HTML page (a proxy, a login page): the data requests say what that means, with advice
            return _unreached(service, shown, what)
        if status == 200:
            try:
                return openapi.parse_document(bytes(reply.body), f"{service.name}: OpenAPI document {shown}")
            except openapi.DocumentError as exc:
                raise DocumentUnavailable(f"{exc}; {advice}") from None
        if status in (401, 403) and own and not with_creds:
            with_creds = True  # a document behind the service's own auth
            attempts -= 1
            continue
        wait = decide(policy, attempts, Attempt("status", status))
        if wait is None:
            if status >= 500 or status == 429:
                return _unreached(service, shown, f"HTTP {status} after {attempts} attempt(s)")
            raise DocumentUnavailable(
                f"{service.name}: OpenAPI document {shown} not fetched: HTTP {status}; {advice}"
            )
        signals.sleep(wait)


def _unreached(service: Service, shown: str, why: str) -> None:
    log.warning(
        "%s: OpenAPI document %s not reached (%s): no check before load; the pages are checked one by one",
        service.name,
        shown,
        why,
    )
    return None


def check_before_load(service: Service, cfg: ServiceConfig) -> Report | None:
    """Fetch and compare the service's document (when its file names one): raise ``DocumentDrift``
    on a removed, renamed or retyped field, log a warning naming the fields it added."""
    if not service.openapi:
        return None
    from extract.resources import make_auth

    session = requests.Session()
    session.trust_env = False
    session = transfer.bound_session(tls.configure_session(session))
    try:
        auth = make_auth(service, cfg, session)
        doc = fetch(service, cfg, session, auth)
    finally:
        session.close()
    if doc is None:
        return None
    report = compare(service, doc)
    url = public_url(document_url(service, cfg.base_url) or str(service.openapi))
    if report.added:
        log.warning(
            "%s: the OpenAPI document %s has field(s) %s not in %s: they load as extra columns; declare"
            " them there to make them part of the contract",
            service.name,
            url,
            ", ".join(report.added),
            service.where,
        )
    if report.problems:
        more = f"; and {len(report.problems) - SHOWN} more" if len(report.problems) > SHOWN else ""
        raise DocumentDrift(
            f"{service.name}: the OpenAPI document {url} no longer matches {service.where}: "
            + "; ".join(report.problems[:SHOWN])
            + more
            + f". No data was requested. Edit {service.where} (and the dbt models reading raw_{service.name})"
            f" to match, or re-run `python -m extract init {service.name} --openapi {url} --force` (it"
            " rewrites the file and its staging models)"
        )
    log.info("%s: OpenAPI document %s matches %s", service.name, url, service.where)
    return report
