"""Two years of shop history, built day by day in time order.

Why day by day: ids then follow time (order 7 was placed before order 8, event ids follow ``occurred_at``),
and only about two days of events are ever buffered, so memory stays flat up to scale 20. Each domain
draws from its own ``random.Random`` stream seeded from the dataset seed, so the same seed and scale
always produce byte-identical records.
"""

from __future__ import annotations

import random
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from services.generator.catalog import Product, build_categories, generate_products
from services.generator.events import Visit, browse_session, new_visit, order_session, payment_event
from services.generator.orders import (
    failure_reason,
    line_count,
    make_items,
    make_order,
    payment,
    payment_split,
    refunds_for,
)
from services.generator.people import make_customer, phone, pick_country
from services.generator.progress import Progress
from services.generator.timeline import (
    HISTORY_DAYS,
    HISTORY_END_US,
    HISTORY_START_US,
    day_cum_weights,
    day_start_us,
    sample_day,
    sample_time_in_day,
)
from services.generator.writer import BulkWriter
from services.store.money import convert_from_usd, currency_for_country
from services.store.timefmt import US_PER_DAY, US_PER_S, fmt_us

MINUTE = 60 * US_PER_S
HOUR = 60 * MINUTE

CUSTOMERS_PER_SCALE = 10_000
PRODUCTS_PER_SCALE = 1_000
ORDERS_PER_SCALE = 50_000
BROWSE_SESSIONS_PER_ORDER = 0.5


@dataclass(slots=True)
class Shopper:
    """What order generation needs to know about a customer."""

    customer_id: int
    created_us: int
    country: str
    shipping_country: str
    gone_us: int | None  # soft-deleted or erased at this moment; no orders from then on


