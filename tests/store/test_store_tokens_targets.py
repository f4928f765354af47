from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import structlog
import structlog.testing
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from fuseguard.cli.token import token_app
from fuseguard.control.targets import Target
from fuseguard.store.db import create_engine, default_sqlite_url, init_schema
from fuseguard.store.schema import evse_tokens
from fuseguard.store.targets import SqlTargetStore
from fuseguard.store.tokens import TokenRepository, hash_token

EVSE_A = "25104c56d7f848af830af4300193efb3"
EVSE_B = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"


async def test_token_round_trip_and_misuse(engine: AsyncEngine) -> None:
    repo = TokenRepository(engine)
    token_a = await repo.create("edge-1", EVSE_A)
    token_b = await repo.create("edge-1", EVSE_B)
    assert len(token_a) >= 40
    assert token_a != token_b
    assert await repo.check("edge-1", EVSE_A, token_a) == "ok"
    assert await repo.check("edge-1", EVSE_B, token_b) == "ok"
    assert await repo.check("edge-1", EVSE_A, None) == "missing"
    assert await repo.check("edge-1", EVSE_A, "") == "missing"
    assert await repo.check("edge-1", EVSE_A, token_a + "x") == "invalid"
    assert await repo.check("edge-1", EVSE_B, token_a) == "wrong_evse"
    assert await repo.check("edge-2", EVSE_A, token_a) == "wrong_evse"
    with structlog.testing.capture_logs() as logs:
        assert await repo.check("e" * 5000, EVSE_A, token_a) == "wrong_evse"
    misuse = [e for e in logs if e["event"] == "token_wrong_evse"]
    assert misuse and len(misuse[0]["edge"]) == 64  # a client's id, cut for the log


async def test_tokens_are_stored_only_as_hash(engine: AsyncEngine) -> None:
    repo = TokenRepository(engine)
    token = await repo.create("edge-1", EVSE_A)
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.select(evse_tokens))).mappings().all()
    assert len(rows) == 1
    assert token not in {str(v) for v in rows[0].values()}
    assert rows[0]["token_sha256"] == hash_token(token)
    infos = await repo.list()
    assert [(i.edge_device_id, i.evse_uuid) for i in infos] == [("edge-1", EVSE_A)]
    assert infos[0].created_at.tzinfo is not None
    assert token not in repr(infos)


async def test_list_filter_and_revoke(engine: AsyncEngine) -> None:
    repo = TokenRepository(engine)
    t1 = await repo.create("edge-1", EVSE_A)
    t2 = await repo.create("edge-2", EVSE_A)
    assert {i.edge_device_id for i in await repo.list()} == {"edge-1", "edge-2"}
    (only,) = await repo.list("edge-2")
    assert only.edge_device_id == "edge-2"
    assert await repo.revoke(only.id) is True
    assert await repo.revoke(only.id) is False
    assert await repo.check("edge-2", EVSE_A, t2) == "invalid"
    assert await repo.check("edge-1", EVSE_A, t1) == "ok"


async def test_target_store_round_trip_upsert_delete(engine: AsyncEngine) -> None:
    edge1 = SqlTargetStore(engine, "edge-1")
    edge2 = SqlTargetStore(engine, "edge-2")
    until = datetime(2024, 5, 30, 9, 14, 47, 244362, tzinfo=UTC)
    assert await edge1.load_all() == {}
    await edge1.save(EVSE_A, Target(10, until))
    await edge1.save(EVSE_A, Target(16, until + timedelta(hours=1)))  # upsert
    await edge1.save(EVSE_B, Target(0, until))
    await edge2.save(EVSE_A, Target(6, until))
    assert await edge1.load_all() == {
        EVSE_A: Target(16, until + timedelta(hours=1)),
        EVSE_B: Target(0, until),
    }
    assert await edge2.get(EVSE_A) == Target(6, until)
    await edge1.save(EVSE_A, None)
    await edge1.save(EVSE_A, None)  # deleting nothing is fine
    assert await edge1.get(EVSE_A) is None
    assert await edge2.load_all() == {EVSE_A: Target(6, until)}


