"""Issue 16: every request example of seeds 000, 001 and 002, byte for byte, against a running demo.

Each example (the curl line and the Node ``request``, ``fetch``, Python ``requests`` and Ruby
``Net::HTTP`` snippets) is translated into the request those clients put on the wire: method,
path, headers (including the ones the client adds by itself: the default ``Content-Type`` of a
string body, ``User-Agent``, ``Accept``) and body bytes. Placeholders are filled in: the seed's
``Authorization: string`` becomes real Basic credentials (the parameter table says Basic auth is
required), ``evsetoken: string`` the demo's token, ``boolean``/``number``/``integer`` values.

What each client sends for a string body (the reason for issue 16):

* curl ``--data``: ``Content-Type: application/x-www-form-urlencoded``
* Python ``requests`` ``data=<str>``: no ``Content-Type``; ``data={}``: no body
  (``Content-Length: 0`` on POST/DELETE)
* Node ``request`` ``body: <str>``: no ``Content-Type``
* ``fetch`` ``body: <str>``: ``Content-Type: text/plain;charset=UTF-8``
* Ruby ``Net::HTTP::Post#body=``: ``Content-Type: application/x-www-form-urlencoded``

The requests go out over a raw socket (TLS for the local API, ``curl -k`` style; the demo's
EVSE API is plain HTTP on loopback), so no client library adds or changes anything.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fuseguard.demo import run_demo

SETTINGS_BODY = {"ActivePowerActivation": True, "CurrentLimit": 25, "FallbackCurrentLimit": 16}
SETTINGS_PRETTY = (
    '{\n    "ActivePowerActivation": true,\n    "CurrentLimit": 25,\n'
    '    "FallbackCurrentLimit": 16\n}'
)
SETTINGS_COMPACT = json.dumps(SETTINGS_BODY, separators=(",", ":"))
TARGET_COMPACT = '{"current":10,"duration":3600}'

CURL = {"User-Agent": "curl/8.5.0", "Accept": "*/*"}
REQUESTS = {
    "User-Agent": "python-requests/2.32.3",
    "Accept-Encoding": "gzip, deflate",
    "Accept": "*/*",
    "Connection": "keep-alive",
}
FETCH = {
    "accept": "*/*",
    "accept-language": "*",
    "sec-fetch-mode": "cors",
    "user-agent": "node",
    "accept-encoding": "gzip, deflate",
}
RUBY = {
    "Accept-Encoding": "gzip;q=1.0,deflate;q=0.6,identity;q=0.3",
    "Accept": "*/*",
    "User-Agent": "Ruby",
}
NODE: dict[str, str] = {}  # the `request` package adds only host/content-length
FORM = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Example:
    seed: str
    client: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None
    status: int


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def _merge(defaults: dict[str, str], given: dict[str, str]) -> dict[str, str]:
    """Client defaults overridden (case-insensitively) by the example's own headers."""
    lowered = {k.lower() for k in given}
    return {**{k: v for k, v in defaults.items() if k.lower() not in lowered}, **given}


def _ex(
    seed: str,
    client: str,
    method: str,
    path: str,
    defaults: dict[str, str],
    given: dict[str, str],
    body: str | None,
    status: int,
    *,
    empty_length: bool = False,
) -> Example:
    headers = _merge(defaults, given)
    raw = None if body is None else body.encode()
    if raw is not None or empty_length:
        headers["Content-Length"] = str(0 if raw is None else len(raw))
    return Example(seed, client, method, path, headers, raw, status)


