"""payments: API key, JSON ``links.next`` pagination; payments and refunds."""

from extract.spec import Endpoint, Service

SERVICE = Service(
    name="payments",
    auth="api_key",
    endpoints=(
        Endpoint(
            name="payments",
            path="/v1/payments",
            paginator="json_link",
            primary_key="payment_id",
            fields={
                "payment_id": "int",
                "order_id": "int",
                "method": "str",
                "status": "str",
                "failure_reason": "str",
                "amount_minor": "int",
                "currency": "str",
                "created_at": "ts",
                "updated_at": "ts",
            },
        ),
        Endpoint(
            name="refunds",
            path="/v1/refunds",
            paginator="json_link",
            primary_key="refund_id",
            fields={
                "refund_id": "int",
                "order_id": "int",
                "payment_id": "int",
                "amount_minor": "int",
                "currency": "str",
                "reason": "str",
                "status": "str",
                "created_at": "ts",
                "updated_at": "ts",
            },
        ),
    ),
)
