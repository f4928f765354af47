"""History, compliance and session pages (data from the store's ``HistoryRepository``).

=========================  =================================================================
path                       what
=========================  =================================================================
``/history``               the chart page (span ``hour``/``day``/``week``/``month``, ``date``)
``/history/data``          its data as JSON: 1 s samples for an hour, minute aggregates
                           (bucketed to 10 / 30 min for a week / month) beyond
``/compliance``            per circuit the highest current per phase against its fuse for
                           ``from``..``to`` (days, inclusive) and every second above a limit
``/sessions``              charging sessions, filter by ``plug`` and ``month`` (YYYY-MM)
``/sessions.csv``          the same rows as CSV
=========================  =================================================================

Query parameters are checked strictly (400 with the reason); every page needs a session.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from fuseguard.api.web.core import current_session, deps_of, render, to_login
from fuseguard.store.history import (
    HISTORY_SERIES,
    ChargeSession,
    HistoryRepository,
    HistorySample,
    MinuteAggregate,
)

#: span -> (length, bucket seconds; 1 = raw samples)
SPANS: dict[str, tuple[timedelta, int]] = {
    "hour": (timedelta(hours=1), 1),
    "day": (timedelta(days=1), 60),
    "week": (timedelta(days=7), 600),
    "month": (timedelta(days=31), 1800),
}
#: Exceedance rows a compliance page lists at most (the count is always complete up to this).
MAX_LISTED = 1000
MAX_COMPLIANCE_DAYS = 400
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_PLUG = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # charger ids, as in the config


class BadQueryError(ValueError):
    """A query parameter is malformed (answered with 400)."""


def _day(text: str | None, default: date) -> date:
    if not text:
        return default
    if not _DATE.fullmatch(text):
        msg = "date must be YYYY-MM-DD"
        raise BadQueryError(msg)
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise BadQueryError(str(exc)) from exc


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def month_window(text: str | None) -> tuple[datetime, datetime] | None:
    """``YYYY-MM`` -> [first day, first day of the next month); None for ""."""
    if not text:
        return None
    m = _MONTH.fullmatch(text)
    if m is None or not 1 <= int(m.group(2)) <= 12 or int(m.group(1)) < 1970:
        msg = "month must be YYYY-MM"
        raise BadQueryError(msg)
    year, month = int(m.group(1)), int(m.group(2))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


@dataclass(frozen=True, slots=True)
class ChartWindow:
    """The chosen span of the history chart."""

    span: str
    start: datetime
    end: datetime
    bucket_s: int


def chart_window(params: dict[str, str], now: datetime) -> ChartWindow:
    """The window of ``/history`` from its query (default: today)."""
    span = params.get("span") or "day"
    if span not in SPANS:
        msg = f"span must be one of {', '.join(SPANS)}"
        raise BadQueryError(msg)
    length, bucket = SPANS[span]
    day = _day(params.get("date"), now.date())
    start = _midnight(day)
    if span == "hour":
        hour_text = params.get("hour") or str(now.hour)
        if not hour_text.isdigit() or not 0 <= int(hour_text) <= 23:
            msg = "hour must be 0..23"
            raise BadQueryError(msg)
        start += timedelta(hours=int(hour_text))
    return ChartWindow(span, start, start + length, bucket)


def _series_of_samples(samples: list[HistorySample]) -> dict[str, Any]:
    out: dict[str, Any] = {"t": [s.time.timestamp() for s in samples]}
    for name in HISTORY_SERIES:
        for i in range(3):
            out[f"{name}_l{i + 1}"] = [round(s.series()[name][i], 2) for s in samples]
    out["pv_w"] = [None if s.pv_w is None else round(s.pv_w) for s in samples]
    return out


def _bucket_pv(rows: list[MinuteAggregate]) -> float | None:
    """The mean PV production of a bucket (over its minutes with a PV reading), None without."""
    weighted = [(r.pv_w[1], r.samples) for r in rows if r.pv_w is not None]
    total = sum(n for _, n in weighted)
    if not total:
        return None
    return round(sum(v * n for v, n in weighted) / total)


def bucket_minutes(minutes: list[MinuteAggregate], bucket_s: int) -> dict[str, Any]:
    """Minute rows to buckets: the grid's maximum, the limit's minimum, EV/non-EV/PV means."""
    buckets: dict[int, list[MinuteAggregate]] = {}
    for m in minutes:
        slot = int(m.time.timestamp()) // bucket_s * bucket_s
        buckets.setdefault(slot, []).append(m)
    out: dict[str, Any] = {"t": list(buckets)}
    for name in HISTORY_SERIES:
        for i in (1, 2, 3):
            key = f"{name}_l{i}"
            values = []
            for rows in buckets.values():
                if name == "grid":
                    v = max(r.values[f"{key}_max"] for r in rows)
                elif name == "limit":
                    v = min(r.values[f"{key}_min"] for r in rows)
                else:
                    n = sum(r.samples for r in rows)
                    v = sum(r.values[f"{key}_mean"] * r.samples for r in rows) / n
                values.append(round(v, 2))
            out[key] = values
    out["pv_w"] = [_bucket_pv(rows) for rows in buckets.values()]
    return out


def _repo(request: Request) -> HistoryRepository | None:
    return deps_of(request).history


def _bad(exc: BadQueryError) -> Response:
    return PlainTextResponse(f"{exc}\n", 400)


async def history_page(request: Request) -> Response:
    """``GET /history``: the chart page (data via ``/history/data``)."""
    if current_session(request) is None:
        return to_login(request)
    deps = deps_of(request)
    try:
        window = chart_window(dict(request.query_params), deps.clock.now())
    except BadQueryError as exc:
        return _bad(exc)
    query = f"span={window.span}&date={window.start.date().isoformat()}"
    if window.span == "hour":
        query += f"&hour={window.start.hour}"
    context = {
        "window": window,
        "spans": list(SPANS),
        "data_url": "/history/data?" + query,
        "enabled": deps.history is not None,
        "raw_hours": deps.history_raw_hours,
    }
    return render(request, "history.html", context)


async def history_data(request: Request) -> Response:
    """``GET /history/data``: the chart's series as JSON (epoch seconds, amperes)."""
    if current_session(request) is None:
        return PlainTextResponse("login required\n", 401)
    repo = _repo(request)
    try:
        window = chart_window(dict(request.query_params), deps_of(request).clock.now())
    except BadQueryError as exc:
        return _bad(exc)
    data: dict[str, Any]
    if repo is None:
        data = bucket_minutes([], 60)
    elif window.bucket_s == 1:
        data = _series_of_samples(await repo.samples(window.start, window.end))
    else:
        data = bucket_minutes(await repo.minutes(window.start, window.end), window.bucket_s)
    data["resolution_s"] = window.bucket_s
    data["start"] = window.start.timestamp()
    data["end"] = window.end.timestamp()
    return JSONResponse(data)