def local_examples(auth: str) -> list[Example]:
    """Seed 000 (local API): live data, read settings, update settings, keep-alive."""
    a = {"Authorization": auth}
    js = {"Accept": JSON_TYPE, "Content-Type": JSON_TYPE}
    live, plural, setting, keep = (
        "/v1/live/data",
        "/v1/flex_management/settings",  # the GET examples spell it in the plural
        "/v1/flex_management/setting",
        "/v1/keep-alive",
    )
    out: list[Example] = []
    for path in (live, plural):
        out += [
            _ex("000", "curl", "GET", path, CURL, {**js, **a}, None, 200),
            _ex("000", "node", "GET", path, NODE, {**js, **a}, None, 200),
            _ex("000", "fetch", "GET", path, FETCH, {**js, **a}, None, 200),
            _ex("000", "python", "GET", path, REQUESTS, {**js, **a}, None, 200),
            _ex("000", "ruby", "GET", path, RUBY, {**js, **a}, None, 200),
        ]
    out += [
        _ex("000", "curl", "POST", setting, CURL, {**a, "Content-Type": FORM}, SETTINGS_PRETTY, 200),
        _ex("000", "node", "POST", setting, NODE, a, SETTINGS_COMPACT, 200),
        _ex("000", "fetch", "POST", setting, FETCH, {**a, "content-type": "text/plain;charset=UTF-8"},
            SETTINGS_COMPACT, 200),
        _ex("000", "python", "POST", setting, REQUESTS, a, SETTINGS_COMPACT, 200),
        _ex("000", "ruby", "POST", setting, RUBY, {**a, "Content-Type": FORM}, SETTINGS_COMPACT, 200),
        _ex("000", "curl", "POST", keep, CURL, {**js, **a}, None, 200),  # --request POST, no data
        _ex("000", "node", "POST", keep, NODE, {**js, **a}, None, 200),
        _ex("000", "fetch", "POST", keep, FETCH, {**js, **a}, None, 200, empty_length=True),
        _ex("000", "python", "POST", keep, REQUESTS, {**js, **a}, None, 200, empty_length=True),
        _ex("000", "ruby", "POST", keep, RUBY, {**js, **a}, None, 200),
    ]  # fmt: skip
    return out


def evse_examples(base: str, token: str) -> list[Example]:
    """Seeds 001 (current target: GET, POST, DELETE) and 002 (status)."""
    t = {"evsetoken": token}
    cs, st = f"{base}/currentsettings", f"{base}/status"
    text = {"content-type": "text/plain;charset=UTF-8"}
    out = [
        _ex("001", "curl", "POST", cs, CURL, {**t, "Content-Type": FORM}, TARGET_COMPACT, 201),
        _ex("001", "node", "POST", cs, NODE, t, TARGET_COMPACT, 201),
        _ex("001", "fetch", "POST", cs, FETCH, {**t, **text}, TARGET_COMPACT, 201),
        _ex("001", "python", "POST", cs, REQUESTS, t, TARGET_COMPACT, 201),
        _ex("001", "ruby", "POST", cs, RUBY, {**t, "Content-Type": FORM}, TARGET_COMPACT, 201),
    ]
    for defaults, client in ((CURL, "curl"), (NODE, "node"), (FETCH, "fetch"), (RUBY, "ruby")):
        out.append(_ex("001", client, "GET", cs, defaults, t, None, 200))
        out.append(_ex("002", client, "GET", st, defaults, t, None, 200))
    out.append(_ex("001", "python", "GET", cs, REQUESTS, t, None, 200))
    out.append(_ex("002", "python", "GET", st, REQUESTS, t, None, 200))
    # DELETE last: each clears the target, the next answers with nulls
    for defaults, client in ((CURL, "curl"), (NODE, "node"), (FETCH, "fetch"), (RUBY, "ruby")):
        out.append(_ex("001", client, "DELETE", cs, defaults, t, None, 200))
    out.append(_ex("001", "python", "DELETE", cs, REQUESTS, t, None, 200, empty_length=True))
    return out


async def send(url: str, ex: Example, tls: bool) -> Answer:
    """One HTTP/1.1 request with exactly ``ex``'s bytes; reads one response."""
    parts = urlsplit(url)
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # curl -k against the self-signed certificate
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port, ssl=ctx)
    try:
        head = f"{ex.method} {ex.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in ex.headers.items()) + "\r\n"
        writer.write(head.encode() + (ex.body or b""))
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(int(status_line.split()[1]), headers, body)
    finally:
        writer.close()


