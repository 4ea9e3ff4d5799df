"""The PII key cannot change silently: every published manifest carries the key's fingerprint (never
the key), a lost or changed key fails before anything is built or published, and only an explicit
``--rotate-pii-key`` publishes new hashes, recording the rotation.

The first cases publish a small fake project (a real DuckDB file, the real publisher and CLI); the last
(slow) runs the whole flow (real services, loaders, dbt build, publish) to show the hashes consumers
join on stay, or change only by rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from core import pii_key
from publish import versions
from publish.publish import publish
from publish.verify import verify_version
from services.launcher import Fleet
from tests.pytest.elt.helpers import EltPaths
from tests.pytest.support.paths import REPO
from tests.pytest.support.workspace import Outcome, Workspace, flow, make_workspace, run
from transform.dbt_artifacts import publish_specs

KEY_A = "test-pii-key-0123456789"  # the elt_env fixture's SHOP_PII_KEY
KEY_B = "another-operator-key-9876543210"


def expected_fingerprint(key: str) -> str:
    """The documented definition, computed here independently of core.pii_key."""
    return hmac.new(key.encode(), b"shop-elt pii key fingerprint v1", hashlib.sha256).hexdigest()[:32]


def manifest(version_dir: Path) -> dict:
    return json.loads((version_dir / "manifest.json").read_text())


def _publish(paths: EltPaths, **kwargs: object):
    return publish(
        publish_specs(), warehouse=paths.warehouse, exports=paths.exports, dbt_invocation={}, **kwargs
    )


def _elt(paths: EltPaths, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "elt", *args], cwd=REPO, env=dict(os.environ), capture_output=True, text=True
    )


def _versions(paths: EltPaths) -> list[str]:
    return sorted(p.name for p in versions.versions_dir(paths.exports).iterdir())


def test_same_key_same_fingerprint_across_versions(fake_project: EltPaths) -> None:
    first = _publish(fake_project)
    second = _publish(fake_project)
    records = [manifest(r.version_dir)["pii_key"] for r in (first, second)]
    assert records[0] == records[1]
    assert records[0]["fingerprint"] == expected_fingerprint(KEY_A)
    assert records[0]["rotated_at"] is None and records[0]["previous_fingerprint"] is None
    assert records[0]["fingerprint"] not in hashlib.sha256(KEY_A.encode()).hexdigest()  # not a plain hash
    assert expected_fingerprint(KEY_B) != records[0]["fingerprint"]
    assert KEY_A not in (second.version_dir / "manifest.json").read_text()


def test_a_changed_key_fails_and_publishes_nothing(
    fake_project: EltPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _publish(fake_project)
    monkeypatch.setenv("SHOP_PII_KEY", KEY_B)
    with pytest.raises(pii_key.PiiKeyError) as failure:
        _publish(fake_project)
    message = str(failure.value)
    assert "PII key changed" in message and "--rotate-pii-key" in message and "restore" in message
    assert expected_fingerprint(KEY_A)[:12] in message and expected_fingerprint(KEY_B)[:12] in message
    assert KEY_A not in message and KEY_B not in message and "\n" not in message
    assert _versions(fake_project) == [first.version_id]  # no new version, no partial folder
    assert versions.current_version_id(fake_project.exports) == first.version_id
    assert verify_version(fake_project.exports / "current") == []

    # the CLI says the same in one line and exits 1; the flow's preflight refuses too
    cli = _elt(fake_project, "export")
    assert cli.returncode == 1, cli.stderr
    assert "error: PII key changed" in cli.stderr and "Traceback" not in cli.stderr
    assert KEY_B not in cli.stderr + cli.stdout
    with pytest.raises(pii_key.PiiKeyError, match="PII key changed"):
        pii_key.prepare(fake_project.exports)
    assert _versions(fake_project) == [first.version_id]


def test_explicit_rotation_publishes_and_records_it(
    fake_project: EltPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _publish(fake_project)
    monkeypatch.setenv("SHOP_PII_KEY", KEY_B)
    check = pii_key.prepare(fake_project.exports, rotate=True)
    assert check.status == "rotated" and check.fingerprint == expected_fingerprint(KEY_B)
    cli = _elt(fake_project, "export", "--rotate-pii-key")
    assert cli.returncode == 0, cli.stderr
    assert "every email_hash" in cli.stderr  # the rotation says what it does
    rotated = manifest(versions.resolve_current(fake_project.exports))
    assert rotated["version"] != first.version_id
    record = rotated["pii_key"]
    assert record["fingerprint"] == expected_fingerprint(KEY_B)
    assert record["previous_fingerprint"] == expected_fingerprint(KEY_A)
    assert record["rotated_at"]
    # later versions with the new key need no flag and keep saying since when the key is in use
    later = _publish(fake_project)
    assert manifest(later.version_dir)["pii_key"] == record
    # rotating to the key that is already published is refused (nothing would rotate)
    with pytest.raises(pii_key.PiiKeyError, match="set SHOP_PII_KEY to the new key"):
        pii_key.prepare(fake_project.exports, rotate=True)


def test_a_lost_key_is_an_error_not_a_new_key(
    fake_project: EltPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOP_PII_KEY")
    check = pii_key.prepare(fake_project.exports)  # first run: a key is generated
    key_file = fake_project.run / "pii.key"
    assert check.status == "new" and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    first = _publish(fake_project)
    assert manifest(first.version_dir)["pii_key"]["fingerprint"] == expected_fingerprint(key)

    key_file.unlink()  # a new machine, a lost run folder
    for attempt in (
        lambda: pii_key.pii_key(),  # what dbt_env() asks, so `make dbt` cannot hash with a new key
        lambda: pii_key.prepare(fake_project.exports),  # the flow's first step
        lambda: _publish(fake_project),
    ):
        with pytest.raises(pii_key.PiiKeyError) as failure:
            attempt()
        assert "PII key missing" in str(failure.value) and "--rotate-pii-key" in str(failure.value)
        assert expected_fingerprint(key)[:12] in str(failure.value)
        assert not key_file.exists()
    dbt = _elt(fake_project, "dbt", "build")
    assert dbt.returncode == 1 and "error: PII key missing" in dbt.stderr, dbt.stderr
    assert not key_file.exists() and not (fake_project.run / "dbt_last_build.json").exists()
    parse = _elt(fake_project, "dbt", "--version")  # commands that never hash still work
    assert parse.returncode == 0, parse.stderr
    assert _versions(fake_project) == [first.version_id]
    assert versions.current_version_id(fake_project.exports) == first.version_id

    rotated = pii_key.prepare(fake_project.exports, rotate=True)  # explicit: a new key
    assert rotated.status == "rotated" and key_file.read_text().strip() != key
    assert rotated.fingerprint == expected_fingerprint(key_file.read_text().strip())


def test_marts_built_with_another_key_are_not_published_under_this_one(
    fake_project: EltPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make dbt ARGS=build` records the key it hashed with; an export under another key (even with
    --rotate-pii-key) would label those hashes wrongly and is refused."""
    first = _publish(fake_project)
    record = {"args": ["build"], "exit_code": 0, "invocation_id": "inv-a"}
    record["pii_key_fingerprint"] = expected_fingerprint(KEY_A)
    fake_project.run.mkdir(exist_ok=True)
    (fake_project.run / "dbt_last_build.json").write_text(json.dumps(record))
    monkeypatch.setenv("SHOP_PII_KEY", KEY_B)
    cli = _elt(fake_project, "export", "--rotate-pii-key")
    assert cli.returncode == 1
    assert "error: PII key mismatch: the marts were built with key fingerprint" in cli.stderr, cli.stderr
    assert versions.current_version_id(fake_project.exports) == first.version_id
    assert _versions(fake_project) == [first.version_id]


