"""``kill -9`` of ``fuseguard run`` while an EMS writes flex limits and EVSE targets are set.

The edge is a real subprocess against virtual Bender chargers and a virtual CEMM on loopback
(``edgeproc``). Per cycle: two writers run (the EMS: flex settings + keep-alive on the local API;
a target client: POST/DELETE currentsettings on the EVSE API, one per EVSE) and the edge is
killed with SIGKILL at a random moment. While it is down, every virtual charger must fall to its
safe current (registers 131/132 as programmed by the edge) within its timeout; after the restart
every acknowledged setting must be there (or the one request that was in flight at the kill,
which the edge may or may not have stored: nobody was told either way). Each restart is a new
process spawned at the kill, which does its imports while the chargers fall back and starts the
edge once they have (``edgeproc.spawn_edge``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from fuseguard.config import load_config
from fuseguard.model.clock import RealClock
from fuseguard.store.db import create_engine, init_schema
from fuseguard.store.tokens import TokenRepository
from tests.faults.edgeproc import (
    EDGE_ID,
    EVSES,
    MAX_CURRENT_A,
    PASSWORD,
    SAFE_CURRENT_A,
    USER,
    EdgeProcess,
    SpareEdge,
    VirtualSite,
    edge_toml,
    spawn_edge,
    start_edge,
    start_site,
)

SAFE_TIMEOUT_S = 6
CYCLES = 2
#: Site-model tick (0.5 s) + the 50 ms poll below: how late a fallback may be seen.
OBSERVE_SLACK_S = 0.75

FlexTuple = tuple[bool, float, float]
Target = int | None  # current A; None: no target (deleted)


@dataclass
class Ledger:
    """What the clients were told (acknowledged) and what was in flight at the kill."""

    flex_acked: FlexTuple | None = None
    flex_inflight: FlexTuple | None = None
    target_acked: dict[str, Target] = field(default_factory=dict)
    target_inflight: dict[str, tuple[Target]] = field(default_factory=dict)
    acks: int = 0

    def flex_expected(self) -> set[FlexTuple | None]:
        out: set[FlexTuple | None] = {self.flex_acked}
        if self.flex_inflight is not None:
            out.add(self.flex_inflight)
        return out

    def target_expected(self, evse: str) -> set[Target]:
        out: set[Target] = {self.target_acked.get(evse)}
        if evse in self.target_inflight:
            out.add(self.target_inflight[evse][0])
        return out


def _auth() -> str:
    return aiohttp.encode_basic_auth(USER, PASSWORD)


async def ems_writer(
    http: aiohttp.ClientSession, url: str, book: Ledger, rng: random.Random
) -> None:
    """An EMS: a new flex setting every 50-200 ms, keep-alive in between."""
    headers = {"Authorization": _auth()}
    while True:
        limit = float(rng.randint(10, 32))
        value: FlexTuple = (True, limit, float(rng.randint(6, int(limit))))
        body = {"ActivePowerActivation": value[0], "CurrentLimit": value[1],
                "FallbackCurrentLimit": value[2]}  # fmt: skip
        book.flex_inflight = value
        async with http.post(
            f"{url}/v1/flex_management/setting", json=body, headers=headers, ssl=False
        ) as resp:
            await resp.read()
            assert resp.status == 200, (resp.status, body)
        book.flex_acked, book.flex_inflight = value, None
        book.acks += 1
        async with http.post(f"{url}/v1/keep-alive", headers=headers, ssl=False) as resp:
            assert resp.status == 200
        await asyncio.sleep(rng.uniform(0.05, 0.2))


async def target_writer(
    http: aiohttp.ClientSession,
    url: str,
    evse: str,
    token: str,
    book: Ledger,
    rng: random.Random,
) -> None:
    """A target client: set (0 or 6..max A, 10-60 min) or clear, every 50-200 ms."""
    path = f"{url}/edgedevices/{EDGE_ID}/evses/{evse}/currentsettings"
    headers = {"evsetoken": token}
    while True:
        if rng.random() < 0.2:
            value: Target = None
            book.target_inflight[evse] = (value,)
            async with http.delete(path, headers=headers, ssl=False) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
        else:
            value = rng.choice([0, *range(6, MAX_CURRENT_A + 1)])
            body = {"current": value, "duration": rng.randint(600, 3600)}
            book.target_inflight[evse] = (value,)
            async with http.post(path, json=body, headers=headers, ssl=False) as resp:
                answer = await resp.json()
                assert resp.status == 201, (resp.status, answer)
                assert answer["state"] == "received", answer
        book.target_acked[evse] = value
        del book.target_inflight[evse]
        book.acks += 1
        await asyncio.sleep(rng.uniform(0.05, 0.2))


async def create_tokens(config: Path) -> dict[str, str]:
    cfg = load_config(config)
    engine = create_engine(cfg.storage_url)
    try:
        await init_schema(engine)
        repo = TokenRepository(engine)
        return {evse: await repo.create(EDGE_ID, evse) for evse, _plug in EVSES}
    finally:
        await engine.dispose()


async def eventually(check: Any, timeout_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not check():
        if loop.time() > end:
            raise AssertionError(f"not reached in {timeout_s} s: {what}")
        await asyncio.sleep(0.05)


def controlled(vs: VirtualSite) -> bool:
    """The edge writes every charger and feeds its watchdog with its safe-current settings."""
    return all(
        c.hems_limit_a is not None
        and not c.watchdog_expired
        and (c.safe_current_a, c.comm_timeout_s) == (SAFE_CURRENT_A, SAFE_TIMEOUT_S)
        for c in vs.connectors
    )


async def fallback_times(vs: VirtualSite, killed_at: float) -> list[float]:
    """Seconds from the kill until each charger offers its safe current (polled every 50 ms)."""
    loop = asyncio.get_running_loop()
    seen: dict[int, float] = {}
    end = killed_at + SAFE_TIMEOUT_S + 5.0
    while len(seen) < len(vs.connectors) and loop.time() < end:
        for i, c in enumerate(vs.connectors):
            if i not in seen and c.watchdog_expired:
                assert c.effective_hems_limit_a == SAFE_CURRENT_A
                assert c.sig_current_a <= SAFE_CURRENT_A
                seen[i] = loop.time() - killed_at
        await asyncio.sleep(0.05)
    assert len(seen) == len(vs.connectors), f"chargers did not fall back: {seen}"
    return [seen[i] for i in range(len(vs.connectors))]


async def check_restored(
    http: aiohttp.ClientSession, edge: EdgeProcess, tokens: dict[str, str], book: Ledger
) -> None:
    local, evse_url = edge.urls["local_api"], edge.urls["evse_api"]
    async with http.get(
        f"{local}/v1/flex_management/setting", headers={"Authorization": _auth()}, ssl=False
    ) as resp:
        assert resp.status == 200
        body = await resp.json()
    got = (body["ActivePowerActivation"], float(body["CurrentLimit"]),
           float(body["FallbackCurrentLimit"]))  # fmt: skip
    assert got in book.flex_expected(), (got, book)
    for evse, token in tokens.items():
        path = f"{evse_url}/edgedevices/{EDGE_ID}/evses/{evse}/currentsettings"
        async with http.get(path, headers={"evsetoken": token}, ssl=False) as resp:
            assert resp.status == 200
            current = (await resp.json())["current"]
        assert current in book.target_expected(evse), (evse, current, book)


async def run_cycle(
    http: aiohttp.ClientSession,
    vs: VirtualSite,
    edge: EdgeProcess,
    tokens: dict[str, str],
    book: Ledger,
    rng: random.Random,
    spawn_next: Callable[[], Awaitable[SpareEdge]],
) -> tuple[list[float], SpareEdge]:
    """Write, kill -9 at a random moment, watch the fallback; returns the fallback times and
    the next edge (``spawn_next``: spawned at the kill, it imports while the chargers fall back,
    and starts when told to)."""
    await eventually(lambda: controlled(vs), 20, "the edge controls both chargers")
    writers = [asyncio.create_task(ems_writer(http, edge.urls["local_api"], book, rng))]
    writers += [
        asyncio.create_task(target_writer(http, edge.urls["evse_api"], evse, tok, book, rng))
        for evse, tok in tokens.items()
    ]
    acks_before = book.acks
    await asyncio.sleep(rng.uniform(1.5, 3.5))
    for w in writers:  # a writer that failed before the kill is a failure of the edge
        if w.done():
            w.result()
    assert controlled(vs)
    killed_at = asyncio.get_running_loop().time()
    await edge.kill9()
    spare = await spawn_next()
    try:
        results = await asyncio.gather(*writers, return_exceptions=True)
        for res in results:  # each writer ends with the connection error of the kill
            assert isinstance(res, aiohttp.ClientError | OSError), repr(res)
        assert book.acks - acks_before >= 10, "the writers got too few answers before the kill"
        return await fallback_times(vs, killed_at), spare
    except BaseException:
        await spare.kill()
        raise


async def test_kill9_keeps_acknowledged_settings_and_chargers_fall_back(tmp_path: Path) -> None:
    rng = random.Random(17)
    vs = await start_site(RealClock())
    edge: EdgeProcess | None = None
    spare: SpareEdge | None = None
    try:
        config = tmp_path / "site.toml"
        config.write_text(edge_toml(vs, tmp_path / "data", safe_timeout_s=SAFE_TIMEOUT_S))
        tokens = await create_tokens(config)
        book = Ledger()
        async with aiohttp.ClientSession() as http:
            edge = await start_edge(config, tmp_path / "run-0.log")
            for cycle in range(CYCLES):
                log_path = tmp_path / f"run-{cycle + 1}.log"
                times, spare = await run_cycle(
                    http, vs, edge, tokens, book, rng, lambda p=log_path: spawn_edge(config, p)
                )
                assert all(t <= SAFE_TIMEOUT_S + OBSERVE_SLACK_S for t in times), times
                print(f"cycle {cycle}: fallback after {times} s, {book}")
                edge = await start_edge(config, log_path, spare=spare)
                spare = None
                await check_restored(http, edge, tokens, book)
                # the restarted edge takes the chargers back from their fallback
                await eventually(lambda: controlled(vs), 20, "control after the restart")
    finally:
        if spare is not None:
            await spare.kill()
        if edge is not None:
            await edge.stop()
        await vs.close()
