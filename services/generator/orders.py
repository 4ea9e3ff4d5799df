"""Order, payment and refund records and the money arithmetic that ties them together.

Shared by generator and simulator so both obey the same rules: lines priced from the catalog at placement
time in the order currency, ``total = subtotal - discount + shipping``, succeeded payments summing to the
total (sometimes split between a gift card and a card), refunds never above what was paid.
"""

from __future__ import annotations

import random
from typing import Any

from services.generator.catalog import Product
from services.generator.reference import PAYMENT_FAILURES, REFUND_REASONS
from services.store.money import convert_from_usd

SHIPPING_FEE_MINOR = 495
FREE_SHIPPING_FROM_MINOR = 5000
STATUS_TIMESTAMPS = ("placed_at", "paid_at", "shipped_at", "delivered_at", "cancelled_at", "returned_at")


def line_count(rng: random.Random) -> int:
    """Lines per order (mean ~2.2; with quantities ~3 items per order)."""
    return rng.choices((1, 2, 3, 4, 5), (35, 30, 18, 10, 7))[0]


def make_items(
    rng: random.Random, products: list[Product], currency: str, placed_us: int
) -> list[dict[str, Any]]:
    """Order lines for distinct ``products`` priced as listed at ``placed_us``, converted to ``currency``."""
    return [
        {
            "line_id": number,
            "product_id": product.product_id,
            "sku": product.sku,
            "quantity": rng.choices((1, 2, 3), (75, 18, 7))[0],
            "unit_price_minor": convert_from_usd(product.price_at(placed_us), currency),
        }
        for number, product in enumerate(products, start=1)
    ]


def make_order(
    rng: random.Random,
    order_id: int,
    customer_id: int,
    currency: str,
    shipping_country: str,
    items: list[dict[str, Any]],
    placed_at: str,
) -> dict[str, Any]:
    """A freshly placed order (status ``placed``; later stages null)."""
    subtotal = sum(i["unit_price_minor"] * i["quantity"] for i in items)
    discount = subtotal * rng.choice((5, 10, 15, 20)) // 100 if rng.random() < 0.12 else 0
    shipping = 0 if subtotal >= FREE_SHIPPING_FROM_MINOR else SHIPPING_FEE_MINOR
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "status": "placed",
        "currency": currency,
        "subtotal_minor": subtotal,
        "discount_minor": discount,
        "shipping_minor": shipping,
        "total_minor": subtotal - discount + shipping,
        "placed_at": placed_at,
        "paid_at": None,
        "shipped_at": None,
        "delivered_at": None,
        "cancelled_at": None,
        "returned_at": None,
        "updated_at": placed_at,
        "shipping_country": shipping_country,
        "items": items,
    }


def payment(
    payment_id: int,
    order: dict[str, Any],
    method: str,
    amount: int,
    created_at: str,
    failure_reason: str | None = None,
) -> dict[str, Any]:
    """A payment attempt for ``order`` (failed when ``failure_reason`` is given)."""
    return {
        "payment_id": payment_id,
        "order_id": order["order_id"],
        "method": method,
        "status": "failed" if failure_reason else "succeeded",
        "failure_reason": failure_reason,
        "amount_minor": amount,
        "currency": order["currency"],
        "created_at": created_at,
        "updated_at": created_at,
    }


def failure_reason(rng: random.Random) -> str:
    """Why a payment attempt failed."""
    return rng.choice(PAYMENT_FAILURES)


def payment_split(rng: random.Random, total: int) -> list[tuple[str, int]]:
    """How an order's total is paid: one method, or (6 %) a gift card plus a card for the rest."""
    if total > 1000 and rng.random() < 0.06:
        gift = rng.randrange(500, min(total - 100, 5000) + 1)
        return [("gift_card", gift), ("card", total - gift)]
    method = rng.choices(("card", "paypal", "bank_transfer", "gift_card"), (68, 22, 7, 3))[0]
    return [(method, total)]


def refunds_for(
    rng: random.Random,
    next_refund_id: int,
    order: dict[str, Any],
    succeeded: list[dict[str, Any]],
    created_at: str,
) -> list[dict[str, Any]]:
    """Refunds of a returned order: usually everything (one per payment), sometimes one line's worth."""
    reason = rng.choice(REFUND_REASONS)

    def refund(refund_id: int, pay: dict[str, Any], amount: int) -> dict[str, Any]:
        return {
            "refund_id": refund_id,
            "order_id": order["order_id"],
            "payment_id": pay["payment_id"],
            "amount_minor": amount,
            "currency": order["currency"],
            "reason": reason,
            "status": "succeeded",
            "created_at": created_at,
            "updated_at": created_at,
        }

    if len(order["items"]) > 1 and rng.random() < 0.3:
        largest = max(succeeded, key=lambda p: (p["amount_minor"], -p["payment_id"]))
        line = rng.choice(order["items"])
        amount = min(line["unit_price_minor"] * line["quantity"], largest["amount_minor"])
        return [refund(next_refund_id, largest, amount)]
    return [refund(next_refund_id + i, pay, pay["amount_minor"]) for i, pay in enumerate(succeeded)]