# -- the whole flow ---------------------------------------------------------------------------------


def _hashes(version_dir: Path) -> dict[int, str]:
    with duckdb.connect() as con:
        return dict(
            con.execute(
                "select customer_id, email_hash from read_parquet(?) where email_hash is not null",
                [str(version_dir / "dim_customers.parquet")],
            ).fetchall()
        )


def _ok(out: Outcome) -> Outcome:
    assert out.returncode == 0, out.describe()
    return out


@pytest.mark.slow  # three dbt invocations and two whole flows: minutes on two shared cores
def test_flow_first_run_lost_key_rotation(fleet: Fleet, tmp_path: Path) -> None:
    """First run on a fresh workspace creates the key; losing it fails `elt run` at its first step
    (nothing built or published, no new key, and a plain `dbt run` cannot make one); `--rotate-pii-key`
    publishes a new fingerprint with every email_hash changed; a later export keeps both."""
    ws: Workspace = make_workspace(tmp_path / "ws", fleet.env(), pii_key="unused")
    del ws.env["SHOP_PII_KEY"]  # the key lives in run/pii.key, as on a machine without SHOP_PII_KEY
    key_file = ws.run_dir / "pii.key"

    first = _ok(flow(ws))  # a fresh workspace: the key is created, the manifest records it
    assert "pii key" in first.output and "new key" in first.output
    key = key_file.read_text().strip()
    v1 = versions.resolve_current(ws.exports)
    assert manifest(v1)["pii_key"]["fingerprint"] == expected_fingerprint(key)
    hashes_v1 = _hashes(v1)
    assert len(hashes_v1) > 50

    key_file.unlink()
    lost = flow(ws)
    assert lost.returncode == 1, lost.describe()
    assert "elt run FAILED at step 'pii key'" in lost.output
    assert "PII key missing" in lost.output and "--rotate-pii-key" in lost.output
    assert "Traceback" not in lost.output and "Running with dbt" not in lost.output  # dbt never started
    assert versions.resolve_current(ws.exports) == v1 and len(versions.list_versions(ws.exports)) == 1
    assert not key_file.exists()
    assert verify_version(v1) == []
    # a plain `dbt build` from the repo root cannot create a key either: it fails closed
    plain = run(ws, ["-m", "dbt.cli.main", "run", "--select", "dim_customers"])
    assert plain.returncode != 0 and "PII key missing" in plain.output, plain.describe()
    assert not key_file.exists()

    rotated = _ok(run(ws, ["-m", "elt", "run", "--no-services", "--rotate-pii-key"], timeout=300))
    assert "every email_hash" in rotated.output
    v2 = versions.resolve_current(ws.exports)
    record = manifest(v2)["pii_key"]
    new_key = key_file.read_text().strip()
    assert new_key != key and record["fingerprint"] == expected_fingerprint(new_key)
    assert record["previous_fingerprint"] == expected_fingerprint(key) and record["rotated_at"]
    hashes_v2 = _hashes(v2)
    assert hashes_v2.keys() == hashes_v1.keys()
    assert all(hashes_v2[c] != hashes_v1[c] for c in hashes_v1)  # every hash changed

    again = _ok(run(ws, ["-m", "elt", "export"]))  # the same key: same fingerprint, same hashes
    assert "published version" in again.output
    v3 = versions.resolve_current(ws.exports)
    assert v3 != v2 and manifest(v3)["pii_key"] == record
    assert _hashes(v3) == hashes_v2
    for out in (first, lost, rotated, again, plain):
        assert key not in out.output and new_key not in out.output
