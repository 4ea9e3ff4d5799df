"""Categories, products and each product's price over time.

A product keeps its full price history in memory (``prices``: ascending ``(valid_from_us, price_minor)``)
so an order placed at any moment can be priced exactly as the catalog stood then; the same history is
written to ``price_history`` as the ground truth the consistency check and tests compare against.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from services.generator.reference import DEPARTMENTS, PRODUCT_ADJECTIVES, PRODUCT_LINES
from services.store.timefmt import US_PER_DAY, fmt_us


@dataclass(slots=True)
class Product:
    """A catalog item with its availability window and price history (USD minor units)."""

    product_id: int
    sku: str
    name: str
    category: dict[str, Any]
    created_us: int
    discontinued_us: int | None
    prices: list[tuple[int, int]] = field(default_factory=list)

    def price_at(self, at_us: int) -> int:
        """The list price in force at ``at_us`` (the latest change at or before it)."""
        index = bisect_right(self.prices, (at_us, 1 << 62)) - 1
        return self.prices[max(index, 0)][1]

    def available_at(self, at_us: int) -> bool:
        """Whether the product could be ordered at ``at_us``."""
        return self.created_us < at_us and (self.discontinued_us is None or at_us < self.discontinued_us)

    def doc(self) -> dict[str, Any]:
        """The record the catalog serves: current price, ``updated_at`` = latest change."""
        last_change = max(self.prices[-1][0], self.created_us, self.discontinued_us or 0)
        return {
            "product_id": self.product_id,
            "sku": self.sku,
            "name": self.name,
            "category": self.category,
            "price_minor": self.prices[-1][1],
            "currency": "USD",
            "active": self.discontinued_us is None,
            "created_at": fmt_us(self.created_us),
            "updated_at": fmt_us(last_change),
        }


def sku_for(product_id: int) -> str:
    """``SKU-000001`` style stock-keeping unit."""
    return f"SKU-{product_id:06d}"


def build_categories() -> list[dict[str, Any]]:
    """The fixed category tree (independent of seed and scale)."""
    out: list[dict[str, Any]] = []
    for department, _prices, categories in DEPARTMENTS:
        for name, _noun in categories:
            out.append({"category_id": len(out) + 1, "name": name, "department": department})
    return out


def charm_price(minor: int) -> int:
    """Round to a price ending in .99 (never below 0.99)."""
    return max(99, round(minor / 100) * 100 - 1)


def changed_price(rng: random.Random, price: int) -> int:
    """A new list price 5-25 % away from ``price`` (mostly up: inflation; sometimes a markdown)."""
    factor = 1 + rng.uniform(0.05, 0.25) * (1 if rng.random() < 0.6 else -1)
    new = charm_price(int(price * factor))
    return new if new != price else price + 100


def generate_products(rng: random.Random, count: int, start_us: int, end_us: int) -> list[Product]:
    """``count`` products: most listed before the window, some launched or discontinued during it."""
    categories = build_categories()
    nouns = [(noun, prices) for (_dept, prices, cats) in DEPARTMENTS for (_name, noun) in cats]
    products: list[Product] = []
    for product_id in range(1, count + 1):
        index = rng.randrange(len(categories))
        noun, (low, high) = nouns[index]
        if rng.random() < 0.8:
            created = start_us - rng.randrange(365 * US_PER_DAY)
        else:
            created = start_us + rng.randrange(end_us - start_us - 30 * US_PER_DAY)
        discontinued = None
        if rng.random() < 0.05:
            remaining = end_us - created
            discontinued = created + remaining // 2 + rng.randrange(remaining // 2)
        name = f"{rng.choice(PRODUCT_LINES)} {rng.choice(PRODUCT_ADJECTIVES)} {noun}"
        price = charm_price(int(low * (high / low) ** rng.random()))
        prices = [(created, price)]
        changes = sorted(
            max(start_us, created) + rng.randrange(max(end_us - max(start_us, created), 1))
            for _ in range(rng.choices((0, 1, 2, 3), (35, 35, 20, 10))[0])
        )
        for at in changes:
            if at > prices[-1][0]:
                prices.append((at, changed_price(rng, prices[-1][1])))
        products.append(
            Product(product_id, sku_for(product_id), name, categories[index], created, discontinued, prices)
        )
    return products
