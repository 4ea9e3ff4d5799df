"""customers: API key, opaque cursor; customers (+ addresses child table) and the erasure feed."""

from extract.spec import Endpoint, Service

ADDRESS = {
    "address_id": "int",
    "kind": "str",
    "line1": "str",
    "line2": "str",
    "city": "str",
    "postal_code": "str",
    "country": "str",
    "is_default": "bool",
}

SERVICE = Service(
    name="customers",
    auth="api_key",
    endpoints=(
        Endpoint(
            name="customers",
            path="/v1/customers",
            paginator="cursor",
            primary_key="customer_id",
            fields={
                "customer_id": "int",
                "email": "str",
                "first_name": "str",
                "last_name": "str",
                "phone": "str",
                "country": "str",
                "marketing_opt_in": "bool",
                "created_at": "ts",
                "updated_at": "ts",
                "deleted_at": "ts",
                "addresses": [ADDRESS],
            },
            children={"addresses": "address_id"},
        ),
        Endpoint(
            name="deletions",
            path="/v1/deletions",
            paginator="cursor",
            primary_key="customer_id",
            cursor="deleted_at",
            since_param="since",
            fields={"customer_id": "int", "deleted_at": "ts"},
        ),
    ),
    hard_delete_feed="deletions",
    hard_delete_tables=("customers", "customers__addresses"),
)
