"""No personal data in the published marts: no raw e-mail, phone, full name or street line in any
text column of any mart tagged `publish`, no column named like one, and the e-mail hash is keyed (it
equals sha256(key || e-mail), not the dictionary-reversible sha256(e-mail)); the published manifest
names that key by its fingerprint (core/pii_key.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import duckdb

from publish import versions
from services.launcher import Fleet
from tests.pytest.dbt.truth import docs
from tests.pytest.support.dbt_world import PII_KEY, DbtWorld
from tests.pytest.support.world import Reference

PII_COLUMN_WORDS = ("email", "phone", "first_name", "last_name", "line1", "line2", "street", "postal")


def personal_values(world: DbtWorld) -> set[str]:
    values: set[str] = set()
    for c in docs(world.data_dir, "customers", "customers"):
        values.update({c["email"], c["phone"], f"{c['first_name']} {c['last_name']}"})
        values.update(a["line1"] for a in c["addresses"])
    return {v for v in values if v}


def test_published_marts_hold_no_personal_data(dbt_world: DbtWorld, first_build: dict[str, Any]) -> None:
    assert first_build["_exit_code"] == 0, "first build failed; see test_dbt_build"
    nodes = dbt_world.manifest()["nodes"].values()
    published = [
        (n["schema"], n["alias"]) for n in nodes if n["resource_type"] == "model" and "publish" in n["tags"]
    ]
    assert len(published) >= 8
    pii = personal_values(dbt_world)
    assert len(pii) > 100
    con = dbt_world.con()
    try:
        leaks = []
        for schema, table in published:
            columns = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ?",
                [schema, table],
            ).fetchall()
            assert columns, f"{schema}.{table} missing"
            for column, data_type in columns:
                if any(word in column for word in PII_COLUMN_WORDS) and column != "email_hash":
                    leaks.append(f"{table}.{column}: personal column name")
                if data_type != "VARCHAR":
                    continue
                found = {
                    r[0] for r in con.execute(f'select distinct "{column}" from {schema}.{table}').fetchall()
                }
                if found & pii:
                    leaks.append(f"{table}.{column}: {sorted(found & pii)[:3]}")
        hashed = dict(
            con.execute(
                "select customer_id, email_hash from marts.dim_customers where email_hash is not null"
            ).fetchall()
        )
    finally:
        con.close()
    assert not leaks, leaks
    emails = {c["customer_id"]: c["email"] for c in docs(dbt_world.data_dir, "customers", "customers")}
    assert hashed
    for customer_id, digest in hashed.items():
        email = emails[customer_id].strip().lower()
        assert digest == hashlib.sha256((PII_KEY + email).encode()).hexdigest()
        assert digest != hashlib.sha256(email.encode()).hexdigest()


def test_published_manifest_names_the_key_the_hashes_were_made_with(
    reference: Reference, source_fleet: Fleet
) -> None:
    """The shared clean run's manifest carries the fingerprint of the key its published email_hash
    values were made with (HMAC-SHA256(key, label), 128 bits), never the key or a plain hash of it."""
    version = versions.resolve_current(reference.workspace.exports)
    assert version is not None
    text = (version / "manifest.json").read_text()
    record = json.loads(text)["pii_key"]
    label = b"shop-elt pii key fingerprint v1"
    assert record["fingerprint"] == hmac.new(PII_KEY.encode(), label, hashlib.sha256).hexdigest()[:32]
    assert PII_KEY not in text and hashlib.sha256(PII_KEY.encode()).hexdigest()[:32] not in text
    with duckdb.connect() as con:
        published = con.execute(
            "select customer_id, email_hash from read_parquet(?) where email_hash is not null",
            [str(version / "dim_customers.parquet")],
        ).fetchall()
    emails = {c["customer_id"]: c["email"] for c in docs(source_fleet.data_dir, "customers", "customers")}
    assert published
    for customer_id, digest in published:
        assert digest == hashlib.sha256((PII_KEY + emails[customer_id].strip().lower()).encode()).hexdigest()
