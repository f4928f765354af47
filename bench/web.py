"""Web dashboard budgets (issue 14): page weight, first render, live update lag, SSE viewer load.

Run: ``.venv/bin/python bench/web.py [--quick]``. Writes ``bench/results/web.json`` and the
markdown fragment ``bench/results/web.md``.

Everything runs against a real ``fuseguard demo --headless`` subprocess (all ports 0, data dir in
a temp dir), logged in with the user and password it writes to its ``demo.json``:

* **first render** (budget <= 1 s): Debian's Chromium (``/usr/bin/chromium``) through Playwright,
  a fresh browser context per run (cold cache, the session cookie copied in), from ``goto /site``
  to the first plug card (``article.plug``) visible. Every request the page makes is recorded;
* **page weight** (budget <= 300 KB): every URL the live page loaded in the browser (page, CSS,
  JS, vendored libraries; the SSE stream excluded: it never ends) fetched again with
  ``Accept-Encoding: gzip``, the bytes on the wire summed (compressed and, for reference, plain);
* **live update lag** (budget p99 <= 1.5 s): one SSE viewer; for every ``status`` event the time
  of arrival (this process's wall clock) minus the status's ``time`` (the controller stamps it
  when the cycle's status is made, at the end of the cycle; same machine, same clock);
* **SSE viewer load** (budget: p99 rises <= 10 %): the controller's cycle time from the
  ``fuseguard_control_cycle_duration_seconds`` histogram of ``/metrics`` (fed with each cycle's
  ``last_cycle_ms``), its deltas over three windows: no viewer, 20 concurrent viewers each
  reading its stream, no viewer again. p99 is interpolated within the histogram's buckets (as
  Prometheus' ``histogram_quantile``), so it is only as fine as the buckets; the mean
  (sum / count) is exact and reported beside it. The two no-viewer windows are pooled as the
  baseline. The load average is reported because the machine is shared. Beside it, the CPU
  time the demo process used in each window (``/proc/PID/stat``), which shows the viewers' cost
  to the edge far more steadily than a p99 of one-second cycles on a shared machine;
* **SSE fan-out CPU** (reference, in this process): ``LiveHub`` with 20 viewer streams fed 300
  statuses whose event is the demo's real ``/live/data``, CPU time per status with the shared
  rendering against one hub (one rendering) per viewer, as the fan-out worked before.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.abc
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CHROMIUM = os.environ.get("FUSEGUARD_CHROMIUM", "/usr/bin/chromium")
CYCLE_METRIC = "fuseguard_control_cycle_duration_seconds"
BUDGET = {"page_kb": 300.0, "first_render_s": 1.0, "lag_p99_s": 1.5, "cycle_rise_pct": 10.0}
VIEWERS = 20
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def start_demo(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """``fuseguard demo`` on free ports; its demo.json once written."""
    exe = Path(sys.executable).parent / "fuseguard"
    ports = ["--local-api-port", "0", "--modbus-port", "0", "--evse-api-port", "0"]
    cmd = [str(exe), "demo", "--headless", "--data-dir", str(data_dir), *ports, "--web-port", "0"]
    out = (data_dir / "demo.out").open("wb")
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    demo_json = data_dir / "demo.json"
    deadline = time.monotonic() + 60
    while not demo_json.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_demo(proc)
            raise SystemExit(f"demo did not start: {(data_dir / 'demo.out').read_text()[-2000:]}")
        time.sleep(0.2)
    time.sleep(0.3)
    return proc, json.loads(demo_json.read_text())


def stop_demo(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT, then kill after 20 s."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100.0 * len(ordered) + 0.5)))
    return ordered[rank - 1]


# --- browser: first render and the page's requests ------------------------------------------


def first_render(base: str, user: str, password: str, runs: int) -> tuple[list[float], list[str]]:
    """Seconds from ``goto /site`` to the first plug card, per cold run; the URLs it loaded."""
    from playwright.sync_api import sync_playwright

    times: list[float] = []
    urls: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            login_ctx = browser.new_context()
            page = login_ctx.new_page()
            page.goto(base + "/login")
            page.get_by_label("User").fill(user)
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/site")
            cookies = login_ctx.cookies()
            login_ctx.close()
            for run in range(runs):
                ctx = browser.new_context(viewport={"width": 1280, "height": 800})
                ctx.add_cookies(cookies)
                seen: list[str] = []
                ctx.on("request", lambda req, seen=seen: seen.append(req.url))
                page = ctx.new_page()
                t0 = time.perf_counter()
                page.goto(base + "/site", wait_until="commit")
                page.locator("article.plug").first.wait_for(state="visible", timeout=10_000)
                times.append(time.perf_counter() - t0)
                page.wait_for_load_state("load")
                if run == 0:
                    urls = list(dict.fromkeys(seen))
                ctx.close()
        finally:
            browser.close()
    return times, urls


# --- HTTP: login, page weight, lag, cycle histogram -------------------------------------------


def new_session(
    *,
    decompress: bool = True,
    jar: aiohttp.abc.AbstractCookieJar | None = None,
    source: str | None = None,
) -> aiohttp.ClientSession:
    """A cookie-keeping client (loopback cookies allowed); ``source``: the local address its
    connections come from (a viewer of its own: see :func:`viewer_source`)."""
    connector = None if source is None else aiohttp.TCPConnector(local_addr=(source, 0))
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=jar or aiohttp.CookieJar(unsafe=True),
        timeout=aiohttp.ClientTimeout(total=None, sock_read=30),
        auto_decompress=decompress,
    )


def viewer_source(index: int) -> str:
    """The loopback address viewer ``index`` connects from. The dashboard caps connections
    per peer address (``[api.web] max_connections_per_peer``, 16 by default: a hostile client
    cannot take every connection); 20 viewers are 20 people's browsers, so each comes from an
    address of its own (all of 127.0.0.0/8 is loopback on Linux)."""
    return f"127.0.0.{10 + index}"


async def login(http: aiohttp.ClientSession, base: str, user: str, password: str) -> None:
    """The login form with its CSRF token."""
    async with http.get(base + "/login") as r:
        match = _CSRF.search(await r.text())
    assert match is not None, "no CSRF token on /login"
    form = {"user": user, "password": password, "csrf_token": match.group(1)}
    async with http.post(base + "/login", data=form, allow_redirects=False) as r:
        if r.status != 303:
            raise SystemExit(f"login failed: {r.status}")


async def page_weight(http: aiohttp.ClientSession, urls: list[str]) -> dict[str, Any]:
    """Bytes on the wire of ``urls`` with and without gzip (``http`` must not decompress)."""
    rows = []
    for url in urls:
        if url.endswith("/live/stream") or not url.startswith("http"):
            continue
        sizes = {}
        for encoding in ("gzip", "identity"):
            async with http.get(url, headers={"Accept-Encoding": encoding}) as r:
                body = await r.read()
                sizes[encoding] = len(body)
                if encoding == "gzip":
                    sizes["encoded"] = r.headers.get("content-encoding") == "gzip"
        rows.append({"url": url.split("//", 1)[-1].split("/", 1)[-1], **sizes})
    return {
        "assets": rows,
        "compressed_kb": sum(r["gzip"] for r in rows) / 1000.0,
        "plain_kb": sum(r["identity"] for r in rows) / 1000.0,
    }


async def read_sse(
    http: aiohttp.ClientSession, base: str, until: float, lags: list[float] | None
) -> int:
    """Read ``/live/stream`` until ``until`` (monotonic); record each status's lag in ``lags``."""
    events = 0
    event = ""
    async with http.get(base + "/live/stream") as r:
        if r.status != 200:
            raise SystemExit(f"/live/stream: {r.status}")
        while time.monotonic() < until:
            remaining = until - time.monotonic()
            try:
                raw = await asyncio.wait_for(r.content.readline(), max(remaining, 0.01))
            except TimeoutError:
                break
            arrived = time.time()
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "status":
                events += 1
                if lags is not None and events > 1:  # the first is the status at connect time
                    stamp = datetime.fromisoformat(json.loads(line[6:])["time"]).timestamp()
                    lags.append(arrived - stamp)
    return events


