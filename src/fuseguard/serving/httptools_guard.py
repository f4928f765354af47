"""uvicorn's httptools protocol with the guards of :class:`~.protocols.GuardedH11Protocol`.

Imported only when chosen (:func:`~.choice.http_protocol`): httptools is optional.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from fuseguard.serving.protocols import _client, _Guarded, log


class _HeadTooLargeError(Exception):
    pass


class GuardedHttpToolsProtocol(_Guarded, HttpToolsProtocol):
    """uvicorn's httptools protocol with the same guards as :class:`GuardedH11Protocol`.

    httptools (llhttp) has no bound on a request head, so this one counts it: a request line and
    headers above ``max_header_bytes`` stop the parser and are answered 431 (connection closed).
    """

    _head_bytes = 0
    _head_too_large = False

    def on_message_begin(self) -> None:
        """A new request head: count from zero."""
        self._head_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        """Count the URL (it may come in pieces)."""
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count the header line."""
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self._limits.max_header_bytes:
            self._head_too_large = True
            raise _HeadTooLargeError  # stops the parser; uvicorn answers with send_400_response

    def send_400_response(self, msg: str) -> None:
        """431 for a head over the limit, else uvicorn's 400."""
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        limit = self._limits.max_header_bytes
        log.info("http_head_refused", device=_client(self.client), reason=f"above {limit} bytes")
        body = json.dumps({"error": "header_too_large", "message": f"head above {limit} bytes"})
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n"
            b"content-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n{body}".encode()
        )
        self.transport.close()
