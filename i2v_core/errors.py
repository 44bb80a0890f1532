"""Errors in OpenAI's shape, built in one place: an `APIError` raised anywhere in the ingress
becomes `{"error": {"message", "type", "param", "code"}}` with its status code."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


class APIError(Exception):
    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return error_response(self.status_code, self.message, self.param, self.code, self.headers)


def invalid(message: str, param: str | None = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def too_many_requests(message: str, code: str, retry_after_s: int) -> APIError:
    """A 429 in OpenAI's shape with Retry-After: nothing was done, try again later."""
    return APIError(429, message, code=code, headers={"Retry-After": str(retry_after_s)})


def not_found(video_id: str) -> APIError:
    return APIError(
        404, f"No video found with id '{video_id}'.", param="video_id", code="video_not_found"
    )


def validation_error(errors: list[Any]) -> APIError:
    """The first of pydantic's errors as our 400: the field's name as `param` and a code from a
    closed set (missing_required_parameter, string_above_max_length, unknown_parameter,
    invalid_value)."""
    first = errors[0] if errors else {}
    location = [p for p in first.get("loc", ()) if p not in ("body", "query", "path", "header")]
    param = str(location[0]) if location else None
    code = _VALIDATION_CODES.get(first.get("type", ""), "invalid_value")
    reason = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    if code == "unknown_parameter":
        message = f"Unknown parameter: '{param}'."
    elif code == "missing_required_parameter":
        message = f"Missing required parameter: '{param}'."
    elif param:
        message = f"Invalid '{param}': {reason[:1].lower()}{reason[1:]}{_given(first)}."
    else:
        message = reason
    return invalid(message, param, code)


def _given(error: Any) -> str:
    """`, got '5000'` when the value sent is short and plain enough to echo."""
    value = error.get("input") if isinstance(error, dict) else None
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        text = str(value)
        if len(text) <= 40 and text.isprintable():
            return f", got '{text}'"
    return ""


_VALIDATION_CODES = {
    "missing": "missing_required_parameter",
    "string_too_long": "string_above_max_length",
    "extra_forbidden": "unknown_parameter",
}


def error_response(
    status_code: int,
    message: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorResponse(
        error=ErrorDetail(
            message=message,
            type=_TYPES.get(
                status_code, "server_error" if status_code >= 500 else "invalid_request_error"
            ),
            param=param,
            code=code,
        )
    )
    return JSONResponse(body.model_dump(), status_code=status_code, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_error(list(exc.errors())).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return error_response(exc.status_code, str(exc.detail), None, None, headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        return error_response(
            500, "The server had an error while processing your request.", None, "internal_error"
        )


def _allowed_methods(request: Request) -> list[str]:
    """Every method the request's path serves (Starlette's own 405 names the first matching
    route's methods only). A path that is a route of its own (`/v1/videos/extensions`) names that
    route's methods, not those of a templated route it also fits (`/v1/videos/{video_id}`), as
    the OpenAPI document lists them."""
    methods: set[str] = set()
    exact: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            route_methods = set(getattr(route, "methods", None) or ())
            methods |= route_methods
            if getattr(route, "param_convertors", None) == {}:  # no {parameter} in its path
                exact |= route_methods
    return sorted(exact or methods)