async def compliance_page(request: Request) -> Response:
    """``GET /compliance``: maximum per phase against each fuse, and every second above a limit."""
    if current_session(request) is None:
        return to_login(request)
    deps = deps_of(request)
    today = deps.clock.now().date()
    try:
        first = _day(request.query_params.get("from"), today)
        last = _day(request.query_params.get("to"), first)
    except BadQueryError as exc:
        return _bad(exc)
    if last < first or (last - first).days > MAX_COMPLIANCE_DAYS:
        return _bad(BadQueryError(f"to must be from .. from + {MAX_COMPLIANCE_DAYS} days"))
    start, end = _midnight(first), _midnight(last) + timedelta(days=1)
    circuits, rows = [], []
    if deps.history is not None:
        circuits = await deps.history.compliance(start, end)
        rows = await deps.history.exceedances(start, end, MAX_LISTED + 1)
    over_fuse = [r for r in rows if r.current_a > r.fuse_a]
    context = {
        "first": first.isoformat(),
        "last": last.isoformat(),
        "circuits": circuits,
        "rows": rows[:MAX_LISTED],
        "truncated": len(rows) > MAX_LISTED,
        "over_fuse": len(over_fuse),
        "enabled": deps.history is not None,
    }
    return render(request, "compliance.html", context)


async def _session_rows(request: Request) -> tuple[list[ChargeSession], str, str]:
    repo = _repo(request)
    plug = request.query_params.get("plug") or ""
    if plug and not _PLUG.fullmatch(plug):
        msg = "plug must be a plug id"
        raise BadQueryError(msg)
    month = request.query_params.get("month") or ""
    window = month_window(month)
    if repo is None:
        return [], plug, month
    start, end = window if window is not None else (None, None)
    return await repo.sessions(start, end, plug or None), plug, month


async def sessions_page(request: Request) -> Response:
    """``GET /sessions``: charging sessions, newest first."""
    if current_session(request) is None:
        return to_login(request)
    try:
        rows, plug, month = await _session_rows(request)
    except BadQueryError as exc:
        return _bad(exc)
    repo = _repo(request)
    plugs = list(await repo.plug_ids()) if repo is not None else []
    query = urlencode([(k, v) for k, v in (("plug", plug), ("month", month)) if v])
    context = {
        "sessions": rows,
        "plugs": plugs,
        "plug": plug,
        "month": month,
        "csv_url": "/sessions.csv" + ("?" + query if query else ""),
        "total_kwh": sum(s.energy_wh or 0.0 for s in rows) / 1000.0,
        "now": deps_of(request).clock.now(),
    }
    return render(request, "sessions.html", context)


CSV_COLUMNS = (
    "plug_id",
    "plug_label",
    "started_at",
    "ended_at",
    "duration_s",
    "energy_wh",
    "max_current_a",
    "mean_current_a",
    "charging_s",
    "id_tag",
)


def _cell(value: str) -> str:
    """No spreadsheet formulas from the data (CSV injection)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def sessions_csv_text(rows: list[ChargeSession]) -> str:
    """The sessions as CSV (header + one line per session; open sessions have no end)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for s in rows:
        duration = (
            "" if s.ended_at is None else str(int((s.ended_at - s.started_at).total_seconds()))
        )
        writer.writerow(
            (
                _cell(s.plug_id),
                _cell(s.plug_label),
                s.started_at.isoformat(),
                s.ended_at.isoformat() if s.ended_at is not None else "",
                duration,
                "" if s.energy_wh is None else f"{s.energy_wh:.1f}",
                f"{s.max_current_a:.1f}",
                f"{s.mean_current_a:.1f}",
                str(s.charging_s),
                _cell(s.id_tag or ""),
            )
        )
    return buf.getvalue()


async def sessions_csv(request: Request) -> Response:
    """``GET /sessions.csv``: the filtered sessions as a CSV download."""
    if current_session(request) is None:
        return PlainTextResponse("login required\n", 401)
    try:
        rows, plug, month = await _session_rows(request)
    except BadQueryError as exc:
        return _bad(exc)
    name = "-".join(["sessions", *(v for v in (plug, month) if v)]) + ".csv"
    return Response(
        sessions_csv_text(rows),
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


__all__ = [
    "SPANS",
    "BadQueryError",
    "bucket_minutes",
    "chart_window",
    "compliance_page",
    "history_data",
    "history_page",
    "month_window",
    "sessions_csv",
    "sessions_csv_text",
    "sessions_page",
]
