"""Page parsing and schema decisions on real response bodies (pure functions, no service needed):
the drift cases the services cannot produce (a changed type, a null key) and the empty-page schema."""

from __future__ import annotations

import orjson
import pytest

from extract.errors import BadPage, SchemaDrift
from extract.pages import parse_page
from extract.shape import DriftTracker, conform, empty_tables
from extract.sources import SERVICES

ORDERS = SERVICES["orders"].endpoint("orders")


def _order(order_id: int, **over: object) -> dict:
    doc = {
        "order_id": order_id, "customer_id": 7, "status": "paid", "currency": "EUR", "subtotal_minor": 1000,
        "discount_minor": 0, "shipping_minor": 500, "total_minor": 1500,
        "placed_at": "2026-11-29T00:00:00.000001Z", "paid_at": None, "shipped_at": None,
        "delivered_at": None, "cancelled_at": None, "returned_at": None,
        "updated_at": "2026-11-29T00:45:37.123456Z", "shipping_country": "DE",
        "items": [
            {"line_id": 1, "product_id": 3, "sku": "SKU-000003", "quantity": 2, "unit_price_minor": 500},
            {"line_id": 2, "product_id": 4, "sku": "SKU-000004", "quantity": 1, "unit_price_minor": 0},
        ],
    }  # fmt: skip
    doc.update(over)
    return doc


def _page(*docs: dict) -> bytes:
    return orjson.dumps({"data": list(docs), "page": 1, "per_page": 1000})


def test_page_becomes_parent_and_child_tables_with_declared_types() -> None:
    parent, children = conform(parse_page(_page(_order(1), _order(2))).records, ORDERS, "t", DriftTracker())
    empty_parent, empty_children = empty_tables(ORDERS)
    assert parent.schema == empty_parent.schema  # an empty page has exactly the same schema
    assert children["items"].schema == empty_children["items"].schema
    assert str(parent.schema.field("updated_at").type) == "timestamp[us, tz=UTC]"
    assert parent.column("paid_at").null_count == 2
    items = children["items"]
    assert items.column("order_id").to_pylist() == [1, 1, 2, 2]
    assert items.column("line_id").to_pylist() == [1, 2, 1, 2]


def test_changed_type_fails_instead_of_a_variant_column() -> None:
    with pytest.raises(SchemaDrift, match=r"t\.total_minor: the source now sends string"):
        conform(parse_page(_page(_order(1, total_minor="1500"))).records, ORDERS, "t", DriftTracker())


def test_null_key_fails() -> None:
    with pytest.raises(SchemaDrift, match="key column order_id is null"):
        conform(parse_page(_page(_order(1), _order(None))).records, ORDERS, "t", DriftTracker())  # type: ignore[arg-type]


def test_missing_child_field_fails() -> None:
    doc = _order(1)
    del doc["items"][0]["quantity"]
    del doc["items"][1]["quantity"]
    with pytest.raises(SchemaDrift, match=r"t\.items\[\]: field\(s\) quantity missing"):
        conform(parse_page(_page(doc)).records, ORDERS, "t", DriftTracker())


def test_new_column_keeps_its_type_across_pages() -> None:
    drift = DriftTracker()
    first, _ = conform(parse_page(_page(_order(1, channel="web"))).records, ORDERS, "t", drift)
    second, _ = conform(parse_page(_page(_order(2, channel=None))).records, ORDERS, "t", drift)
    assert first.schema.field("channel").type == second.schema.field("channel").type
    assert ("t", "channel") in drift.new_columns


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"error": {"code": "maintenance", "message": "down", "status": 503}}', "code='maintenance'"),
        (b'{"items": []}', "no 'data' key"),
        (_page(_order(1))[:100], "malformed JSON body"),
        (b"", "empty body"),
    ],
    ids=["error-envelope", "no-data-key", "truncated", "empty"],
)
def test_bad_pages_are_errors_not_empty_pages(body: bytes, message: str) -> None:
    with pytest.raises(BadPage, match=message):
        parse_page(body)
