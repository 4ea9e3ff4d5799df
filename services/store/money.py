"""Money rules shared by generator, simulator and the consistency check.

Catalog prices are USD minor units; an order line carries the product's price at placement time converted
into the order currency with this fixed table, so the check can recompute every unit price exactly.
Integer parts-per-million rates keep the conversion free of float rounding surprises.
"""

from __future__ import annotations

CURRENCIES = ("USD", "EUR", "GBP")
FX_PPM = {"USD": 1_000_000, "EUR": 920_000, "GBP": 790_000}
EUROZONE = frozenset({"DE", "FR", "NL", "ES", "IT", "IE", "AT", "BE", "PT", "FI"})


def currency_for_country(country: str) -> str:
    """GB pays in GBP, the eurozone in EUR, everyone else in USD."""
    if country == "GB":
        return "GBP"
    if country in EUROZONE:
        return "EUR"
    return "USD"


def convert_from_usd(amount_minor: int, currency: str) -> int:
    """Convert USD minor units to ``currency`` minor units, rounding half up."""
    return (amount_minor * FX_PPM[currency] + 500_000) // 1_000_000
