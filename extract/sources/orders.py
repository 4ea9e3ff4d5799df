"""orders: OAuth2 client credentials, Link-header pagination; orders (+ items child table)."""

from extract.spec import Endpoint, Service

ITEM = {"line_id": "int", "product_id": "int", "sku": "str", "quantity": "int", "unit_price_minor": "int"}

SERVICE = Service(
    name="orders",
    auth="oauth2",
    page_size_param="per_page",
    endpoints=(
        Endpoint(
            name="orders",
            path="/v1/orders",
            paginator="link_header",
            primary_key="order_id",
            fields={
                "order_id": "int",
                "customer_id": "int",
                "status": "str",
                "currency": "str",
                "subtotal_minor": "int",
                "discount_minor": "int",
                "shipping_minor": "int",
                "total_minor": "int",
                "placed_at": "ts",
                "paid_at": "ts",
                "shipped_at": "ts",
                "delivered_at": "ts",
                "cancelled_at": "ts",
                "returned_at": "ts",
                "updated_at": "ts",
                "shipping_country": "str",
                "items": [ITEM],
            },
            children={"items": "line_id"},
        ),
    ),
)
