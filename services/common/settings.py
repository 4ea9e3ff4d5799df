"""Per-service settings read from the environment the launcher sets.

The launcher passes every secret through `SHOP_<SERVICE>_<NAME>` variables. When a service is started by
hand (`python -m uvicorn services.customers.app:app`), the same secrets are read from the fleet's
`fleet.env` (as `SOURCES__<SERVICE>__<NAME>`), so a hand-started service accepts the loaders' credentials.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import orjson

REPO_ROOT = Path(__file__).resolve().parents[2]


def _resolve(path: str) -> Path:
    """Relative paths in the contract are relative to the repo root, not to the working directory."""
    p = Path(path)
    return p if p.is_absolute() else REPO_ROOT / p


def run_dir() -> Path:
    return _resolve(os.environ.get("SHOP_RUN_DIR", "run"))


def services_data_dir() -> Path:
    return _resolve(os.environ.get("SHOP_SERVICES_DATA", "data/services"))


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a KEY=VALUE file (the fleet.env format); blank lines and # comments are skipped."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


@dataclass(frozen=True)
class ServiceSettings:
    """Everything a service needs at start: where its data is, its secrets, its initial faults."""

    name: str
    db_path: Path
    admin_token: str
    secrets: dict[str, str] = field(default_factory=dict)
    faults: dict = field(default_factory=dict)
    token_ttl: float = 300.0

    def secret(self, key: str) -> str:
        return self.secrets[key]


def load_settings(name: str, secret_keys: tuple[str, ...]) -> ServiceSettings:
    """Read a service's settings; fail loudly (naming the variable) when a secret is missing."""
    upper = name.upper()
    fleet_env = read_env_file(run_dir() / "fleet.env")

    def lookup(env_name: str, fleet_name: str) -> str:
        value = os.environ.get(env_name) or fleet_env.get(fleet_name)
        if not value:
            raise RuntimeError(
                f"{name}: {env_name} is not set and {run_dir() / 'fleet.env'} has no {fleet_name}; "
                "start the fleet with `python -m services start`"
            )
        return value

    secrets = {key: lookup(f"SHOP_{upper}_{key}", f"SOURCES__{upper}__{key}") for key in secret_keys}
    admin_token = lookup("SHOP_ADMIN_TOKEN", "SHOP_ADMIN_TOKEN")
    raw_faults = os.environ.get("SHOP_FAULTS", "").strip()
    faults = orjson.loads(raw_faults) if raw_faults else {}
    if not isinstance(faults, dict):
        raise RuntimeError(f"{name}: SHOP_FAULTS must be a JSON object, got {raw_faults!r}")
    return ServiceSettings(
        name=name,
        db_path=services_data_dir() / f"{name}.sqlite",
        admin_token=admin_token,
        secrets=secrets,
        faults=faults,
        token_ttl=float(os.environ.get(f"SHOP_{upper}_TOKEN_TTL", "300")),
    )
