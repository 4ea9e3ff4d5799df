"""OpenAPI models of the payments service's records and pages."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class Payment(BaseModel):
    payment_id: int
    order_id: int
    method: Literal["card", "paypal", "bank_transfer", "gift_card"]
    status: Literal["succeeded", "failed"]
    failure_reason: str | None
    amount_minor: int
    currency: str
    created_at: datetime
    updated_at: datetime


class Refund(BaseModel):
    refund_id: int
    order_id: int
    payment_id: int
    amount_minor: int
    currency: str
    reason: str
    status: Literal["succeeded"]
    created_at: datetime
    updated_at: datetime


class Links(BaseModel):
    next: str | None


class PaymentsPage(BaseModel):
    data: list[Payment]
    links: Links


class RefundsPage(BaseModel):
    data: list[Refund]
    links: Links
