"""Issue 17 (should fix): the CLEMAP child client pins the device certificate and bounds reads.

A real HTTPS server (aiohttp, own self-signed certificate, port 0) plays the child edge.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import json
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fuseguard.control.ports import DeviceAuthError, DeviceConnectionError, DeviceResponseError
from fuseguard.devices.clemap import ClemapChildCircuit, ClemapEdgeClient
from fuseguard.model.clock import RealClock

LIVE = {
    "ActualActivePower": 2300.0, "ActualCurrentL1": 3.3, "ActualCurrentL2": 3.3,
    "ActualCurrentL3": 3.4, "Status": "ok",
}  # fmt: skip


def _self_signed(directory: Path, name: str) -> tuple[Path, Path, str]:
    """A self-signed certificate for 127.0.0.1 (cert file, key file, SHA-256 hex of the DER)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.crt", directory / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    return cert_file, key_file, hashlib.sha256(der).hexdigest()


@dataclass
class Child:
    port: int
    cert_file: Path
    fingerprint: str
    other_cert: Path
    answers: dict[str, bytes] = field(default_factory=dict)
    chunked: set[str] = field(default_factory=set)


@pytest.fixture
async def child(tmp_path: Path) -> AsyncIterator[Child]:
    cert_file, key_file, fingerprint = _self_signed(tmp_path, "child")
    other_cert, _, _ = _self_signed(tmp_path, "other")
    state = Child(0, cert_file, fingerprint, other_cert)

    async def handler(request: web.Request) -> web.StreamResponse:
        body = state.answers.get(request.path, b"{}")
        if request.path in state.chunked:
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(0, len(body), 8192):
                await resp.write(body[i : i + 8192])
            await resp.write_eof()
            return resp
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
    await site.start()
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    state.answers["/v1/live/data"] = json.dumps(LIVE).encode()
    try:
        yield state
    finally:
        await runner.cleanup()


def _client(session: aiohttp.ClientSession, child: Child, **tls: object) -> ClemapEdgeClient:
    return ClemapEdgeClient(
        host="127.0.0.1", user="u", password="p", session=session, port=child.port,
        request_timeout_s=5, **tls,  # type: ignore[arg-type]
    )  # fmt: skip


async def test_fingerprint_pinning(child: Child) -> None:
    async with aiohttp.ClientSession() as session:
        pinned = _client(session, child, fingerprint_sha256=child.fingerprint.upper())
        assert (await pinned.live_data()).active_power_w == 2300.0
        colons = ":".join(child.fingerprint[i : i + 2] for i in range(0, 64, 2))
        assert (await _client(session, child, fingerprint_sha256=colons).live_data()).status == "ok"
        wrong = _client(session, child, fingerprint_sha256="00" * 32)
        with pytest.raises(DeviceAuthError, match="pinned fingerprint"):
            await wrong.live_data()
    with pytest.raises(ValueError, match="64 hex"):
        ClemapEdgeClient(host="h", user="u", password="p", session=None, fingerprint_sha256="abc")
    with pytest.raises(ValueError, match="not both"):
        ClemapEdgeClient(
            host="h", user="u", password="p", session=None,
            fingerprint_sha256="00" * 32, ca_file=child.cert_file,
        )  # fmt: skip


async def test_ca_file_verification(child: Child) -> None:
    async with aiohttp.ClientSession() as session:
        assert (await _client(session, child, ca_file=child.cert_file).live_data()).status == "ok"
        with pytest.raises(DeviceConnectionError):
            await _client(session, child, ca_file=child.other_cert).live_data()
        with pytest.raises(DeviceConnectionError):  # verification on, no CA: refused
            await _client(session, child, verify_ssl=True).live_data()


@pytest.mark.parametrize("chunked", [False, True])
async def test_long_bodies_are_refused(child: Child, chunked: bool) -> None:
    child.answers["/v1/live/data"] = b'{"x": "' + b"a" * 2_000_000 + b'"}'
    if chunked:
        child.chunked.add("/v1/live/data")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DeviceResponseError, match="bytes"):
            await _client(session, child).live_data()


@pytest.mark.parametrize(
    "garbage",
    [
        json.dumps({**LIVE, "ActualCurrentL1": 10**400}).encode(),  # a 400-digit number
        b"[" * 30_000 + b"]" * 30_000,  # deep nesting
        json.dumps({**LIVE, "ActualActivePower": float("nan")}).encode(),
        json.dumps({**LIVE, "ActualActivePower": 1e999}).encode(),
    ],
)
async def test_garbage_numbers_are_device_errors(child: Child, garbage: bytes) -> None:
    child.answers["/v1/live/data"] = garbage
    async with aiohttp.ClientSession() as session:
        with pytest.raises(DeviceResponseError):
            await _client(session, child).live_data()


async def test_circuit_keeps_running_after_a_400_digit_answer(child: Child) -> None:
    """Old code: OverflowError from the read-back ended ``ClemapChildCircuit.run``."""
    huge = "1" + "0" * 400
    child.answers["/v1/flex_management/setting"] = (
        f'{{"ActivePowerActivation": true, "CurrentLimit": {huge}, "FallbackCurrentLimit": 6}}'
    ).encode()
    async with aiohttp.ClientSession() as session:
        circuit = ClemapChildCircuit(
            _client(session, child), RealClock(), timeout_s=0.4, initial_limit_a=10.0
        )
        task = asyncio.create_task(circuit.run())
        try:
            # write, then keep-alive + garbage read-backs (the error alternates with rewrites)
            for _ in range(300):
                await asyncio.sleep(0.01)
                if circuit.last_error is not None:
                    break
            assert not task.done()
            assert circuit.last_error is not None
            child.answers["/v1/flex_management/setting"] = (
                b'{"ActivePowerActivation": true, "CurrentLimit": 10.0, "FallbackCurrentLimit": 6}'
            )
            await asyncio.sleep(0.5)
            assert not task.done()
            assert circuit.last_error is None
            assert circuit.synced
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