def _check_local(ex: Example, answer: Answer) -> None:
    assert answer.status == ex.status, (ex, answer)
    if ex.path.endswith("/data"):
        assert set(answer.json()) >= {
            "ActualActivePower",
            "ActualReactivePower",
            "ActualCurrentL1",
            "ActualCurrentL2",
            "ActualCurrentL3",
            "ActualCurrentSum",
            "Status",
        }
    elif "flex_management" in ex.path:
        body = answer.json()
        assert set(body) >= {
            "ActivePowerActivation",
            "FallbackCurrentLimit",
            "CurrentLimit",
            "RunState",
            "ReadinessState",
            "MaxActivePower",
            "MinActivePower",
        }
        if ex.method == "POST":
            assert body["CurrentLimit"] == 25 and body["ActivePowerActivation"] is True


def _check_evse(ex: Example, answer: Answer, evse_uuid: str) -> None:
    assert answer.status == ex.status, (ex, answer)
    body = answer.json()
    if ex.path.endswith("/status"):
        assert isinstance(body, list) and body
        for plug in body:
            assert set(plug) == {
                "time",
                "plug_uuid",
                "plug_label",
                "evse_uuid",
                "status",
                "current_l1",
                "current_l2",
                "current_l3",
                "power",
                "dyn_current_limit",
            }
            assert plug["evse_uuid"] == evse_uuid and plug["time"].endswith("Z")
            for key in ("current_l1", "current_l2", "current_l3", "dyn_current_limit"):
                value = plug[key]
                assert not (isinstance(value, float) and value.is_integer()), (key, value)
    elif ex.method == "POST":
        assert body == {"state": "received", "current": 10, "duration": 3600}
    elif ex.method == "GET":
        assert body["current"] == 10 and body["valid_until"].endswith("+00:00")
    else:
        assert set(body) == {"current", "valid_until"}


async def test_every_seed_example_works_verbatim_against_the_demo(tmp_path: Path) -> None:
    results: dict[str, Any] = {}

    async def on_ready(info: dict[str, Any]) -> None:
        local = info["local_api"]
        creds = f"{local['user']}:{local['password']}".encode()
        auth = "Basic " + base64.b64encode(creds).decode()
        sent = 0
        for ex in local_examples(auth):
            _check_local(ex, await send(local["url"], ex, tls=True))
            sent += 1
        evse_api = info["evse_api"]
        assert evse_api["url"].startswith("http://127.0.0.1:")  # the demo says it is plain HTTP
        evse = evse_api["evses"][0]
        base = f"/edgedevices/{evse_api['edge_device_id']}/evses/{evse['uuid']}"
        deleted = []
        for ex in evse_examples(base, evse["token"]):
            answer = await send(evse_api["url"], ex, tls=False)
            _check_evse(ex, answer, evse["uuid"])
            if ex.method == "DELETE":
                deleted.append(answer.json()["current"])
            sent += 1
        assert deleted == [10, None, None, None, None]  # the first DELETE returns the target
        results["sent"] = sent
        results["not_json"] = [
            await send(local["url"], _bad(local_examples(auth)[10]), tls=True),
            await send(evse_api["url"], _bad(evse_examples(base, evse["token"])[0]), tls=False),
        ]
        results["placeholder"] = await send(
            evse_api["url"],
            _with_body(
                evse_examples(base, evse["token"])[0], '{"current":"integer","duration":"integer"}'
            ),
            tls=False,
        )

    await run_demo(
        data_dir=tmp_path,
        local_api_port=0,
        modbus_port=0,
        evse_api_port=0,
        headless=True,
        duration_s=0.1,
        on_ready=on_ready,
    )
    assert results["sent"] == 20 + 20
    local_bad, evse_bad = results["not_json"]
    assert local_bad.status == 400 and "not valid JSON" in local_bad.json()["message"]
    assert evse_bad.status == 400 and evse_bad.json()["className"] == "bad-request"
    assert "not valid JSON" in evse_bad.json()["message"]
    placeholder = results["placeholder"]  # the seed's literal placeholder is not an integer
    assert placeholder.status == 422 and placeholder.json()["field"] == "current"


def _with_body(ex: Example, body: str) -> Example:
    headers = {**ex.headers, "Content-Length": str(len(body.encode()))}
    return Example(ex.seed, ex.client, ex.method, ex.path, headers, body.encode(), 0)


def _bad(ex: Example) -> Example:
    """A form-encoded body that is not JSON, as a form post would send it."""
    return _with_body(ex, "current=10&duration=3600")
