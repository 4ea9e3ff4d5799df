"""The simulator's change kinds: one method per business action, each keeping the consistency rules.

Every change reads its subject, computes new timestamps through ``stamp`` (never below the record's
previous ``updated_at`` or anything it depends on) and writes one short transaction per service file, in
cause-before-effect order: payments before the order turns ``paid``, the order before its events.
"""

from __future__ import annotations

import random
import sqlite3
from typing import Any

import orjson

from services.generator.catalog import changed_price
from services.generator.events import browse_session, new_visit, order_session, payment_event
from services.generator.orders import (
    failure_reason,
    line_count,
    make_items,
    make_order,
    payment,
    payment_split,
    refunds_for,
)
from services.generator.people import (
    default_shipping_country,
    make_address,
    make_customer,
    make_email,
    phone,
    pick_country,
    postal_code,
)
from services.generator.reference import COUNTRY_BY_CODE, LAST_NAMES, STREETS
from services.simulator.recorder import StepRecorder
from services.simulator.state import SimState, doc_of
from services.store.db import set_meta, transaction
from services.store.money import convert_from_usd, currency_for_country
from services.store.records import DOC_TABLES, add_price_history, erase_customers, put_docs
from services.store.timefmt import fmt_us, parse_us

# change kind -> relative weight
KINDS: dict[str, int] = {
    "new_customer": 7,
    "profile_edit": 6,
    "address_change": 4,
    "soft_delete": 1,
    "erase": 1,
    "new_order": 20,
    "pay": 15,
    "cancel": 2,
    "ship": 12,
    "deliver": 10,
    "return": 3,
    "price_change": 5,
    "browse_session": 14,
}