def test_token_cli_with_db(tmp_path: Path) -> None:
    runner = CliRunner()
    app = token_app
    url = default_sqlite_url(tmp_path)
    with structlog.testing.capture_logs() as logs:
        created = runner.invoke(app, ["create", "--evse", EVSE_A, "--edge", "e1", "--db", url])
        listed = runner.invoke(app, ["list", "--db", url])
    assert created.exit_code == 0, created.output
    (token,) = created.stdout.strip().splitlines()  # the token alone on stdout
    assert any(e["event"] == "token_created" and e["evse"] == EVSE_A for e in logs)
    assert all(token not in str(e) for e in logs)
    assert len(token) >= 40
    assert "not shown again" in created.stderr
    assert listed.exit_code == 0, listed.output
    assert EVSE_A in listed.stdout
    assert token not in listed.stdout
    token_id = listed.stdout.strip().splitlines()[1].split()[0]

    import asyncio

    async def check() -> str:
        eng = create_engine(url)
        await init_schema(eng)
        try:
            return await TokenRepository(eng).check("e1", EVSE_A, token)
        finally:
            await eng.dispose()

    assert asyncio.run(check()) == "ok"
    revoked = runner.invoke(app, ["revoke", token_id, "--db", url])
    assert revoked.exit_code == 0, revoked.output
    assert asyncio.run(check()) == "invalid"
    again = runner.invoke(app, ["revoke", token_id, "--db", url])
    assert again.exit_code == 1


def test_token_cli_with_config_uses_edge_id_and_checks_evse(tmp_path: Path) -> None:
    data = tmp_path / "data" / "nested"
    cfg = tmp_path / "site.toml"
    cfg.write_text(
        f"""
data_dir = "{data}"
[site]
edge_id = "edge-cfg"
main_fuse_a = 35

[[chargers]]
id = "cp1"
evse_uuid = "{EVSE_A}"
  [[chargers.plugs]]
  uuid = "6bbf9fd56dc24f9697b078d5d8ccda84"
  label = "Plug 1"
"""
    )
    runner = CliRunner()
    app = token_app
    with structlog.testing.capture_logs():
        ok = runner.invoke(app, ["create", "--evse", EVSE_A, "--config", str(cfg)])
        listed = runner.invoke(app, ["list", "--config", str(cfg)])
    assert ok.exit_code == 0, ok.output
    assert (data / "fuseguard.db").exists()
    assert "edge-cfg" in listed.stdout
    foreign = runner.invoke(app, ["create", "--evse", EVSE_B, "--config", str(cfg)])
    assert foreign.exit_code == 2
    assert "not a charger" in foreign.stderr
    bad = runner.invoke(app, ["create", "--evse", "NOT-A-UUID", "--config", str(cfg)])
    assert bad.exit_code == 2
    no_db = runner.invoke(app, ["list"])
    assert no_db.exit_code == 2


async def test_created_at_comes_from_the_injected_clock(engine: AsyncEngine) -> None:
    from fuseguard.model.clock import VirtualClock

    clock = VirtualClock()
    await clock.advance(90)
    repo = TokenRepository(engine, clock)
    await repo.create("edge-1", EVSE_A)
    (info,) = await repo.list()
    assert info.created_at == clock.now()


def test_fuseguard_token_create_prints_only_the_token(tmp_path: Path) -> None:
    """The installed command: stdout is the token alone, so scripts can capture it."""
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    code = "from fuseguard.cli import main; main()"
    args = ["token", "create", "--evse", EVSE_A, "--edge", "e1", "--db", url]
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert len(lines[0]) >= 40
    assert " " not in lines[0]
    assert "not shown again" in done.stderr
