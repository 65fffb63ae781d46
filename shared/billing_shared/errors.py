"""One JSON error shape for every service: {"error": {"code", "message", "field"?}}."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ApiError(Exception):
    """An error a client caused or can act on; rendered as JSON with its HTTP status."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.extra = extra

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        error.update(self.extra)
        return {"error": error}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def conflict(code: str, message: str) -> ApiError:
    return ApiError(409, code, message)


def invalid(field: str, message: str, code: str = "invalid_request") -> ApiError:
    return ApiError(422, code, message, field=field)


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: ErrorDetail


# Documented on every route, so clients (and fuzzers) know the real error shape.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad request"},
    401: {"model": ErrorBody, "description": "Missing, invalid or expired token"},
    403: {"model": ErrorBody, "description": "Not allowed for this role"},
    404: {"model": ErrorBody, "description": "Not found (or not yours)"},
    409: {"model": ErrorBody, "description": "Conflict with the current state"},
    413: {"model": ErrorBody, "description": "Request body too large"},
    422: {"model": ErrorBody, "description": "Invalid input; `field` names the culprit"},
    503: {"model": ErrorBody, "description": "A dependency (database, broker, gateway) is down; retry later"},
}
