"""Client of the CLEMAP edge local API (devices.md section 1), for cascading to a child edge.

A child edge (another fuseguard, or a real CLEMAP) is a sub-circuit whose limit this edge sets:
:class:`ClemapChildCircuit` keeps the child's ``CurrentLimit`` written with
``ActivePowerActivation`` on, sends a keep-alive every ``timeout_s / 4`` and re-sends the whole
setting after any gap (failed request, long pause, or a read-back that disagrees). The child's
live data doubles as the sub-circuit meter (:meth:`ClemapEdgeClient.read`).

Transport: HTTPS. The device's certificate is self-signed (SGr EID
``restApiVerifyCertificate=false``), so by default it is not verified; pin it with
``fingerprint_sha256`` (SHA-256 of the certificate, hex, colons allowed) or verify it with
``ca_file`` (the device's certificate or its CA; the host name must match). Bodies over
:data:`MAX_BODY_BYTES` are garbage. :meth:`ClemapChildCircuit.run` survives any error of one
cycle. HTTP Basic auth, an injected
:class:`aiohttp.ClientSession`, the one HTTP transport of :mod:`fuseguard.devices.http`
(``asyncio.timeout``, bounded bodies, retries on connection errors). Answers are validated by the
wire models of :mod:`fuseguard.wire.clemap`. Errors map onto :mod:`fuseguard.control.ports`:
connection refused -> DeviceConnectionError, timeout -> DeviceTimeoutError, 401/403 ->
DeviceAuthError, other bad status or garbage -> DeviceResponseError.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import structlog

from fuseguard.control.ports import (
    Charger,
    DeviceError,
    DeviceResponseError,
    GridMeter,
    SupportsLifecycle,
)
from fuseguard.devices.http import DeviceHttpClient, DeviceHttpStatusError
from fuseguard.model.clock import Clock, RealClock
from fuseguard.model.numbers import finite
from fuseguard.model.phases import Phases
from fuseguard.model.samples import ChargerSample, MeterSample
from fuseguard.model.status import CpState, OcppState
from fuseguard.model.tasks import reap
from fuseguard.wire.clemap import (
    KEEP_ALIVE_PATHS,
    LIVE_DATA_PATH,
    SETTINGS_PATH,
    LiveDataReading,
    SettingsReading,
    settings_update,
)

log = structlog.get_logger(__name__)

#: Longest answer body read from a device; the CLEMAP answers are a few hundred bytes.
MAX_BODY_BYTES = 64 * 1024


def _ssl_setting(
    verify_ssl: bool, ca_file: Path | str | None, fingerprint_sha256: str | None
) -> bool | ssl.SSLContext | aiohttp.Fingerprint:
    """What aiohttp's ``ssl=`` gets: a pinned fingerprint, a CA context, or on/off."""
    if fingerprint_sha256 is not None and ca_file is not None:
        msg = "give either fingerprint_sha256 or ca_file, not both"
        raise ValueError(msg)
    if fingerprint_sha256 is not None:
        digest = fingerprint_sha256.replace(":", "").strip().lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            msg = "fingerprint_sha256 must be 64 hex digits (colons allowed)"
            raise ValueError(msg)
        return aiohttp.Fingerprint(bytes.fromhex(digest))
    if ca_file is not None:
        ctx = ssl.create_default_context(cafile=str(ca_file))
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        return ctx
    return verify_ssl


@dataclass(frozen=True, slots=True)
class ClemapLiveData:
    """``GET /v1/live/data``."""

    active_power_w: float
    reactive_power_var: float
    current_a: Phases
    current_sum_a: float
    status: str


@dataclass(frozen=True, slots=True)
class ClemapSettings:
    """``GET /v1/flex_management/setting``."""

    activation: bool | None
    current_limit_a: float
    fallback_current_limit_a: float
    run_state: bool | None = None
    readiness_state: bool | None = None


