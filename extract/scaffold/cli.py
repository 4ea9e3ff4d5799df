"""``python -m extract init NAME --openapi URL|FILE`` or ``--sample URL [--sample URL ...]``.

Writes ``sources/NAME.yml`` (each guess marked ``# GUESS:``), ``models/staging/NAME/_NAME__sources.yml``,
``_NAME__models.yml`` and one ``stg_NAME__<table>.sql`` per raw table. Nothing is written when any of
those files exists (``--force`` overwrites, and removes a generated ``stg_NAME__*.sql`` whose table the new
file no longer declares: ``stale_models``), and nothing when the file would not validate: what ``init``
writes always loads with ``python -m extract NAME`` and builds with ``dbt build``.

Requests go through the loader's bounded client (timeouts, size cap, no redirects); a sample request
carries the credentials of ``--auth`` from the usual places (``SOURCES__NAME__TOKEN``, .dlt/secrets.toml),
never from the command line.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

import requests

from core import settings, tls
from extract import openapi, transfer
from extract.advice import public_url
from extract.errors import ExtractError
from extract.limits import HttpPolicy
from extract.scaffold import dbtfiles, guess, render, sample
from extract.scaffold.draft import Guess, SourceDraft
from extract.sourcefile import NAME, parse, to_service

EXIT_USAGE = 2
AUTH_KINDS = ("none", "api_key", "bearer", "basic", "oauth2")


class InitError(Exception):
    """A reason ``init`` wrote nothing (one line, what to do)."""


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # as the loader: never through a proxy from the environment
    return transfer.bound_session(tls.configure_session(session))


def get(
    url: str, headers: dict[str, str] | None = None, params: dict[str, str] | None = None
) -> transfer.Reply:
    """One bounded GET; ``InitError`` unless it answers 200."""
    try:
        reply = transfer.exchange(_session(), "GET", url, HttpPolicy(), headers=headers or {}, params=params)
    except (requests.RequestException, transfer.DeadlineExceeded, transfer.BodyTooLarge) as exc:
        raise InitError(f"{public_url(url)}: {type(exc).__name__}: {str(exc)[:200]}") from None
    if reply.status != 200:
        raise InitError(f"{public_url(url)} answered HTTP {reply.status}: check the URL (and --auth)")
    return reply


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def from_openapi(name: str, location: str, base_url: str | None, origin: str) -> SourceDraft:
    if re.match(r"^https?://", location):
        reply = get(location)
        text: bytes | str = bytes(reply.body)
        doc_url: str | None = location
    else:
        path = Path(location).expanduser()
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise InitError(f"{location}: cannot read it ({exc.strerror})") from None
        doc_url = None
    try:
        doc = openapi.parse_document(text, public_url(location) if doc_url else location)
        return guess.from_document(doc, name, origin, doc_url, base_url)
    except openapi.DocumentError as exc:
        raise InitError(str(exc)) from None


def _auth_for(name: str, kind: str, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters of ``kind``'s credentials for a sample request."""
    if kind == "none":
        return {}, {}
    from extract.config import service_config
    from extract.resources import make_auth
    from extract.spec import Service

    os.environ.setdefault(f"SOURCES__{name.upper()}__BASE_URL", base_url)
    cfg = service_config(name, kind)  # ConfigMissing names the keys to set
    auth = make_auth(Service(name=name, auth=kind, endpoints=()), cfg, _session())  # type: ignore[arg-type]
    return auth.headers(), auth.params()


def from_samples(name: str, urls: list[str], auth: str, base_url: str | None, origin: str) -> SourceDraft:
    origins = {_origin(u) for u in urls}
    if len(origins) > 1:
        raise InitError(f"--sample URLs of one source share one origin; got {', '.join(sorted(origins))}")
    base = base_url or origins.pop()
    headers, params = _auth_for(name, auth, base)
    endpoints = []
    for url in urls:
        reply = get(url, headers, params)
        try:
            ep = sample.endpoint_draft(url, bytes(reply.body), dict(reply.headers))
        except sample.SampleError as exc:
            raise InitError(f"{public_url(url)}: {exc}") from None
        while ep.name in {e.name for e in endpoints}:
            ep.name += "_2"
        endpoints.append(ep)
    note = "given with --auth" if auth != "none" else "no --auth given and the sample needed none"
    secrets = {"none": (), "api_key": ("api_key",), "bearer": ("token",), "basic": ("username", "password")}
    return SourceDraft(
        name=name,
        origin=origin,
        description=None,
        base_url=base,
        auth=Guess(auth, note),
        endpoints=endpoints,
        auth_secrets=secrets.get(auth, ("client_id", "client_secret")),
    )


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def plan(args: argparse.Namespace, origin: str) -> tuple[dict[Path, str], SourceDraft]:
    """Every file to write, by path (validated; nothing written yet), and the draft."""
    if args.openapi:
        draft = from_openapi(args.name, args.openapi, args.base_url, origin)
    else:
        draft = from_samples(args.name, args.sample, args.auth, args.base_url, origin)
    text = render.source_file(draft)
    target = Path(args.sources_dir) / f"{args.name}.yml"
    where = _shown(target)
    model = parse(text, where)  # a generator bug fails here, before anything is written
    service = to_service(args.name, model, where)
    descriptions = {ep.name: ep.descriptions for ep in draft.endpoints}
    what = draft.description or f"The {args.name} service"
    files = {target: text}
    for rel, body in dbtfiles.render(service, descriptions, what).items():
        files[Path(args.dbt_project) / rel] = body
    return files, draft


