"""One error shape everywhere: {"error": {"message", "type", "param", "code"}}."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type = status, message, type
        self.param, self.code, self.headers = param, code, headers


def unauthorized() -> ApiError:
    return ApiError(
        401,
        "missing or invalid API key",
        type="authentication_error",
        code="invalid_api_key",
        headers={"WWW-Authenticate": "Bearer"},
    )


def forbidden(scope: str) -> ApiError:
    return ApiError(
        403,
        f"this key lacks the {scope!r} scope",
        type="permission_error",
        code="insufficient_scope",
    )


def rate_limited(retry_after: str) -> ApiError:
    return ApiError(
        429,
        "rate limit exceeded for this API key",
        type="rate_limit_error",
        code="rate_limited",
        headers={"Retry-After": retry_after},
    )


def unavailable(message: str, retry_after_s: int = 5) -> ApiError:
    return ApiError(
        503,
        message,
        type="service_unavailable",
        code="dependency_unavailable",
        headers={"Retry-After": str(retry_after_s)},
    )


REQUEST_PARTS = ("body", "path", "query", "header", "cookie")
MAX_LISTED_ERRORS = 100


def _param(loc) -> str:
    if loc and loc[0] in REQUEST_PARTS:  # "path.ticket_id" names nothing the caller sent
        loc = loc[1:]
    return ".".join(str(part) for part in loc)


def body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def install_handlers(app: FastAPI) -> None:
    install_domain_handlers(app)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, error: ApiError):
        return JSONResponse(
            body(error.message, error.type, error.param, error.code),
            status_code=error.status,
            headers=error.headers,
        )

    @app.exception_handler(RequestValidationError)
    @app.exception_handler(ValidationError)
    async def _validation(_request: Request, error: RequestValidationError | ValidationError):
        found = [(_param(e["loc"]), e["msg"]) for e in error.errors()]
        param, first = found[0]
        message = f"{param or 'body'}: {first}"
        if len(found) > 1:
            message += f" (and {len(found) - 1} more: see `errors`)"
        answer = body(message, "invalid_request_error", param or None, error.errors()[0]["type"])
        # every problem, so that a caller fixes them at once (an applicant's every bad field)
        answer["error"]["errors"] = [
            {"param": p or None, "message": m} for p, m in found[:MAX_LISTED_ERRORS]
        ]
        return JSONResponse(answer, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, error: StarletteHTTPException):
        return JSONResponse(
            body(str(error.detail), "invalid_request_error"),
            status_code=error.status_code,
            headers=getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception):
        logging.getLogger("orchestrator").exception(
            "unhandled error on %s %s", request.method, request.url.path
        )
        return JSONResponse(
            body("internal error; it has been logged", "server_error", code="internal_error"),
            status_code=500,
        )


class DomainError(Exception):
    """A service's refusal or a dependency's fault, free of HTTP; see DOMAIN_ERRORS."""

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


class NotFound(DomainError):
    """No such record for this caller (another tenant's is as absent as a missing one)."""


class InvalidInput(DomainError):
    """A value the service cannot accept, named by `param`."""


class Conflict(DomainError):
    """The request does not fit the record's present state (nothing earlier to roll back to)."""


class ModelNotFound(DomainError):
    """No such model (in Triton's repository, or among the chat models)."""


class ControlRefused(DomainError):
    """The control plane refuses the request (a config field, a version) or Triton refused it."""


class ContextTooLong(DomainError):
    """The prompt plus max_tokens does not fit the model's context: the caller's error."""


class DependencyUnavailable(DomainError):
    """Triton or a model cannot answer now (down, unloaded, slow): retry later."""


class ControlTimeout(DependencyUnavailable):
    """A load or unload did not finish in time; the audit entry says how far it got."""


# One place maps domain errors to HTTP: (status, error type, default code, Retry-After seconds).
DOMAIN_ERRORS: dict[type[DomainError], tuple[int, str, str | None, int | None]] = {
    NotFound: (404, "invalid_request_error", "not_found", None),
    InvalidInput: (422, "invalid_request_error", None, None),
    Conflict: (409, "invalid_request_error", "conflict", None),
    ModelNotFound: (404, "invalid_request_error", "model_not_found", None),
    ControlRefused: (422, "invalid_request_error", "control_refused", None),
    ContextTooLong: (400, "invalid_request_error", "context_length_exceeded", None),
    DependencyUnavailable: (503, "service_unavailable", "dependency_unavailable", 5),
    ControlTimeout: (503, "service_unavailable", "control_timeout", 10),
}


def _domain_handler(status: int, type_: str, default_code: str | None, retry_after: int | None):
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None

    async def handle(_request: Request, error: DomainError) -> JSONResponse:
        return JSONResponse(
            body(error.message, type_, error.param, error.code or default_code),
            status_code=status,
            headers=headers,
        )

    return handle


def install_domain_handlers(app: FastAPI) -> None:
    for kind, mapping in DOMAIN_ERRORS.items():
        app.add_exception_handler(kind, _domain_handler(*mapping))
