"""A cloud replica's HTTP layer alone: CPU per request with each event loop and HTTP parser.

The full benchmark (``bench/cloud.py``) runs ~8 processes on a shared machine, so its CPU per
request moves by +-30 % between runs. This one isolates what ``server.loop`` and ``server.http``
change: one server process runs the real EVSE API app (``create_evse_app``: FastAPI, the token
gate, validation, the guarded uvicorn protocol of ``fuseguard.serving``) on an in-memory backend
(no database, no MQTT), ``--clients`` keep-alive clients send POST currentsettings + GET pairs,
and the server's CPU (user + system, /proc) per pair is measured. The configurations run in
turns, ``--rounds`` times, so they share the machine's state; the median per configuration is
reported with every round's figure.

Usage: ``python bench/cloud_http.py [--pairs 3000] [--rounds 3] [--clients 16]``; writes
``bench/results/cloud_http.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from cloud_agents import evse_info

BENCH = Path(__file__).resolve().parent
CONFIGS = (("asyncio", "h11"), ("asyncio", "httptools"), ("uvloop", "h11"), ("uvloop", "httptools"))
ROUTE_CONFIGS = (("uvloop", "httptools", "fastapi"), ("uvloop", "httptools", "direct"))

_SERVER = """
import asyncio, logging, sys, structlog
structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
sys.path.insert(0, sys.argv[4])
from cloud_agents import MemoryBackend, evse_info
from fuseguard.api.evse import create_evse_app
from fuseguard.model.clock import RealClock
from fuseguard.serving import loop_factory, serve_app

class AnyToken:
    async def check(self, edge_device_id, evse_uuid, token):
        return "ok" if token else "missing"

async def main():
    backend = MemoryBackend(evse_info("b", 0), RealClock())
    app = create_evse_app(backend, AnyToken(), direct=sys.argv[5] == "direct")
    await serve_app(app, "127.0.0.1", int(sys.argv[3]), http=sys.argv[2])
    print("ready", flush=True)
    await asyncio.Event().wait()

with asyncio.Runner(loop_factory=loop_factory(sys.argv[1])) as runner:
    runner.run(main())
"""


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _pairs(url: str, pairs: int, clients: int) -> None:
    left = [pairs]
    headers = {"evsetoken": "bench"}

    async def client(http: aiohttp.ClientSession) -> None:
        while left[0] > 0:
            left[0] -= 1
            body = {"current": 16, "duration": 3600}
            async with http.post(url, json=body, headers=headers) as r:
                assert r.status == 201, await r.text()
                await r.read()
            async with http.get(url, headers=headers) as r:
                assert r.status == 200, await r.text()
                await r.read()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))


def measure(
    loop: str, http: str, pairs: int, clients: int, warmup: int = 200, routes: str = "direct"
) -> dict[str, object]:
    """One server process with ``loop``, ``http`` and ``routes``; CPU per POST+GET pair."""
    port = _free_port()
    cmd = [sys.executable, "-c", _SERVER, loop, http, str(port), str(BENCH), routes]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"server {loop}/{http} did not start")
        evse = evse_info("b", 0).evse_uuid
        url = f"http://127.0.0.1:{port}/edgedevices/e/evses/{evse}/currentsettings"
        asyncio.run(_pairs(url, warmup, clients))
        load = os.getloadavg()[0]
        cpu0, t0 = _cpu_s(proc.pid), time.perf_counter()
        asyncio.run(_pairs(url, pairs, clients))
        cpu1, t1 = _cpu_s(proc.pid), time.perf_counter()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    return {
        "loop": loop,
        "http": http,
        "routes": routes,
        "cpu_us_per_pair": round((cpu1 - cpu0) * 1e6 / pairs, 1),
        "pairs_per_s": round(pairs / (t1 - t0), 1),
        "load_avg_1m": round(load, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--out", type=Path, default=BENCH / "results")
    parser.add_argument(
        "--routes-ab",
        action="store_true",
        help="uvloop + httptools only, the hot routes through FastAPI vs answered directly "
        "(create_evse_app(direct=...)); writes cloud_http_routes.json",
    )
    args = parser.parse_args()
    configs = ROUTE_CONFIGS if args.routes_ab else tuple((*c, "direct") for c in CONFIGS)
    runs = []
    for r in range(args.rounds):
        for loop, http, routes in configs:
            row = measure(loop, http, args.pairs, args.clients, routes=routes)
            row["round"] = r
            print(json.dumps(row), flush=True)
            runs.append(row)
    summary: dict[str, dict[str, object]] = {}
    for loop, http, routes in configs:
        cpu = [
            float(str(x["cpu_us_per_pair"]))
            for x in runs
            if (x["loop"], x["http"], x["routes"]) == (loop, http, routes)
        ]
        name = f"{loop}+{http}" + ("+" + routes if args.routes_ab else "")
        summary[name] = {"median_cpu_us_per_pair": statistics.median(cpu), "runs": cpu}
    base = float(str(next(iter(summary.values()))["median_cpu_us_per_pair"]))
    for entry in summary.values():
        entry["vs_first"] = round(float(str(entry["median_cpu_us_per_pair"])) / base, 3)
    out = {
        "what": "server CPU per POST+GET pair, EVSE API app on an in-memory backend",
        "pairs": args.pairs,
        "clients": args.clients,
        "rounds": args.rounds,
        "measured_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "summary": summary,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = "cloud_http_routes.json" if args.routes_ab else "cloud_http.json"
    (args.out / name).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
