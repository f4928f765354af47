"""``fuseguard cloud token ...`` and ``fuseguard cloud broker-files`` (no broker needed)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog
from typer.testing import CliRunner

from fuseguard.cli import app
from fuseguard.store.db import open_store
from fuseguard.store.tokens import TokenRepository

EVSE = "25104c56d7f848af830af4300193efb3"


def _cloud_toml(tmp_path: Path) -> Path:
    cfg = tmp_path / "cloud.toml"
    cfg.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "cloud.db"}"\n')
    return cfg


def _check(db_url: str, token: str) -> str:
    async def go() -> str:
        engine = await open_store(db_url)
        try:
            return await TokenRepository(engine).check("edge-7", EVSE, token)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_cloud_token_create_list_revoke(tmp_path: Path) -> None:
    cfg = _cloud_toml(tmp_path)
    db_url = f"sqlite:///{tmp_path / 'cloud.db'}"
    runner = CliRunner()
    with structlog.testing.capture_logs():
        created = runner.invoke(
            app, ["cloud", "token", "create", "--edge", "edge-7", "--evse", EVSE, "-c", str(cfg)]
        )
        assert created.exit_code == 0, created.output
        (token,) = created.stdout.strip().splitlines()  # the token alone on stdout
        assert _check(db_url, token) == "ok"
        listed = runner.invoke(app, ["cloud", "token", "list", "--edge", "edge-7", "-c", str(cfg)])
        assert listed.exit_code == 0, listed.output
        (line,) = listed.stdout.strip().splitlines()
        token_id, edge, evse, _created_at = line.split()
        assert (edge, evse) == ("edge-7", EVSE)
        assert token not in listed.stdout
        other = runner.invoke(app, ["cloud", "token", "list", "--edge", "other", "-c", str(cfg)])
        assert other.stdout.strip() == ""
        revoked = runner.invoke(app, ["cloud", "token", "revoke", token_id, "-c", str(cfg)])
        assert revoked.exit_code == 0, revoked.output
        assert revoked.stdout.strip() == f"revoked {token_id}"
        assert _check(db_url, token) == "invalid"
        again = runner.invoke(app, ["cloud", "token", "revoke", token_id, "-c", str(cfg)])
    assert again.exit_code == 1
    assert f"no token {token_id}" in again.stderr


def test_cloud_token_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_evse = runner.invoke(
        app, ["cloud", "token", "create", "--edge", "e", "--evse", "XYZ", "-c", str(tmp_path)]
    )
    assert bad_evse.exit_code == 2
    assert "32 lowercase hex" in bad_evse.stderr
    missing = runner.invoke(app, ["cloud", "token", "list", "-c", str(tmp_path / "missing.toml")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.stderr


def test_installed_cloud_token_create_prints_only_the_token(tmp_path: Path) -> None:
    cfg = _cloud_toml(tmp_path)
    args = ["cloud", "token", "create", "--edge", "edge-7", "--evse", EVSE, "-c", str(cfg)]
    done = subprocess.run(
        [sys.executable, "-c", "from fuseguard.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    (token,) = done.stdout.splitlines()
    assert _check(f"sqlite:///{tmp_path / 'cloud.db'}", token) == "ok"


def test_broker_files(tmp_path: Path) -> None:
    out = tmp_path / "broker"
    done = CliRunner().invoke(
        app, ["cloud", "broker-files", "--edge", "e1", "--edge", "e2", "--out", str(out)]
    )
    assert done.exit_code == 0, done.output
    users = [line.split(":")[0] for line in (out / "passwd").read_text().splitlines()]
    assert users == ["fuseguard-cloud", "e1", "e2"]
    assert "topic read fuseguard/edges/e1/cmd" in (out / "acl").read_text()
    conf = (out / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf
    assert "use_username_as_clientid true" in conf
    assert f"password_file {(out / 'passwd').resolve()}" in conf
    assert "certfile /etc/mosquitto/certs/server.crt" in conf
    creds = out / "credentials.txt"
    assert creds.stat().st_mode & 0o777 == 0o600
    assert len(creds.read_text().splitlines()) == 3


def test_broker_files_are_private_from_their_creation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Passwords, their hashes and the ACL are created 0600 (os.open with the mode, a new temp
    file, then renamed): never readable by others, not even for an instant, whatever the umask
    and whatever an older copy's mode was."""
    out = tmp_path / "broker"
    out.mkdir()
    (out / "credentials.txt").write_text("old secrets\n")
    (out / "credentials.txt").chmod(0o644)
    created: dict[str, int] = {}
    real_open = os.open

    def spy(path: Any, flags: int, mode: int = 0o777, *args: Any, **kw: Any) -> int:
        if flags & os.O_CREAT:
            created[Path(path).name] = mode
        return real_open(path, flags, mode, *args, **kw)

    monkeypatch.setattr(os, "open", spy)
    old_umask = os.umask(0)
    try:
        done = CliRunner().invoke(app, ["cloud", "broker-files", "--edge", "e1", "--out", str(out)])
    finally:
        os.umask(old_umask)
    assert done.exit_code == 0, done.output
    for name in ("credentials.txt", "passwd", "acl"):
        assert created[f".{name}.tmp"] == 0o600, created
        assert (out / name).stat().st_mode & 0o777 == 0o600, name
    assert "old secrets" not in (out / "credentials.txt").read_text()
