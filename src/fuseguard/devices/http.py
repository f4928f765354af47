"""The one HTTP transport of device clients: timeouts, bounded bodies, one error table, retries.

Every HTTP driver (CEMM, Bender legacy REST, CLEMAP child edge) is a :class:`DeviceHttpClient`
and does all its HTTP through its one ``_request()``, modelled on python-peblar's ``request()``:

* all I/O of one attempt runs inside ``asyncio.timeout(request_timeout_s)``;
* a body larger than ``max_body_bytes`` is garbage, not a reason to run out of memory: a
  ``Content-Length`` above the bound is refused before reading, a chunked body is read in chunks
  and abandoned as soon as it passes the bound;
* failures map onto the shallow tree of :mod:`fuseguard.control.ports` through ONE table
  (:data:`TRANSPORT_ERRORS` for what happens on the wire, :func:`status_error` for what the
  device answers);
* connection errors (refused, reset, timeout) are retried with exponential backoff
  (:mod:`fuseguard.devices.retry`, tenacity); garbage and error statuses never are;
* JSON bodies are parsed through a pydantic model per response (:meth:`DeviceResponse.parse`),
  so a wrong shape, a NaN or an out-of-range number is a :class:`DeviceResponseError` naming the
  device and the field, never a number.

The session is injected (``session=``); without one the client creates its own on first use and
closes it in :meth:`DeviceHttpClient.close`. Both come from :func:`device_session`: a connection
stays open between requests for :data:`KEEPALIVE_S`, longer than any device's polling interval
(a Bender's REST ``full_state`` comes every 10-20 s), so a device that keeps idle connections
open is asked over the same one; aiohttp's own default (15 s) closed it between two fetches, and
a new TCP connection cost more client CPU than the request itself (round 15: 390 against 150 us
per ``full_state``). A device that closes idle connections sooner costs a new connection, as
before; one closed in the instant a request went out is retried once at once on a new one
(aiohttp, for idempotent requests: ``retry_persistent_connection``), never more, with no wait.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import aiohttp
import structlog
from pydantic import BaseModel, ValidationError

from fuseguard.control.ports import (
    DeviceAuthError,
    DeviceConnectionError,
    DeviceError,
    DeviceResponseError,
    DeviceTimeoutError,
)
from fuseguard.devices.retry import with_retries

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

#: How long an idle connection to a device stays open for the next request (module docstring).
KEEPALIVE_S = 60.0

#: Largest body a device may answer with (1 MiB: a CEMM day history is about 40 kB).
MAX_BODY_BYTES = 1 << 20
_CHUNK_BYTES = 64 * 1024
_DETAIL_CHARS = 200


def device_session() -> aiohttp.ClientSession:
    """The HTTP session of device clients: idle connections kept :data:`KEEPALIVE_S`."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_S))


