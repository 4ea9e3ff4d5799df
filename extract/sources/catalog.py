"""catalog: static bearer token, offset pagination; products (category flattened) and categories."""

from extract.spec import Endpoint, Service

CATEGORY = {"category_id": "int", "name": "str", "department": "str"}

SERVICE = Service(
    name="catalog",
    auth="bearer",
    endpoints=(
        Endpoint(
            name="products",
            path="/v1/products",
            paginator="offset",
            primary_key="product_id",
            fields={
                "product_id": "int",
                "sku": "str",
                "name": "str",
                "category": CATEGORY,
                "price_minor": "int",
                "currency": "str",
                "active": "bool",
                "created_at": "ts",
                "updated_at": "ts",
            },
        ),
        Endpoint(
            name="categories",
            path="/v1/categories",
            paginator="offset",
            primary_key="category_id",
            mode="snapshot",
            cursor=None,
            fields=CATEGORY,
        ),
    ),
)
