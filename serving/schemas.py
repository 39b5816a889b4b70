"""Request and response models of the HTTP API: one definition, used to validate bodies (middleware), to call
the endpoints (BentoML) and to document them (OpenAPI).

Requests are validated strictly (no silent coercion: `"texts": "abc"` is an error, not three texts) and
pydantic's errors are rewritten into one OpenAI-shaped error that names the field, without quoting input.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harmscan.serving.errors import ErrorResponse, RequestError

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class ScanRequest(BaseModel):
    """POST /v1/scan"""

    # Unknown fields are refused so that a typo ("text", "threshold") is reported instead of ignored.
    model_config = ConfigDict(strict=True, extra="forbid")

    texts: list[str] = Field(description="Texts to scan, in order; an empty list returns no results.")
    thresholds: dict[str, Probability] | None = Field(
        default=None, description="Per-label threshold overrides for this request: {label: probability}."
    )
    return_spans: bool = Field(
        default=False, description="Also return the character span of the top-scoring window of each text."
    )


class TextInput(BaseModel):
    """One part of OpenAI's multi-modal moderation input; only text parts are supported."""

    model_config = ConfigDict(strict=True, extra="ignore")

    type: Literal["text"]
    text: str


class ModerationRequest(BaseModel):
    """POST /v1/moderations, OpenAI's request shape."""

    # OpenAI clients may send fields this server has no use for: ignore them, as the API is meant to be a
    # drop-in replacement.
    model_config = ConfigDict(strict=True, extra="ignore")

    input: str | list[str] | list[TextInput]
    model: str | None = None

    def texts(self) -> list[str]:
        return moderation_texts(self.input)


def moderation_texts(value: str | list[str] | list[TextInput]) -> list[str]:
    """The texts of a validated `input` (the endpoint receives the field, not the model: no second parse)."""
    if isinstance(value, str):
        return [value]
    return [item if isinstance(item, str) else item.text for item in value]


class ScanItem(BaseModel):
    scores: dict[str, float]
    flagged: list[str]
    decision: Literal["flag", "allow"]
    span: dict[str, Any] | None = None
    windows: int | None = None


class ScanResponse(BaseModel):
    id: str
    model: str
    results: list[ScanItem]


class ModerationResult(BaseModel):
    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


class ModerationResponse(BaseModel):
    id: str
    model: str
    results: list[ModerationResult]


# -- the OpenAPI spec's error responses -------------------------------------------------------------------
# What an endpoint under /v1 answers besides 200, every one with an ErrorResponse body (docs/serving.md#errors).
ERROR_RESPONSES = {
    400: "Invalid request: body, field, type or value, or over a limit (texts, characters, windows)",
    401: "API keys are configured and the key is missing or wrong",
    404: "No such endpoint",
    405: "Wrong method for this endpoint",
    413: "Request body over HARMSCAN_MAX_BODY_BYTES",
    415: "Compressed request body (Content-Encoding)",
    429: "The queue for the model is full (HARMSCAN_MAX_QUEUE); see Retry-After",
    500: "Server fault (never client input); the request id is in the message",
    503: "Overloaded, shutting down, or the audit log cannot be written (fail closed); see Retry-After",
    504: "Timed out on the server",
}
_SCHEMA_REF = "#/components/schemas/{model}"
# BentoML's own error schemas ({"error": "<string>"}), which the server never sends under /v1.
_BENTOML_ERRORS = ("InvalidArgument", "NotFound", "InternalServerError")


def document_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI spec whose /v1 operations document every error as ErrorResponse (OpenAI's shape)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorResponse.model_json_schema(ref_template=_SCHEMA_REF)
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ErrorResponse"] = error_schema
    content = {"application/json": {"schema": {"$ref": _SCHEMA_REF.format(model="ErrorResponse")}}}
    for path, item in spec.get("paths", {}).items():
        if not path.startswith("/v1/"):
            continue
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            kept = {k: v for k, v in operation["responses"].items() if not (str(k).isdigit() and int(k) >= 400)}
            kept.update({str(status): {"description": why, "content": content}
                         for status, why in ERROR_RESPONSES.items()})
            operation["responses"] = kept
    still_used = repr(spec.get("paths", {}))
    for name in _BENTOML_ERRORS:
        if _SCHEMA_REF.format(model=name) not in still_used:
            schemas.pop(name, None)
    return spec


_served_labels: list[str] | None = None


def set_served_labels(labels: list[str]) -> None:
    """The labels of the bundle this process serves (set by the service at start-up), for the spec."""
    global _served_labels
    _served_labels = list(labels)


def served_labels() -> list[str] | None:
    return _served_labels


# The endpoints' request and response models, by path: the spec documents what the middleware validates
# with, not BentoML's reading of the endpoint signatures (which lost `input`'s list forms, `model`'s null,
# `extra="forbid"` and the body being required).
API_MODELS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "/v1/scan": (ScanRequest, ScanResponse),
    "/v1/moderations": (ModerationRequest, ModerationResponse),
}


