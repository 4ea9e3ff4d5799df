"""The key for hashing personal data in the published marts, and the guard that it never changes silently.

dbt reads it as ``DBT_ENV_SECRET_PII_KEY`` (dbt scrubs ``DBT_ENV_SECRET_*`` values from its logs and
refuses them outside profiles). Operators set ``SHOP_PII_KEY``; without it a random key lives in
``run/pii.key`` (mode 600), so hashed keys stay stable between runs while nothing secret is committed.

Why a guard: consumers join on ``email_hash``. A new key changes every hash, so a key that was lost
(a new machine, a deleted run folder) or replaced must never be replaced by a fresh one quietly. Every
published version records a *fingerprint* of its key in ``manifest.json``; the current version of
``exports/`` is the key of record:

- a key is generated only when nothing has been published yet, or on an explicit rotation;
- a missing key while a version is published is an error (``pii_key()``, ``prepare()``): dbt never
  runs, so neither ``make elt`` nor ``make dbt`` can hash with a new key;
- a publish whose fingerprint differs from the current version's fails (``manifest_entry()``) unless
  the rotation is explicit (``--rotate-pii-key``), which the manifest then records.

The fingerprint is HMAC-SHA256(key, ``FINGERPRINT_LABEL``) cut to 128 bits, never the key or sha256(key):
sha256 of short strings is tabulated, and a key-derived value must never be confusable with a published
hash (``email_hash`` is sha256(key || e-mail)). It is as fast to compute as a hash, on purpose: a weak key
can be guessed from *any* value it produced (each ``email_hash`` of a known e-mail allows the same
guessing), so a slow fingerprint alone would protect nothing. The defence is a strong key: the
generated one is 256 random bits; an operator's ``SHOP_PII_KEY`` should be as strong.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import settings

log = logging.getLogger("elt.pii_key")

ENV_VAR = "SHOP_PII_KEY"
DBT_ENV_VAR = "DBT_ENV_SECRET_PII_KEY"
FINGERPRINT_LABEL = b"shop-elt pii key fingerprint v1"
FINGERPRINT_BYTES = 16
ALGORITHM = "hmac-sha256(key, 'shop-elt pii key fingerprint v1'), first 16 bytes, hex"
ROTATE_FLAG = "--rotate-pii-key"
RESTORE_HINT = (
    f"restore the key with that fingerprint (run/pii.key or {ENV_VAR}), or rotate explicitly with "
    f"`make elt ARGS={ROTATE_FLAG}` (every email_hash changes)"
)


class PiiKeyError(RuntimeError):
    """The PII key is missing or differs from the published one; nothing was built or published with it."""


@dataclass(frozen=True)
class Published:
    """What the current version of an export root says about the key its hashes were made with."""

    version: str
    fingerprint: str | None  # None: published before fingerprints were recorded
    rotated_at: str | None = None
    previous_fingerprint: str | None = None


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of ``prepare``: ``status`` is ``ok``, ``new`` (first key) or ``rotated``."""

    status: str
    fingerprint: str
    detail: str


def key_file() -> Path:
    return settings.run_dir() / "pii.key"


def fingerprint(key: str) -> str:
    """The key's published identity: 128 bits of HMAC-SHA256(key, label), hex (see the module doc)."""
    digest = hmac.new(key.encode(), FINGERPRINT_LABEL, hashlib.sha256).digest()
    return digest[:FINGERPRINT_BYTES].hex()


def short(fp: str | None) -> str:
    """A fingerprint as messages show it (enough to compare with a manifest by eye)."""
    return f"{fp[:12]}…" if fp else "(none recorded)"


def published(exports: Path) -> Published | None:
    """The key record of ``exports``' current version; None when nothing is published there.

    A current version whose manifest cannot be read still counts as published (with no fingerprint):
    its hashes were made with *some* key, so a missing key must not be replaced silently.
    """
    link = exports / "current"
    if not (link.is_symlink() or link.exists()):
        return None
    version = link.resolve().name
    try:
        manifest = json.loads((link / "manifest.json").read_text())
    except (OSError, ValueError):
        return Published(version, None)
    entry = manifest.get("pii_key") or {}
    return Published(
        str(manifest.get("version") or version),
        entry.get("fingerprint"),
        entry.get("rotated_at"),
        entry.get("previous_fingerprint"),
    )


