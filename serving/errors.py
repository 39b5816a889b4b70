"""Request errors, shaped like OpenAI's so that clients written for the OpenAI API report them unchanged:

    {"error": {"message": "...", "type": "invalid_request_error", "param": "texts[3]", "code": "..."}}

Messages name the field and the fix. They never quote the submitted text: error bodies and logs must not
carry user content (a request can hold anything, including personal data).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, Field

from harmscan.errors import InputError

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
SERVER_ERROR = "server_error"


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong and how to fix it; never quotes the submitted text.")
    type: str = Field(description="invalid_request_error, authentication_error or server_error")
    param: str | None = Field(description="The request field at fault, e.g. 'texts[3]'; null when none.")
    code: str | None = Field(description="A stable code for the error (docs/serving.md#errors).")


class ErrorResponse(BaseModel):
    """Every error under /v1, in OpenAI's shape. The server builds its error bodies with this model and
    /docs.json documents it, so a generated client parses what the server sends."""

    error: ErrorDetail


class RequestError(InputError):
    """A client error, answered with a 4xx (or 503 when the server is overloaded)."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str = INVALID_REQUEST,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        return error_body(self.message, type=self.type, param=self.param, code=self.code)

    def to_bytes(self) -> bytes:
        return json.dumps(self.body()).encode("utf-8")


def error_body(message: str, *, type: str = INVALID_REQUEST, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return ErrorResponse(error=ErrorDetail(message=message, type=type, param=param, code=code)).model_dump()


# Messages for errors produced by BentoML or Starlette themselves (routing, overload), which the middleware
# rewrites into the shape above.
GENERIC_MESSAGES: dict[int, tuple[str, str, str]] = {
    400: ("the request could not be parsed: send a JSON object as documented in docs/serving.md",
          INVALID_REQUEST, "invalid_request"),
    404: ("no such endpoint: see docs/serving.md for the API", INVALID_REQUEST, "not_found"),
    405: ("method not allowed: /v1/scan and /v1/moderations take POST, /v1/labels takes GET",
          INVALID_REQUEST, "method_not_allowed"),
    408: ("the request took too long to arrive: send it again", INVALID_REQUEST, "request_timeout"),
    413: ("the request body is too large: send fewer or shorter texts", INVALID_REQUEST, "body_too_large"),
    415: ("unsupported content type: send application/json", INVALID_REQUEST, "unsupported_media_type"),
    503: ("the server is overloaded or not ready: retry later", SERVER_ERROR, "overloaded"),
    504: ("the request timed out on the server: send fewer or shorter texts", SERVER_ERROR, "timeout"),
}


def generic_error(status: int, request_id: str | None = None) -> dict[str, Any]:
    if status in GENERIC_MESSAGES:
        message, type_, code = GENERIC_MESSAGES[status]
    elif status >= 500:
        message, type_, code = ("internal server error", SERVER_ERROR, "internal_error")
    else:
        message, type_, code = (f"request failed with HTTP {status}", INVALID_REQUEST, None)  # type: ignore[assignment]
    if request_id and status >= 500:
        message += f" (request id {request_id}; see the server log)"
    return error_body(message, type=type_, code=code)
