"""The EVSE API's error answers (Feathers form) and what of a client's path goes into them.

Split from :mod:`fuseguard.api.evse` (which re-exports these names).
"""

from typing import Any

from fastapi.responses import JSONResponse

from fuseguard.api.evse_models import ErrorBody

TOKEN_HEADER = "evsetoken"  # noqa: S105  (a header name, not a secret)


_FEATHERS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "bad-request"),
    401: ("NotAuthenticated", "not-authenticated"),
    403: ("Forbidden", "forbidden"),
    404: ("NotFound", "not-found"),
    405: ("MethodNotAllowed", "method-not-allowed"),
    422: ("Unprocessable", "unprocessable"),
    500: ("GeneralError", "general-error"),
}


class ApiError(Exception):
    """An error answer in Feathers form."""

    def __init__(self, code: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def error_body(code: int, message: str, field: str | None = None) -> dict[str, Any]:
    """The JSON error object for ``code``."""
    name, class_name = _FEATHERS.get(code, ("GeneralError", "general-error"))
    body = ErrorBody(name=name, message=message, code=code, className=class_name, field=field)
    return body.model_dump()


def error_response(code: int, message: str, field: str | None = None) -> JSONResponse:
    """The error answer for ``code`` (401 names the token header to use)."""
    headers = {"WWW-Authenticate": TOKEN_HEADER} if code == 401 else None
    return JSONResponse(error_body(code, message, field), status_code=code, headers=headers)


#: at most this many characters of a path id go into a log line (the path is the client's)
LOGGED_ID_CHARS = 64


def clip_id(value: str) -> str:
    """``value`` for a log line or an error message: at most :data:`LOGGED_ID_CHARS` characters.

    An unauthenticated request's path ids went into the log whole: a flood of 7 000-character ids
    with a wrong token wrote 61 MB of log in 10 s against the demo.
    """
    if len(value) <= LOGGED_ID_CHARS:
        return value
    return f"{value[:LOGGED_ID_CHARS]}...({len(value)} chars)"


__all__ = ["LOGGED_ID_CHARS", "TOKEN_HEADER", "ApiError", "clip_id", "error_body", "error_response"]
