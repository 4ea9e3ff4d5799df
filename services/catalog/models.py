"""OpenAPI models of the catalog service's records and pages (documentation and schemathesis only)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class Category(BaseModel):
    category_id: int
    name: str
    department: str


class Product(BaseModel):
    product_id: int
    sku: str
    name: str
    category: Category
    price_minor: int
    currency: str
    active: bool
    created_at: datetime
    updated_at: datetime


class ProductsPage(BaseModel):
    data: list[Product]
    total: int
    offset: int
    limit: int


class CategoriesPage(BaseModel):
    data: list[Category]
    total: int
    offset: int
    limit: int
