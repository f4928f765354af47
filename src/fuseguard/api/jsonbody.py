"""A JSON request body whatever the ``Content-Type`` says (or without one), as a dependency.

The vendor's own examples (seeds 000, 001) send JSON as ``application/x-www-form-urlencoded``
(curl ``--data``, Ruby ``Net::HTTP``), without a content type (Python ``requests`` with a string
``data=``, Node ``request`` with a string ``body``) or as ``text/plain;charset=UTF-8`` (``fetch``
with a string body). FastAPI decodes a body as JSON only for ``application/json`` (and refuses a
missing header), so those clients got 422. Here the body is read by a dependency instead:

* the bytes are parsed as JSON whatever the content type; the model validates them;
* a body that is not JSON (or not UTF-8, or with ``NaN``) raises the ``json_invalid`` validation
  error the API's handler answers with 400 and a clear message; field errors stay 422;
* an empty body is a missing body (422, like FastAPI's own check);
* more than ``max_bytes`` is refused with 413 before the rest is read.

Being a dependency, it runs after the app's and the route's earlier dependencies, so credentials
(the local API's Basic auth, the EVSE API's ``evsetoken``) are checked before the body is read.
Because FastAPI then no longer sees a body parameter, :func:`json_body_openapi` puts the
``requestBody`` back into the route's OpenAPI (``openapi_extra``).

Use::

    async def post(update: Annotated[Model, json_body(Model)]) -> ...
    router.add_api_route(path, post, methods=["POST"], openapi_extra=json_body_openapi(Model))
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

M = TypeVar("M", bound=BaseModel)

#: Largest body read (the API bodies are a few dozen bytes).
MAX_BODY_BYTES: Final = 16 * 1024


async def read_body(request: Request, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The request body, at most ``max_bytes`` (413 beyond, without reading the rest)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise StarletteHTTPException(413, f"request body larger than {max_bytes} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise StarletteHTTPException(413, f"request body larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constant(name: str) -> Any:
    msg = f"{name} is not JSON"
    raise ValueError(msg)


def parse_json_body(model: type[M], raw: bytes) -> M:
    """Validate ``raw`` JSON against ``model``; RequestValidationError shaped like FastAPI's.

    Decoded as FastAPI decodes ``application/json`` (``json.loads``, then the model in Python
    mode), except that only UTF-8 is accepted and ``NaN``/``Infinity`` are not JSON.
    """
    if not raw.strip():
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError too
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        msg = f"request body is not valid JSON ({reason}); any content type is accepted"
        invalid = {"type": "json_invalid", "loc": ("body",), "msg": msg, "input": {}}
        raise RequestValidationError([invalid]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def json_body(model: type[M], max_bytes: int = MAX_BODY_BYTES) -> Any:
    """``Depends(...)`` yielding ``model`` from a JSON body of any content type."""

    async def dependency(request: Request) -> M:
        return parse_json_body(model, await read_body(request, max_bytes))

    reader: Callable[[Request], Awaitable[M]] = dependency
    return Depends(reader)


def json_body_openapi(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra`` documenting ``model`` as the JSON request body."""
    schema = model.model_json_schema(
        by_alias=True, mode="validation", ref_template="#/components/schemas/{model}"
    )
    schema.pop("$defs", None)
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema}},
            "description": "JSON; accepted with any Content-Type (or none).",
        }
    }


__all__ = ["MAX_BODY_BYTES", "json_body", "json_body_openapi", "parse_json_body", "read_body"]