def configured() -> tuple[str, str] | None:
    """``(key, where)`` from ``SHOP_PII_KEY``, else from ``run/pii.key``; None when neither holds one."""
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return from_env, ENV_VAR
    path = key_file()
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        return None
    os.chmod(path, 0o600)
    return (key, str(path)) if key else None


def _missing_message(prior: Published) -> str:
    recorded = (
        f"was published with key fingerprint {short(prior.fingerprint)}"
        if prior.fingerprint
        else "was published before key fingerprints were recorded"
    )
    return (
        f"PII key missing: {ENV_VAR} is not set and {key_file()} does not exist, but exports/current "
        f"(version {prior.version}) {recorded}; a new key would change every email_hash. "
        f"Nothing was built or published: {RESTORE_HINT}"
    )


def _changed_message(fp: str, where: str, prior: Published) -> str:
    return (
        f"PII key changed: the key from {where} has fingerprint {short(fp)}, but exports/current "
        f"(version {prior.version}) was published with {short(prior.fingerprint)}; publishing would "
        f"change every email_hash. Nothing was published: {RESTORE_HINT}"
    )


def _write_new(replace: bool) -> str:
    """A new random key in ``run/pii.key`` (mode 600); without ``replace`` the first writer wins."""
    path = key_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    tmp = path.with_name(f".pii.key.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    try:
        if replace:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)  # fails if another process created the key meanwhile: use theirs
            except FileExistsError:
                key = path.read_text().strip()
    finally:
        tmp.unlink(missing_ok=True)
    os.chmod(path, 0o600)
    return key


def pii_key(exports: Path | None = None) -> str:
    """The key dbt hashes with: ``SHOP_PII_KEY``, else ``run/pii.key``.

    Created (chmod 600) only when nothing is published under ``exports`` (default ``SHOP_EXPORTS_DIR``):
    with a published version, a missing key raises ``PiiKeyError`` instead (rotation: ``prepare``).
    """
    found = configured()
    if found is not None:
        return found[0]
    prior = published(exports or settings.exports_dir())
    if prior is not None:
        raise PiiKeyError(_missing_message(prior))
    return _write_new(replace=False)


def prepare(exports: Path, *, rotate: bool = False) -> KeyCheck:
    """The flow's first step: make sure the key about to be used is the published one (or rotate).

    Runs before extract and dbt, so a lost or changed key fails the run before anything is built
    with it. With ``rotate``: a configured key that differs from the published one becomes the new key
    (so an interrupted rotation resumes with the same key); otherwise a new key is generated into
    ``run/pii.key``. ``SHOP_PII_KEY`` is never overwritten: to rotate it, set it to the new key.
    """
    prior = published(exports)
    found = configured()
    if prior is None:
        key = found[0] if found else _write_new(replace=False)
        fp = fingerprint(key)
        status, detail = ("ok", f"fingerprint {short(fp)}") if found else ("new", f"new key {short(fp)}")
        return KeyCheck(status, fp, detail + ", nothing published yet")
    if found is not None:
        key, where = found
        fp = fingerprint(key)
        if not rotate:
            if prior.fingerprint is None:  # published before fingerprints: recorded from now on
                detail = f"fingerprint {short(fp)}, none recorded by version {prior.version}"
                return KeyCheck("ok", fp, detail)
            if fp != prior.fingerprint:
                raise PiiKeyError(_changed_message(fp, where, prior))
            return KeyCheck("ok", fp, f"fingerprint {short(fp)}, as in version {prior.version}")
        if fp != prior.fingerprint and (prior.fingerprint is not None or where == ENV_VAR):
            return _rotated(prior, fp, f"the key from {where}")
        if where == ENV_VAR:
            raise PiiKeyError(
                f"{ROTATE_FLAG}: {ENV_VAR} holds the key exports/current (version {prior.version}) was "
                f"published with ({short(fp)}); set {ENV_VAR} to the new key, or unset it to have one "
                f"generated into {key_file()}"
            )
    elif not rotate:
        raise PiiKeyError(_missing_message(prior))
    return _rotated(prior, fingerprint(_write_new(replace=True)), f"a new key in {key_file()}")