def next_steps(name: str, files: dict[Path, str], draft: SourceDraft) -> list[str]:
    guesses = next(iter(files.values())).count("# GUESS:")
    env = f"SOURCES__{name.upper()}__"
    secrets = " ".join(f"{env}{s.upper()}=..." for s in draft.auth_secrets)
    return [
        f"wrote {len(files)} files ({guesses} guesses marked '# GUESS:' in {_shown(next(iter(files)))}):",
        *[f"  {_shown(p)}" for p in files],
        "next: check every GUESS, then",
        f"  export {env}BASE_URL={draft.base_url or '<the service URL>'} {secrets}".rstrip(),
        f"  python -m extract {name}                              # load raw_{name}",
        f"  python -m elt dbt build --select source:{name}+        # build and test its staging models",
    ]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m extract init",
        description="write a source file, dbt sources and staging models for a new service",
    )
    p.add_argument("name", help="the source's name: sources/NAME.yml, loaded into raw_NAME")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--openapi", metavar="URL|FILE", help="the service's OpenAPI document (JSON or YAML)")
    what.add_argument(
        "--sample", metavar="URL", action="append", help="a URL answering records (repeat for more endpoints)"
    )
    p.add_argument(
        "--auth",
        choices=AUTH_KINDS,
        default="none",
        help="with --sample: how the sample request authenticates",
    )
    p.add_argument(
        "--base-url", help="the service's base URL (default: the document's server or the URL's origin)"
    )
    p.add_argument("--force", action="store_true", help="overwrite files that exist")
    p.add_argument(
        "--sources-dir",
        default=None,
        help="folder of the source files (default: SHOP_SOURCES_DIR or sources/)",
    )
    p.add_argument(
        "--dbt-project",
        default=None,
        help="the dbt project to write models/staging/NAME/ into (default: this repo)",
    )
    args = p.parse_args(argv)
    if not re.match(NAME, args.name):
        p.error(f"{args.name!r}: a source name is lower-case letters, digits and _, starting with a letter")
    if args.auth != "none" and args.openapi:
        p.error("--auth is for --sample; with --openapi the document's security scheme is used")
    if args.sources_dir is None:
        from extract.sources import sources_dir

        args.sources_dir = str(sources_dir())
    args.dbt_project = args.dbt_project or str(settings.repo_root())
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    shown = [a if not re.match(r"^https?://", a) else public_url(a) for a in argv]
    origin = shlex.join(["python", "-m", "extract", "init", *shown])
    try:
        files, draft = plan(args, origin)
    except (InitError, ExtractError) as exc:
        print(f"init {args.name}: {exc}; nothing written", file=sys.stderr)
        return 1
    existing = [p for p in files if p.exists()]
    if existing and not args.force:
        print(
            f"init {args.name}: {', '.join(_shown(p) for p in existing)} already exist(s); nothing written"
            " (--force overwrites)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    stale = stale_models(args.name, files) if args.force else []
    for path, text in files.items():
        write_atomic(path, text)
    for path in stale:
        path.unlink()
        print(f"removed {_shown(path)}: it read a table of {args.name} the new file no longer declares")
    print("\n".join(next_steps(args.name, files, draft)))
    return 0


def stale_models(name: str, files: dict[Path, str]) -> list[Path]:
    """Staging models an earlier ``init`` wrote for tables the new file no longer has (an endpoint the
    service dropped or renamed). Left in place they would read a source table that is no longer declared,
    and dbt would refuse to parse the whole project. Only a ``stg_NAME__*.sql`` that reads
    ``source('NAME', <table>)`` of a table missing from the new sources file is removed: a model a team
    wrote beside the generated ones, or one that reads a table still declared, stays."""
    models = [p for p in files if p.suffix == ".sql"]
    if not models:
        return []
    folder = models[0].parent
    declared = set().union(*(_tables_read(name, text) for text in files.values()))
    stale = []
    for path in sorted(folder.glob(f"stg_{name}__*.sql")):
        read = _tables_read(name, path.read_text())
        if path not in files and read and not read & declared:
            stale.append(path)
    return stale


def _tables_read(name: str, text: str) -> set[str]:
    """The tables of source ``name`` that ``text`` reads with ``source('name', 'table')``."""
    call = rf"""source\(\s*['"]{re.escape(name)}['"]\s*,\s*['"]([^'"]+)['"]\s*\)"""
    return set(re.findall(call, text))