@dataclass(kw_only=True, eq=False)
class ClemapEdgeClient(DeviceHttpClient):
    """Async client of one CLEMAP-compatible edge device (HTTPS, Basic auth)."""

    host: str
    user: str
    password: str = field(repr=False)
    clock: Clock = field(default_factory=RealClock)
    port: int = 7000
    scheme: str = "https"
    verify_ssl: bool = False
    ca_file: Path | str | None = None
    fingerprint_sha256: str | None = None
    request_timeout_s: float = 8.0
    max_body_bytes: int = MAX_BODY_BYTES
    _keep_alive_path: str = field(default=KEEP_ALIVE_PATHS[0], init=False, repr=False)

    _api = "local API"

    @property
    def device(self) -> str:
        """``clemap-edge host:port``, used in log events and error messages."""
        return f"clemap-edge {self.host}:{self.port}"

    def _base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def _headers(self) -> dict[str, str]:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode("ascii")
        return {"Accept": "application/json", "Authorization": f"Basic {token}"}

    def __post_init__(self) -> None:
        self._ssl = _ssl_setting(self.verify_ssl, self.ca_file, self.fingerprint_sha256)

    def _verify_ssl(self) -> bool | ssl.SSLContext | aiohttp.Fingerprint:
        return self._ssl

    async def live_data(self) -> ClemapLiveData:
        """``GET /v1/live/data``."""
        response = await self._request("GET", LIVE_DATA_PATH)
        live = response.parse(LiveDataReading, "live data")
        current = Phases(live.current_l1_a, live.current_l2_a, live.current_l3_a)
        return ClemapLiveData(
            active_power_w=live.active_power_w,
            reactive_power_var=live.reactive_power_var,
            current_a=current,
            current_sum_a=current.total if live.current_sum_a is None else live.current_sum_a,
            status=live.status,
        )

    async def read(self) -> MeterSample:
        """The child's measuring point as a meter sample (GridMeter protocol)."""
        live = await self.live_data()
        return MeterSample(
            timestamp=self.clock.now(),
            power_w=live.active_power_w,
            current_a=live.current_a,
            reactive_power_var=live.reactive_power_var,
        )

    async def settings(self) -> ClemapSettings:
        """``GET /v1/flex_management/setting``."""
        response = await self._request("GET", SETTINGS_PATH)
        s = response.parse(SettingsReading, "settings")
        return ClemapSettings(
            activation=s.activation,
            current_limit_a=s.current_limit_a,
            fallback_current_limit_a=s.fallback_current_limit_a,
            run_state=s.run_state,
            readiness_state=s.readiness_state,
        )

    async def update_settings(
        self,
        *,
        activation: bool | None = None,
        current_limit_a: float | None = None,
        fallback_current_limit_a: float | None = None,
    ) -> None:
        """``POST /v1/flex_management/setting`` with only the given fields."""
        body = settings_update(
            activation=activation,
            current_limit_a=current_limit_a,
            fallback_current_limit_a=fallback_current_limit_a,
        )
        await self._request("POST", SETTINGS_PATH, payload=body)

    async def set_current_limit(self, a: float) -> None:
        """Write ``CurrentLimit`` (and switch external control on)."""
        await self.update_settings(activation=True, current_limit_a=a)

    async def keep_alive(self) -> None:
        """``POST /v1/keep-alive``; falls back to ``/v1/keep_alive`` once if that is 404/405."""
        try:
            await self._request("POST", self._keep_alive_path)
        except DeviceHttpStatusError as exc:
            if exc.status not in (404, 405):
                raise
            other = next(p for p in KEEP_ALIVE_PATHS if p != self._keep_alive_path)
            log.info("clemap_keep_alive_path", device=self.device, reason=f"404, using {other}")
            self._keep_alive_path = other
            await self._request("POST", other)


class ClemapGridMeter(GridMeter):
    """A CLEMAP-compatible edge used as a meter (GridMeter protocol): its ``/v1/live/data``."""

    def __init__(self, client: ClemapEdgeClient) -> None:
        self.client = client

    async def read(self) -> MeterSample:
        """One sample; DeviceError subclasses when the edge cannot be read."""
        return await self.client.read()


