"""Customer records: names, contact data and one to three addresses, shaped by the customer's country.

Used by the generator for the initial population and by the simulator for sign-ups and address edits, so
both produce the same record shape.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from typing import Any

from services.generator.reference import (
    COUNTRIES,
    COUNTRY_BY_CODE,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    LAST_NAMES,
    LINE2,
    STREETS,
)
from services.store.timefmt import fmt_us

_COUNTRY_CODES = [c.code for c in COUNTRIES]
_COUNTRY_WEIGHTS = [c.weight for c in COUNTRIES]


def pick_country(rng: random.Random) -> str:
    """A country drawn with the market mix (US heavy, then GB, DE, FR, …)."""
    return rng.choices(_COUNTRY_CODES, _COUNTRY_WEIGHTS)[0]


def anonymous_id_for(customer_id: int) -> str:
    """The stable browser id of a known customer; derived, so the simulator needs no lookup table."""
    return hashlib.blake2b(str(customer_id).encode(), digest_size=8).hexdigest()


def _ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def postal_code(rng: random.Random, pattern: str) -> str:
    """Fill a postcode pattern: '#' digit, 'A' letter."""
    out = []
    for ch in pattern:
        if ch == "#":
            out.append(str(rng.randrange(10)))
        elif ch == "A":
            out.append(chr(65 + rng.randrange(26)))
        else:
            out.append(ch)
    return "".join(out)


def phone(rng: random.Random, country: str) -> str:
    """A plausible international number for ``country``."""
    digits = "".join(str(rng.randrange(10)) for _ in range(9))
    return f"{COUNTRY_BY_CODE[country].phone_prefix} {digits[:3]} {digits[3:6]} {digits[6:]}"


def make_address(
    rng: random.Random, address_id: int, kind: str, country: str, is_default: bool
) -> dict[str, Any]:
    """One address record in ``country``."""
    spec = COUNTRY_BY_CODE[country]
    return {
        "address_id": address_id,
        "kind": kind,
        "line1": f"{rng.randrange(1, 240)} {rng.choice(STREETS)}",
        "line2": rng.choice(LINE2) if rng.random() < 0.25 else None,
        "city": rng.choice(spec.cities),
        "postal_code": postal_code(rng, spec.postal),
        "country": country,
        "is_default": is_default,
    }


def make_addresses(rng: random.Random, first_id: int, country: str) -> list[dict[str, Any]]:
    """One to three addresses: default shipping, often a default billing one, sometimes a second home."""
    count = rng.choices((1, 2, 3), (60, 30, 10))[0]
    addresses = [make_address(rng, first_id, "shipping", country, True)]
    if count >= 2:
        addresses.append(make_address(rng, first_id + 1, "billing", country, True))
    if count == 3:
        other = country if rng.random() < 0.7 else pick_country(rng)
        addresses.append(make_address(rng, first_id + 2, "shipping", other, False))
    return addresses


def make_email(rng: random.Random, first: str, last: str, customer_id: int) -> str:
    """A unique address under reserved example domains (the id keeps it unique)."""
    style = rng.randrange(3)
    f, l_ = _ascii_slug(first), _ascii_slug(last)
    local = (f"{f}.{l_}", f"{f[0]}{l_}", f"{f}{l_[:1]}")[style]
    return f"{local}{customer_id}@{rng.choice(EMAIL_DOMAINS)}"


def make_customer(
    rng: random.Random, customer_id: int, created_us: int, country: str, first_address_id: int
) -> dict[str, Any]:
    """A new customer record as of its creation (``updated_at`` = ``created_at``, not deleted)."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    created = fmt_us(created_us)
    return {
        "customer_id": customer_id,
        "email": make_email(rng, first, last, customer_id),
        "first_name": first,
        "last_name": last,
        "phone": phone(rng, country),
        "country": country,
        "marketing_opt_in": rng.random() < 0.45,
        "created_at": created,
        "updated_at": created,
        "deleted_at": None,
        "addresses": make_addresses(rng, first_address_id, country),
    }


def default_shipping_country(doc: dict[str, Any]) -> str:
    """Where a customer's orders ship: the default shipping address, else the customer's country."""
    for address in doc["addresses"]:
        if address["kind"] == "shipping" and address["is_default"]:
            return address["country"]
    return doc["country"]