def _model_schema(model: type[BaseModel], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = _openapi30(model.model_json_schema(ref_template=_SCHEMA_REF))
    schemas.update(schema.pop("$defs", {}))
    return schema


def _openapi30(node: Any) -> Any:
    """BentoML publishes OpenAPI 3.0, whose schema objects have no `const` (a JSON Schema 2019 keyword that
    3.0 tools ignore: a generated client, or schemathesis, would then send any string as a content part's
    `type`): say it as a one-value `enum`."""
    if isinstance(node, dict):
        out = {k: _openapi30(v) for k, v in node.items() if k != "const"}
        if "const" in node:
            out["enum"] = [node["const"]]
        return out
    if isinstance(node, list):
        return [_openapi30(v) for v in node]
    return node


def _bound_texts(schema: dict[str, Any], limits: dict[str, int]) -> None:
    """The per-request limits a schema can state: texts per request, characters per text."""
    if schema.get("type") == "string":
        schema["maxLength"] = limits["max_chars_per_text"]
    elif schema.get("type") == "array":
        schema["maxItems"] = limits["max_texts_per_request"]
        if schema.get("items", {}).get("type") == "string":
            schema["items"]["maxLength"] = limits["max_chars_per_text"]


def document_requests(spec: dict[str, Any], limits: dict[str, int], labels: list[str] | None) -> dict[str, Any]:
    """Request and 200 response schemas of /v1/scan and /v1/moderations from the pydantic models, with the
    server's limits and, when known, its labels (a threshold for another label is a 400); /readyz's 503."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for path, (request_model, response_model) in API_MODELS.items():
        operation = spec.get("paths", {}).get(path, {}).get("post")
        if not isinstance(operation, dict):
            continue
        request = _model_schema(request_model, schemas)
        props = request["properties"]
        for variant in props.get("input", {}).get("anyOf", []):
            _bound_texts(variant, limits)
        if "texts" in props:
            _bound_texts(props["texts"], limits)
        if labels is not None and "thresholds" in props:
            for variant in props["thresholds"].get("anyOf", []):
                if variant.get("type") == "object":
                    variant["properties"] = {name: variant["additionalProperties"] for name in labels}
                    variant["additionalProperties"] = False
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
        ok = operation.setdefault("responses", {}).setdefault("200", {"description": "Successful Response"})
        ok["content"] = {"application/json": {"schema": _model_schema(response_model, schemas)}}
    readyz = spec.get("paths", {}).get("/readyz", {}).get("get")
    if isinstance(readyz, dict):
        readyz.setdefault("responses", {})["503"] = {
            "description": "Not ready: shutting down (draining), or the audit log cannot be written"}
    return spec


# -- turning pydantic errors into one actionable message ----------------------------------------------------
_HINTS = {
    "texts": "'texts' must be a list of strings, e.g. {\"texts\": [\"first text\", \"second text\"]}",
    "thresholds": "'thresholds' maps label names to probabilities in [0, 1], e.g. {\"toxicity\": 0.7}",
    "return_spans": "'return_spans' must be true or false",
    "input": "'input' must be a string, a list of strings or a list of "
             "{\"type\": \"text\", \"text\": ...} objects",
    "model": "'model' must be a string",
}
_ROOT_HINT = {
    ScanRequest: "the body must be a JSON object such as {\"texts\": [\"some text\"]}",
    ModerationRequest: "the body must be a JSON object such as {\"input\": \"some text\"}",
}
# Union members appear in pydantic locations ("input", "list[str]", 0): not field names.
_UNION_TAGS = ("str", "list[str]", "list[TextInput]")


def format_param(loc: tuple[Any, ...]) -> str | None:
    """('texts', 3) -> 'texts[3]'; ('thresholds', 'toxicity') -> 'thresholds.toxicity'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _UNION_TAGS:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or None


def _json_type(value: Any) -> str:
    # Name the JSON type the client sent (never the value itself: it may be user content).
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a value of another type"


def error_from_validation(model: type[BaseModel], exc: ValidationError) -> RequestError:
    errors = exc.errors(include_url=False, include_context=False)
    first = errors[0]
    kind, loc = first["type"], tuple(first["loc"])
    if kind == "json_invalid":
        # pydantic's JSON messages give a position, never the content.
        return RequestError(f"the request body is not valid JSON ({first['msg']})", code="invalid_json")
    if not loc:
        return RequestError(f"{_ROOT_HINT.get(model, 'the body must be a JSON object')} "
                            f"(got {_json_type(first.get('input'))})", code="invalid_body")
    field = str(loc[0])
    param = format_param(loc)
    if kind == "missing":
        return RequestError(f"missing required field '{field}': {_HINTS.get(field, '')}".rstrip(": "),
                            param=field, code="missing_field")
    if kind == "extra_forbidden":
        allowed = ", ".join(model.model_fields)
        return RequestError(f"unknown field '{field}': this endpoint accepts {allowed}",
                            param=field, code="unknown_field")
    if field == "input" and len({format_param(tuple(e["loc"])) for e in errors}) > 1:
        # A union: pydantic reports one error per alternative; one sentence is clearer.
        return RequestError(_HINTS["input"], param="input", code="invalid_type")
    got = "" if kind in ("less_than_equal", "greater_than_equal", "finite_number") \
        else f" (got {_json_type(first.get('input'))})"
    hint = _HINTS.get(field, "")
    message = f"invalid '{param}': {first['msg']}{got}. {hint}".rstrip(". ") + ("." if hint else "")
    return RequestError(message, param=param, code="invalid_type" if "type" in kind else "invalid_value")


def parse_body(model: type[BaseModel], body: bytes) -> Any:
    """Decode, parse and validate a request body, or raise a RequestError naming the problem."""
    if not body.strip():
        raise RequestError(f"the request body is empty: {_ROOT_HINT.get(model, 'send a JSON object')}",
                           code="empty_body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RequestError(f"the request body is not valid UTF-8 (bad byte at offset {exc.start}): "
                           "send JSON encoded as UTF-8", code="invalid_encoding") from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        raise error_from_validation(model, exc) from None
