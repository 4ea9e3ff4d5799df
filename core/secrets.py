"""Keep credentials out of logs, the ops tables and the published manifest.

Error text from loaders and HTTP clients often embeds a URL with a token, a header dump or a
connection string. Rather than trust every caller, anything written to a durable place goes through
``scrub``, which replaces the values of every secret-looking environment variable (names containing
KEY, TOKEN, SECRET or PASSWORD, and every ``SOURCES__*`` credential) and of ``run/fleet.env``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

from core import envfile

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL", re.IGNORECASE)
# Values shorter than this are not treated as secrets (e.g. SHOP_ORDERS_TOKEN_TTL=300 would otherwise
# blank every "300" in an error message).
MIN_SECRET_LEN = 6
MASK = "***"


def is_secret_name(name: str) -> bool:
    """True for variables whose value must never be written anywhere durable."""
    upper = name.upper()
    if upper.startswith("SOURCES__") and not upper.endswith(("BASE_URL", "__URL")):
        return True
    return bool(_SECRET_NAME.search(upper))


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The secret values to mask, longest first (so a value containing another is masked whole)."""
    sources: list[Mapping[str, str]] = [os.environ if env is None else env, envfile.fleet_env()]
    found = {
        value
        for mapping in sources
        for name, value in mapping.items()
        if is_secret_name(name) and len(value) >= MIN_SECRET_LEN
    }
    return sorted(found, key=len, reverse=True)


def scrub(text: str | None, extra: Iterable[str] = ()) -> str | None:
    """``text`` with every known secret value (and any ``extra`` ones) replaced by ``***``."""
    if not text:
        return text
    for value in [*secret_values(), *extra]:
        if value and len(value) >= MIN_SECRET_LEN:
            text = text.replace(value, MASK)
    return text
