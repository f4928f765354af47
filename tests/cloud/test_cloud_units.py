"""Topic layout, stamp-guarded store writes, ACL generation (no broker needed)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fuseguard.cloud.acl import mosquitto_files, mosquitto_password_hash
from fuseguard.cloud.protocol import EdgeState, EvseStatusMessage, PlugInfoWire, TargetWire, Topics
from fuseguard.cloud.store import CloudStore, StoredTarget
from fuseguard.store.db import create_engine, init_schema

T0 = datetime(2026, 1, 5, tzinfo=UTC)


def test_topics_round_trip() -> None:
    t = Topics("fg")
    assert t.parse(t.state("e1")) == ("e1", "state", ())
    assert t.parse(t.status("e1", "a" * 32)) == ("e1", "status", ("a" * 32,))
    assert t.parse(t.ack("e1", "r1")) == ("e1", "ack", ("r1",))
    assert t.parse(t.command("e1")) == ("e1", "cmd", ())
    assert t.parse("other/edges/e1/state") is None
    assert t.parse("fg/edges/e1/evses/x/other") is None
    with pytest.raises(ValueError, match="topic level"):
        t.state("a/b")
    with pytest.raises(ValueError, match="topic level"):
        t.state("+")


def _status(seq: int, current: int | None) -> EvseStatusMessage:
    target = None if current is None else TargetWire(current=current, valid_until=T0)
    return EvseStatusMessage(
        seq=seq, evse_uuid="e" * 32, min_current_a=6, max_current_a=32,
        plugs=[PlugInfoWire(uuid="p" * 32, label="Plug 1")], target=target,
    )  # fmt: skip


async def test_store_keeps_newest_stamp(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    await init_schema(engine)
    store = CloudStore(engine)
    try:
        assert await store.apply_batch([("e1", _status(10, 8))], ()) == (1, 0)
        assert await store.apply_batch([("e1", _status(5, 20))], ()) == (0, 0)  # older: ignored
        row = await store.evse("e1", "e" * 32)
        assert row is not None
        assert row.target == StoredTarget(8, T0)
        # an ack newer than the status wins; a later status with an older stamp keeps it
        later = T0 + timedelta(hours=1)
        assert await store.apply_target("e1", "e" * 32, StoredTarget(16, later), 20)
        assert not await store.apply_target("e1", "e" * 32, None, 15)
        assert await store.apply_batch([("e1", _status(18, 8))], ()) == (1, 0)
        row = await store.evse("e1", "e" * 32)
        assert row is not None
        assert row.target == StoredTarget(16, later)
        # online/offline: offline wins within a session, a newer session wins over both
        assert await store.apply_edge_state("e1", EdgeState(state="online", session=1))
        assert await store.apply_edge_state("e1", EdgeState(state="offline", session=1))
        assert not await store.apply_edge_state("e1", EdgeState(state="online", session=1))
        assert await store.edge_online("e1") is False
        assert await store.apply_edge_state("e1", EdgeState(state="online", session=2))
        assert await store.edge_online("e1") is True
        assert await store.edge_online("nope") is None
    finally:
        await engine.dispose()


def test_mosquitto_files_isolate_edges() -> None:
    files = mosquitto_files(Topics("fg"), {"e1": "pw1", "e2": "pw2"}, "cloud", "cpw")
    blocks = files.acl.split("\n\n")
    e1 = next(b for b in blocks if b.startswith("user e1"))
    assert "topic write fg/edges/e1/state" in e1
    assert "topic read fg/edges/e1/cmd" in e1
    assert "e2" not in e1
    assert "topic write fg/edges/+/cmd" in files.acl
    users = [line.split(":")[0] for line in files.passwords.splitlines()]
    assert users == ["cloud", "e1", "e2"]


def test_password_hash_format() -> None:
    salt = b"0123456789ab"
    line = mosquitto_password_hash("secret", salt=salt)
    _, kind, iterations, salt_b64, hash_b64 = line.split("$")
    assert (kind, iterations) == ("7", "101")
    assert base64.b64decode(salt_b64) == salt
    expected = hashlib.pbkdf2_hmac("sha512", b"secret", salt, 101)
    assert base64.b64decode(hash_b64) == expected
