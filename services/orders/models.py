"""OpenAPI models of the orders service's records, pages and token answer."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class Item(BaseModel):
    line_id: int
    product_id: int
    sku: str
    quantity: int
    unit_price_minor: int


class Order(BaseModel):
    order_id: int
    customer_id: int
    status: Literal["placed", "paid", "shipped", "delivered", "cancelled", "returned"]
    currency: Literal["USD", "EUR", "GBP"]
    subtotal_minor: int
    discount_minor: int
    shipping_minor: int
    total_minor: int
    placed_at: datetime
    paid_at: datetime | None
    shipped_at: datetime | None
    delivered_at: datetime | None
    cancelled_at: datetime | None
    returned_at: datetime | None
    updated_at: datetime
    shipping_country: str
    items: list[Item]


class OrdersPage(BaseModel):
    data: list[Order]
    page: int
    per_page: int


class TokenAnswer(BaseModel):
    access_token: str
    token_type: Literal["Bearer"]
    expires_in: float