class ClemapChildCircuit:
    """Keeps a child edge's ``CurrentLimit`` set (see module docstring).

    Call :meth:`set_limit` whenever the allocation changes and run :meth:`run` as a task.
    """

    def __init__(
        self,
        client: ClemapEdgeClient,
        clock: Clock,
        *,
        timeout_s: float = 120.0,
        fallback_current_limit_a: float | None = None,
        initial_limit_a: float | None = None,
        tolerance_a: float = 0.01,
    ) -> None:
        self.client = client
        self._clock = clock
        self.timeout_s = timeout_s
        self.period_s = timeout_s / 4.0
        self._fallback_a = fallback_current_limit_a
        self._desired_a = initial_limit_a
        self._tolerance_a = tolerance_a
        self._dirty = initial_limit_a is not None
        self._fallback_sent = fallback_current_limit_a is None
        self._last_ok: float | None = None
        self._wake = asyncio.Event()
        self.last_error: DeviceError | None = None
        self.writes = 0
        self.keep_alives = 0

    @property
    def desired_limit_a(self) -> float | None:
        """The limit this circuit is keeping on the child."""
        return self._desired_a

    @property
    def synced(self) -> bool:
        """True when the last exchange succeeded and the child holds the desired limit."""
        return not self._dirty and self.last_error is None and self._last_ok is not None

    def set_limit(self, current_a: float) -> None:
        """Ask for ``current_a`` A per phase on the child; sent at once by :meth:`run`."""
        current_a = finite(current_a, "child limit (A)", lo=0.0)  # NotFiniteError: ValueError
        if self._desired_a is None or abs(current_a - self._desired_a) > self._tolerance_a:
            self._desired_a = current_a
            self._dirty = True
            self._wake.set()

    async def sync_once(self) -> None:
        """One cycle: write if needed, otherwise keep-alive and verify the read-back."""
        if self._desired_a is None:
            return
        now = self._clock.monotonic()
        if self._last_ok is not None and now - self._last_ok > 0.9 * self.timeout_s:
            self._dirty = True  # a gap long enough for the child to have fallen back
        try:
            if self._dirty:
                await self._write()
            else:
                await self.client.keep_alive()
                self.keep_alives += 1
                settings = await self.client.settings()
                if settings.activation is False or (
                    abs(settings.current_limit_a - self._desired_a) > self._tolerance_a
                ):
                    log.warning(
                        "clemap_child_drift",
                        device=self.client.device,
                        reason="read-back differs from the desired limit; re-sending",
                        child_limit_a=settings.current_limit_a,
                        desired_limit_a=self._desired_a,
                    )
                    await self._write()
        except DeviceError as exc:
            self._dirty = True
            if self.last_error is None:
                log.warning("clemap_child_unreachable", device=self.client.device, reason=str(exc))
            self.last_error = exc
            return
        if self.last_error is not None:
            log.info("clemap_child_back", device=self.client.device, reason="request succeeded")
        self.last_error = None
        self._last_ok = self._clock.monotonic()

    async def _write(self) -> None:
        assert self._desired_a is not None
        desired = self._desired_a
        await self.client.update_settings(
            activation=True,
            current_limit_a=desired,
            fallback_current_limit_a=None if self._fallback_sent else self._fallback_a,
        )
        self._fallback_sent = True
        self.writes += 1
        if self._desired_a == desired:
            self._dirty = False
        log.info(
            "clemap_child_limit_set",
            device=self.client.device,
            reason="limit changed or re-sent after a gap",
            current_limit_a=desired,
        )

    async def run(self) -> None:
        """Sync at once, then every ``timeout_s / 4`` or as soon as the limit changes."""
        while True:
            self._wake.clear()
            try:
                await self.sync_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad cycle never ends the keep-alive task
                self._dirty = True
                self.last_error = DeviceResponseError(f"{type(exc).__name__}: {exc}"[:300])
                log.exception(
                    "clemap_child_cycle_failed", device=self.client.device, reason="unexpected"
                )
            delay_s = self.period_s if self.last_error is None else min(self.period_s, 5.0)
            sleeper = asyncio.ensure_future(self._clock.sleep(delay_s))
            waker = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for fut in (sleeper, waker):
                    if not fut.done():
                        fut.cancel()
                        await reap(fut)  # a cancel of this loop meanwhile is raised, not lost


class ClemapChildCharger(Charger, SupportsLifecycle):
    """A child edge (another fuseguard, or a real CLEMAP) driven as one consumer of this edge.

    Cascading (devices.md 1.9): the parent allocates the child a share like a charger; the share
    is written as the child's ``CurrentLimit`` and kept alive by a :class:`ClemapChildCircuit`
    (re-sent after any gap, keep-alive every timeout/4), and the child keeps its own chargers
    under it. The child's measured currents (``/v1/live/data``) are its draw. If the parent goes
    silent, the child falls back to ``fallback_current_limit_a`` by itself.
    """

    def __init__(
        self,
        client: ClemapEdgeClient,
        clock: Clock,
        *,
        timeout_s: float = 120.0,
        fallback_current_limit_a: float | None = None,
    ) -> None:
        self.client = client
        self.circuit = ClemapChildCircuit(
            client,
            clock,
            timeout_s=timeout_s,
            fallback_current_limit_a=fallback_current_limit_a,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start keeping the child's limit."""
        if self._task is None:
            self._task = asyncio.create_task(self.circuit.run(), name=self.client.device)

    async def close(self) -> None:
        """Stop keeping the limit (the child falls back after its timeout); never raises."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.client.close()

    async def read(self) -> ChargerSample:
        """The child's measuring point as one consumer (CP C while it draws current)."""
        live = await self.client.live_data()
        drawing = live.current_a.max >= 0.5
        return ChargerSample(
            cp_state=CpState.C if drawing else CpState.B,
            ocpp_state=OcppState.CHARGING if drawing else OcppState.SUSPENDEDEVSE,
            current_a=live.current_a.maximum(0.0),
            power_w=live.active_power_w,
            limit_a=self.circuit.desired_limit_a,
        )

    async def set_current_limit(self, current_a: int) -> None:
        """The child's share becomes its ``CurrentLimit`` (sent at once by the circuit task)."""
        self.circuit.set_limit(float(current_a))
