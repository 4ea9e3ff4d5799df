"""OpenAPI models of the customers service's records and pages (documentation and schemathesis only)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel


class Address(BaseModel):
    address_id: int
    kind: Literal["shipping", "billing"]
    line1: str
    line2: str | None
    city: str
    postal_code: str
    country: str
    is_default: bool


class Customer(BaseModel):
    customer_id: int
    email: str
    first_name: str
    last_name: str
    phone: str | None
    country: str
    marketing_opt_in: bool
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    addresses: list[Address]


class CustomersPage(BaseModel):
    data: list[Customer]
    next_cursor: str | None


class Deletion(BaseModel):
    customer_id: int
    deleted_at: datetime


class DeletionsPage(BaseModel):
    data: list[Deletion]
    next_cursor: str | None
