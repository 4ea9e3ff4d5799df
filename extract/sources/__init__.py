"""The registry of services the loader knows: one module per service, each declaring ``SERVICE``."""

from extract.sources import catalog, customers, events, orders, payments
from extract.spec import Service

SERVICES: dict[str, Service] = {
    m.SERVICE.name: m.SERVICE for m in (customers, catalog, orders, payments, events)
}
