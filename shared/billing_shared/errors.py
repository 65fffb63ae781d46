"""One JSON error shape for every service: {"error": {"code", "message", "field"?}}."""

from __future__ import annotations

from typing import Any


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
