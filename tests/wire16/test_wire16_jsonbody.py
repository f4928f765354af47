"""Issue 16: the JSON body reader (any content type, 400 for non-JSON, 413, after auth)."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict

from fuseguard.api.jsonbody import MAX_BODY_BYTES, json_body, json_body_openapi


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current: int
    ratio: float = 1.0


seen: list[str] = []


def auth(token: Annotated[str | None, Header()] = None) -> None:
    seen.append("auth")
    if token != "ok":
        raise HTTPException(401, "no")


async def post(body: Annotated[Body, json_body(Body)]) -> dict[str, float]:
    return {"current": body.current, "ratio": body.ratio}


async def validation(_r: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    status = 400 if errors[0]["type"] == "json_invalid" else 422
    return JSONResponse({"errors": [dict(e) for e in errors]}, status_code=status, headers=None)


app = FastAPI(dependencies=[Depends(auth)], exception_handlers={RequestValidationError: validation})
app.add_api_route("/x", post, methods=["POST"], openapi_extra=json_body_openapi(Body))
OK = {"token": "ok"}


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain;charset=UTF-8",
        "application/octet-stream",
        "multipart/form-data; boundary=x",
    ],
)
def test_json_is_accepted_whatever_the_content_type(content_type: str | None):
    headers = dict(OK) if content_type is None else {**OK, "Content-Type": content_type}
    with TestClient(app) as c:
        r = c.post("/x", content=b'{"current": 10, "ratio": 0.5}', headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {"current": 10, "ratio": 0.5}


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"current=10", 400, "json_invalid"),
        (b'{"current": 10', 400, "json_invalid"),
        (b'{"current": NaN}', 400, "json_invalid"),
        (b'{"current": 1}\xff', 400, "json_invalid"),
        (b"[" * 5000 + b"]" * 5000, 400, "json_invalid"),
        (b"", 422, "missing"),
        (b"   ", 422, "missing"),
        (b"[1, 2]", 422, "model_type"),
        (b'{"current": "ten"}', 422, "int_parsing"),
        (b'{"current": 1, "colour": "red"}', 422, "extra_forbidden"),
    ],
)
def test_non_json_is_400_and_bad_fields_are_422(body: bytes, status: int, kind: str):
    with TestClient(app) as c:
        r = c.post("/x", content=body, headers={**OK, "Content-Type": "text/plain"})
    assert r.status_code == status, r.text
    error = r.json()["errors"][0]
    assert error["type"] == kind
    assert error["loc"][0] == "body"
    if status == 400:
        assert "not valid JSON" in error["msg"]


def test_credentials_are_checked_before_the_body_is_read():
    seen.clear()
    with TestClient(app) as c:
        r = c.post("/x", content=b"not json at all", headers={"token": "wrong"})
    assert r.status_code == 401  # not 400: the body was never looked at
    assert seen == ["auth"]


def test_oversized_body_is_413():
    big = b'{"current": 1, "pad": "' + b"x" * MAX_BODY_BYTES + b'"}'
    with TestClient(app) as c:
        assert c.post("/x", content=big, headers=OK).status_code == 413

        def chunks():  # no Content-Length: the limit applies while reading
            yield big[:1000]
            yield big[1000:]

        assert c.post("/x", content=chunks(), headers=OK).status_code == 413


def test_openapi_keeps_the_request_body():
    op = app.openapi()["paths"]["/x"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert op["requestBody"]["required"] is True
    assert schema["required"] == ["current"] and "ratio" in schema["properties"]
