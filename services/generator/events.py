"""Clickstream events: the shape of one event and the sessions that produce them.

The generator spreads a session's events over minutes before the order; the simulator passes
``span_us=0`` so everything it emits happens "now" and the feed stays in time order.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.generator.people import anonymous_id_for
from services.generator.reference import DEVICE_WEIGHTS, DEVICES, REFERRERS

EVENT_TYPES = (
    "session_start",
    "page_view",
    "product_view",
    "add_to_cart",
    "remove_from_cart",
    "checkout_started",
    "order_placed",
    "payment_succeeded",
)

# (product_id, sku, unit price in the visit's currency) for an item shown in a session
ProductPick = Callable[[], tuple[int, str, int]]


@dataclass(slots=True)
class Visit:
    """Who is browsing: one session's identity and context."""

    session_id: str
    anonymous_id: str
    customer_id: int | None
    referrer: str | None
    device: str
    country: str
    currency: str


def new_visit(rng: random.Random, customer_id: int | None, country: str, currency: str) -> Visit:
    """Start a session for a known customer (stable anonymous id) or an anonymous visitor."""
    anonymous = anonymous_id_for(customer_id) if customer_id is not None else f"{rng.getrandbits(64):016x}"
    return Visit(
        session_id=f"{rng.getrandbits(96):024x}",
        anonymous_id=anonymous,
        customer_id=customer_id,
        referrer=rng.choice(REFERRERS),
        device=rng.choices(DEVICES, DEVICE_WEIGHTS)[0],
        country=country,
        currency=currency,
    )


def event_doc(
    visit: Visit,
    event_type: str,
    occurred_at: str,
    page: str,
    *,
    product_id: int | None = None,
    sku: str | None = None,
    quantity: int | None = None,
    order_id: int | None = None,
    value_minor: int | None = None,
) -> dict[str, Any]:
    """One event record; ``event_id`` is a placeholder until the writer assigns ids in time order.

    Every property key is always present (null when it does not apply) so the feed has one stable shape.
    """
    return {
        "event_id": 0,
        "event_type": event_type,
        "occurred_at": occurred_at,
        "session_id": visit.session_id,
        "anonymous_id": visit.anonymous_id,
        "customer_id": visit.customer_id,
        "context": {
            "page": page,
            "referrer": visit.referrer,
            "device": visit.device,
            "country": visit.country,
        },
        "properties": {
            "product_id": product_id,
            "sku": sku,
            "quantity": quantity,
            "order_id": order_id,
            "value_minor": value_minor,
            "currency": visit.currency if value_minor is not None else None,
        },
    }


def _times(rng: random.Random, start_us: int, end_us: int, count: int) -> list[int]:
    """``count`` ascending moments in ``[start_us, end_us]`` (all equal to ``end_us`` when the span is 0)."""
    if end_us <= start_us:
        return [end_us] * count
    return sorted(start_us + rng.randrange(end_us - start_us) for _ in range(count))


def order_session(
    rng: random.Random,
    visit: Visit,
    placed_us: int,
    span_us: int,
    order: dict[str, Any],
    fmt: Callable[[int], str],
) -> list[tuple[int, dict[str, Any]]]:
    """The session that ends in ``order``: views and add-to-carts of its lines, checkout, ``order_placed``."""
    lines = order["items"]
    start = placed_us - span_us
    times = _times(rng, start, placed_us - (1_000_000 if span_us else 0), 1 + 2 * len(lines) + 1)
    out: list[tuple[int, dict[str, Any]]] = []
    cursor = iter(times)

    def add(event_type: str, at: int, page: str, **props: Any) -> None:
        out.append((at, event_doc(visit, event_type, fmt(at), page, **props)))

    add("session_start", next(cursor), "/")
    for line in lines:
        page = f"/products/{line['sku']}"
        add("product_view", next(cursor), page, product_id=line["product_id"], sku=line["sku"])
        add(
            "add_to_cart",
            next(cursor),
            page,
            product_id=line["product_id"],
            sku=line["sku"],
            quantity=line["quantity"],
            value_minor=line["unit_price_minor"] * line["quantity"],
        )
    add("checkout_started", next(cursor), "/checkout", value_minor=order["subtotal_minor"])
    add(
        "order_placed",
        placed_us,
        "/checkout/confirmation",
        order_id=order["order_id"],
        value_minor=order["total_minor"],
    )
    return out


def payment_event(
    visit: Visit, paid_us: int, order: dict[str, Any], fmt: Callable[[int], str]
) -> dict[str, Any]:
    """``payment_succeeded`` for a paid order (same session as its placement)."""
    return event_doc(
        visit,
        "payment_succeeded",
        fmt(paid_us),
        "/checkout/confirmation",
        order_id=order["order_id"],
        value_minor=order["total_minor"],
    )


def browse_session(
    rng: random.Random,
    visit: Visit,
    start_us: int,
    span_us: int,
    pick: ProductPick,
    fmt: Callable[[int], str],
) -> list[tuple[int, dict[str, Any]]]:
    """A session without an order: page views, product views, sometimes an abandoned cart or checkout."""
    steps: list[tuple[str, str, dict[str, Any]]] = [("session_start", "/", {})]
    for _ in range(rng.choices((1, 2, 3), (60, 28, 12))[0]):
        steps.append(("page_view", rng.choice(("/", "/sale", "/new", "/search")), {}))
    cart: list[tuple[int, str, int, int]] = []
    for _ in range(rng.choices((0, 1, 2, 3, 4), (25, 35, 20, 12, 8))[0]):
        product_id, sku, price = pick()
        steps.append(("product_view", f"/products/{sku}", {"product_id": product_id, "sku": sku}))
        if rng.random() < 0.3:
            quantity = rng.choices((1, 2), (85, 15))[0]
            cart.append((product_id, sku, price, quantity))
            steps.append(
                (
                    "add_to_cart",
                    f"/products/{sku}",
                    {
                        "product_id": product_id,
                        "sku": sku,
                        "quantity": quantity,
                        "value_minor": price * quantity,
                    },
                )
            )
    if cart and rng.random() < 0.3:
        product_id, sku, price, quantity = cart.pop()
        steps.append(
            (
                "remove_from_cart",
                "/cart",
                {"product_id": product_id, "sku": sku, "quantity": quantity, "value_minor": price * quantity},
            )
        )
    if cart and rng.random() < 0.25:
        steps.append(("checkout_started", "/checkout", {"value_minor": sum(p * q for _i, _s, p, q in cart)}))
    times = _times(rng, start_us, start_us + span_us, len(steps)) if span_us else [start_us] * len(steps)
    times[0] = min(times[0], start_us) if span_us else start_us
    return [
        (at, event_doc(visit, kind, fmt(at), page, **props))
        for at, (kind, page, props) in zip(times, steps, strict=True)
    ]