class History:
    """Generates and writes the whole dataset through a ``BulkWriter``."""

    def __init__(self, seed: int, scale: float, writer: BulkWriter, progress: Progress | None = None) -> None:
        self.seed = seed
        self.scale = scale
        self.writer = writer
        self.progress = progress if progress is not None else Progress()
        self.end = HISTORY_END_US
        self.start = HISTORY_START_US
        self.day_cum = day_cum_weights()
        self.shoppers: list[Shopper] = []
        self.shopper_created: list[int] = []
        self.shopper_cum: list[float] = []
        self.products: list[Product] = []
        self.product_cum: list[float] = []
        self.next_payment_id = 1
        self.next_refund_id = 1
        self.next_event_id = 1
        self.event_seq = 0
        self.event_buffer: list[tuple[int, int, dict[str, Any]]] = []
        self.max_address_id = 0

    def rng(self, stream: str) -> random.Random:
        """An independent, reproducible random stream for one part of the data."""
        return random.Random(f"shop:{self.seed}:{stream}")

    def count(self, per_scale: int, floor: int) -> int:
        return max(floor, round(per_scale * self.scale))

    # -- customers ---------------------------------------------------------------------------------
    def customers(self) -> None:
        """Customers (35 % predate the window), with edits, soft deletes and erasures already applied."""
        rng = self.rng("customers")
        total = self.count(CUSTOMERS_PER_SCALE, 20)
        created = sorted(
            self.start - rng.randrange(730 * US_PER_DAY)
            if rng.random() < 0.35
            else sample_time_in_day(rng, sample_day(rng, self.day_cum))
            for _ in range(total)
        )
        next_address = 1
        erasures: list[tuple[int, str]] = []
        weights: list[float] = []
        stage = self.progress.stage("customers", total, "customers")
        for customer_id, created_us in enumerate(created, start=1):
            stage.update(customer_id)
            country = pick_country(rng)
            doc = make_customer(rng, customer_id, created_us, country, next_address)
            next_address += len(doc["addresses"])
            updated_us = created_us
            if rng.random() < 0.35:  # a profile edit some time after sign-up
                updated_us = created_us + rng.randrange(self.end - created_us)
                if rng.random() < 0.5:
                    doc["marketing_opt_in"] = not doc["marketing_opt_in"]
                else:
                    doc["phone"] = phone(rng, country)
            gone_us = None
            fate = rng.random()
            if fate < 0.004:
                gone_us = created_us + rng.randrange(self.end - created_us)
                erasures.append((customer_id, fmt_us(gone_us)))
            elif fate < 0.014:
                gone_us = created_us + rng.randrange(self.end - created_us)
                doc["deleted_at"] = fmt_us(gone_us)
                updated_us = max(updated_us, gone_us)
            doc["updated_at"] = fmt_us(updated_us)
            if gone_us is None or doc["deleted_at"] is not None:
                self.writer.add("customers", doc)
            shipping = next(
                a["country"] for a in doc["addresses"] if a["kind"] == "shipping" and a["is_default"]
            )
            self.shoppers.append(Shopper(customer_id, created_us, country, shipping, gone_us))
            weights.append(min(rng.paretovariate(1.2), 60.0))  # skew: a few customers buy very often
        self.max_address_id = next_address - 1
        self.shopper_created = created
        self.shopper_cum = list(accumulate(weights))
        self.writer.erasures(erasures)
        stage.finish(f"{self.writer.written('customers'):,} customers, {len(erasures):,} erased")

    def pick_shopper(self, rng: random.Random, at_us: int) -> Shopper | None:
        """A customer who existed (and was not deleted) at ``at_us``, repeat buyers favoured."""
        known = bisect_left(self.shopper_created, at_us)
        if known == 0:
            return None
        for attempt in range(12):
            if attempt < 8:
                index = bisect_right(self.shopper_cum, rng.random() * self.shopper_cum[known - 1], 0, known)
            else:
                index = rng.randrange(known)
            shopper = self.shoppers[min(index, known - 1)]
            if shopper.gone_us is None or shopper.gone_us > at_us:
                return shopper
        return None

    # -- catalog -----------------------------------------------------------------------------------
    def catalog(self) -> None:
        """Categories, products (popularity follows a Zipf-like curve) and their price history."""
        rng = self.rng("catalog")
        stage = self.progress.stage("catalog")
        for category in build_categories():
            self.writer.add("categories", category)
        self.products = generate_products(rng, self.count(PRODUCTS_PER_SCALE, 10), self.start, self.end)
        ranks = list(range(1, len(self.products) + 1))
        rng.shuffle(ranks)
        self.product_cum = list(accumulate(1.0 / rank**0.9 for rank in ranks))
        history: list[tuple[int, int, str, str]] = []
        for product in self.products:
            self.writer.add("products", product.doc())
            history.extend((product.product_id, price, "USD", fmt_us(at)) for at, price in product.prices)
        self.writer.price_history(history)
        stage.finish(
            f"{self.writer.written('categories'):,} categories, {len(self.products):,} products, "
            f"{len(history):,} prices"
        )

    def pick_products(self, rng: random.Random, at_us: int, wanted: int) -> list[Product]:
        """Up to ``wanted`` distinct products on sale at ``at_us``, popular ones more often."""
        chosen: dict[int, Product] = {}
        for _ in range(wanted * 8):
            index = bisect_right(self.product_cum, rng.random() * self.product_cum[-1])
            product = self.products[min(index, len(self.products) - 1)]
            if product.available_at(at_us) and product.product_id not in chosen:
                chosen[product.product_id] = product
                if len(chosen) == wanted:
                    break
        if not chosen:
            product = next((p for p in self.products if p.available_at(at_us)), None)
            if product is not None:
                chosen[product.product_id] = product
        return list(chosen.values())

    # -- events ------------------------------------------------------------------------------------
    def emit(self, events: list[tuple[int, dict[str, Any]]]) -> None:
        for at, doc in events:
            self.event_seq += 1
            self.event_buffer.append((at, self.event_seq, doc))

    def flush_events(self, before_us: int) -> None:
        """Write buffered events older than ``before_us`` in time order, assigning increasing ids."""
        self.event_buffer.sort(key=lambda item: (item[0], item[1]))
        cut = bisect_left(self.event_buffer, before_us, key=lambda item: item[0])
        for _at, _seq, doc in self.event_buffer[:cut]:
            doc["event_id"] = self.next_event_id
            self.next_event_id += 1
            self.writer.add("events", doc)
        del self.event_buffer[:cut]

    # -- orders ------------------------------------------------------------------------------------
    def order(self, rng: random.Random, order_id: int, placed_us: int) -> bool:
        """One order and its whole life (payments, shipping, return, refunds) up to the window's end."""
        shopper = self.pick_shopper(rng, placed_us)
        if shopper is None:
            return False
        products = self.pick_products(rng, placed_us, line_count(rng))
        if not products:
            return False
        currency = currency_for_country(shopper.shipping_country)
        items = make_items(rng, products, currency, placed_us)
        order = make_order(
            rng, order_id, shopper.customer_id, currency, shopper.shipping_country, items, fmt_us(placed_us)
        )
        visit = new_visit(rng, shopper.customer_id, shopper.country, currency)
        self.emit(order_session(rng, visit, placed_us, rng.randrange(2 * MINUTE, 40 * MINUTE), order, fmt_us))
        self.lifecycle(rng, order, placed_us, visit)
        self.writer.add("orders", order)
        return True

    def lifecycle(self, rng: random.Random, order: dict[str, Any], placed_us: int, visit: Visit) -> None:
        """Advance ``order`` through its stages, stopping at whatever stage the window's end reaches."""
        total = order["total_minor"]
        at = placed_us + rng.randrange(5 * US_PER_S, 3 * MINUTE)
        cancel = rng.random() < 0.03
        failed = rng.choices((0, 1), (40, 60))[0] if cancel else rng.choices((0, 1, 2), (90, 8, 2))[0]
        for _ in range(failed):
            if at > self.end:
                return
            self.add_payment(order, rng.choice(("card", "card", "paypal")), total, at, failure_reason(rng))
            at += rng.randrange(30 * US_PER_S, 10 * MINUTE)
        if cancel:
            at += rng.randrange(10 * MINUTE, 2 * US_PER_DAY)
            if at <= self.end:
                self.advance(order, "cancelled", at)
            return
        split = payment_split(rng, total)
        if at + len(split) * 20 * US_PER_S > self.end:
            return
        succeeded = []
        for method, amount in split:
            succeeded.append(self.add_payment(order, method, amount, at))
            paid_us = at
            at += rng.randrange(US_PER_S, 20 * US_PER_S)
        self.advance(order, "paid", paid_us)
        self.emit([(paid_us, payment_event(visit, paid_us, order, fmt_us))])
        shipped = paid_us + rng.randrange(6 * HOUR, 3 * US_PER_DAY)
        if shipped > self.end:
            return
        self.advance(order, "shipped", shipped)
        delivered = shipped + rng.randrange(US_PER_DAY, 6 * US_PER_DAY)
        if delivered > self.end:
            return
        self.advance(order, "delivered", delivered)
        if rng.random() < 0.05:
            returned = delivered + rng.randrange(2 * US_PER_DAY, 25 * US_PER_DAY)
            if returned <= self.end:
                self.advance(order, "returned", returned)
                refunds = refunds_for(rng, self.next_refund_id, order, succeeded, fmt_us(returned))
                self.next_refund_id += len(refunds)
                for refund in refunds:
                    self.writer.add("refunds", refund)

    @staticmethod
    def advance(order: dict[str, Any], status: str, at_us: int) -> None:
        stamp = fmt_us(at_us)
        order["status"] = status
        order[f"{status}_at"] = stamp
        order["updated_at"] = stamp

    def add_payment(
        self, order: dict[str, Any], method: str, amount: int, at_us: int, reason: str | None = None
    ) -> dict[str, Any]:
        doc = payment(self.next_payment_id, order, method, amount, fmt_us(at_us), reason)
        self.next_payment_id += 1
        self.writer.add("payments", doc)
        return doc

    # -- browsing ----------------------------------------------------------------------------------
    def browse(self, rng: random.Random, start_us: int) -> None:
        """A session that ends without an order (40 % by a known customer)."""
        shopper = self.pick_shopper(rng, start_us) if rng.random() < 0.4 else None
        if shopper is not None:
            country, customer_id = shopper.country, shopper.customer_id
        else:
            country, customer_id = pick_country(rng), None
        currency = currency_for_country(country)
        visit = new_visit(rng, customer_id, country, currency)

        def pick() -> tuple[int, str, int]:
            product = (self.pick_products(rng, start_us, 1) or self.products)[0]
            return product.product_id, product.sku, convert_from_usd(product.price_at(start_us), currency)

        span = min(rng.randrange(MINUTE, 30 * MINUTE), self.end - start_us)
        self.emit(browse_session(rng, visit, start_us, span, pick, fmt_us))

    # -- the whole run -----------------------------------------------------------------------------
    def run(self) -> None:
        """Customers and catalog first, then every day's orders and sessions in time order."""
        self.customers()
        self.catalog()
        rng = self.rng("orders")
        browse_rng = self.rng("sessions")
        orders_per_day = [0] * HISTORY_DAYS
        for _ in range(self.count(ORDERS_PER_SCALE, 10)):
            orders_per_day[sample_day(rng, self.day_cum)] += 1
        sessions_per_day = [0] * HISTORY_DAYS
        for _ in range(round(self.count(ORDERS_PER_SCALE, 10) * BROWSE_SESSIONS_PER_ORDER)):
            sessions_per_day[sample_day(browse_rng, self.day_cum)] += 1
        order_id = 1
        stage = self.progress.stage("orders, payments and events", HISTORY_DAYS, "days")
        for day in range(HISTORY_DAYS):
            stage.update(day, self.written)
            for placed_us in sorted(sample_time_in_day(rng, day) for _ in range(orders_per_day[day])):
                if self.order(rng, order_id, placed_us):
                    order_id += 1
            for start_us in sorted(sample_time_in_day(browse_rng, day) for _ in range(sessions_per_day[day])):
                self.browse(browse_rng, start_us)
            self.flush_events(day_start_us(day))
        self.event_buffer = [item for item in self.event_buffer if item[0] <= self.end]
        self.flush_events(self.end + 1)
        stage.finish(self.written())

    def written(self) -> str:
        """The day loop's counts so far, for progress lines."""
        w = self.writer.written
        return (
            f"{w('orders'):,} orders, {w('payments'):,} payments, {w('refunds'):,} refunds, "
            f"{w('events'):,} events"
        )