async def _one_status(stream: Any) -> None:
    while not (await stream.__anext__()).startswith(b"event: status"):
        pass


async def _fanout_run(hubs: list[Any], cycles: int) -> float:
    """CPU ms per status for one viewer per entry of ``hubs`` (the same hub may repeat)."""
    streams = [hub.stream(lambda: "") for hub in hubs]
    unique = list({id(h): h for h in hubs}.values())
    for hub in unique:
        hub.on_status(0)
    await asyncio.gather(*(_one_status(s) for s in streams))
    t0 = time.process_time()
    for cycle in range(1, cycles + 1):
        for hub in unique:
            hub.on_status(cycle)
        await asyncio.gather(*(_one_status(s) for s in streams))
    cpu_ms = (time.process_time() - t0) * 1000.0 / cycles
    for hub in unique:
        hub.close()
    for s in streams:
        await s.aclose()
    return cpu_ms


async def fanout_cpu(site: dict[str, Any], viewers: int, cycles: int = 300) -> dict[str, Any]:
    """In-process: CPU per controller status to serve ``viewers`` SSE streams of the real page
    data (``site``, from the demo's ``/live/data``), with the shared rendering of ``LiveHub``
    and with one rendering per viewer (one hub each: what the fan-out did before)."""
    from fuseguard.api.web.live import LiveHub

    def render(cycle: int) -> dict[str, Any]:
        return {**site, "cycles": cycle}

    shared = LiveHub(render)
    shared_ms = await _fanout_run([shared] * viewers, cycles)
    per_viewer_ms = await _fanout_run([LiveHub(render) for _ in range(viewers)], cycles)
    return {
        "viewers": viewers,
        "cycles": cycles,
        "event_bytes": len(json.dumps(site, separators=(",", ":"))),
        "shared_cpu_ms_per_status": round(shared_ms, 3),
        "per_viewer_cpu_ms_per_status": round(per_viewer_ms, 3),
        "shared_renders": shared.renders,
    }