def _rotated(prior: Published, fp: str, what: str) -> KeyCheck:
    log.warning(
        "rotating the PII key to %s (fingerprint %s → %s): every email_hash in the published marts will "
        "change; consumers must not join them with versions up to %s",
        what,
        short(prior.fingerprint),
        short(fp),
        prior.version,
    )
    return KeyCheck("rotated", fp, f"{short(prior.fingerprint)} → {short(fp)}: every email_hash changes")


def check_build_key(key: str, exports: Path | None = None) -> str:
    """The fingerprint of the key a dbt build is given; warns when it is not the published one.

    Not an error: ``make dbt`` has no rotation flag, and a rotation may build first and publish with
    ``make export ARGS=--rotate-pii-key``; the publish refuses unless that flag is given.
    """
    fp = fingerprint(key)
    prior = published(exports or settings.exports_dir())
    if prior is not None and prior.fingerprint and prior.fingerprint != fp:
        log.warning(
            "dbt builds with a PII key (fingerprint %s) other than the one exports/current (version %s) "
            "was published with (%s): every email_hash in the warehouse changes; publishing it needs %s",
            short(fp),
            prior.version,
            short(prior.fingerprint),
            ROTATE_FLAG,
        )
    return fp


def manifest_entry(exports: Path, *, rotate: bool = False, built_with: str | None = None) -> dict[str, Any]:
    """The manifest's ``pii_key`` record for a new version under ``exports``; raises ``PiiKeyError``
    (before anything is written) when the key is missing, is not the one the marts were built with
    (``built_with``, a fingerprint), or differs from the current version's and ``rotate`` is not set.

    The stream publishes to its own root without a rotation flag: there the key of record, the
    current version of ``SHOP_EXPORTS_DIR``, may already carry the key after an explicit rotation.
    """
    prior = published(exports)
    found = configured()
    if found is None:
        if prior is not None:
            raise PiiKeyError(_missing_message(prior))
        raise PiiKeyError(
            f"no PII key to publish with: {ENV_VAR} is not set and {key_file()} does not exist; build the "
            "marts through `make elt` or `make dbt ARGS=build` (they create the key) and publish again"
        )
    key, where = found
    fp = fingerprint(key)
    if built_with and built_with != fp:
        raise PiiKeyError(
            f"PII key mismatch: the marts were built with key fingerprint {short(built_with)}, but the key "
            f"from {where} is {short(fp)}; publishing would label their hashes with the wrong key. Nothing "
            "was published: restore the key they were built with, or rebuild (`make dbt ARGS=build`)"
        )
    entry: dict[str, Any] = {
        "fingerprint": fp,
        "algorithm": ALGORITHM,
        "rotated_at": None,
        "previous_fingerprint": None,
    }
    if prior is None or prior.fingerprint is None:
        return entry
    if prior.fingerprint == fp:
        return {**entry, "rotated_at": prior.rotated_at, "previous_fingerprint": prior.previous_fingerprint}
    of_record = settings.exports_dir()
    record = published(of_record) if exports.resolve() != of_record.resolve() else None
    if record is not None and record.fingerprint == fp:
        return {**entry, "rotated_at": record.rotated_at, "previous_fingerprint": record.previous_fingerprint}
    if not rotate:
        raise PiiKeyError(_changed_message(fp, where, prior))
    log.warning(
        "publishing with a rotated PII key (fingerprint %s → %s): every email_hash differs from versions "
        "up to %s",
        short(prior.fingerprint),
        short(fp),
        prior.version,
    )
    return {**entry, "rotated_at": datetime.now(UTC).isoformat(), "previous_fingerprint": prior.fingerprint}