class DeviceHttpStatusError(DeviceResponseError):
    """The device answered with an HTTP error status (``status``)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class DeviceNotFoundError(DeviceHttpStatusError):
    """404: the path (alias, key, endpoint) does not exist on this device."""


#: What goes wrong on the wire, first match wins: aiohttp's own timeouts are connection errors
#: too, so ``TimeoutError`` comes first; a connection that breaks is retried, an answer that is
#: not HTTP (a payload or protocol error) is garbage and is not.
TRANSPORT_ERRORS: tuple[tuple[type[BaseException], type[DeviceError]], ...] = (
    (TimeoutError, DeviceTimeoutError),
    (aiohttp.ClientConnectionError, DeviceConnectionError),
    (OSError, DeviceConnectionError),
    (aiohttp.ClientError, DeviceResponseError),
)


def status_error(
    status: int, message: str, not_found: type[DeviceNotFoundError] = DeviceNotFoundError
) -> DeviceResponseError:
    """The error for an HTTP error status: 401/403 -> auth, 404 -> ``not_found``, else response."""
    if status in (401, 403):
        return DeviceAuthError(message)
    if status == 404:
        return not_found(message, status)
    return DeviceHttpStatusError(message, status)


def describe_validation_error(err: ValidationError) -> str:
    """One line for a pydantic error: the first failing field and how many more (no input echo)."""
    problems = err.errors(include_url=False, include_input=False)
    if not problems:
        return "invalid"
    first = problems[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    text = f"{where}: {first['msg']}"
    if len(problems) > 1:
        text += f" (and {len(problems) - 1} more)"
    return text[:_DETAIL_CHARS]


def garbage(device: str, reason: str) -> DeviceResponseError:
    """A :class:`DeviceResponseError` for an answer that is not valid data (logged here)."""
    log.warning("device_garbage", device=device, reason=reason)
    return DeviceResponseError(garbage_message(device, reason))


def garbage_message(device: str, reason: str) -> str:
    """How every "not valid data" error reads: ``<device>: garbage answer: <reason>``."""
    return f"{device}: garbage answer: {reason}"


@dataclass(frozen=True, slots=True)
class DeviceResponse:
    """A successful (status < 400) answer, its body already read within the size bound."""

    device: str
    what: str
    status: int
    content_type: str
    body: bytes

    def text(self) -> str:
        """The body as UTF-8 text; garbage when it is not."""
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as err:
            raise garbage(self.device, f"{self.what} is not UTF-8 text") from err

    def parse(self, model: type[M], what: str, *, require_json_type: bool = False) -> M:
        """The body validated as ``model`` (strict JSON, finite numbers); garbage otherwise."""
        if require_json_type and self.content_type != "application/json":
            reason = f"{self.what} answered {self.content_type!r}, not application/json"
            raise garbage(self.device, reason)
        try:
            return model.model_validate_json(self.body)
        except ValidationError as err:
            reason = f"unexpected {what} response: {describe_validation_error(err)}"
            raise garbage(self.device, reason) from err


@dataclass(kw_only=True, eq=False)
class DeviceHttpClient:
    """Base of every HTTP device client: the configuration and the one :meth:`_request`.

    A subclass is itself a ``@dataclass(kw_only=True)`` adding its address fields and provides
    :attr:`device` (the name in logs and errors) and :meth:`_base_url`; it may override
    :meth:`_headers`, :meth:`_verify_ssl`, :attr:`_api` (the API named in messages: ``"REST"``
    gives "no REST answer within ...") and :attr:`_not_found` (its 404 error class). Without an
    injected ``session`` the client creates its own on first use and closes it in :meth:`close`.
    """

    session: aiohttp.ClientSession | None = None
    request_timeout_s: float = 5.0
    retry_attempts: int = 3
    retry_backoff_s: float = 0.2
    max_body_bytes: int = MAX_BODY_BYTES
    _close_session: bool = field(default=False, init=False, repr=False)

    _api: ClassVar[str] = ""
    _not_found: ClassVar[type[DeviceNotFoundError]] = DeviceNotFoundError

    @property
    def device(self) -> str:
        """The device's name in log events and error messages."""
        raise NotImplementedError

    def _base_url(self) -> str:
        """``scheme://host:port[/prefix]``; request paths are appended to it."""
        raise NotImplementedError

    def _headers(self) -> Mapping[str, str]:
        """Headers sent with every request (authentication, ``Accept``)."""
        return {}

    def _verify_ssl(self) -> bool | ssl.SSLContext | aiohttp.Fingerprint:
        """aiohttp's ``ssl``: True verifies the certificate, False accepts a self-signed one; a
        context verifies against its CA, a fingerprint pins the certificate."""
        return True

    async def close(self) -> None:
        """Close the session if this client created it."""
        if self._close_session and self.session is not None:
            await self.session.close()
            self.session = None
            self._close_session = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> DeviceResponse:
        """One exchange, retried on connection errors; raises a ``DeviceError`` subclass."""
        what = f"{method} {path}"
        try:
            return await with_retries(
                lambda: self._attempt(method, path, what, params, payload),
                attempts=self.retry_attempts,
                backoff_s=self.retry_backoff_s,
            )
        except DeviceError as err:
            log.warning("device_request_failed", device=self.device, op=what, reason=str(err))
            raise

    def _http_session(self) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = device_session()
            self._close_session = True
        return self.session

    async def _attempt(
        self,
        method: str,
        path: str,
        what: str,
        params: Mapping[str, str] | None,
        payload: Mapping[str, Any] | None,
    ) -> DeviceResponse:
        try:
            async with asyncio.timeout(self.request_timeout_s):
                async with self._http_session().request(
                    method,
                    self._base_url() + path,
                    params=params,
                    json=payload,
                    headers=self._headers(),
                    ssl=self._verify_ssl(),
                ) as resp:
                    body = await self._read_body(resp, what)
                    status, content_type = resp.status, resp.content_type
        except aiohttp.ServerFingerprintMismatch as exc:
            msg = f"{self.device}: {what}: certificate does not match the pinned fingerprint"
            raise DeviceAuthError(msg) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise self._transport_error(exc, what) from exc
        if status >= 400:
            message = f"{self.device}: {what} answered HTTP {status}: {_error_detail(body)}"
            raise status_error(status, message, self._not_found)
        return DeviceResponse(self.device, what, status, content_type, body)

    async def _read_body(self, resp: aiohttp.ClientResponse, what: str) -> bytes:
        """The body, or garbage as soon as it is longer than ``max_body_bytes``."""
        limit = self.max_body_bytes
        announced = resp.content_length
        if announced is not None:
            if announced > limit:
                reason = f"{what} announces {announced} bytes, more than {limit}"
                raise DeviceResponseError(garbage_message(self.device, reason))
            return await resp.read()  # the parser stops at Content-Length: bounded
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(_CHUNK_BYTES):
            size += len(chunk)
            if size > limit:
                reason = f"{what} answered more than {limit} bytes"
                raise DeviceResponseError(garbage_message(self.device, reason))
            chunks.append(chunk)
        return b"".join(chunks)

    def _transport_error(self, exc: BaseException, what: str) -> DeviceError:
        label = f"{self._api} " if self._api else ""
        error: type[DeviceError] = DeviceConnectionError
        for caught, mapped in TRANSPORT_ERRORS:
            if isinstance(exc, caught):
                error = mapped
                break
        reason = str(exc) or type(exc).__name__
        if error is DeviceTimeoutError:
            timeout = f"{self.request_timeout_s:g}"
            return error(f"{self.device}: no {label}answer within {timeout} s to {what}")
        if error is DeviceConnectionError:
            return error(f"{self.device}: {label}connection failed on {what}: {reason}")
        return error(garbage_message(self.device, f"{label}{what} is not valid HTTP: {reason}"))


def _error_detail(body: bytes) -> str:
    """What an error body says: ``error``/``message`` of a JSON object, else the text's start."""
    text = body[: 4 * _DETAIL_CHARS].decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except ValueError:
        return text[:_DETAIL_CHARS]
    if isinstance(parsed, dict):
        parts = [str(parsed[k]) for k in ("error", "message") if k in parsed]
        if parts:
            return ": ".join(parts)[:_DETAIL_CHARS]
    return text[:_DETAIL_CHARS]


__all__ = [
    "KEEPALIVE_S",
    "MAX_BODY_BYTES",
    "TRANSPORT_ERRORS",
    "DeviceHttpClient",
    "DeviceHttpStatusError",
    "DeviceNotFoundError",
    "DeviceResponse",
    "describe_validation_error",
    "device_session",
    "garbage",
    "garbage_message",
    "status_error",
]