class Changes:
    """The change kinds; ``Simulator`` supplies the connections, state, random stream and clock."""

    cons: dict[str, sqlite3.Connection]
    state: SimState
    rng: random.Random
    _rec: StepRecorder | None

    def stamp(self, *floors_us: int) -> int:
        raise NotImplementedError

    # -- dispatch ----------------------------------------------------------------------------------
    def apply(self, kind: str) -> str:
        """Run one change of ``kind``, falling back to a possible one when its subject pool is empty."""
        s = self.state
        needs = {
            "profile_edit": s.active_customers,
            "address_change": s.active_customers,
            "soft_delete": s.active_customers,
            "erase": s.active_customers,
            "pay": s.orders_by_stage["placed"],
            "cancel": s.orders_by_stage["placed"],
            "ship": s.orders_by_stage["paid"],
            "deliver": s.orders_by_stage["shipped"],
            "return": s.orders_by_stage["delivered"],
            "price_change": s.active_products,
        }
        if kind in needs and not needs[kind]:
            kind = "new_order"
        if kind == "new_order" and not (s.active_customers and s.active_products):
            kind = "new_customer"
        getattr(self, f"_{kind}")()
        return kind

    # -- writing helpers ---------------------------------------------------------------------------
    def _put(self, table: str, docs: list[dict[str, Any]], created: bool = False) -> None:
        service = {
            "customers": "customers",
            "products": "catalog",
            "orders": "orders",
            "payments": "payments",
            "refunds": "payments",
        }[table]
        con = self.cons[service]
        with transaction(con):
            put_docs(con, table, docs)
        for doc in docs:
            self._touch(table, doc[DOC_TABLES[table].key], created)

    def _write_events(self, events: list[dict[str, Any]]) -> None:
        for doc in events:
            doc["event_id"] = self.state.next_ids["event"]
            self.state.next_ids["event"] += 1
        con = self.cons["events"]
        with transaction(con):
            put_docs(con, "events", events)
        for doc in events:
            self._touch("events", doc["event_id"], created=True)

    def _touch(self, table: str, key: int, created: bool = False) -> None:
        """Report a record to the running ``step`` (the events-only producer has no recorder)."""
        if self._rec is not None:
            self._rec.touch(table, key, created)

    def _next(self, name: str, count: int = 1) -> int:
        first = self.state.next_ids[name]
        self.state.next_ids[name] += count
        return first

    def _customer(self, customer_id: int) -> dict[str, Any]:
        return doc_of(self.cons["customers"], "customers", "customer_id", customer_id)

    def _order(self, order_id: int) -> dict[str, Any]:
        return doc_of(self.cons["orders"], "orders", "order_id", order_id)

    # -- customers ---------------------------------------------------------------------------------
    def _new_customer(self) -> None:
        rng = self.rng
        customer_id = self._next("customer")
        at = self.stamp()
        doc = make_customer(rng, customer_id, at, pick_country(rng), self.state.next_ids["address"])
        self.state.next_ids["address"] += len(doc["addresses"])
        self._put("customers", [doc], created=True)
        self.state.active_customers.add(customer_id)
        with transaction(self.cons["customers"]):
            set_meta(self.cons["customers"], {"max_address_id": self.state.next_ids["address"] - 1})

    def _profile_edit(self) -> None:
        rng = self.rng
        doc = self._customer(self.state.active_customers.pick(rng))
        what = rng.choice(("marketing_opt_in", "phone", "last_name", "email"))
        if what == "marketing_opt_in":
            doc["marketing_opt_in"] = not doc["marketing_opt_in"]
        elif what == "phone":
            doc["phone"] = phone(rng, doc["country"])
        elif what == "last_name":
            doc["last_name"] = rng.choice(LAST_NAMES)
        else:
            doc["email"] = make_email(rng, doc["first_name"], doc["last_name"], doc["customer_id"])
        doc["updated_at"] = fmt_us(self.stamp(parse_us(doc["updated_at"])))
        self._put("customers", [doc])

    def _address_change(self) -> None:
        rng = self.rng
        doc = self._customer(self.state.active_customers.pick(rng))
        addresses = doc["addresses"]
        if len(addresses) < 3 and rng.random() < 0.5:  # moved: a new default shipping address
            for address in addresses:
                if address["kind"] == "shipping":
                    address["is_default"] = False
            country = doc["country"] if rng.random() < 0.9 else pick_country(rng)
            addresses.append(make_address(rng, self._next("address"), "shipping", country, True))
            with transaction(self.cons["customers"]):
                set_meta(self.cons["customers"], {"max_address_id": self.state.next_ids["address"] - 1})
        else:  # corrected or re-typed: same address id, new details
            address = rng.choice(addresses)
            spec = COUNTRY_BY_CODE[address["country"]]
            address["line1"] = f"{rng.randrange(1, 240)} {rng.choice(STREETS)}"
            address["city"] = rng.choice(spec.cities)
            address["postal_code"] = postal_code(rng, spec.postal)
        doc["updated_at"] = fmt_us(self.stamp(parse_us(doc["updated_at"])))
        self._put("customers", [doc])

    def _soft_delete(self) -> None:
        doc = self._customer(self.state.active_customers.take(self.rng))
        at = fmt_us(self.stamp(parse_us(doc["updated_at"])))
        doc["deleted_at"] = at
        doc["updated_at"] = at
        self._put("customers", [doc])

    def _erase(self) -> None:
        customer_id = self.state.active_customers.take(self.rng)
        doc = self._customer(customer_id)
        at = self.stamp(parse_us(doc["updated_at"]), self.state.customer_last_order_us.get(customer_id, 0))
        con = self.cons["customers"]
        with transaction(con):
            erase_customers(con, [(customer_id, fmt_us(at))])
        self._touch("customers", customer_id)
        self._touch("deletions", customer_id, created=True)

    # -- orders ------------------------------------------------------------------------------------
    def _new_order(self) -> None:
        rng, s = self.rng, self.state
        customer = self._customer(s.active_customers.pick(rng))
        wanted = line_count(rng)
        chosen: dict[int, Any] = {}
        for _ in range(wanted * 4):
            product = s.products[s.active_products.pick(rng)]
            chosen.setdefault(product.product_id, product)
            if len(chosen) == wanted:
                break
        products = list(chosen.values())
        at = self.stamp(parse_us(customer["created_at"]))
        country = default_shipping_country(customer)
        currency = currency_for_country(country)
        order_id = self._next("order")
        order = make_order(
            rng,
            order_id,
            customer["customer_id"],
            currency,
            country,
            make_items(rng, products, currency, at),
            fmt_us(at),
        )
        visit = new_visit(rng, customer["customer_id"], customer["country"], currency)
        events = [doc for _t, doc in order_session(rng, visit, at, 0, order, fmt_us)]
        self._put("orders", [order], created=True)
        self._write_events(events)
        s.orders_by_stage["placed"].add(order_id)
        s.customer_last_order_us[customer["customer_id"]] = at
        for product in products:
            s.product_last_order_us[product.product_id] = max(
                s.product_last_order_us.get(product.product_id, 0), at
            )

    def _advance(self, order: dict[str, Any], status: str, *floors_us: int) -> int:
        at = self.stamp(parse_us(order["updated_at"]), *floors_us)
        stamp = fmt_us(at)
        order["status"] = status
        order[f"{status}_at"] = stamp
        order["updated_at"] = stamp
        return at

    def _failed_payment(self, order: dict[str, Any]) -> dict[str, Any]:
        at = self.stamp(parse_us(order["updated_at"]))
        return payment(
            self._next("payment"),
            order,
            self.rng.choice(("card", "paypal")),
            order["total_minor"],
            fmt_us(at),
            failure_reason(self.rng),
        )

    def _pay(self) -> None:
        rng, s = self.rng, self.state
        order = self._order(s.orders_by_stage["placed"].take(rng))
        docs = [self._failed_payment(order)] if rng.random() < 0.1 else []
        paid_at = self.stamp(parse_us(order["updated_at"]))
        for method, amount in payment_split(rng, order["total_minor"]):
            docs.append(payment(self._next("payment"), order, method, amount, fmt_us(paid_at)))
        self._put("payments", docs, created=True)
        self._advance(order, "paid")
        self._put("orders", [order])
        visit = new_visit(rng, order["customer_id"], order["shipping_country"], order["currency"])
        self._write_events([payment_event(visit, parse_us(order["paid_at"]), order, fmt_us)])
        s.orders_by_stage["paid"].add(order["order_id"])

    def _cancel(self) -> None:
        rng, s = self.rng, self.state
        order = self._order(s.orders_by_stage["placed"].take(rng))
        if rng.random() < 0.5:
            self._put("payments", [self._failed_payment(order)], created=True)
        self._advance(order, "cancelled")
        self._put("orders", [order])

    def _move(self, source: str, target: str) -> None:
        order = self._order(self.state.orders_by_stage[source].take(self.rng))
        self._advance(order, target)
        self._put("orders", [order])
        if target in self.state.orders_by_stage:
            self.state.orders_by_stage[target].add(order["order_id"])

    def _ship(self) -> None:
        self._move("paid", "shipped")

    def _deliver(self) -> None:
        self._move("shipped", "delivered")

    def _return(self) -> None:
        rng = self.rng
        order = self._order(self.state.orders_by_stage["delivered"].take(rng))
        at = self._advance(order, "returned")
        rows = (
            self.cons["payments"]
            .execute("SELECT doc FROM payments WHERE order_id = ? ORDER BY payment_id", (order["order_id"],))
            .fetchall()
        )
        succeeded = [p for p in (orjson.loads(r[0]) for r in rows) if p["status"] == "succeeded"]
        refunds = refunds_for(rng, self.state.next_ids["refund"], order, succeeded, fmt_us(at))
        self.state.next_ids["refund"] += len(refunds)
        if refunds:
            self._put("refunds", refunds, created=True)
        self._put("orders", [order])

    # -- catalog -----------------------------------------------------------------------------------
    def _price_change(self) -> None:
        s = self.state
        product_id = s.active_products.pick(self.rng)
        product, doc = s.products[product_id], s.product_docs[product_id]
        price = changed_price(self.rng, product.prices[-1][1])
        at = self.stamp(
            parse_us(doc["updated_at"]), product.prices[-1][0], s.product_last_order_us.get(product_id, 0)
        )
        product.prices.append((at, price))
        doc["price_minor"] = price
        doc["updated_at"] = fmt_us(at)
        con = self.cons["catalog"]
        with transaction(con):
            add_price_history(con, [(product_id, price, "USD", fmt_us(at))])
            put_docs(con, "products", [doc])
        self._touch("products", product_id)
        self._touch("price_history", product_id, created=True)

    # -- events ------------------------------------------------------------------------------------
    def _browse_events(self, rng: random.Random, at_us: int) -> list[tuple[int, dict[str, Any]]]:
        s = self.state
        customer_id = None
        country = pick_country(rng)
        if s.active_customers and rng.random() < 0.4:
            customer_id = s.active_customers.pick(rng)
            country = self._customer(customer_id)["country"]
        currency = currency_for_country(country)
        visit = new_visit(rng, customer_id, country, currency)

        def pick() -> tuple[int, str, int]:
            product = (
                s.products[s.active_products.pick(rng)]
                if s.active_products
                else next(iter(s.products.values()))
            )
            return product.product_id, product.sku, convert_from_usd(product.prices[-1][1], currency)

        return browse_session(rng, visit, at_us, 0, pick, fmt_us)

    def _browse_session(self) -> None:
        self._write_events([doc for _t, doc in self._browse_events(self.rng, self.stamp())])
