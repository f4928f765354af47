"""GET/POST currentsettings answered directly (``direct=True``, the default) are FastAPI's answers.

The same requests go to two apps on one backend, one with the direct hot routes and one with
FastAPI's dependency solving for every route; status, body bytes and the headers a client sees
must be equal, for good requests and for every kind of refusal (token, EVSE, body, backend
errors through the app's exception handlers), and the OpenAPI documents must be identical.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import Message

from fuseguard.api.evse import create_evse_app
from fuseguard.api.evse_models import EvseInfo, PlugStatusRecord
from fuseguard.control.targets import Target

EDGE = "edge-1"
EVSE = "a" * 32
OTHER = "b" * 32
TOKENS = {"tok-a": EVSE, "tok-b": OTHER}
_BASE = f"/edgedevices/{EDGE}/evses/{EVSE}/currentsettings"
_T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


class _Unavailable(Exception):
    pass


class _Backend:
    """Targets in a dict; ``mode`` makes ``set_target`` refuse or raise."""

    def __init__(self) -> None:
        self.targets: dict[str, Target] = {}
        self.mode: Literal["ok", "rejected", "unavailable", "crash"] = "ok"

    async def evse(self, edge_device_id: str, evse_uuid: str) -> EvseInfo | None:
        if edge_device_id != EDGE or evse_uuid not in (EVSE, OTHER):
            return None
        return EvseInfo(evse_uuid, 6, 16, (("p" * 32, "left"),))

    async def set_target(
        self, edge_device_id: str, evse_uuid: str, current_a: int, duration_s: int
    ) -> Literal["received", "rejected"]:
        if self.mode == "unavailable":
            raise _Unavailable("edge offline")
        if self.mode == "crash":
            raise RuntimeError("boom")
        if self.mode == "rejected":
            return "rejected"
        self.targets[evse_uuid] = Target(current_a, _T0 + timedelta(seconds=duration_s))
        return "received"

    async def get_target(self, edge_device_id: str, evse_uuid: str) -> Target | None:
        if self.mode == "unavailable":
            raise _Unavailable("database down")
        return self.targets.get(evse_uuid)

    async def clear_target(self, edge_device_id: str, evse_uuid: str) -> Target | None:
        return self.targets.pop(evse_uuid, None)

    async def status(self, edge_device_id: str, evse_uuid: str) -> list[PlugStatusRecord]:
        return []


class _Tokens:
    async def check(
        self, edge_device_id: str, evse_uuid: str, token: str | None
    ) -> Literal["ok", "missing", "invalid", "wrong_evse"]:
        if not token:
            return "missing"
        owner = TOKENS.get(token)
        if owner is None:
            return "invalid"
        return "ok" if owner == evse_uuid else "wrong_evse"


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"message": str(exc)}, status_code=503)


def _app(backend: _Backend, *, direct: bool) -> FastAPI:
    app = create_evse_app(backend, _Tokens(), max_duration_s=3600, direct=direct)
    app.add_exception_handler(_Unavailable, _unavailable)
    return app


_OK = {"evsetoken": "tok-a"}
_JSON = {**_OK, "content-type": "application/json"}
_CASES: list[tuple[str, str, dict[str, str], bytes | None]] = [
    ("GET", _BASE, _OK, None),  # no target yet
    ("POST", _BASE, _JSON, b'{"current": 10, "duration": 60}'),
    ("GET", _BASE, _OK, None),  # the target just set
    ("POST", _BASE, {**_OK, "content-type": "text/plain"}, b'{"current": 0, "duration": 5}'),
    ("POST", _BASE, _OK, b'{"current": 16, "duration": 3600}'),  # no content type
    ("POST", _BASE, _JSON, b'{"current": 20, "duration": 60}'),  # beyond the EVSE's max
    ("POST", _BASE, _JSON, b'{"current": 3, "duration": 60}'),  # below its min
    ("POST", _BASE, _JSON, b'{"current": 10, "duration": 3601}'),  # beyond max_duration_s
    ("POST", _BASE, _JSON, b'{"current": 10, "duration": 0}'),
    ("POST", _BASE, _JSON, b'{"current": "10", "duration": 60}'),
    ("POST", _BASE, _JSON, b'{"current": 10.5, "duration": 60}'),
    ("POST", _BASE, _JSON, b'{"current": true, "duration": 60}'),
    ("POST", _BASE, _JSON, b'{"duration": 60}'),
    ("POST", _BASE, _JSON, b'{"current": 10, "duration": 60, "x": 1}'),
    ("POST", _BASE, _JSON, b"[1, 2]"),
    ("POST", _BASE, _JSON, b"not json"),
    ("POST", _BASE, _JSON, b'{"current": NaN, "duration": 60}'),
    ("POST", _BASE, _JSON, b"\xff\xfe"),
    ("POST", _BASE, _JSON, b""),
    ("POST", _BASE, _JSON, b"  "),
    ("POST", _BASE, _JSON, b'{"current": 10, "duration": 60, "pad": "' + b"x" * 17000 + b'"}'),
    ("POST", _BASE, {"content-type": "application/json"}, b'{"current": 10, "duration": 60}'),
    ("POST", _BASE, {**_JSON, "evsetoken": ""}, b'{"current": 10, "duration": 60}'),
    ("POST", _BASE, {**_JSON, "evsetoken": "nope"}, b"not even json"),
    ("POST", _BASE, {**_JSON, "evsetoken": "tok-b"}, b'{"current": 10, "duration": 60}'),
    ("GET", _BASE, {}, None),
    ("GET", _BASE, {"evsetoken": "nope"}, None),
    ("GET", _BASE, {"evsetoken": "tok-b"}, None),
    ("GET", f"/edgedevices/other/evses/{EVSE}/currentsettings", _OK, None),
    ("GET", f"/edgedevices/{EDGE}/evses/{'c' * 32}/currentsettings", {"evsetoken": "x"}, None),
    ("GET", f"{_BASE}/", _OK, None),
    ("PUT", _BASE, _JSON, b'{"current": 10, "duration": 60}'),
    ("HEAD", _BASE, _OK, None),
    ("DELETE", _BASE, _OK, None),
    ("GET", _BASE, _OK, None),  # cleared
]
_HEADERS = ("content-type", "content-length", "www-authenticate", "allow", "location")


async def _call(
    app: FastAPI, method: str, path: str, headers: dict[str, str], body: bytes | None
) -> tuple[int, bytes, tuple[str | None, ...]]:
    """One request straight into the ASGI app (as uvicorn hands it over); status, body, headers."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.encode(), v.encode("latin-1")) for k, v in headers.items()]
        + ([(b"content-length", str(len(body)).encode())] if body is not None else []),
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    chunks = [body[i : i + 4096] for i in range(0, len(body), 4096)] if body else [b""]
    sent: list[Message] = []

    async def receive() -> Message:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    with contextlib.suppress(RuntimeError):  # ServerErrorMiddleware answers 500, re-raises
        await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    got = {k.decode().lower(): v.decode("latin-1") for k, v in start["headers"]}
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(start["status"]), content, tuple(got.get(name) for name in _HEADERS)


async def _answers(app: FastAPI, backend: _Backend) -> list[tuple[object, ...]]:
    answers: list[tuple[object, ...]] = []
    for method, path, headers, body in _CASES:
        answers.append((method, path, *await _call(app, method, path, headers, body)))
    for mode in ("rejected", "unavailable", "crash"):
        backend.mode = mode
        for method, body in (("POST", b'{"current": 8, "duration": 9}'), ("GET", None)):
            answers.append((mode, method, *await _call(app, method, _BASE, _JSON, body)))
    return answers


async def test_direct_routes_answer_as_fastapi_does() -> None:
    direct_backend, plain_backend = _Backend(), _Backend()
    direct = await _answers(_app(direct_backend, direct=True), direct_backend)
    plain = await _answers(_app(plain_backend, direct=False), plain_backend)
    assert direct == plain
    statuses = [a[2] for a in direct]
    assert {200, 201, 400, 401, 403, 404, 405, 413, 422, 500, 503} <= set(statuses)
    assert direct_backend.targets == plain_backend.targets


def test_direct_routes_keep_the_openapi() -> None:
    backend = _Backend()
    assert _app(backend, direct=True).openapi() == _app(backend, direct=False).openapi()
