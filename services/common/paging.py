"""Keyset paging shared by the incremental endpoints, and the opaque tokens that carry a position.

A position is the (sort timestamp, id) of the last row served. Rows are ordered by that pair, so an
update (which raises `updated_at`) moves a record *after* every position a walk has passed: it may be
served again later, but no record can be skipped. Tokens are base64url so clients treat them as opaque.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

from services.common.db import ReadOnlyDB, join_docs
from services.common.errors import ApiError

MAX_LIMIT = 5000
DEFAULT_LIMIT = 1000
_TOKEN_PREFIX = "k1:"
TOKEN_PATTERN = r"^[A-Za-z0-9_-]+$"  # base64url without padding: how position tokens look


def format_ts(value: datetime) -> str:
    """The contract's timestamp format (UTC, microseconds, Z): string order equals time order."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise ApiError(422, "invalid_parameter", f"timestamp out of range: {exc}") from None
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def since_param(value: datetime | None) -> str | None:
    return None if value is None else format_ts(value)


def encode_key(ts: str, row_id: int) -> str:
    raw = f"{_TOKEN_PREFIX}{ts}|{row_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_key(token: str, param: str) -> tuple[str, int]:
    """Decode a position token, answering 422 (not 500) for anything a client made up."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if not raw.startswith(_TOKEN_PREFIX):
            raise ValueError("unknown token version")
        ts, row_id = raw[len(_TOKEN_PREFIX) :].rsplit("|", 1)
        return ts, int(row_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(422, "invalid_cursor", f"{param} is not a valid token") from None


def keyset_page(
    db: ReadOnlyDB,
    table: str,
    ts_col: str,
    id_col: str,
    since: str | None,
    after: tuple[str, int] | None,
    limit: int,
) -> tuple[bytes, tuple[str, int] | None]:
    """One page ordered by (ts_col, id_col): the JSON array of docs and the position of its last row.

    The position is None when this is the last page (one extra row is fetched to know).
    """
    where: list[str] = []
    params: list = []
    if since is not None:
        where.append(f"{ts_col} >= ?")
        params.append(since)
    if after is not None:
        where.append(f"({ts_col}, {id_col}) > (?, ?)")
        params.extend(after)
    sql = f"SELECT {ts_col}, {id_col}, doc FROM {table}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY {ts_col}, {id_col} LIMIT ?"
    params.append(limit + 1)
    rows = db.all(sql, params)
    more = len(rows) > limit
    rows = rows[:limit]
    body = join_docs([r[2] for r in rows])
    last = (rows[-1][0], rows[-1][1]) if more and rows else None
    return body, last
