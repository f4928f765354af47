"""The OCPP 1.6J central system on the edge: a WebSocket server for the configured charge points.

URL ``ws(s)://HOST:PORT/ocpp/{identity}`` (also ``/{identity}``), subprotocol ``ocpp1.6``.
Security profile 1 (HTTP Basic with the identity and its ``ocpp_password``) and 2 (the same over
TLS) are checked in the opening handshake: every refusal (an unknown identity, a wrong password,
a path that is no OCPP URL) gets the same ``401`` with the Basic challenge before any upgrade, so
identities cannot be enumerated. Refusals and failed handshakes are logged one line per burst
of each reason and peer host, at most ``max_pending_connections`` connections may be in their
opening handshake at once (at most ``max_pending_connections_per_peer`` of them from one peer
host; an authenticated charge point holds none), and one must finish within ``open_timeout_s``
(:mod:`fuseguard.devices.ocpp.guard`). Profile 0 (no password) is accepted only for charge
points configured without one and only when ``allow_no_auth`` is set (such an identity is then
known to whoever tries it). Frames above ``max_frame_bytes`` close the connection (1009); a
second connection of the same identity replaces the first.

The server is shared by every connector of every OCPP charger; it is started by the first
connector driver's ``start()`` and stopped with the last ``close()`` (see
:class:`~fuseguard.devices.ocpp.connector.OcppConnector`): the central system must accept
connections before the controller's first read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import secrets
import ssl
from collections.abc import Mapping
from http import HTTPStatus
from pathlib import Path
from urllib.parse import unquote

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from fuseguard.devices.ocpp.guard import PendingCap, WebsocketsLog, guarded_connection
from fuseguard.devices.ocpp.relay import Relay, RelayMemory
from fuseguard.devices.ocpp.session import OcppSession
from fuseguard.devices.ocpp.spool import Spool
from fuseguard.devices.ocpp.station import Station
from fuseguard.serving.throttle import KeyedLogThrottle, peer_host

log = structlog.get_logger(__name__)

SUBPROTOCOL = "ocpp1.6"
MAX_IDENTITY_CHARS = 48  # OCPP 1.6 security whitepaper: identity is at most 48 characters
#: connections in their opening handshake at once (TCP accepted, not yet a session)
MAX_PENDING_CONNECTIONS = 128
#: the opening handshake (and the TLS handshake before it) must finish within this
OPEN_TIMEOUT_S = 10.0


def server_ssl_context(cert_file: object, key_file: object) -> ssl.SSLContext:
    """TLS for security profile 2 (TLS 1.2 or newer, the certificate chain from the files)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert_file), str(key_file))
    return context


def identity_from_path(path: str) -> str | None:
    """``/ocpp/{id}`` or ``/{id}`` -> ``id`` (URL-decoded); None for any other path."""
    path = path.split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    if len(parts) == 2 and parts[0] == "ocpp":
        raw = parts[1]
    elif len(parts) == 1:
        raw = parts[0]
    else:
        return None
    identity = unquote(raw)
    if not 0 < len(identity) <= MAX_IDENTITY_CHARS or not identity.isprintable():
        return None
    return identity