async def cycle_histogram(http: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    """Cumulative buckets, sum and count of the cycle-duration histogram."""
    async with http.get(base + "/metrics") as r:
        if r.status != 200:
            raise SystemExit(f"/metrics: {r.status}")
        text = await r.text()
    buckets: dict[float, float] = {}
    total = count = 0.0
    for family in text_string_to_metric_families(text):
        if family.name != CYCLE_METRIC:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                buckets[float(sample.labels["le"])] = sample.value
            elif sample.name.endswith("_sum"):
                total = sample.value
            elif sample.name.endswith("_count"):
                count = sample.value
    return {"buckets": buckets, "sum": total, "count": count}


def hist_delta(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """``after - before`` of two histogram readings."""
    return {
        "buckets": {le: n - before["buckets"].get(le, 0.0) for le, n in after["buckets"].items()},
        "sum": after["sum"] - before["sum"],
        "count": after["count"] - before["count"],
    }


def hist_add(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two histogram deltas pooled."""
    return {
        "buckets": {le: n + b["buckets"].get(le, 0.0) for le, n in a["buckets"].items()},
        "sum": a["sum"] + b["sum"],
        "count": a["count"] + b["count"],
    }


def hist_quantile(hist: dict[str, Any], q: float) -> float:
    """Quantile ``q`` (0..1) by linear interpolation inside the bucket, as Prometheus does."""
    count = hist["count"]
    if count <= 0:
        return float("nan")
    rank = q * count
    lower, below = 0.0, 0.0
    for le in sorted(hist["buckets"]):
        cumulative = hist["buckets"][le]
        if cumulative >= rank:
            if le == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (le - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = le, cumulative
    return lower


def hist_summary(hist: dict[str, Any]) -> dict[str, float]:
    """Cycles, mean and interpolated p50/p99 in ms."""
    count = hist["count"]
    return {
        "cycles": count,
        "mean_ms": 1000.0 * hist["sum"] / count if count else float("nan"),
        "p50_ms": 1000.0 * hist_quantile(hist, 0.50),
        "p99_ms": 1000.0 * hist_quantile(hist, 0.99),
    }


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) the process has used so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def cycle_window(
    http: aiohttp.ClientSession, base: str, viewers: int, duration_s: float, pid: int
) -> dict[str, Any]:
    """The cycle histogram's delta over ``duration_s`` with ``viewers`` SSE streams open, and
    the CPU the demo process used meanwhile (all of its work: control loop, devices, web)."""
    until = time.monotonic() + duration_s
    before = await cycle_histogram(http, base)
    load_before = os.getloadavg()
    cpu_before, t_before = process_cpu_s(pid), time.monotonic()
    async with contextlib.AsyncExitStack() as stack:
        sessions = [
            await stack.enter_async_context(
                new_session(jar=http.cookie_jar, source=viewer_source(i))
            )
            for i in range(viewers)
        ]
        tasks = [asyncio.create_task(read_sse(s, base, until, None)) for s in sessions]
        await asyncio.sleep(max(until - time.monotonic(), 0.0))
        events = await asyncio.gather(*tasks)
    after = await cycle_histogram(http, base)
    cpu_pct = 100.0 * (process_cpu_s(pid) - cpu_before) / (time.monotonic() - t_before)
    delta = hist_delta(after, before)
    return {
        "viewers": viewers,
        "demo_cpu_pct": round(cpu_pct, 1),
        "duration_s": duration_s,
        "events_received": sum(events),
        "loadavg_1m": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "hist": delta,
        **hist_summary(delta),
    }


async def measure_http(
    info: dict[str, Any], urls: list[str], window_s: float, pid: int
) -> dict[str, Any]:
    """Page weight, live lag and the viewer-load windows, over HTTP."""
    web = info["web"]
    base = str(web["url"]).rstrip("/")
    async with new_session() as http:
        await login(http, base, web["user"], web["password"])
        async with new_session(decompress=False, jar=http.cookie_jar) as raw:
            weight = await page_weight(raw, urls)
        async with http.get(base + "/live/data") as r:
            fanout = await fanout_cpu(await r.json(), VIEWERS)
        lags: list[float] = []
        await read_sse(http, base, time.monotonic() + window_s, lags)
        windows = [
            await cycle_window(http, base, 0, window_s, pid),
            await cycle_window(http, base, VIEWERS, window_s, pid),
            await cycle_window(http, base, 0, window_s, pid),
        ]
    return {"weight": weight, "lags_s": lags, "windows": windows, "fanout": fanout}


def summarize(render_s: list[float], http: dict[str, Any]) -> dict[str, Any]:
    """The JSON result: figures, budgets and verdicts."""
    lags = http["lags_s"]
    none_a, many, none_b = http["windows"]
    baseline = hist_summary(hist_add(none_a["hist"], none_b["hist"]))
    loaded = hist_summary(many["hist"])
    rise_p99 = 100.0 * (loaded["p99_ms"] / baseline["p99_ms"] - 1.0)
    rise_mean = 100.0 * (loaded["mean_ms"] / baseline["mean_ms"] - 1.0)
    weight = http["weight"]
    figures = {
        "page_compressed_kb": round(weight["compressed_kb"], 1),
        "page_plain_kb": round(weight["plain_kb"], 1),
        "first_render_p50_s": round(statistics.median(render_s), 3),
        "first_render_max_s": round(max(render_s), 3),
        "lag_samples": len(lags),
        "lag_p50_s": round(percentile(lags, 50), 3) if lags else None,
        "lag_p99_s": round(percentile(lags, 99), 3) if lags else None,
        "cycle_p99_ms_no_viewers": round(baseline["p99_ms"], 3),
        "cycle_p99_ms_20_viewers": round(loaded["p99_ms"], 3),
        "cycle_mean_ms_no_viewers": round(baseline["mean_ms"], 3),
        "cycle_mean_ms_20_viewers": round(loaded["mean_ms"], 3),
        "cycle_p99_rise_pct": round(rise_p99, 1),
        "cycle_mean_rise_pct": round(rise_mean, 1),
        "demo_cpu_pct_no_viewers": round((none_a["demo_cpu_pct"] + none_b["demo_cpu_pct"]) / 2, 1),
        "demo_cpu_pct_20_viewers": many["demo_cpu_pct"],
    }
    verdicts = {
        "page_weight": weight["compressed_kb"] <= BUDGET["page_kb"],
        "first_render": max(render_s) <= BUDGET["first_render_s"],
        "live_lag": bool(lags) and percentile(lags, 99) <= BUDGET["lag_p99_s"],
        "viewer_load": rise_p99 <= BUDGET["cycle_rise_pct"],
    }
    windows = [{k: v for k, v in w.items() if k != "hist"} for w in http["windows"]]
    return {
        "figures": figures,
        "budgets": BUDGET,
        "met": verdicts,
        "first_render_s": [round(t, 3) for t in render_s],
        "assets": weight["assets"],
        "windows": windows,
        "fanout": http["fanout"],
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


def markdown(result: dict[str, Any], *, quick: bool) -> str:
    """The ``bench/results/web.md`` fragment."""
    f, met, b = result["figures"], result["met"], result["budgets"]

    def ok(key: str) -> str:
        return "met" if met[key] else "**NOT met**"

    windows = result["windows"]
    load = ", ".join(f"{w['loadavg_1m'][0]}-{w['loadavg_1m'][1]}" for w in windows)
    lines = [
        "### Web dashboard (`bench/web.py`, issue 14)" + (" — quick run" if quick else ""),
        "",
        "Against a real `fuseguard demo --headless` subprocess on loopback; Debian Chromium via"
        " Playwright for the render. Method in the module docstring.",
        "",
        "| budget | figure | target | |",
        "|---|---|---|---|",
        f"| page weight of `/site` with all its assets, gzip | {f['page_compressed_kb']} KB"
        f" ({f['page_plain_kb']} KB plain, {len(result['assets'])} requests)"
        f" | <= {b['page_kb']:.0f} KB | {ok('page_weight')} |",
        f"| first render (goto -> first plug card, cold context,"
        f" {len(result['first_render_s'])} runs) | p50 {f['first_render_p50_s']} s,"
        f" max {f['first_render_max_s']} s | <= {b['first_render_s']} s | {ok('first_render')} |",
        f"| live update lag, cycle end -> SSE event ({f['lag_samples']} events)"
        f" | p50 {f['lag_p50_s']} s, p99 {f['lag_p99_s']} s | p99 <= {b['lag_p99_s']} s"
        f" | {ok('live_lag')} |",
        f"| controller cycle p99, 0 -> {VIEWERS} SSE viewers | {f['cycle_p99_ms_no_viewers']} ->"
        f" {f['cycle_p99_ms_20_viewers']} ms ({f['cycle_p99_rise_pct']:+} %); mean"
        f" {f['cycle_mean_ms_no_viewers']} -> {f['cycle_mean_ms_20_viewers']} ms"
        f" ({f['cycle_mean_rise_pct']:+} %) | rise <= {b['cycle_rise_pct']:.0f} %"
        f" | {ok('viewer_load')} |",
        f"| SSE fan-out CPU per status, {VIEWERS} viewers, in process (reference)"
        f" | {result['fanout']['shared_cpu_ms_per_status']} ms shared rendering"
        f" ({result['fanout']['shared_renders']} renderings for {result['fanout']['cycles'] + 1}"
        f" statuses x {VIEWERS} viewers) vs {result['fanout']['per_viewer_cpu_ms_per_status']}"
        " ms rendering per viewer | | |",
        f"| CPU of the demo process, 0 -> {VIEWERS} SSE viewers (for reference)"
        f" | {f.get('demo_cpu_pct_no_viewers')} -> {f.get('demo_cpu_pct_20_viewers')} % of a core"
        " | | |",
        "",
        "Cycle windows in order (viewers: cycles, p99, mean, demo CPU): "
        + ", ".join(
            f"{w['viewers']}: {w['cycles']:.0f}, {w['p99_ms']:.2f} ms, {w['mean_ms']:.3f} ms,"
            f" {w.get('demo_cpu_pct')} %"
            for w in windows
        )
        + f"; 1-min load average at start-end of each window: {load}"
        f" ({result['cpus']} cores, shared). The cycle p99 is interpolated within the"
        " histogram's buckets (0.5, 1, 2.5, 5, 10 ms ...), so it is only as fine as they are;"
        " the mean is exact. A cycle is the controller's own work (`Controller.decide`: decide"
        " and hand setpoints to the writers; synchronous, no await inside) timed with the wall"
        " clock: SSE work cannot run inside it, but the garbage collector and preemption on"
        " the shared cores (this benchmark's 20 readers run on them too) can. With one cycle"
        " per second a window's p99 is its worst cycle or two: compare the two no-viewer"
        " windows to see how much of a difference is noise.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="short windows (not for docs)")
    parser.add_argument("--window", type=float, default=None, help="seconds per window")
    parser.add_argument("--renders", type=int, default=None, help="first-render runs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    window_s = args.window or (15.0 if args.quick else 60.0)
    renders = args.renders or (5 if args.quick else 20)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuseguard-webbench-") as tmp:
        proc, info = start_demo(Path(tmp))
        try:
            time.sleep(3.0)  # a few cycles before measuring
            web = info["web"]
            render_s, urls = first_render(web["url"], web["user"], web["password"], renders)
            http = asyncio.run(measure_http(info, urls, window_s, proc.pid))
        finally:
            with suppress(Exception):
                stop_demo(proc)
    result = summarize(render_s, http)
    result["quick"] = args.quick
    result["window_s"] = window_s
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "web.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "web.md").write_text(markdown(result, quick=args.quick))
    print(json.dumps(result["figures"], indent=2))
    print(json.dumps(result["met"]))
    print(f"wrote {args.out / 'web.json'} and web.md in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
