"""Errors of the API, rendered by one set of handlers in the shape of the surface asked.

Every error body on /api/v1 is `{"error": {"message", "type", "param", "code"}}`; on
/api/graphql it is GraphQL's, `{"errors": [{"message", "extensions": {"code", "type"}}]}`, with
the same HTTP status.

ApiError (status, type, code)
 ├── 400 invalid_request_error / bad_request
 ├── 401 authentication_error / invalid_api_key
 ├── 403 permission_error / forbidden
 ├── 404 not_found_error / not_found
 ├── 409 conflict_error / already_exists
 ├── 413 invalid_request_error / request_too_large
 ├── 422 invalid_request_error / validation_error (value_out_of_range: a metric value)
 ├── 499 invalid_request_error / client_closed_request (nobody reads it: the client left)
 ├── 500 server_error / internal_error
 ├── 502 upstream_error / upstream_error
 ├── 503 server_error / service_unavailable (query_timeout: a read past its timeout)
 └── 504 upstream_error / upstream_timeout
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from store.db_errors import driver_message, is_transient
from store.errors import (
    AlreadyExistsError,
    AnalyticsNotReadyError,
    AnalyticsUnavailableError,
    InvalidInputError,
    NotFoundError,
    QueryCancelledError,
    StoreError,
    ValueOutOfRangeError,
)

log = logging.getLogger("interlog.errors")


class ApiError(Exception):
    """An error answered to the client with a status and OpenAI's error body."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}  # sent with the answer (e.g. an upstream's Retry-After)
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.error_type, self.code, self.param)


class BadRequest(ApiError):
    pass


class Unauthorized(ApiError):
    status_code = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(ApiError):
    status_code = 403
    error_type = "permission_error"
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    error_type = "not_found_error"
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    error_type = "conflict_error"
    code = "already_exists"


class PayloadTooLarge(ApiError):
    status_code = 413
    code = "request_too_large"


class Unprocessable(ApiError):
    status_code = 422
    code = "validation_error"


class UpstreamError(ApiError):
    status_code = 502
    error_type = "upstream_error"
    code = "upstream_error"


class UpstreamRateLimited(ApiError):
    """The upstream answered 429: passed on as 429 (with its Retry-After), so that clients
    back off as they would before the model itself."""

    status_code = 429
    error_type = "rate_limit_error"
    code = "upstream_rate_limited"


class UpstreamUnavailable(ApiError):
    """The upstream answered 503: passed on as 503 (with its Retry-After)."""

    status_code = 503
    error_type = "upstream_error"
    code = "upstream_unavailable"


class UpstreamTimeout(ApiError):
    status_code = 504
    error_type = "upstream_error"
    code = "upstream_timeout"


class ClientClosedRequest(ApiError):
    """The client went away before its answer (nginx's 499); only logs ever see it."""

    status_code = 499
    code = "client_closed_request"


class InternalError(ApiError):
    status_code = 500
    error_type = "server_error"
    code = "internal_error"


class ServiceUnavailable(ApiError):
    """The server could not answer now: the store is unreachable or busy (code
    store_unavailable, with Retry-After), or a read ran past INTERLOG_READ_TIMEOUT_SECONDS (code
    query_timeout) and was stopped. 503, not 408: 408 says the client was too slow to send its
    request (this API answers it for a late body), and clients and proxies resend a 408 as is;
    here the request arrived whole, and the server chose to stop a query that may well succeed
    narrower, or later on a less busy database."""

    status_code = 503
    error_type = "server_error"
    code = "service_unavailable"


def error_body(
    message: str, error_type: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    return {"error": {"message": message, "type": error_type, "param": param, "code": code}}


#: The GraphQL surface: its errors come in GraphQL's shape.
GRAPHQL_PATH = "/api/graphql"


def graphql_error_body(message: str, error_type: str, code: str | None) -> dict[str, Any]:
    return {"errors": [{"message": message, "extensions": {"code": code, "type": error_type}}]}


def error_response(
    error: ApiError, headers: dict[str, str] | None = None, *, path: str = ""
) -> JSONResponse:
    """ERROR in the shape of the surface of PATH (GraphQL's on GRAPHQL_PATH, else REST's)."""
    if path == GRAPHQL_PATH:
        body = graphql_error_body(error.message, error.error_type, error.code)
    else:
        body = error.body()
    return JSONResponse(body, status_code=error.status_code, headers=headers)


def error_for_status(status: int, message: str) -> ApiError:
    """An ApiError answered with STATUS (its class for the usual ones)."""
    cls = _STATUS_ERRORS.get(status, ApiError)
    error = cls(message)
    error.status_code = status
    return error


def store_api_error(error: StoreError) -> ApiError:
    """The ApiError a store error is answered with (also each failed item of a bulk request)."""
    if isinstance(error, NotFoundError):
        return NotFound(str(error))
    if isinstance(error, AlreadyExistsError):
        return Conflict(str(error))
    if isinstance(error, ValueOutOfRangeError):
        return Unprocessable(str(error), param=error.param, code=error.code)
    if isinstance(error, AnalyticsNotReadyError | AnalyticsUnavailableError):
        return ServiceUnavailable(str(error), code=error.code)
    if isinstance(error, QueryCancelledError):
        if error.timed_out:
            return ServiceUnavailable(str(error), code=error.code)
        return ClientClosedRequest(str(error))
    return BadRequest(str(error))


#: The errors of the store's database (SQLAlchemy's, and the drivers' raised directly).
DATABASE_ERRORS = (DBAPIError, psycopg.Error, sqlite3.Error)
#: Seconds a client is told to wait before retrying when the store is unavailable.
STORE_RETRY_AFTER_SECONDS = 5


def database_api_error(exc: Exception) -> tuple[ApiError, dict[str, str] | None]:
    """A database error as the client sees it: the store away or busy is 503 with Retry-After
    (nothing was stored; the same request may succeed later); data the store refuses for good
    is 400 with the database's reason."""
    if is_transient(exc):
        message = "the store is unavailable; retry later"
        error: ApiError = ServiceUnavailable(message, code="store_unavailable")
        return error, {"Retry-After": str(STORE_RETRY_AFTER_SECONDS)}
    return BadRequest(
        f"the store refused the data: {driver_message(exc)}", code="store_refused"
    ), None


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body",)]
    param = ".".join(location) or None
    message = first.get("msg", "invalid value")
    if param:
        message = f"{param}: {message}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problems)"
    return message, param


_STATUS_ERRORS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: Unprocessable,
}


def install_error_handlers(app: FastAPI) -> None:
    """Render every error of the app in the shape of its surface (REST, or GraphQL's)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
        return error_response(exc, {**exc.headers, **headers} or None, path=request.url.path)

    @app.exception_handler(NotFoundError)
    @app.exception_handler(AlreadyExistsError)
    @app.exception_handler(InvalidInputError)
    @app.exception_handler(QueryCancelledError)
    @app.exception_handler(AnalyticsNotReadyError)
    @app.exception_handler(AnalyticsUnavailableError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        return error_response(store_api_error(exc), path=request.url.path)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(psycopg.Error)
    @app.exception_handler(sqlite3.Error)
    async def _database(request: Request, exc: Exception) -> JSONResponse:
        error, headers = database_api_error(exc)
        if error.status_code == 503:
            log.warning("store unavailable: %s", driver_message(exc))
        return error_response(error, headers, path=request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(Unprocessable(message, param=param), path=request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = error_for_status(exc.status_code, str(exc.detail))
        headers = dict(exc.headers) if exc.headers else None
        return error_response(error, headers, path=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return error_response(InternalError("internal server error"), path=request.url.path)
