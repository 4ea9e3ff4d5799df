"""events: static bearer token, id cursor; append-only by ``event_id``, exactly once."""

from extract.spec import Endpoint, Service

SERVICE = Service(
    name="events",
    auth="bearer",
    endpoints=(
        Endpoint(
            name="events",
            path="/v1/events",
            paginator="id_cursor",
            primary_key="event_id",
            mode="append_id",
            cursor="event_id",
            params={"wait": 0},
            fields={
                "event_id": "int",
                "event_type": "str",
                "occurred_at": "ts",
                "session_id": "str",
                "anonymous_id": "str",
                "customer_id": "int",
                "context": {"page": "str", "referrer": "str", "device": "str", "country": "str"},
                "properties": {
                    "product_id": "int",
                    "sku": "str",
                    "quantity": "int",
                    "order_id": "int",
                    "value_minor": "int",
                    "currency": "str",
                },
            },
            loose=("context", "properties"),
        ),
    ),
)
