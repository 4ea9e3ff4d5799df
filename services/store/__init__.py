"""The services' data layer: SQLite files in WAL mode holding indexed key columns plus served JSON docs.

Generator, simulator and the web apps all agree on the layout through this package (docs/contracts.md,
"Service databases").
"""

from services.store.consistency import check_consistency
from services.store.db import (
    connect,
    create_indexes,
    db_path,
    get_meta,
    init_schema,
    set_meta,
    transaction,
)
from services.store.records import (
    DOC_TABLES,
    add_price_history,
    erase_customers,
    get_doc,
    iter_docs,
    max_key,
    put_docs,
)
from services.store.schema import SERVICES
from services.store.timefmt import fmt_us, now_us, parse_us

__all__ = [
    "DOC_TABLES",
    "SERVICES",
    "add_price_history",
    "check_consistency",
    "connect",
    "create_indexes",
    "db_path",
    "erase_customers",
    "fmt_us",
    "get_doc",
    "get_meta",
    "init_schema",
    "iter_docs",
    "max_key",
    "now_us",
    "parse_us",
    "put_docs",
    "set_meta",
    "transaction",
]
