"""The key for hashing personal data in the published marts.

dbt reads it as ``DBT_ENV_SECRET_PII_KEY`` (dbt scrubs ``DBT_ENV_SECRET_*`` values from its logs and
refuses them outside profiles). Operators set ``SHOP_PII_KEY``; without it a random key is generated
once into ``run/pii.key`` (mode 600) and reused, so hashed keys stay stable between runs (joins across
published versions keep working) while nothing secret is committed.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from elt import settings

ENV_VAR = "SHOP_PII_KEY"
DBT_ENV_VAR = "DBT_ENV_SECRET_PII_KEY"


def key_file() -> Path:
    return settings.run_dir() / "pii.key"


def pii_key() -> str:
    """``SHOP_PII_KEY`` if set, else the generated ``run/pii.key`` (created on first use, chmod 600)."""
    from_env = os.environ.get(ENV_VAR)
    if from_env:
        return from_env
    path = key_file()
    if path.exists():
        os.chmod(path, 0o600)
        key = path.read_text().strip()
        if key:
            return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    tmp = path.with_name(f".pii.key.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    os.replace(tmp, path)
    os.chmod(path, 0o600)
    return key