def basic_credentials(headers: Headers) -> tuple[str, str] | None:
    """User and password of an ``Authorization: Basic`` header, or None."""
    value = headers.get("Authorization")
    if value is None or len(value) > 512:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class OcppCentralSystem:
    """The WebSocket server and the stations it serves."""

    def __init__(
        self,
        stations: Mapping[str, Station],
        *,
        host: str = "0.0.0.0",
        port: int = 9000,
        ssl_context: ssl.SSLContext | None = None,
        allow_no_auth: bool = False,
        max_frame_bytes: int = 65_536,
        upstream: str | None = None,
        spool_dir: Path | None = None,
        max_pending_connections: int = MAX_PENDING_CONNECTIONS,
        open_timeout_s: float = OPEN_TIMEOUT_S,
        max_pending_connections_per_peer: int | None = None,
    ) -> None:
        self.stations = dict(stations)
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.allow_no_auth = allow_no_auth
        self.max_frame_bytes = max_frame_bytes
        self.refused = 0
        # compared against for an unknown identity, so it costs what a known one costs
        self._no_password = secrets.token_urlsafe(24)
        self.open_timeout_s = open_timeout_s
        # None: half of max_pending_connections (guard.default_pending_per_peer)
        self.pending_cap = PendingCap(
            max_pending_connections, max_pending_per_peer=max_pending_connections_per_peer
        )
        self.websockets_log = WebsocketsLog()
        # one line per burst for each refusal reason (a closed set, see _check_handshake) and
        # peer host: one peer's flood cannot hide another peer's first refusal
        self._refused_log = KeyedLogThrottle()
        #: local controller mode: the operator's backend, and where undelivered frames wait
        self.upstream = upstream
        self.spool_dir = spool_dir or Path("data") / "ocpp-spool"
        self._memories: dict[str, RelayMemory] = {}
        self._server: Server | None = None
        self._users = 0
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        """Base URL charge points connect to (append the identity)."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"{scheme}://{host}:{self.port}/ocpp"

    async def acquire(self) -> None:
        """Start the server on first use (every connector driver calls this in ``start``)."""
        async with self._lock:
            self._users += 1
            if self._server is None:
                await self.start()

    async def release(self) -> None:
        """Stop the server when its last user is gone."""
        async with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0:
                await self.close()

    async def start(self) -> None:
        """Listen; ``port`` 0 picks a free port (read it back from :attr:`port`)."""
        if self._server is not None:
            return
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
            process_request=self._check_handshake,
            max_size=self.max_frame_bytes,
            # TLS is run by the connection class after admission (guard.py), not by asyncio
            # before it: a bare connect to wss:// held 200 KB+ of TLS buffers, uncapped
            open_timeout=self.open_timeout_s,
            logger=self.websockets_log,
            create_connection=guarded_connection(
                self.pending_cap, self.ssl_context, self.open_timeout_s
            ),
            ping_interval=30,
            ping_timeout=30,
        )
        sockets = list(self._server.sockets)
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("ocpp_server_started", device="ocpp", reason="listening", url=self.url,
                 charge_points=len(self.stations))  # fmt: skip

    async def close(self) -> None:
        """Stop listening, close every session, stop every station's tasks. Never raises."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await server.wait_closed()
        for station in self.stations.values():
            await station.close()

    # --- handshake ---------------------------------------------------------------------------

    def _refuse(self, connection: ServerConnection, identity: str | None, reason: str) -> Response:
        """The one answer to every refused handshake: 401 with the Basic challenge (the same
        status, body and headers whether the identity exists or not)."""
        self.refused += 1
        host = peer_host(connection.remote_address)
        self._refused_log.warning(log, "ocpp_handshake_refused", reason=reason, host=host,
                                  device=f"ocpp:{identity}", peer=host, status=401)  # fmt: skip
        response = connection.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="fuseguard OCPP", charset="UTF-8"'
        return response

    def _check_handshake(self, connection: ServerConnection, request: Request) -> Response | None:
        """Security profile 1/2 before the upgrade: 401 unless the identity and password match."""
        identity = identity_from_path(request.path)
        if identity is None:
            return self._refuse(connection, None, "not an OCPP path")
        station = self.stations.get(identity)
        expected = station.config.password if station is not None else self._no_password
        if expected is None:  # a known charge point configured without a password (profile 0)
            if not self.allow_no_auth:
                return self._refuse(connection, identity, "no password configured")
            return None
        creds = basic_credentials(request.headers)
        user, password = creds if creds is not None else ("", "")
        # both comparisons always run, for a known identity or not: the same cost either way
        user_ok = hmac.compare_digest(user.encode(), identity.encode())
        password_ok = hmac.compare_digest(password.encode(), expected.encode())
        if station is None:
            return self._refuse(connection, identity, "unknown identity")
        if creds is None:
            return self._refuse(connection, identity, "no credentials")
        if not (user_ok and password_ok):
            return self._refuse(connection, identity, "wrong credentials")
        return None

    # --- sessions ----------------------------------------------------------------------------

    async def _handle(self, connection: ServerConnection) -> None:
        request = connection.request
        identity = identity_from_path(request.path) if request is not None else None
        station = self.stations.get(identity) if identity is not None else None
        if station is None or identity is None:  # the handshake check makes this unreachable
            await connection.close(1008, "unknown charge point")
            return
        session = OcppSession(
            identity, connection, station, response_timeout_s=station.config.call_timeout_s
        )
        relay = self._relay(identity, station, session) if self.upstream else None
        old = station.attach(session)
        if old is not None:
            log.warning("ocpp_replaced", device=station.name, reason="second connection")
            with contextlib.suppress(Exception):
                await old.close("replaced by a new connection")
        try:
            await session.start()
        except ConnectionClosed:
            pass
        finally:
            station.detach(session)
            if relay is not None:
                await relay.close()

    def _relay(self, identity: str, station: Station, session: OcppSession) -> Relay:
        """Local controller mode: the session's link to the backend, with the same identity."""
        assert self.upstream is not None
        memory = self._memories.get(identity)
        if memory is None:
            memory = RelayMemory(Spool.for_identity(self.spool_dir, identity))
            self._memories[identity] = memory
        relay = Relay(
            identity=identity,
            upstream_url=self.upstream,
            password=station.config.password,
            memory=memory,
            clock=station.clock,
            to_charge_point=session.send_frame,
            call_lock=session.call_lock,
            on_profiles_changed=station.profiles_changed,
            on_transaction=station.set_transaction,
        )
        session.relay = relay
        relay.start()
        return relay


__all__ = [
    "SUBPROTOCOL",
    "OcppCentralSystem",
    "basic_credentials",
    "identity_from_path",
    "server_ssl_context",
]
