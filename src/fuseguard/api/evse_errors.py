"""The EVSE API's error answers (Feathers form).

Split from :mod:`fuseguard.api.evse`; used by it, the web actions and the cloud app.
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


__all__ = ["TOKEN_HEADER", "ApiError", "error_body", "error_response"]
