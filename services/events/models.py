"""OpenAPI models of the events service's records and pages."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class Context(BaseModel):
    page: str | None = None
    referrer: str | None = None
    device: str | None = None
    country: str | None = None


class Properties(BaseModel):
    product_id: int | None = None
    sku: str | None = None
    quantity: int | None = None
    order_id: int | None = None
    value_minor: int | None = None
    currency: str | None = None


class Event(BaseModel):
    event_id: int
    event_type: str
    occurred_at: datetime
    session_id: str
    anonymous_id: str
    customer_id: int | None
    context: Context
    properties: Properties


class EventsPage(BaseModel):
    data: list[Event]
    next_after_id: int
    has_more: bool
